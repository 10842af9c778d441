"""Host CPU used by 4 idle twin chips (powered, flash-boot hook waiting on the UART).

Target: < 5 % of one core over 5 s. Run: `python -m benchmarks.bench_idle`.
"""

from __future__ import annotations

import struct
import tempfile
import threading
import time
from pathlib import Path

from twin.chip import BOOTLOADER_OFFSET, Esp32Chip
from twin.cpu import Cpu

TARGET_PERCENT = 5.0
CHIPS = 4
WINDOW_S = 5.0


def main() -> None:
    booted = threading.Semaphore(0)

    def waiting_app(cpu: Cpu) -> None:
        booted.release()
        while True:
            cpu.uart_readline(timeout=None)

    header = struct.pack("<BBBBI", 0xE9, 0, 2, 0x20, 0x40080764) + b"\xee" + b"\x00" * 15
    with tempfile.TemporaryDirectory() as tmp:
        chips = []
        for n in range(CHIPS):
            chip = Esp32Chip(Path(tmp) / f"chip{n}", waiting_app)
            chip.flash.program(BOOTLOADER_OFFSET, header)
            chip.serve_rfc2217()
            chip.supply_changed(3.3)
            chips.append(chip)
        try:
            for _ in chips:
                if not booted.acquire(timeout=30):
                    raise SystemExit("a chip did not reach its flash-boot hook")
            cpu_before, wall_before = time.process_time(), time.monotonic()
            time.sleep(WINDOW_S)
            cpu_used = time.process_time() - cpu_before
            percent = 100.0 * cpu_used / (time.monotonic() - wall_before)
        finally:
            for chip in chips:
                chip.close()
    print(f"idle_4_chips_cpu_percent: measured={percent:.2f} target={TARGET_PERCENT} "
          f"ratio={percent / TARGET_PERCENT:.2f}")


if __name__ == "__main__":
    main()
