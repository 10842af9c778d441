"""Each deliberately broken firmware model changes the outcome of at least one OTA: the same
scenario runs on a board with the reference model and on one with the mutant, and the
board ends up somewhere else (a suite that cannot tell them apart misses that bug)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.esp.testimage import make_test_app
from rig.images.mutants import oversized
from rig.net.faults import Apply, Counting, Cut, Position, Teardown
from rig.net.proxy import FaultProxy
from twin.config import SignedUpdates

from .conftest import Keys, Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]
SIZE = 64 * 1024
OLD = r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$"
NEW_IN_OTA_1 = r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$"
SAME_IN_OTA_1 = r"rig_agent: ready version=1\.0\.0 running=ota_1 state=VALID$"


@pytest.mark.parametrize(
    ("model", "outcome"),
    [("reference", OLD), ("confirm-before-selftest", NEW_IN_OTA_1)],
)
def test_confirm_before_selftest_keeps_a_failing_update(
    make_lab: MakeLab, served: Served, model: str, outcome: str
) -> None:
    bad = patch_image(make_test_app(version="1.0.1", size=SIZE), behaviour=Behaviour.SELFTEST_FAIL)
    served.images["bad.bin"] = bad
    lab = make_lab(config=lab_config(firmware=model))
    start_ota(lab, served, "bad.bin")
    c = lab.console
    c.expect(r"boot: Loaded app from partition at offset 0x1d0000$")
    c.expect(outcome)


@pytest.mark.parametrize(
    ("model", "outcome"),
    [("reference", OLD), ("no-version-check", SAME_IN_OTA_1)],
)
def test_no_version_check_reinstalls_the_running_version(
    make_lab: MakeLab, served: Served, model: str, outcome: str
) -> None:
    served.images["same.bin"] = make_test_app(version="1.0.0", size=SIZE)
    lab = make_lab(config=lab_config(firmware=model))
    start_ota(lab, served, "same.bin")
    c = lab.console
    if model == "reference":
        c.expect(r"rig_agent: ota rejected reason=same_version")
        c.send("restart")
    c.expect(outcome)


@pytest.mark.parametrize(
    ("model", "outcome"),
    [
        ("reference", OLD),
        ("switch-before-verify", NEW_IN_OTA_1),
        ("ignore-signature", NEW_IN_OTA_1),
    ],
)
def test_signature_mutants_boot_an_image_signed_by_a_stranger(
    make_lab: MakeLab, served: Served, keys: Keys, model: str, outcome: str
) -> None:
    ours, stranger = keys
    served.images["evil.bin"] = make_test_app(version="1.0.1", size=SIZE, key=stranger)
    config = lab_config(signed_updates=SignedUpdates.RSA3072, firmware=model)
    lab = make_lab(make_test_app(version="1.0.0", size=SIZE, key=ours), config)
    start_ota(lab, served, "evil.bin")
    c = lab.console
    if model != "ignore-signature":
        c.expect(r"rig_agent: ota failed err=0x1503 reason=finish$")
        c.send("restart")
    c.expect(outcome)


def _ota_until_done(lab: Lab, served: Served, url: str, attempts: int) -> bool:
    """Re-issue `ota` after each failure, as a rig retry loop does; True once one completes."""
    c = lab.console
    for _ in range(attempts):
        c.send(f"ota {url}")
        end = c.expect(r"rig_agent: (ota complete|ota failed) ")
        if end[1] == "ota complete":
            return True
    return False


@pytest.mark.parametrize(("model", "completes"), [("reference", True), ("no-resume", False)])
def test_no_resume_never_finishes_over_a_link_that_drops_every_connection(
    make_lab: MakeLab, served: Served, model: str, completes: bool
) -> None:
    served.images["big.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    proxy = FaultProxy(("127.0.0.1", served.server.port)).start()
    try:
        proxy.arm(Cut(at=Position(Counting.WIRE, 110_000), teardown=Teardown.FIN, apply=Apply.EVERY))
        lab = make_lab(config=lab_config(firmware=model))
        c = lab.console
        c.expect(OLD)
        c.send(f"cert {base64.b64encode(served.pinned_der).decode()}")
        c.expect(r"rig_agent: ok cert")
        assert _ota_until_done(lab, served, served.url("big.bin", proxy.port), attempts=4) is completes
    finally:
        proxy.stop()


@pytest.mark.parametrize(("model", "refused"), [("reference", False), ("lexical-version", True)])
def test_lexical_version_refuses_a_version_that_gains_a_digit(
    make_lab: MakeLab, served: Served, model: str, refused: bool
) -> None:
    served.images["x10.bin"] = make_test_app(version="1.0.10", size=SIZE)
    lab = make_lab(make_test_app(version="1.0.9", size=SIZE), lab_config(firmware=model))
    start_ota(lab, served, "x10.bin")
    end = lab.console.expect(r"rig_agent: (ota rejected reason=older_version|ota complete)")
    assert (end[1] != "ota complete") is refused


@pytest.mark.parametrize(("model", "skipped"), [("reference", 0), ("resume-ahead", 8 * 1024)])
def test_resume_ahead_resumes_past_the_progress_it_reported(
    make_lab: MakeLab, served: Served, model: str, skipped: int
) -> None:
    served.images["big.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    lab = make_lab(config=lab_config(firmware=model))
    start_ota(lab, served, "big.bin")
    saved = int(lab.console.expect(r"rig_agent: ota saved bytes=(\d+)$")[1])
    lab.power_cycle()
    assert start_ota(lab, served, "big.bin", resume_from=None) == saved + skipped


@pytest.mark.parametrize(("model", "running_intact"), [("reference", True), ("erase-past-slot", False)])
def test_erase_past_slot_wipes_the_running_app_behind_an_oversized_image(
    make_lab: MakeLab, served: Served, model: str, running_intact: bool
) -> None:
    """From ota_1, an update to ota_0 bigger than ota_0 ends at ota_0's edge on a correct
    device (esp_ota_write: ESP_ERR_INVALID_SIZE); the broken one erased ota_1 first."""
    lab = make_lab(config=lab_config(firmware=model))
    served.images["next.bin"] = make_test_app(version="1.0.1", size=SIZE)
    start_ota(lab, served, "next.bin")
    lab.console.expect(NEW_IN_OTA_1)
    ota_0, ota_1 = lab.table.ota_slots
    running = lab.board.chip.flash.read(ota_1.offset, SIZE)
    served.images["huge.bin"] = oversized(make_test_app(version="1.0.2", size=SIZE), ota_0.size)
    start_ota(lab, served, "huge.bin", wait_ready=False)
    lab.console.expect(r"rig_agent: ota failed err=0x104 ")
    assert (lab.board.chip.flash.read(ota_1.offset, SIZE) == running) is running_intact


@pytest.mark.parametrize(("model", "outcome"), [("reference", NEW_IN_OTA_1), ("corrupt-write", OLD)])
def test_corrupt_write_fails_every_update_at_verification(
    make_lab: MakeLab, served: Served, model: str, outcome: str
) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", size=SIZE)
    lab = make_lab(config=lab_config(firmware=model))
    start_ota(lab, served, "next.bin")
    c = lab.console
    if model == "corrupt-write":
        c.expect(r"rig_agent: ota failed err=0x[0-9a-f]+ reason=")
        c.send("restart")
    c.expect(outcome)
