"""Verdicts pass and fail on logs + otadata, including log/otadata disagreement."""

from __future__ import annotations

from rig.checks import (
    Agreement,
    RejectReason,
    expect_boot,
    image_rejected,
    never_bricked,
    otadata_consistent,
    rolled_back,
    signature_rejected,
)
from rig.esp.otadata import OtaData, OtaEntry, OtaState
from rig.esp.partitions import PartitionTable
from rig.logs.boots import BootTimeline, fold_boots
from rig.logs.parser import parse_text

TABLE = PartitionTable.from_csv(
    "nvs, data, nvs, 0x9000, 0x6000\n"
    "otadata, data, ota, 0xf000, 0x2000\n"
    "phy_init, data, phy, 0x11000, 0x1000\n"
    "ota_0, app, ota_0, 0x20000, 0x1b0000\n"
    "ota_1, app, ota_1, 0x1d0000, 0x1b0000\n"
)
RESET = "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
SW_RESET = "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"


def boot(offset: int, version: str, *, app: bool = True, reset: str = SW_RESET) -> str:
    text = reset + f"I (272) boot: Loaded app from partition at offset 0x{offset:x}\n"
    text += f"I (307) app_init: App version:      {version}\n"
    return text + ("I (418) main_task: Calling app_main()\n" if app else "")


def tl(text: str) -> BootTimeline:
    return fold_boots(parse_text(text))


def otadata(*entries: tuple[int, OtaState] | None) -> OtaData:
    made = [OtaEntry.make(*e) if e else OtaEntry.erased() for e in entries]
    return OtaData((made[0], made[1]))


ON_OTA1 = otadata((1, OtaState.VALID), (2, OtaState.VALID))
ON_OTA0_AFTER_ABORT = otadata((1, OtaState.VALID), (2, OtaState.ABORTED))


def test_expect_boot_passes_when_log_and_otadata_agree() -> None:
    verdict = expect_boot(tl(boot(0x1D0000, "2.0.0")), ON_OTA1, TABLE, slot="ota_1", version="2.0.0")
    assert verdict.passed and verdict.agreement is Agreement.AGREE
    assert verdict.explain().startswith("PASS expect_boot")
    assert any("0x1d0000" in line.message for line in verdict.evidence)


def test_expect_boot_fails_on_wrong_version_or_slot() -> None:
    log = tl(boot(0x1D0000, "2.0.0"))
    assert not expect_boot(log, ON_OTA1, TABLE, slot="ota_1", version="2.1.0").passed
    assert not expect_boot(log, None, TABLE, slot="ota_0").passed


def test_expect_boot_reports_disagreement() -> None:
    verdict = expect_boot(tl(boot(0x1D0000, "2.0.0")), ON_OTA0_AFTER_ABORT, TABLE, slot="ota_1")
    assert not verdict.passed
    assert verdict.agreement is Agreement.DISAGREE
    assert verdict.disagreement == "log says ota_1 booted, otadata's active entry points to ota_0"
    assert "log says ota_1 booted" in verdict.explain()


def test_expect_boot_within_boots_allows_an_earlier_failed_boot() -> None:
    log = tl(boot(0x1D0000, "2.0.0", app=False, reset=RESET) + boot(0x1D0000, "2.0.0", reset=RESET))
    assert not expect_boot(log, ON_OTA1, TABLE, slot="ota_1", within_boots=1).passed
    assert expect_boot(log, ON_OTA1, TABLE, slot="ota_1", within_boots=2).passed


def test_rolled_back_passes_and_fails() -> None:
    log = tl(
        boot(0x1D0000, "2.0.0", app=False)
        + "Guru Meditation Error: Core  0 panic'ed (LoadProhibited).\n"
        + boot(0x20000, "1.0.0")
    )
    assert rolled_back(log, ON_OTA0_AFTER_ABORT, TABLE, from_slot="ota_1", to_slot="ota_0").passed
    pending = otadata((1, OtaState.VALID), (2, OtaState.PENDING_VERIFY))
    verdict = rolled_back(log, pending, TABLE, from_slot="ota_1", to_slot="ota_0")
    assert not verdict.passed and verdict.agreement is Agreement.DISAGREE
    stayed = tl(boot(0x1D0000, "2.0.0"))
    assert not rolled_back(stayed, ON_OTA1, TABLE, from_slot="ota_1", to_slot="ota_0").passed


def test_signature_rejected() -> None:
    log = boot(0x20000, "1.0.0") + (
        "I (29832) esp_image: Verifying image signature...\n"
        "E (29850) esp_image: Secure boot signature verification failed\n"
        "W (29890) esp_image: image valid, signature bad\n"
    )
    on_ota0 = otadata((1, OtaState.VALID), None)
    verdict = signature_rejected(tl(log), on_ota0, TABLE)
    assert verdict.passed, verdict.explain()
    assert verdict.evidence[0].message == "Secure boot signature verification failed"
    switched = otadata((1, OtaState.VALID), (2, OtaState.NEW))
    assert not signature_rejected(tl(log), switched, TABLE).passed
    assert not signature_rejected(tl(boot(0x20000, "1.0.0")), on_ota0, TABLE).passed


def test_image_rejected_per_reason() -> None:
    on_ota0 = otadata((1, OtaState.VALID), None)
    log = tl(boot(0x20000, "1.0.0") + "E (1) esp_https_ota: Mismatch chip id, expected 0, found 5\n")
    assert image_rejected(log, on_ota0, TABLE, reason=RejectReason.CHIP_ID).passed
    assert image_rejected(log, on_ota0, TABLE, reason="chip_id").passed
    failed = image_rejected(log, on_ota0, TABLE, reason=RejectReason.CHECKSUM)
    assert not failed.passed and "Mismatch chip id" in failed.observed
    later_switch = tl(
        boot(0x20000, "1.0.0")
        + "E (1) esp_image: Checksum failed. Calculated 0x5a read 0x3c\n"
        + boot(0x1D0000, "2.0.0")
    )
    assert not image_rejected(later_switch, None, TABLE, reason=RejectReason.CHECKSUM).passed


def test_never_bricked() -> None:
    good = tl(boot(0x20000, "1.0.0", reset=RESET))
    assert never_bricked(good, within_s=5).passed
    assert not never_bricked(good, within_s=0.1).passed  # app_main at 418 ms after reset
    dead = tl(RESET + "E (186) boot: No bootable app partitions in the partition table\n")
    verdict = never_bricked(dead, within_s=30)
    assert not verdict.passed and "No bootable app" in verdict.evidence[0].message
    old_success_then_cut = tl(
        boot(0x20000, "1.0.0", reset=RESET) + RESET + "I (29) boot: ESP-IDF v5 2nd stage bootloader\n"
    )
    assert not never_bricked(old_success_then_cut, within_s=30).passed
    assert not never_bricked(tl(""), within_s=30).passed


def test_otadata_consistent() -> None:
    assert otadata_consistent(ON_OTA1).passed
    assert otadata_consistent(OtaData.blank()).passed
    torn = OtaData((OtaEntry.make(1, OtaState.VALID), OtaEntry(seq=2, state=0, crc=0xFFFFFFFF)))
    verdict = otadata_consistent(torn)
    assert not verdict.passed and "BAD crc" in verdict.observed
