"""A run SIGKILLed mid-way keeps every outcome recorded before the kill.

Helper for the plugin's kill-mid-run integration test: `record_until_killed` is the
child side (record outcomes one by one, announcing each after its commit), and
`kill_after` is the parent side (SIGKILL once N commits were announced).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from rig.results import OutcomeClass, ResultsStore, RunInfo
from rig.results.synthetic import make_outcome

RUN_ID = "20240501-020000"
CHILD = """
import sys
from rig.results import ResultsStore
from rig.results.synthetic import make_outcome
store = ResultsStore(sys.argv[1])
for index in range(100_000):
    store.record(make_outcome(run_id=sys.argv[2], scenario=f"test_{index}", artifacts=f"artifacts/{index}"))
    print(index, flush=True)
"""


def kill_after(db: Path, run_id: str, commits: int) -> list[str]:
    """Start a child recording outcomes of `run_id`; SIGKILL it after `commits` announced commits."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), run_id], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert child.stdout is not None
    announced = []
    try:
        for line in child.stdout:
            announced.append(f"test_{line.strip()}")
            if len(announced) == commits:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    return announced


def test_outcomes_survive_sigkill_and_the_run_can_be_completed(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    info = RunInfo(RUN_ID, "2024-05-01T02:00:00+00:00", "farm.yaml", ("board-a",), 1, "0.1.0", None,
                   "rig run", None, "running")  # fmt: skip
    ResultsStore(db).start_run(info)
    announced = kill_after(db, RUN_ID, commits=25)

    store = ResultsStore(db)
    outcomes = store.outcomes(RUN_ID)
    stored = [o.scenario for o in outcomes]
    assert stored[: len(announced)] == announced  # every announced commit is there, in order
    # the child may have committed a few more before the signal landed: never a gap or half a row
    assert stored == [f"test_{index}" for index in range(len(stored))]
    assert all(len(o.boots) == 2 for o in outcomes)
    assert store.run(RUN_ID).status == "running"
    assert store.done_keys(RUN_ID) == {(s, "board-a") for s in stored}

    store.finish_run(RUN_ID, "interrupted")
    assert store.run(RUN_ID).status == "interrupted"
    store.start_run(info)  # `rig run --resume`: the same run id goes on
    store.record(make_outcome(run_id=RUN_ID, scenario="test_resumed", outcome=OutcomeClass.PASS))
    store.finish_run(RUN_ID)
    finished = store.run(RUN_ID)
    assert finished.status == "finished" and finished.finished_at is not None
    assert [o.scenario for o in store.outcomes(RUN_ID)][-1] == "test_resumed"
