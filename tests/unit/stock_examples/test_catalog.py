"""Which of Espressif's OTA example tests a lab board can run, and the reason for each it cannot."""

from __future__ import annotations

import pytest

from rig.idf.catalog import BUILDABLE, LabBoard, skip_reason


@pytest.mark.parametrize(
    "project, config, target, markers, reason",
    [
        ("advanced_https_ota", "default", "esp32", set(), None),
        ("advanced_https_ota", "ota_resumption_partial_download", "esp32", set(), None),
        ("simple_ota", "on_update_no_sb_ecdsa", "esp32", set(), None),
        ("advanced_https_ota", "default", "esp32c3", set(), "target esp32c3: the lab's boards are esp32"),
        ("advanced_https_ota", "nimble", "esp32", set(), "needs BLE"),
        ("advanced_https_ota", "anti_rollback", "esp32", set(), "needs flash encryption"),
        ("simple_ota", "flash_enc_wifi", "esp32", set(), "needs flash encryption"),
        ("simple_ota", "spiram", "esp32", set(), "needs an ESP32-WROVER with PSRAM and an Ethernet PHY"),
        ("advanced_https_ota", "verify_revision", "esp32c3", {"qemu"}, "QEMU-only"),
        ("native_ota", "nightly", "esp32", set(), "no lab build of native_ota config 'nightly'"),
    ],
)
def test_skip_reasons(project: str, config: str, target: str, markers: set[str], reason: str | None) -> None:
    found = skip_reason(project, config, target, frozenset(markers))
    assert (found is None) if reason is None else (found is not None and found.startswith(reason)), found


def test_signed_builds_go_to_boards_whose_bootloader_verifies_them() -> None:
    simple = BUILDABLE["simple_ota"]
    assert simple["on_update_no_sb_rsa"].board is LabBoard.RSA
    assert simple["on_update_no_sb_ecdsa"].board is LabBoard.ECDSA
    assert simple["on_update_no_sb_rsa"].table_offset == 0xC000  # sdkconfig.ci: CONFIG_PARTITION_TABLE_OFFSET
    assert all(c.board is LabBoard.PLAIN for c in BUILDABLE["advanced_https_ota"].values())
