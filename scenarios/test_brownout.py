"""Brownout: the supply sags during the download."""

from __future__ import annotations

import pytest

from rig.logs.boots import BootOutcome
from rig.phase import Phase
from rig.session import OtaSession
from scenarios._support import ended_on, need_voltage_ramp

pytestmark = [pytest.mark.brownout, pytest.mark.gate]


def test_sag_during_download(ota: OtaSession) -> None:
    """Field failure: a weak supply (battery, long USB cable) sags while the radio and
    flash draw peak current mid-update.

    Fault: the PSU output drops to 2.2 V for 0.5 s once about 30 % of the image is written.
    Correct outcome (ESP-IDF): the brownout detector resets the chip (`rst:0xf
    (RTCWDT_BROWN_OUT_RESET)` after `Brownout detector was triggered`), the OTA never
    switched the boot partition, and the old app boots.
    """
    need_voltage_ramp(ota)
    ota.prepare()
    result = ota.ok("next", "brownout@fraction=0.3:volts=2.2:hold=0.5s", window=Phase.DOWNLOAD)
    assert any(b.outcome is BootOutcome.BROWNOUT for b in result.timeline), (
        f"no brownout reset in {[b.outcome.value for b in result.timeline]}\n{result.summary()}")
    ended_on(result, ota.images.base_version)
