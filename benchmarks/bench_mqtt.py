"""AWS IoT OTA over MQTT on a twin: the embedded broker's start (target ≤ 1 s), and a 1 MiB
image in the library's default 4 KiB blocks from job creation to the job SUCCEEDED — stream,
signature check, activation, reboot, self-test, acceptance (target ≤ 3 s); blocks/s."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rig.esp.flashimage import flash_regions
from rig.esp.partitions import PartitionTable
from rig.esp.testimage import make_test_app
from rig.mqtt import protocol as p
from rig.mqtt.broker import Mosquitto
from rig.mqtt.images import LAB_PROJECT
from rig.mqtt.pki import ensure_pki, sign_file
from rig.mqtt.service import JobsService
from rig.net.listener import free_port
from twin.board import TwinBoard
from twin.config import BoardConfig, MqttEndpoint

BROKER_TARGET_S = 1.0
OTA_TARGET_S = 3.0
THING = "bench"
TABLE = (
    "nvs,data,nvs,,0x6000,\notadata,data,ota,,0x2000,\nphy_init,data,phy,,0x1000,\n"
    "ota_0,app,ota_0,,1700K,\nota_1,app,ota_1,,1700K,\n"
)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = ensure_pki(Path(tmp) / "pki", [THING])
        port = free_port("127.0.0.1")
        with Mosquitto(pki, "127.0.0.1", port, Path(tmp) / "broker") as broker:
            broker.stop()
            broker_up = broker.start()
            service = JobsService("127.0.0.1", port, str(pki.ca), pki.service, THING)
            service.start()
            config = BoardConfig(
                mqtt=MqttEndpoint("127.0.0.1", port, THING, str(pki.directory)),
                firmware_overrides={LAB_PROJECT: "aws-ota"},
            )
            board = TwinBoard(Path(tmp) / "board", config)
            table = PartitionTable.from_csv(TABLE)
            base = make_test_app(version="1.0.0", project=LAB_PROJECT)
            for offset, data in flash_regions(table, app=base):
                board.chip.flash.program(offset, data)
            board.start(rfc2217_port=None)
            if not service.wait_requests(1, 30):
                raise SystemExit("the twin never asked for its next job")
            image = make_test_app(version="1.1.0", project=LAB_PROJECT, size=1024 * 1024)
            entry = p.JobFile("/ota.bin", len(image), 0, "/codesign.pem", sign_file(image, pki.codesign.key))
            start = time.perf_counter()
            job = service.create_job(image, [entry])
            if not service.wait_status(job, lambda j: j.status.terminal, 120):
                raise SystemExit("the job never ended")
            measured = time.perf_counter() - start
            board.stop()
            service.stop()
    if job.status is not p.JobStatus.SUCCEEDED:
        raise SystemExit(f"the job ended {job.status.value}")
    blocks = job.total_blocks
    print(f"mqtt_broker_up: measured={broker_up:.3f} target={BROKER_TARGET_S:.3f} "
          f"ratio={broker_up / BROKER_TARGET_S:.2f}")  # fmt: skip
    ratio = measured / OTA_TARGET_S
    print(f"mqtt_ota_1mib: measured={measured:.3f} target={OTA_TARGET_S:.3f} ratio={ratio:.2f} "
          f"blocks={blocks} blocks_per_s={blocks / measured:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
