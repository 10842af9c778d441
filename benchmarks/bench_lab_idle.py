"""CPU used by an idle lab process: 4 boards (target < 5 % of one core) and the 16 boards of
a fleet rollout (target < 20 %, the same 1.25 % per board).

The lab runs beside the suite on a shared CI machine; an idle lab must not steal the
time the boards under test need. Measured from /proc/<pid>/stat over a quiet window.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from rig.lab_cli import lab_status, running_lab

PERCENT_PER_BOARD = 1.25
BOARD_COUNTS = (4, 16)
SETTLE_S = 1.0
WINDOW_S = 5.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_percent(boards: int) -> tuple[float, float]:
    """% of one core the lab used while idle, and over how long."""
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp) / "lab", boards):
        pid = lab_status(Path(tmp) / "lab").pid
        assert pid is not None
        time.sleep(SETTLE_S)
        before, start = cpu_seconds(pid), time.monotonic()
        time.sleep(WINDOW_S)
        used, elapsed = cpu_seconds(pid) - before, time.monotonic() - start
    return 100.0 * used / elapsed, elapsed


def main() -> None:
    for boards in BOARD_COUNTS:
        measured, elapsed = idle_percent(boards)
        target = PERCENT_PER_BOARD * boards
        print(
            f"lab_idle_{boards}: measured={measured:.2f} target={target:g} "
            f"ratio={measured / target:.2f} (% of one core, {boards} boards, {elapsed:.1f} s)"
        )


if __name__ == "__main__":
    main()
