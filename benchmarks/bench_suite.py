"""The standard suite on a fresh 2-board virtual lab, as `rig run` does it (goal ≤ 120 s).

Prints `suite_2_boards_s: measured=<s> target=120 ratio=<s/120>` and the pytest tally.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time

TARGET_S = 120.0


def run_suite(reports: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`rig run` on a fresh 2-board lab into `reports`; its output and its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rig.cli", "run", "--report-dir", reports],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as reports:
        done, elapsed = run_suite(reports)
    tally = re.findall(r"^=*\s*(\d+ passed.*?) in [\d.]+s", done.stdout, flags=re.MULTILINE)
    print(f"suite tally: {tally[-1] if tally else 'no pytest summary'} (rig run exit {done.returncode})")
    print(f"suite_2_boards_s: measured={elapsed:.1f} target={TARGET_S:.0f} ratio={elapsed / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
