"""Booting a twin from a merged flash image: the bootloader's lines and the app's ready marker."""

from __future__ import annotations

from collections.abc import Callable

from rig.esp.otadata import OtaState

from .conftest import Lab

MakeLab = Callable[..., Lab]


def test_virgin_otadata_boots_ota_0_and_records_it(make_lab: MakeLab) -> None:
    lab = make_lab()
    c = lab.console
    c.expect(r"^rst:0x1 \(POWERON_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)")
    c.expect(r"^I \(\d+\) boot: ESP-IDF v5\.5\.5 2nd stage bootloader$")
    c.expect(r"^I \(\d+\) boot:  1 otadata          OTA data         01 00 0000f000 00002000$")
    c.expect(r"^I \(\d+\) boot: No factory image, trying OTA 0$")
    c.expect(r"^I \(\d+\) esp_image: segment 0: paddr=00020020 vaddr=3f400020 size=[0-9a-f]{5}h \( *\d+\) map$")  # noqa: E501
    c.expect(r"^I \(\d+\) boot: Loaded app from partition at offset 0x20000$")
    c.expect(r"^I \(\d+\) boot: Set actual ota_seq=1 in otadata\[0\]$")
    c.expect(r"^I \(\d+\) app_init: Project name:     ota-rig-ref$")
    c.expect(r"^I \(\d+\) rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")
    entry = lab.otadata().entries[0]
    assert (entry.seq, entry.state) == (1, OtaState.VALID)


def test_status_command_reports_running_slot(make_lab: MakeLab) -> None:
    lab = make_lab()
    lab.console.expect(r"rig_agent: ready")
    lab.console.send("status")
    lab.console.expect(
        r"rig_agent: status running=ota_0 boot=ota_0 version=1\.0\.0 secure_version=0 "
        r"efuse_secure_version=0 state=VALID behaviour=healthy ota=idle$"
    )
    lab.console.send("bogus")
    lab.console.expect(r"E \(\d+\) rig_agent: error bogus unknown command$")
