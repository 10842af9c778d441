"""The `aws-ota` twin model alone: a TwinBoard (no rig session, no esptool) on a real
mosquitto, driven by the Jobs/Streams service. What the AWS OTA library and the ESP32 PAL do
must show in the job statuses, the UART and the flash itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.esp.flashimage import flash_regions
from rig.esp.otadata import OtaData, OtaState
from rig.esp.partitions import PartitionTable
from rig.esp.testimage import make_test_app
from rig.mqtt import protocol as p
from rig.mqtt.broker import Mosquitto
from rig.mqtt.images import LAB_PROJECT
from rig.mqtt.pki import MqttPki, ensure_pki, make_untrusted_codesign, sign_file
from rig.mqtt.service import Job, JobsService
from rig.net.listener import free_port
from twin.board import TwinBoard
from twin.config import AwsOtaSettings, BoardConfig, MqttEndpoint

THING = "twin1"
TABLE = PartitionTable.from_csv(
    "nvs,data,nvs,,0x6000,\notadata,data,ota,,0x2000,\nphy_init,data,phy,,0x1000,\n"
    "ota_0,app,ota_0,,512K,\nota_1,app,ota_1,,512K,\n"
)
SIZE = 32 * 1024


@dataclass
class Rig:
    board: TwinBoard
    service: JobsService
    pki: MqttPki
    uart: bytearray
    lock: threading.Lock

    def log(self) -> str:
        with self.lock:
            return self.uart.decode(errors="replace")

    def job(self, data: bytes, signature: bytes | None) -> Job:
        entry = p.JobFile("/ota.bin", len(data), 0, "/codesign.pem", signature)
        job = self.service.create_job(data, [entry])
        assert self.service.wait_status(job, lambda j: j.status.terminal, 30), self.log()[-2000:]
        return job

    def otadata(self) -> OtaData:
        part = TABLE.otadata
        assert part is not None
        return OtaData.from_bytes(self.board.chip.flash.read(part.offset, part.size))

    def slot(self, index: int, size: int) -> bytes:
        return self.board.chip.flash.read(TABLE.ota_slots[index].offset, size)


@pytest.fixture
def model() -> str:
    """The firmware model the twin runs (a test parametrizes another to compare)."""
    return "aws-ota"


@pytest.fixture
def rig(tmp_path: Path, model: str) -> Iterator[Rig]:
    pki = ensure_pki(tmp_path / "pki", [THING])
    port = free_port("127.0.0.1")
    with Mosquitto(pki, "127.0.0.1", port, tmp_path / "broker"):
        service = JobsService("127.0.0.1", port, str(pki.ca), pki.service, THING)
        service.start()
        config = BoardConfig(
            mqtt=MqttEndpoint("127.0.0.1", port, THING, str(pki.directory)),
            firmware_overrides={LAB_PROJECT: model},
            aws_ota=AwsOtaSettings(request_wait_ms=250, self_test_wait_ms=2000, rtc_wdt_ms=3000),
        )
        board = TwinBoard(tmp_path / "board", config)
        for offset, data in flash_regions(
            TABLE, app=make_test_app(version="1.0.0", project=LAB_PROJECT, size=SIZE)
        ):
            board.chip.flash.program(offset, data)
        uart, lock = bytearray(), threading.Lock()

        def sink(data: bytes) -> None:
            with lock:
                uart.extend(data)

        board.chip.uart.attach(sink)
        board.start(rfc2217_port=None)
        assert service.wait_requests(1, 30), "the twin never came online"
        yield Rig(board, service, pki, uart, lock)
        board.stop()
        service.stop()


def _statuses(job: Job) -> list[bytes]:
    return [update.encode() for _, update in job.updates]


def test_an_accepted_update_reports_every_step_and_erases_the_old_image(rig: Rig) -> None:
    image = make_test_app(version="1.1.0", project=LAB_PROJECT, size=SIZE)
    job = rig.job(image, sign_file(image, rig.pki.codesign.key))
    blocks = p.block_count(len(image))
    assert _statuses(job) == [
        f'{{"status":"IN_PROGRESS","statusDetails":{{"receive":"1/{blocks}"}}}}'.encode(),
        b'{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x01000000"}}',
        b'{"status":"IN_PROGRESS","statusDetails":{"self_test":"active","updatedBy":"0x01010000"}}',
        b'{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v1.1.0","updatedBy":"  v1.0.0"}}',
    ]
    active = rig.otadata().active_index()
    assert active is not None and rig.otadata().entries[active].state == OtaState.VALID
    assert rig.slot(1, len(image)) == image  # the new image runs from ota_1 ...
    assert rig.slot(0, SIZE) == b"\xff" * SIZE  # ... and the old one is gone for good
    assert "AWS_OTA: Disabling RTC hardware watchdog timer" in rig.log()


@pytest.mark.parametrize("signed_by", ["nobody", "a stranger"])
def test_a_file_without_a_good_signature_is_never_activated(rig: Rig, signed_by: str, tmp_path: Path) -> None:
    """otaPal_CloseFile(): no signature clears the context (the bytes stay in the passive
    slot, never selected); a failed check erases the slot. Either way otadata is untouched."""
    image = make_test_app(version="1.1.0", project=LAB_PROJECT, size=SIZE)
    signature = (
        None if signed_by == "nobody" else sign_file(image, make_untrusted_codesign(tmp_path / "x").key)
    )
    before = rig.otadata()
    job = rig.job(image, signature)
    assert _statuses(job)[-1] == b'{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000000"}}'
    line = "Image Signature not found" if signature is None else "Signature verification failed."
    assert f"AWS_OTA: {line}" in rig.log()
    after = rig.otadata()
    assert [e.seq for e in after.entries if e.crc_ok] == [e.seq for e in before.entries if e.crc_ok]
    if signature is not None:
        assert rig.slot(1, SIZE) == b"\xff" * SIZE


def test_the_same_version_boots_then_rejects_itself_and_rolls_back(rig: Rig) -> None:
    image = make_test_app(version="1.0.0", project=LAB_PROJECT, size=SIZE)
    job = rig.job(image, sign_file(image, rig.pki.codesign.key))
    assert _statuses(job)[-1] == b'{"status":"FAILED","statusDetails":{"reason":"rejected: 0x00000010"}}'
    log = rig.log()
    assert "Application version of the new image is identical to the current image" in log
    states = {e.seq: e.state for e in rig.otadata().entries if e.crc_ok}
    assert OtaState.INVALID in states.values(), states  # the bootloader will skip it


@pytest.mark.parametrize("model", ["aws-ota-corrupt-write"])
def test_a_board_that_corrupts_its_writes_fails_every_update_and_keeps_its_firmware(rig: Rig) -> None:
    """The rollout's broken board: otaPal_CloseFile() reads the written bytes back, so the
    signature check sees the corruption; the job FAILS and the old image keeps running."""
    image = make_test_app(version="1.1.0", project=LAB_PROJECT, size=SIZE)
    job = rig.job(image, sign_file(image, rig.pki.codesign.key))
    assert _statuses(job)[-1] == b'{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000000"}}'
    assert "AWS_OTA: Signature verification failed." in rig.log()
    assert rig.slot(0, SIZE) == make_test_app(version="1.0.0", project=LAB_PROJECT, size=SIZE)
