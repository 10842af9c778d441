"""Full OTAs on a twin against the rig's HTTPS server: one per behaviour marker, the
version check, a power cut mid-download. The slot that ends up running and the
otadata left in flash must be what ESP-IDF v5.5 produces."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.esp.otadata import OtaState
from rig.esp.testimage import make_test_app
from rig.net.faults import Counting, Cut, Position, Teardown
from rig.net.proxy import FaultProxy

from .conftest import Lab, Served, start_ota

MakeLab = Callable[..., Lab]
ABORTED = OtaState.ABORTED
INVALID = OtaState.INVALID


def test_healthy_update_ends_valid_in_the_new_slot(make_lab: MakeLab, served: Served) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1")
    lab = make_lab()
    start_ota(lab, served, "next.bin")
    c = lab.console
    c.expect(r"^I \(\d+\) esp_https_ota: Starting OTA\.\.\.$")
    c.expect(r"^I \(\d+\) esp_https_ota: Writing to <ota_1> partition at offset 0x1d0000$")
    c.expect(r"rig_agent: ota image version=1\.0\.1 secure_version=0 project=ota-rig-ref$")
    c.expect(r"^I \(\d+\) esp_image: segment 0: paddr=001d0020 ")
    c.expect(r"rig_agent: ota complete bytes=131072$")
    c.expect(r"rig_agent: ota restarting$")
    c.expect(r"^rst:0xc \(SW_CPU_RESET\)")
    c.expect(r"boot: Loaded app from partition at offset 0x1d0000$")
    c.expect(r"rig_agent: selftest begin behaviour=healthy$")
    c.expect(r"rig_agent: app confirmed valid$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    entries = lab.otadata().entries
    assert (entries[1].seq, entries[1].state) == (2, OtaState.VALID)


@pytest.mark.parametrize(
    ("behaviour", "evidence", "final_state"),
    [
        (Behaviour.CRASH_ON_BOOT, r"Guru Meditation Error: Core  0 panic'ed \(LoadProhibited\)", ABORTED),
        (Behaviour.SELFTEST_FAIL, r"esp_ota_ops: Rollback to previously worked partition\.$", INVALID),
        (Behaviour.HANG, r"task_wdt: Task watchdog got triggered\.", ABORTED),
        (Behaviour.NEVER_CONFIRM, r"rig_agent: ready version=1\.0\.1 running=ota_1 state=PENDING_VERIFY", ABORTED),  # noqa: E501
    ],
)
def test_bad_update_rolls_back_to_the_old_slot(
    make_lab: MakeLab,
    served: Served,
    behaviour: Behaviour,
    evidence: str,
    final_state: OtaState,
) -> None:
    served.images["bad.bin"] = patch_image(make_test_app(version="1.0.1"), behaviour=behaviour)
    lab = make_lab()
    start_ota(lab, served, "bad.bin")
    c = lab.console
    c.expect(r"rig_agent: ota restarting$")
    c.expect(r"boot: Loaded app from partition at offset 0x1d0000$")
    c.expect(evidence)
    if behaviour is Behaviour.NEVER_CONFIRM:
        c.send("restart")
    c.expect(r"boot: Loaded app from partition at offset 0x20000$")
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")
    entries = lab.otadata().entries
    assert (entries[1].seq, entries[1].state) == (2, final_state)
    assert (entries[0].seq, entries[0].state) == (1, OtaState.VALID)


def test_same_version_is_refused_before_writing(make_lab: MakeLab, served: Served) -> None:
    served.images["same.bin"] = make_test_app(version="1.0.0", size=64 * 1024)
    lab = make_lab()
    start_ota(lab, served, "same.bin")
    c = lab.console
    c.expect(
        r"^W \(\d+\) advanced_https_ota_example: Current running version is the same as a new\. "
        r"We will not continue the update\.$"
    )
    c.expect(r"^W \(\d+\) rig_agent: ota rejected reason=same_version new=1\.0\.0 running=1\.0\.0$")
    assert lab.board.chip.flash.read(0x1D0000, 16) == b"\xff" * 16
    assert lab.otadata().entries[1].is_erased


def test_power_cut_mid_download_boots_the_old_firmware(
    make_lab: MakeLab, served: Served
) -> None:
    served.images["big.bin"] = make_test_app(version="1.0.1", size=512 * 1024)
    lab = make_lab()
    start_ota(lab, served, "big.bin")
    lab.console.expect(r"rig_agent: ota progress bytes=\d+ total=524288$")
    lab.power_cycle()
    lab.console.expect(r"rst:0x1 \(POWERON_RESET\)")
    lab.console.expect(r"boot: Loaded app from partition at offset 0x20000$")
    lab.console.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")
    assert lab.otadata().entries[1].is_erased


def test_fin_mid_transfer_fails_and_the_old_slot_keeps_running(make_lab: MakeLab, served: Served) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    proxy = FaultProxy(("127.0.0.1", served.server.port)).start()
    try:
        proxy.arm(Cut(at=Position(Counting.WIRE, 100_000), teardown=Teardown.FIN))
        lab = make_lab()
        c = lab.console
        c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0")
        c.send(f"cert {base64.b64encode(served.pinned_der).decode()}")
        c.expect(r"rig_agent: ok cert")
        c.send(f"ota {served.url('next.bin', proxy.port)}")
        c.expect(r"^E \(\d+\) esp_https_ota: Connection closed before complete data was received!$")
        c.expect(r"^E \(\d+\) advanced_https_ota_example: Complete data was not received\.$")
        c.expect(r"^E \(\d+\) rig_agent: ota failed err=0xffffffff reason=(download|incomplete)$")
        c.send("status")
        c.expect(r"rig_agent: status running=ota_0 boot=ota_0 .* ota=failed$")
        assert lab.otadata().entries[1].is_erased
    finally:
        proxy.stop()


def test_brownout_mid_download_resets_and_boots_the_old_firmware(make_lab: MakeLab, served: Served) -> None:
    served.images["big.bin"] = make_test_app(version="1.0.1", size=512 * 1024)
    lab = make_lab()
    start_ota(lab, served, "big.bin")
    c = lab.console
    c.expect(r"rig_agent: ota progress bytes=\d+ total=524288$")
    lab.board.power.supply_changed(2.2)  # below the 2.43 V detector level, above power-off
    c.expect(r"^Brownout detector was triggered\n\n")
    lab.board.power.supply_changed(5.0)
    c.expect(r"^rst:0xf \(RTCWDT_BROWN_OUT_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)$")
    c.expect(r"boot: Loaded app from partition at offset 0x20000$")
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")
    assert lab.otadata().entries[1].is_erased
