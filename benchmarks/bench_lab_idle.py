"""CPU used by an idle 4-board lab process (target < 5 % of one core).

The lab runs beside the suite on a shared CI machine; an idle lab must not steal the
time the boards under test need. Measured from /proc/<pid>/stat over a quiet window.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from rig.lab_cli import lab_status, running_lab

TARGET_PERCENT = 5.0
BOARDS = 4
SETTLE_S = 1.0
WINDOW_S = 5.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp) / "lab", BOARDS):
        pid = lab_status(Path(tmp) / "lab").pid
        assert pid is not None
        time.sleep(SETTLE_S)
        before, start = cpu_seconds(pid), time.monotonic()
        time.sleep(WINDOW_S)
        used, elapsed = cpu_seconds(pid) - before, time.monotonic() - start
    measured = 100.0 * used / elapsed
    print(
        f"lab_idle: measured={measured:.2f} target={TARGET_PERCENT:g} "
        f"ratio={measured / TARGET_PERCENT:.2f} (% of one core, {BOARDS} boards, {elapsed:.1f} s)"
    )


if __name__ == "__main__":
    main()
