"""Folding events into boot records: one test per outcome plus OTA attempts."""

from __future__ import annotations

from pathlib import Path

from rig.logs.boots import BootOutcome, BootTimeline, OtaOutcome, SelftestResult, fold_boots
from rig.logs.parser import parse_text

EXCERPTS = Path(__file__).parent / "excerpts"


def timeline(name: str, *, final: bool = False) -> BootTimeline:
    return fold_boots(parse_text((EXCERPTS / name).read_text()), final=final)


def test_normal_boot_record() -> None:
    boots = timeline("normal_boot.log")
    assert len(boots) == 1
    boot = boots[0]
    assert (boot.reset_reason, boot.power_on, boot.download_mode) == ("POWERON_RESET", True, False)
    assert (boot.slot_offset, boot.slot_name) == (0x20000, "ota_0")
    assert (boot.project, boot.app_version, boot.idf_version) == ("ota_rig_fut", "1.0.0", "v5.1.3-dirty")
    assert [row.label for row in boot.partition_table] == ["nvs", "otadata", "phy_init", "ota_0", "ota_1"]
    assert boot.outcome is BootOutcome.APP_RUNNING
    assert boot.errors == []


def test_ota_then_first_boot_of_new_image() -> None:
    boots = timeline("first_boot_after_ota.log")
    assert boots.slots() == ["ota_0", "ota_1"]
    assert boots.versions() == ["1.0.0", "2.0.0"]
    first, second = boots
    (attempt,) = first.ota_attempts
    assert attempt.outcome is OtaOutcome.COMPLETE
    assert (attempt.partition, attempt.image_version, attempt.bytes, attempt.total) == (
        "ota_1",
        "2.0.0",
        172928,
        172928,
    )
    assert attempt.url == "https://127.0.0.1:8070/app-2.0.0.bin"
    assert second.selftest is SelftestResult.PASSED
    assert second.outcome is BootOutcome.APP_RUNNING
    assert boots.last is second


def test_rollback_sequence_is_panic_then_old_slot() -> None:
    boots = timeline("rollback.log")
    assert [b.outcome for b in boots] == [BootOutcome.PANIC, BootOutcome.APP_RUNNING]
    assert boots.slots() == ["ota_1", "ota_0"]
    assert boots[0].selftest is SelftestResult.BEGUN
    assert boots[0].errors and "Guru Meditation" in boots[0].errors[0].line.message


def test_signature_failure_attempt_records_reason_and_errors() -> None:
    boots = timeline("signature_failure.log")
    assert boots[0].reset is None  # log started mid-boot
    (attempt,) = boots[0].ota_attempts
    assert attempt.outcome is OtaOutcome.FAILED
    assert attempt.reason == "ESP_ERR_OTA_VALIDATE_FAILED"
    assert [e.line.message for e in attempt.errors][:2] == [
        "Secure boot signature verification failed",
        "image valid, signature bad",
    ]


def test_watchdog_brownout_no_bootable_download() -> None:
    assert timeline("watchdog.log")[0].outcome is BootOutcome.WATCHDOG
    brown = timeline("brownout.log")
    assert [b.outcome for b in brown] == [BootOutcome.BROWNOUT, BootOutcome.INCOMPLETE]
    dead = timeline("no_bootable_app.log")
    assert dead[0].outcome is BootOutcome.NO_BOOTABLE_APP
    assert dead[0].slot_offset is None
    assert timeline("download_mode.log")[0].outcome is BootOutcome.DOWNLOAD_MODE


def test_power_lost_when_next_banner_arrives_or_capture_is_final() -> None:
    log = (
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
        "I (29) boot: ESP-IDF v5.5.5 2nd stage bootloader\n"
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
        "I (29) boot: ESP-IDF v5.5.5 2nd stage bootloader\n"
    )
    assert [b.outcome for b in fold_boots(parse_text(log))] == [
        BootOutcome.POWER_LOST,
        BootOutcome.INCOMPLETE,
    ]
    assert fold_boots(parse_text(log), final=True)[1].outcome is BootOutcome.POWER_LOST


def test_watchdog_reset_reason_marks_previous_boot() -> None:
    log = (
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
        "I (418) main_task: Calling app_main()\n"
        "rst:0x7 (TG0WDT_SYS_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
    )
    assert fold_boots(parse_text(log))[0].outcome is BootOutcome.WATCHDOG


def test_download_cut_mid_way_is_interrupted() -> None:
    log = (
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
        "I (418) main_task: Calling app_main()\n"
        "I (5140) rig_agent: ota begin url=https://127.0.0.1:1/a.bin resume_from=4096\n"
        "I (9000) rig_agent: ota progress bytes=65536 total=172928\n"
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
    )
    boots = fold_boots(parse_text(log))
    (attempt,) = boots[0].ota_attempts
    assert (attempt.outcome, attempt.bytes, attempt.resume_from) == (OtaOutcome.INTERRUPTED, 65536, 4096)
    assert boots[0].outcome is BootOutcome.APP_RUNNING
    assert boots.last_power_on() is boots[1]


def test_rejected_and_example_failure_attempts() -> None:
    log = (
        "I (5140) rig_agent: ota begin url=https://127.0.0.1:1/a.bin resume_from=0\n"
        "W (5300) advanced_https_ota_example: Current running version is the same as a new. "
        "We will not continue the update.\n"
        "W (5301) rig_agent: ota rejected reason=same_version new=1.0.0 running=1.0.0\n"
        "I (6000) esp_https_ota: Starting OTA...\n"
        "E (6100) esp_https_ota: Connection closed before complete data was received!\n"
        "E (6101) advanced_https_ota_example: Complete data was not received.\n"
    )
    first, second = fold_boots(parse_text(log))[0].ota_attempts
    assert (first.outcome, first.reason) == (OtaOutcome.REJECTED, "same_version")
    assert second.outcome is OtaOutcome.FAILED
    assert second.reason == "Complete data was not received."
    assert second.errors[0].line.message == "Connection closed before complete data was received!"


def test_empty_and_noise_only_logs_have_no_boots() -> None:
    assert len(fold_boots(parse_text(""))) == 0
    assert fold_boots(parse_text("\x00\xff garbage\n")).last is None
