"""Full OTA of a 1 MiB image from a local HTTPS server on a twin (target ≤ 2 s):
from the `ota` command to `rig_agent: ota complete`."""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from pathlib import Path

from rig.esp.flashimage import flash_regions
from rig.esp.partitions import PartitionTable
from rig.esp.testimage import make_test_app
from rig.net.certs import ensure_bundle
from rig.net.ota_server import OtaServer
from twin.board import TwinBoard

TARGET_S = 2.0
TABLE = (
    "nvs,data,nvs,,0x6000,\notadata,data,ota,,0x2000,\nphy_init,data,phy,,0x1000,\n"
    "ota_0,app,ota_0,,1700K,\nota_1,app,ota_1,,1700K,\n"
)


def wait_for(seen: bytearray, cond: threading.Condition, marker: bytes) -> None:
    with cond:
        if not cond.wait_for(lambda: marker in seen, 120):
            raise SystemExit(f"never saw {marker!r}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ensure_bundle(Path(tmp) / "certs")
        images = {"big.bin": make_test_app(version="1.0.1", size=1024 * 1024)}
        with OtaServer(bundle, images) as server:
            board = TwinBoard(Path(tmp) / "board")
            table = PartitionTable.from_csv(TABLE)
            for offset, data in flash_regions(table, app=make_test_app(version="1.0.0")):
                board.chip.flash.program(offset, data)
            seen = bytearray()
            cond = threading.Condition()

            def sink(data: bytes) -> None:
                with cond:
                    seen.extend(data)
                    cond.notify_all()

            board.chip.uart.attach(sink)
            board.start(rfc2217_port=None)
            wait_for(seen, cond, b"rig_agent: ready")
            board.chip.uart.feed(f"cert {base64.b64encode(bundle.ca_der()).decode()}\n".encode())
            wait_for(seen, cond, b"ok cert")
            start = time.perf_counter()
            board.chip.uart.feed(f"ota {server.url_for('big.bin')}\n".encode())
            wait_for(seen, cond, b"rig_agent: ota complete")
            measured = time.perf_counter() - start
            board.stop()
    print(f"ota_1mib: measured={measured:.3f} target={TARGET_S:.3f} ratio={measured / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
