"""esptool write-flash of 1 MiB (stub, compressed) to a twin over RFC2217, fast client.

Target: 3.0 s wall clock, connect and verify included.
Run: `python -m benchmarks.bench_flash_write`.
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
import time
from pathlib import Path

import esptool

from rig.serialio import enable_fast_rfc2217
from twin.chip import Esp32Chip
from twin.cpu import Cpu

TARGET_S = 3.0
SIZE = 1024 * 1024


def _idle(cpu: Cpu) -> None:
    cpu.halt()


def random_ish(size: int) -> bytes:
    """Like firmware: a mix of incompressible and repetitive stretches."""
    rng = random.Random(42)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(rng.randrange(256, 4096))
        out += bytes([rng.randrange(256)]) * rng.randrange(64, 2048)
    return bytes(out[:size])


def main() -> None:
    enable_fast_rfc2217()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        image = workdir / "image.bin"
        data = random_ish(SIZE)
        image.write_bytes(data)
        chip = Esp32Chip(workdir / "chip", _idle)
        server = chip.serve_rfc2217()
        chip.supply_changed(3.3)
        try:
            started = time.monotonic()
            with contextlib.redirect_stdout(io.StringIO()):
                esptool.main(["--port", server.url, "write-flash", "0x10000", str(image)])
            elapsed = time.monotonic() - started
            if chip.flash.read(0x10000, SIZE) != data:
                raise SystemExit("flash contents differ from the image")
        finally:
            chip.close()
    print(f"flash_write_1MiB_s: measured={elapsed:.2f} target={TARGET_S} ratio={elapsed / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
