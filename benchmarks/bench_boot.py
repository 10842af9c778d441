"""Power-on → `rig_agent: ready` on a twin board (target ≤ 100 ms)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from rig.esp.flashimage import flash_regions
from rig.esp.partitions import PartitionTable
from rig.esp.testimage import make_test_app
from twin.board import TwinBoard

TARGET_S = 0.100
TABLE = (
    "nvs,data,nvs,,0x6000,\notadata,data,ota,,0x2000,\nphy_init,data,phy,,0x1000,\n"
    "ota_0,app,ota_0,,1700K,\nota_1,app,ota_1,,1700K,\n"
)


def boot_once(state_dir: Path) -> float:
    board = TwinBoard(state_dir)
    table = PartitionTable.from_csv(TABLE)
    for offset, data in flash_regions(table, app=make_test_app(version="1.0.0")):
        board.chip.flash.program(offset, data)
    ready = threading.Event()
    seen = bytearray()

    def sink(data: bytes) -> None:
        seen.extend(data)
        if b"rig_agent: ready" in seen:
            ready.set()

    board.chip.uart.attach(sink)
    start = time.perf_counter()
    board.start(rfc2217_port=None)
    ready.wait(30)
    elapsed = time.perf_counter() - start
    board.stop()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [boot_once(Path(tmp) / f"b{i}") for i in range(3)]
    measured = min(runs)
    print(f"boot_to_ready: measured={measured:.3f} target={TARGET_S:.3f} ratio={measured / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
