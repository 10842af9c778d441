"""Network faults mid-transfer: FIN, RST, a silent stall, and a short stall the download survives."""

from __future__ import annotations

import pytest

from rig.phase import Phase
from rig.session import OtaSession
from scenarios._support import agent_config, assert_log, assert_no_log, ended_on, ok, prepare

pytestmark = [pytest.mark.network, pytest.mark.gate]


def test_link_cut_mid_transfer(request: pytest.FixtureRequest, ota: OtaSession) -> None:
    """Field failure: the connection drops mid-download (server restart, NAT timeout, AP roam).

    Fault: the fault proxy closes the OTA connection at 50 % of the image with a FIN, then
    (next attempt) with an RST. Correct outcome (ESP-IDF v5.5.5 esp_https_ota.c): `esp_https_ota_perform`
    fails and the example's failure path runs (`E rig_agent: ota failed`), otadata is
    untouched, the old app keeps running (so the next attempt starts from the same known
    state); a retry completes and the new app confirms itself. Resumption is off: each
    attempt downloads from byte 0, so each fault lands at 50 % of a whole download.
    """
    prepare(ota, resume="off")
    for close in ("fin", "rst"):
        result = ok(request, ota, "next", f"net@fraction=0.5:{close}")
        assert result.phase is Phase.DOWNLOAD, f"{close}: {result.summary()}"
        assert_log(ota, result, "rig_agent: ota failed")
        ended_on(result, ota.images.base_version)
    ended_on(ok(request, ota, "next"), ota.images.entry("next").version)


def test_silent_stall(request: pytest.FixtureRequest, ota: OtaSession) -> None:
    """Field failure: the link goes silent mid-download (no FIN, no RST: a dead radio path),
    for good or only for a moment.

    Fault: the proxy stops forwarding at 40 % of the image for 3× the agent's HTTP read
    timeout; then, on the next attempt, for a third of it. Correct outcome (ESP-IDF): the
    long stall times out the read, the OTA fails (`E rig_agent: ota failed`), the old app
    keeps running, never a brick. The short stall ends before the read timeout (and long
    before TCP keep-alive gives up): the download continues on the same connection, the
    image completes (`rig_agent: ota complete`, no `ota failed`) and the new app confirms
    itself; the session judges it a network fault the download survived. Resumption is
    off, so the second attempt downloads from byte 0 and meets its stall at 40 % too.
    """
    prepare(ota, resume="off")
    timeout_s = int(agent_config(ota)["timeout_ms"]) / 1000
    result = ok(request, ota, "next", f"net@fraction=0.4:stall={3 * timeout_s:g}s")
    assert result.phase is Phase.DOWNLOAD, result.summary()
    assert_log(ota, result, "rig_agent: ota failed")
    ended_on(result, ota.images.base_version)
    survived = ok(request, ota, "next", f"net@fraction=0.4:stall={timeout_s / 3:.3g}s")
    assert survived.phase is Phase.RECOVERED, survived.summary()
    assert_log(ota, survived, "rig_agent: ota complete")
    assert_no_log(ota, survived, "rig_agent: ota failed")
    ended_on(survived, ota.images.entry("next").version)
