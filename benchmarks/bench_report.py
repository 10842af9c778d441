"""Benchmark: `rig report` on a month of nightly runs (10 000 outcomes, 32 boards); target <= 10 s.

Only report generation is timed (loading from the store, analysis, HTML and plots); the
synthetic history is written to a temporary database first.
Run: python -m benchmarks.bench_report
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rig.cli import main as rig_main
from rig.results import ResultsStore
from rig.results.synthetic import HistoryShape, synthetic_history

TARGET_S = 10.0
SHAPE = HistoryShape(outcomes=10_000, runs=31, boards=32, seed=2024)


def fill(db: Path) -> tuple[int, int]:
    """Write the synthetic month into `db`, committing each outcome as the plugin does."""
    count = runs = 0
    with ResultsStore(db) as store:
        for info, outcomes in synthetic_history(SHAPE):
            store.start_run(info)
            for outcome in outcomes:
                store.record(outcome)
            count += len(outcomes)
            runs += 1
    return count, runs


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as folder:
        db = Path(folder) / "results.db"
        count, runs = fill(db)
        started = time.perf_counter()
        code = rig_main(["report", "--db", str(db), "--window", str(SHAPE.runs)])
        measured = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"rig report failed with exit code {code}")
        print(f"outcomes={count} boards={SHAPE.boards} runs={runs}")
        print(f"report_10k: measured={measured:.2f} target={TARGET_S:g} ratio={measured / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
