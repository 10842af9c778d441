"""What every judged OTA and every scenario pay on a lab board: the otadata read-back
(target <= 0.5 s: reset into the ROM loader, stub, 8 KiB read, on-chip MD5 of a slot,
port handed back to the console) and the known-state prepare (target <= 1.0 s: one
compressed esptool write of table, app and erased slots, then reset to `ready`).

The suite does about 50 read-backs and 24 prepares per board, so these two set most of
its wall time on a virtual farm.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from rig.board import Board
from rig.farm import load_farm
from rig.imageset import prepare_image_set
from rig.lab_cli import running_lab

READBACK_TARGET_S = 0.5
PREPARE_TARGET_S = 1.0
ROUNDS = 5


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp) / "lab", 1) as farm_file:
        farm = load_farm(farm_file)
        spec = farm.boards[0]
        images = prepare_image_set(Path(tmp) / "images", base=None, key=None, signing={spec.firmware.signing})
        base = images.data("base")
        with Board(farm, spec, Path(tmp) / "board") as board:
            prepares, readbacks = [], []
            for _ in range(ROUNDS):
                started = time.monotonic()
                board.prepare(base, blank_bytes=images.largest_size())
                prepares.append(time.monotonic() - started)
                started = time.monotonic()
                board.read_state([(board.table.ota_slots[0].offset, len(base))])
                readbacks.append(time.monotonic() - started)
                board.reset_and_wait_ready(10.0)
    results = (("readback", readbacks, READBACK_TARGET_S), ("prepare", prepares, PREPARE_TARGET_S))
    for name, samples, target in results:
        measured = statistics.median(samples)
        print(f"{name}: measured={measured:.3f} target={target} ratio={measured / target:.2f}")


if __name__ == "__main__":
    main()
