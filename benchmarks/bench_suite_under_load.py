"""The whole suite on a fresh 2-board lab, five times, with two CPU-bound processes beside it.

A busy CI box or farm host must not change a verdict: on the reference firmware model every
run must end with 0 FAIL and 0 BRICK. INCONCLUSIVE (a fault that missed its window three
times) is allowed but counted, since it is what load costs. Prints one line per run, then
`suite_under_load_clean_runs: measured=<runs without FAIL/BRICK> target=<runs>
ratio=<target/measured>` (above 1 misses) and the mean suite time. `BENCH_LOAD_RUNS`
changes the number of runs.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile

from benchmarks.bench_suite import run_suite

RUNS = int(os.environ.get("BENCH_LOAD_RUNS", "5"))
HOGS = 2
FAILED = re.compile(r"^FAILED (\S+)", re.MULTILINE)
COUNTS = re.compile(r"(\d+) (BRICK|FAIL|INFRA|INCONCLUSIVE|PASS|SKIP)\b")


def _spin() -> None:
    while True:
        pass


def _one_run(reports: str) -> tuple[dict[str, int], float, int, list[str]]:
    done, elapsed = run_suite(reports)
    output = (done.stdout + done.stderr).splitlines()
    summary = [line for line in output if line.startswith("ota-rig report:")]
    counts = {name: int(n) for n, name in COUNTS.findall(summary[-1])} if summary else {}
    return counts, elapsed, done.returncode, output


def main() -> None:
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(HOGS)]
    for hog in hogs:
        hog.start()
    clean, times = 0, []
    try:
        for run in range(1, RUNS + 1):
            with tempfile.TemporaryDirectory(prefix="bench-load-") as reports:
                counts, elapsed, code, output = _one_run(reports)
            times.append(elapsed)
            wrong = counts.get("FAIL", 0) + counts.get("BRICK", 0)
            clean += bool(counts) and wrong == 0
            listed = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no summary line"
            failed = sorted(set(FAILED.findall("\n".join(output))))
            print(f"run {run}/{RUNS} with {HOGS} CPU hogs: {listed} in {elapsed:.0f} s (rig run exit {code})"
                  + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
    mean = sum(times) / len(times)
    ratio = f"{RUNS / clean:.2f}" if clean else "inf"
    print(f"suite_under_load_clean_runs: measured={clean} target={RUNS} ratio={ratio}")
    print(f"suite_under_load_mean_s: measured={mean:.0f} (2 boards, {HOGS} CPU hogs)")


if __name__ == "__main__":
    main()
