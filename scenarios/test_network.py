"""Network faults mid-transfer: FIN, RST, a peer that stalls, and a path that dies."""

from __future__ import annotations

import pytest

from rig.phase import Phase
from rig.session import OtaSession
from scenarios._support import agent_config, assert_log, assert_no_log, ended_on, need_dead_path

pytestmark = [pytest.mark.network, pytest.mark.gate]


def test_link_cut_mid_transfer(ota: OtaSession) -> None:
    """Field failure: the connection drops mid-download (server restart, NAT timeout, AP roam).

    Fault: the fault proxy closes the OTA connection at 50 % of the image with a FIN, then
    (next attempt) with an RST. Correct outcome (ESP-IDF v5.5.5 esp_https_ota.c): `esp_https_ota_perform`
    fails and the example's failure path runs (`E rig_agent: ota failed`), otadata is
    untouched, the old app keeps running (so the next attempt starts from the same known
    state); a retry completes and the new app confirms itself. Resumption is off: each
    attempt downloads from byte 0, so each fault lands at 50 % of a whole download.
    """
    ota.prepare(resume="off")
    for close in ("fin", "rst"):
        result = ota.ok("next", f"net@fraction=0.5:{close}")
        assert result.phase is Phase.DOWNLOAD, f"{close}: {result.summary()}"
        assert_log(ota, result, ota.says.failed)
        ended_on(result, ota.images.base_version)
    ended_on(ota.ok("next"), ota.images.entry("next").version)


def test_stalled_peer_is_waited_out(ota: OtaSession) -> None:
    """Field failure: the server (or a middlebox) stops sending mid-download but keeps the
    connection open: an overloaded CDN node, a paused upstream.

    Fault: the proxy stops forwarding at 40 % of the image for 3x the agent's HTTP read
    timeout; the connection stays alive (the proxy host's kernel answers keep-alive probes).
    Correct outcome (ESP-IDF v5.5.5): each read timeout is -ESP_ERR_HTTP_EAGAIN
    (esp_http_client.c:esp_http_client_read()), which esp_https_ota_perform() turns into
    ESP_ERR_HTTPS_OTA_IN_PROGRESS, and the agent loops as the examples do; lwIP's keep-alive
    is answered, so nothing aborts. When data flows again the download completes on the same
    connection (`rig_agent: ota complete`, no `ota failed`) and the new app confirms itself:
    a network fault the download survived.
    """
    ota.prepare(resume="off")
    timeout_s = int(agent_config(ota)["timeout_ms"]) / 1000
    survived = ota.ok("next", f"net@fraction=0.4:stall={3 * timeout_s:g}s", window=Phase.RECOVERED)
    assert_log(ota, survived, ota.says.complete)
    assert_no_log(ota, survived, ota.says.failed)
    ended_on(survived, ota.images.entry("next").version)


def test_dead_path_aborts_and_a_retry_completes(ota: OtaSession) -> None:
    """Field failure: the radio path dies mid-download (AP gone, cable pulled upstream):
    no FIN, no RST, nothing answers any more.

    Fault: at 40 % of the image every packet between board and server is dropped, both ways
    (nftables in the rig's network namespace), until the OTA has ended. Correct outcome
    (ESP-IDF v5.5.5 + lwIP): reads time out and esp_https_ota_perform() keeps returning
    IN_PROGRESS, but the keep-alive probes go unanswered, so lwIP's tcp_slowtmr() aborts the
    connection after idle + interval x count; the read fails (`data read -1, errno 113`),
    the agent reports `ota failed`, otadata is untouched and the old app keeps running. With
    the path back, a retry completes. Skipped where the rig cannot make the namespace.
    """
    need_dead_path(ota)
    ota.prepare(resume="off")
    dead = ota.ok("next", "net@fraction=0.4:dead", window=Phase.DOWNLOAD)
    assert_log(ota, dead, ota.says.read_failed, ota.says.failed)
    ended_on(dead, ota.images.base_version)
    ended_on(ota.ok("next"), ota.images.entry("next").version)
