"""NVS in flash and the boot/restart windows, as the rig meets them on a twin: erasing the
nvs partition forgets OTA progress; a power cut can land inside esp_restart's shutdown
or while the bootloader loads the app. Windows are stretched by config so that each
cut lands where the test means it to, however loaded the machine is."""

from __future__ import annotations

from collections.abc import Callable

from rig.esp.otadata import OtaState
from rig.esp.testimage import make_test_app
from twin.nvs import Nvs, find_nvs_partition

from .conftest import Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]


def test_erasing_the_nvs_partition_forgets_the_saved_progress(make_lab: MakeLab, served: Served) -> None:
    served.images["big.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    lab = make_lab()
    start_ota(lab, served, "big.bin")
    c = lab.console
    c.expect(r"rig_agent: ota saved bytes=[1-9]\d{4,}$")
    lab.board.power.supply_changed(0.0)
    nvs = find_nvs_partition(lab.table)
    assert nvs is not None
    lab.board.chip.flash.erase(nvs.offset, nvs.size)  # what esptool erase-region does
    lab.board.power.supply_changed(5.0)
    c.expect(r"rst:0x1 \(POWERON_RESET\)")
    assert start_ota(lab, served, "big.bin", resume_from=None) == 0
    # esp_https_ota_begin() with resumption on asks `bytes=0-` of a fresh download
    assert served.server.records[-1].range_header == "bytes=0-"
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")


def test_a_cut_during_esp_restart_lands_before_the_first_boot(make_lab: MakeLab, served: Served) -> None:
    """Scenario 4a's window: the boot partition is switched, the app is restarting."""
    served.images["next.bin"] = make_test_app(version="1.0.1")
    lab = make_lab(config=lab_config(restart_ms=3000))
    start_ota(lab, served, "next.bin")
    c = lab.console
    c.expect(r"rig_agent: ota restarting$")
    lab.power_cycle()
    reset = c.expect(r"^rst:0x[0-9a-f]+ \((\w+)\)")
    assert reset[1] == "POWERON_RESET", "esp_restart finished before the cut"
    c.expect(r"rig_agent: selftest begin behaviour=healthy$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert lab.otadata().entries[1].state == OtaState.VALID


def test_a_cut_while_the_bootloader_loads_the_app_stops_the_boot(make_lab: MakeLab) -> None:
    lab = make_lab(config=lab_config(flash_read_bytes_per_s=50_000))  # 128 KiB ≈ 2.6 s
    c = lab.console
    c.expect(r"esp_image: segment \d+: paddr=\w+ vaddr=\w+ size=\w+ \(\s*\d+\) map$")
    before = c.mark
    lab.power_cycle()
    c.expect(r"^rst:0x1 \(POWERON_RESET\)")
    assert "boot: Loaded app" not in c.since(before)
    assert "main_task: Calling app_main()" not in c.since(before)


def test_progress_saved_past_the_image_end_is_forgotten_after_the_416(
    make_lab: MakeLab, served: Served
) -> None:
    """Power lost after the last byte was saved but before esp_https_ota_finish: the resumed
    request gets a 416. esp_https_ota.c:esp_https_ota_begin() (v5.5.5) falls back at once:
    drops the Range and downloads from byte 0 in the same attempt; the agent forgets the
    progress it saved, which no longer means anything."""
    image = make_test_app(version="1.0.1")
    served.images["next.bin"] = image
    lab = make_lab()
    c = lab.console
    c.expect(r"rig_agent: ready version=\S+ running=ota_0")
    lab.board.power.supply_changed(0.0)
    nvs = find_nvs_partition(lab.table)
    assert nvs is not None
    Nvs(lab.board.chip.flash, nvs).set("ota_progress", {"url": served.url("next.bin"), "bytes": len(image)})
    lab.board.power.supply_changed(5.0)
    assert start_ota(lab, served, "next.bin", resume_from=len(image)) == len(image)
    c.expect(r"esp_https_ota: Requested range is incorrect \(status code: 416\)$")
    c.expect(r"E \(\d+\) esp_https_ota: OTA resumption failed with err: 28682\.$")
    c.expect(r"esp_https_ota: Falling back to OTA without resumption and restarting download from beginning$")
    c.expect(r"rig_agent: ota complete bytes=")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert [r.range_header for r in served.server.records[-2:]] == [f"bytes={len(image)}-", None]
