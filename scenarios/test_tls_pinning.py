"""TLS pinning: a server with the wrong certificate gets nothing written."""

from __future__ import annotations

import pytest

from rig.net.certs import CertBundle
from rig.phase import Final
from rig.session import OtaSession
from scenarios._support import assert_log, assert_no_log, ended_on, need_agent

pytestmark = [pytest.mark.network, pytest.mark.gate]


def test_wrong_server_certificate(ota: OtaSession,
                                  wrong_certs: CertBundle) -> None:
    """Field failure: DNS hijack or a rogue access point serves its own "update".

    Fault: the device pins a CA that did not sign the server's certificate. Correct outcome
    (ESP-IDF esp_https_ota with `cert_pem`): the TLS handshake fails in
    `esp_https_ota_begin` (`E rig_agent: ota failed ... reason=begin`-style failure, no
    `ota image` / `ota saved` marker), nothing is written, the old app keeps running;
    with the right CA pinned again the update succeeds.
    """
    need_agent(ota, "pinning")
    ota.prepare()
    ota.pin(wrong_certs)
    refused = ota.ok("next", expect=Final.OLD)
    assert_log(ota, refused, ota.says.failed)
    assert_no_log(ota, refused, "rig_agent: ota image", "rig_agent: ota saved")
    ended_on(refused, ota.images.base_version)
    ota.pin(ota.certs)
    ended_on(ota.ok("next"), ota.images.entry("next").version)
