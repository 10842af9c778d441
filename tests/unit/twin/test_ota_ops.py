"""esp_ota_ops on the twin, called directly (components/app_update/esp_ota_ops.c,
bootloader_support/src/bootloader_utility.c at ESP-IDF v5.5.5): which otadata sector
each call writes, the PENDING_VERIFY refusal, in-place state changes, sequential erase,
and what a power cut between an otadata erase and its program leaves behind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.esp.flashimage import flash_regions
from rig.esp.image import parse, patch_image
from rig.esp.otadata import SECTOR_SIZE, OtaData, OtaEntry, OtaState
from rig.esp.partitions import Partition
from rig.esp.testimage import make_test_app
from tests.support.cpu import TABLE, FakeCpu, Restarted
from twin.bootloader import VerifiedApp
from twin.config import BoardConfig, KeepAlive
from twin.efuse import Efuse
from twin.firmware.https_ota import HttpsOta, OtaConfig
from twin.flash import NorFlash, PowerLost
from twin.ota_ops import Err, EspError, OtaOps

OTA_0, OTA_1 = TABLE.ota_slots
SIZE = 16 * 1024


@dataclass
class Board:
    cpu: FakeCpu
    ota: OtaOps

    def entries(self) -> tuple[OtaEntry, OtaEntry]:
        part = TABLE.otadata
        assert part is not None
        return OtaData.from_bytes(self.cpu.flash.read(part.offset, 2 * SECTOR_SIZE)).entries


def make_board(tmp_path: Path, e0: OtaEntry, e1: OtaEntry, running: Partition) -> Board:
    """Both slots hold good images (1.0.0 in ota_0, 1.0.1 in ota_1); `running` is the app's slot."""
    flash = NorFlash(tmp_path / "flash.bin")
    apps = {p.offset: make_test_app(version=f"1.0.{i}", size=SIZE) for i, p in enumerate((OTA_0, OTA_1))}
    regions = flash_regions(TABLE, app=apps[OTA_0.offset], otadata=OtaData((e0, e1)))
    for offset, data in [*((o, d) for o, d in regions if o not in apps), *apps.items()]:
        flash.program(offset, data)
    cpu = FakeCpu(flash, Efuse(tmp_path / "efuse.json"))
    data = flash.read(running.offset, running.size)
    app = VerifiedApp(running, parse(data), data)
    return Board(cpu, OtaOps(cpu, BoardConfig(), TABLE, app))  # type: ignore[arg-type]


def _write_image(board: Board, target: Partition, image: bytes) -> None:
    handle = board.ota.begin(target)
    for at in range(0, len(image), 4000):
        board.ota.write(handle, image[at : at + 4000])
    board.ota.end(handle)


def test_set_boot_partition_writes_the_other_sector_with_the_next_seq(tmp_path: Path) -> None:
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.erased(), OTA_0)
    _write_image(board, OTA_1, make_test_app(version="1.0.2", size=SIZE))
    board.ota.set_boot_partition(OTA_1)
    e0, e1 = board.entries()
    assert (e0.seq, e0.state) == (1, OtaState.VALID)
    assert (e1.seq, e1.state) == (2, OtaState.NEW)
    assert board.ota.get_boot_partition() == OTA_1

    # From ota_1 (seq 2 active), going back to ota_0 takes seq 3, written over sector 0.
    both_valid = (OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.VALID))
    running_1 = make_board(tmp_path / "b", *both_valid, OTA_1)
    running_1.ota.set_boot_partition(OTA_0)
    e0, e1 = running_1.entries()
    assert (e0.seq, e0.state) == (3, OtaState.NEW)
    assert (e1.seq, e1.state) == (2, OtaState.VALID)


def test_begin_refuses_while_the_running_app_is_pending_verify(tmp_path: Path) -> None:
    board = make_board(
        tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY), OTA_1
    )
    with pytest.raises(EspError) as raised:
        board.ota.begin(OTA_0)
    assert raised.value.err is Err.ESP_ERR_OTA_ROLLBACK_INVALID_STATE
    assert board.cpu.lines == [
        "E esp_ota_ops: Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)"
    ]


def test_resume_has_no_pending_verify_check_and_begin_refuses_a_factory_slot(tmp_path: Path) -> None:
    """esp_ota_ops.c:esp_ota_resume() checks only the partition (is_ota_partition, not the
    running one); esp_ota_begin() answers ESP_ERR_INVALID_ARG for a non-OTA app partition."""
    board = make_board(
        tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY), OTA_1
    )
    handle = board.ota.resume(OTA_0, 8192)
    assert (handle.written, handle.erased_end) == (8192, 8192) and board.cpu.lines == []
    factory = Partition("factory", 0x00, 0x00, OTA_0.offset, OTA_0.size, 0)
    with pytest.raises(EspError) as raised:
        board.ota.begin(factory)
    assert raised.value.err is Err.ESP_ERR_INVALID_ARG


def test_write_erases_the_first_sector_before_the_magic_check_fails(tmp_path: Path) -> None:
    """esp_ota_ops.c:esp_ota_write() erases a sector before its first write, and only then
    looks at the first byte: the old image in the slot loses its first 4 KiB."""
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.erased(), OTA_0)
    handle = board.ota.begin(OTA_1)
    with pytest.raises(EspError) as raised:
        board.ota.write(handle, b"\x00" * 1024)
    assert raised.value.err is Err.ESP_ERR_OTA_VALIDATE_FAILED
    assert board.cpu.flash.read(OTA_1.offset, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    assert board.cpu.lines[-1] == "E esp_ota_ops: OTA image has invalid magic byte (expected 0xE9, saw 0x00)"


def test_mark_valid_rewrites_the_active_entry_in_place(tmp_path: Path) -> None:
    board = make_board(
        tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY), OTA_1
    )
    board.ota.mark_app_valid_cancel_rollback()
    e0, e1 = board.entries()
    assert (e0.seq, e0.state) == (1, OtaState.VALID)
    assert (e1.seq, e1.state) == (2, OtaState.VALID)


def test_mark_invalid_rewrites_in_place_and_restarts(tmp_path: Path) -> None:
    board = make_board(
        tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY), OTA_1
    )
    with pytest.raises(Restarted):
        board.ota.mark_app_invalid_rollback_and_reboot()
    e0, e1 = board.entries()
    assert (e0.seq, e0.state) == (1, OtaState.VALID)
    assert (e1.seq, e1.state) == (2, OtaState.INVALID)
    assert board.cpu.lines[-1] == "I esp_ota_ops: Rollback to previously worked partition."
    assert board.ota.get_boot_partition() == OTA_0


def test_write_checks_the_magic_and_erases_sector_by_sector(tmp_path: Path) -> None:
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.erased(), OTA_0)
    handle = board.ota.begin(OTA_1)
    with pytest.raises(EspError) as raised:
        board.ota.write(handle, b"\x00" * 16)
    assert raised.value.err is Err.ESP_ERR_OTA_VALIDATE_FAILED
    assert board.cpu.lines[-1] == "E esp_ota_ops: OTA image has invalid magic byte (expected 0xE9, saw 0x00)"
    old_third_sector = board.cpu.flash.read(OTA_1.offset + 2 * SECTOR_SIZE, 64)
    handle = board.ota.begin(OTA_1)
    board.ota.write(handle, make_test_app(version="1.0.2", size=SIZE)[:5000])
    # Only the two sectors the 5000 bytes touch were erased; the rest still holds the old image.
    assert board.cpu.flash.read(OTA_1.offset + 2 * SECTOR_SIZE, 64) == old_third_sector != b"\xff" * 64


@pytest.mark.parametrize("action", ["set_boot_partition", "mark_valid"])
def test_cut_between_otadata_erase_and_program_leaves_the_other_entry_active(
    tmp_path: Path, action: str
) -> None:
    if action == "set_boot_partition":
        board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.erased(), OTA_0)
    else:
        board = make_board(
            tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY), OTA_1
        )
    flash = board.cpu.flash
    # The next two flash operations are the sector erase and the 32-byte program: cut the program at 0 %.
    flash.cut_at(flash.op_count + 1, 0.0)
    with pytest.raises(PowerLost):
        if action == "set_boot_partition":
            board.ota.set_boot_partition(OTA_1)
        else:
            board.ota.mark_app_valid_cancel_rollback()
    e0, e1 = board.entries()
    assert e1.is_erased
    assert (e0.seq, e0.state) == (1, OtaState.VALID)
    assert board.ota.get_boot_partition() == OTA_0


class _SilentPeer:
    """A TLS connection whose server closes before sending a response head."""

    def send(self, data: bytes) -> None:
        pass

    def recv(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _Net:
    def connect_tls(self, *args: object, **kwargs: object) -> _SilentPeer:
        return _SilentPeer()


def test_a_response_head_that_never_comes_is_failed_to_establish_not_failed_to_open(tmp_path: Path) -> None:
    """esp_https_ota.c:_http_connect() returns esp_http_client_fetch_headers()'s error without
    a line of its own (`Failed to open HTTP connection` is only for esp_http_client_open());
    esp_https_ota_begin() then prints `Failed to establish HTTP connection`."""
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.erased(), OTA_0)
    config = OtaConfig(url="https://127.0.0.1:1/next", cadata=b"ca", timeout_ms=1000, keepalive=KeepAlive())
    ota = HttpsOta(board.cpu, _Net(), board.ota, config)  # type: ignore[arg-type]
    with pytest.raises(EspError) as raised:
        ota.begin()
    assert raised.value.err is Err.ESP_ERR_HTTP_FETCH_HEADER
    assert board.cpu.lines == ["E esp_https_ota: Failed to establish HTTP connection"]


def test_boot_partition_with_no_crc_valid_entry_is_assumed_factory_and_said_so(tmp_path: Path) -> None:
    """esp_ota_ops.c:esp_ota_get_boot_partition(): entries that are not "invalid" (a seq is set)
    but whose CRCs fail leave no active entry: the default partition, with its error line."""
    good = OtaEntry.make(1, OtaState.VALID)
    torn = OtaEntry(good.seq, good.state, good.crc ^ 1)
    board = make_board(tmp_path, torn, OtaEntry(2, OtaState.VALID, 0), OTA_0)
    assert board.ota.get_boot_partition() == OTA_0
    assert board.cpu.lines == ["E esp_ota_ops: ota data invalid, no current app. Assuming factory"]


def test_a_silent_verify_still_says_why_the_chip_is_wrong(tmp_path: Path) -> None:
    """bootloader_common_loader.c:bootloader_common_check_chip_validity() logs with ESP_LOGE,
    not FAIL_LOAD: an ESP_IMAGE_VERIFY_SILENT check (esp_ota_check_rollback_is_possible())
    of a slot built for newer silicon still prints the revision line."""
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.VALID), OTA_1)
    newer = patch_image(make_test_app(version="1.0.0", size=SIZE), min_rev_full=400)
    board.cpu.flash.erase(OTA_0.offset, SIZE)
    board.cpu.flash.program(OTA_0.offset, newer)
    assert board.ota.verifier.verify(OTA_0, silent=True) is None
    assert board.cpu.lines == ["E boot_comm: chip revision check failed. Required >= v4.0, found v3.0."]


def test_segments_before_a_bad_segment_length_still_print_their_lines(tmp_path: Path) -> None:
    """esp_image_format.c:process_segments() logs each segment as it walks; the one whose
    header fails verify_segment_header() ends the walk with `invalid segment length`."""
    board = make_board(tmp_path, OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.VALID), OTA_1)
    image = bytearray(make_test_app(version="1.0.0", size=SIZE))
    second = parse(bytes(image)).segments[1].file_offset
    image[second + 4 : second + 8] = (0x1002).to_bytes(4, "little")  # not a multiple of 4
    board.cpu.flash.erase(OTA_0.offset, SIZE)
    board.cpu.flash.program(OTA_0.offset, bytes(image))
    assert board.ota.verifier.verify(OTA_0) is None
    assert board.cpu.lines[0].startswith("I esp_image: segment 0: paddr=")
    assert board.cpu.lines[1:] == ["E esp_image: invalid segment length 0x1002"]
