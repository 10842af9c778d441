"""Anti-rollback (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK) across a real OTA on a twin: the
agent's check, esp_ota_set_boot_partition's refusal and erase when the agent's check is
off, and the eFuse burnt when an app with a higher secure_version is confirmed."""

from __future__ import annotations

from collections.abc import Callable

from rig.esp.testimage import make_test_app

from .conftest import Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]
SIZE = 64 * 1024
OTA_0, OTA_1 = 0x20000, 0x1D0000


def _lab(make_lab: MakeLab, secure_version: int) -> Lab:
    app = make_test_app(version="1.0.0", secure_version=secure_version, size=SIZE)
    return make_lab(app, lab_config(anti_rollback=True))


def _version_check_off(lab: Lab) -> None:
    c = lab.console
    c.expect(r"rig_agent: ready version=\S+ running=ota_\d")
    c.send("ota-config version_check=off")
    c.expect(r"rig_agent: ok ota-config .*version_check=off$")


def test_agent_refuses_a_lower_secure_version_before_writing(make_lab: MakeLab, served: Served) -> None:
    served.images["old.bin"] = make_test_app(version="1.0.1", secure_version=1, size=SIZE)
    lab = _lab(make_lab, secure_version=2)
    c = lab.console
    c.expect(r"^I \(\d+\) efuse: Anti-rollback is set\. eFuse field is updated\(2\)\.$")
    start_ota(lab, served, "old.bin")
    c.expect(
        r"^E \(\d+\) advanced_https_ota_example: "
        r"New firmware security version is less than eFuse programmed, 1 < 2$"
    )
    c.expect(r"^W \(\d+\) rig_agent: ota rejected reason=lower_secure_version new=1\.0\.1 running=1\.0\.0$")
    assert lab.board.chip.flash.read(OTA_1, 4096) == b"\xff" * 4096
    assert lab.otadata().entries[1].is_erased


def test_without_the_agent_check_set_boot_partition_refuses_and_erases(
    make_lab: MakeLab, served: Served
) -> None:
    served.images["old.bin"] = make_test_app(version="1.0.1", secure_version=1, size=SIZE)
    lab = _lab(make_lab, secure_version=2)
    _version_check_off(lab)
    start_ota(lab, served, "old.bin", wait_ready=False)
    c = lab.console
    c.expect(
        r"^E \(\d+\) esp_ota_ops: This a new partition can not be booted due to a secure version "
        r"is lower than stored in efuse\. Partition will be erased\.$"
    )
    c.expect(r"^E \(\d+\) esp_https_ota: esp_ota_set_boot_partition failed! err=0x1504$")
    c.expect(r"^E \(\d+\) rig_agent: ota failed err=0x1504 reason=finish$")
    assert lab.board.chip.flash.read(OTA_1, SIZE) == b"\xff" * SIZE
    assert lab.otadata().entries[1].is_erased
    c.send("restart")
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")


def test_confirming_a_higher_secure_version_burns_the_efuse_and_blocks_downgrade(
    make_lab: MakeLab, served: Served
) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", secure_version=1, size=SIZE)
    served.images["down.bin"] = make_test_app(version="1.0.2", secure_version=0, size=SIZE)
    lab = _lab(make_lab, secure_version=0)
    c = lab.console
    start_ota(lab, served, "next.bin")
    c.expect(r"boot: Loaded app from partition at offset 0x1d0000$")
    c.expect(r"^I \(\d+\) app_init: Secure version:   1$")
    c.expect(r"rig_agent: selftest passed$")
    c.expect(r"^I \(\d+\) efuse: Anti-rollback is set\. eFuse field is updated\(1\)\.$")
    c.expect(r"rig_agent: app confirmed valid$")
    assert lab.board.chip.efuse.secure_version == 1
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    c.send("ota-config version_check=off")
    c.expect(r"rig_agent: ok ota-config .*version_check=off$")
    c.send(f"ota {served.url('down.bin')}")
    c.expect(r"esp_ota_ops: This a new partition can not be booted due to a secure version is lower")
    c.expect(r"^E \(\d+\) rig_agent: ota failed err=0x1504 reason=finish$")
    assert lab.board.chip.flash.read(OTA_0, SIZE) == b"\xff" * SIZE
    c.send("restart")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
