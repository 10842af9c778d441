"""Stock esptool, by hand, against a lab board (target <= 10 s for 1 MiB of random data at
921600 baud, written and verified; a real ESP32 takes about 12 s).

The unmodified esptool CLI runs in its own process, as a person runs it, through the
board's raw download port (`socket://`, twin/uart.py `DownloadPort`). Over the board's
RFC2217 port the same command takes about 37 s: pyserial's RFC2217 client sleeps 50 ms
per settings change and again per acknowledgement it waits for, and esptool changes its
read timeout around nearly every command (about 330 such changes for 1 MiB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rig.lab_cli import running_lab
from rig.labstate import LabStateFile

TARGET_S = 10.0
SIZE = 1024 * 1024
OFFSET = 0x100000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp) / "lab", 1):
        state = LabStateFile.read(Path(tmp) / "lab")
        assert state is not None and state.boards[0].download_port is not None
        image = Path(tmp) / "random.bin"
        image.write_bytes(os.urandom(SIZE))
        argv = [
            sys.executable, "-m", "esptool", "--port", f"socket://127.0.0.1:{state.boards[0].download_port}",
            "--before", "no-reset", "--after", "no-reset", "--baud", "921600",
            "write-flash", hex(OFFSET), str(image),
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        measured = time.monotonic() - started
    if done.returncode != 0 or "Hash of data verified" not in done.stdout:
        raise SystemExit(f"esptool failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    ratio = measured / TARGET_S
    print(f"esptool_stock_write_1mib: measured={measured:.2f} target={TARGET_S} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
