"""Network faults mid-transfer: FIN, RST and a silent stall."""

from __future__ import annotations

import pytest

from rig.session import OtaSession, Phase
from scenarios._support import agent_config, assert_log, ended_on, ok, prepare

pytestmark = [pytest.mark.network, pytest.mark.gate]


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_link_cut_mid_transfer(request: pytest.FixtureRequest, ota: OtaSession, close: str) -> None:
    """Field failure: the connection drops mid-download (server restart, NAT timeout, AP roam).

    Fault: the fault proxy closes the OTA connection at 50 % of the image with a FIN or
    an RST. Correct outcome (ESP-IDF, facts §8): `esp_https_ota_perform` fails and the
    example's failure path runs (`E rig_agent: ota failed`), otadata is untouched, the
    old app keeps running; a retry completes and the new app confirms itself.
    """
    prepare(ota)
    result = ok(request, ota, "next", f"net@fraction=0.5:{close}")
    assert result.phase is Phase.DOWNLOAD, result.summary()
    assert_log(ota, result, "rig_agent: ota failed")
    ended_on(result, ota.images.base_version)
    ended_on(ok(request, ota, "next"), ota.images.entry("next").version)


def test_silent_stall(request: pytest.FixtureRequest, ota: OtaSession) -> None:
    """Field failure: the link goes silent mid-download (no FIN, no RST: a dead radio path).

    Fault: the proxy stops forwarding at 40 % of the image for longer than the agent's
    HTTP read timeout. Correct outcome (ESP-IDF): the read times out, the OTA fails
    (`E rig_agent: ota failed`), the old app keeps running, never a brick; a retry
    completes.
    """
    prepare(ota)
    stall_s = 3 * int(agent_config(ota)["timeout_ms"]) / 1000
    result = ok(request, ota, "next", f"net@fraction=0.4:stall={stall_s:g}s")
    assert_log(ota, result, "rig_agent: ota failed")
    ended_on(result, ota.images.base_version)
    ended_on(ok(request, ota, "next"), ota.images.entry("next").version)
