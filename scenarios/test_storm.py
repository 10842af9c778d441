"""Power-cut storm: ten seeded random cuts across one OTA."""

from __future__ import annotations

import random

import pytest

from rig.checks import otadata_consistent
from rig.esp.otadata import OtaData
from rig.phase import Final
from rig.session import OtaSession
from scenarios._support import need_power_cut

pytestmark = [pytest.mark.power_cut, pytest.mark.gate]
CUTS = 10
# A twin is off the moment its supply is: a short outage is as thorough a cut, and cheap.
LAB_OFF = ":off=0.05s"


def test_power_cut_storm(ota: OtaSession, seed: int) -> None:
    """Field failure: flaky mains (or a user pulling the plug again and again) during an update.

    Fault: ten power cuts at seeded random points (5..95 % written) of the same update,
    each attempt from byte 0 (resumption is off: it has its own scenario), then one
    undisturbed attempt. Correct outcome (ESP-IDF): after every cut an app comes up (never
    a brick), otadata is never torn, and the device runs either the old or the new
    firmware, never anything else; the final attempt lands the new firmware.
    """
    need_power_cut(ota)
    ota.prepare(resume="off")
    off = LAB_OFF if ota.board.farm.virtual else ""
    rng = random.Random(seed)
    old, new = ota.images.base_version, ota.images.entry("next").version
    for _ in range(CUTS):
        fraction = rng.uniform(0.05, 0.95)
        result = ota.ok("next", f"power@fraction={fraction:.3f}{off}")
        assert result.final in (Final.OLD, Final.NEW), result.summary()
        otadata = result.otadata
        assert isinstance(otadata, OtaData)
        consistent = otadata_consistent(otadata)
        assert consistent.passed, consistent.explain()
        if result.final is Final.NEW:
            break
    final = ota.ok("next") if result.final is Final.OLD else result
    assert final.final_ready is not None and final.final_ready.version == new, (old, final.summary())
