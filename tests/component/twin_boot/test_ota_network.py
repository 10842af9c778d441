"""esp_https_ota's network paths on a twin, through the rig's server and fault proxy:
silent stalls, partial download, resumption (and a server without Range), a wrong
pinned certificate. Timings are the lab's short ones so each test takes seconds."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.esp.testimage import make_test_app
from rig.net.certs import ensure_bundle
from rig.net.faults import Counting, Position, Stall
from rig.net.netns import NetNamespace, unavailable
from rig.net.ota_server import ServeMode
from rig.net.proxy import FaultProxy
from twin.config import KeepAlive
from twin.net import SKIP_COMMON_NAME_WARNING

from .conftest import Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]
OTA_1 = 0x1D0000


@pytest.fixture
def proxy(served: Served) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(("127.0.0.1", served.server.port)).start()
    yield fault_proxy
    fault_proxy.stop()


def _requests(served: Served) -> list[tuple[str, str | None]]:
    return [(r.method, r.range_header) for r in served.server.records]


def test_a_stalled_but_live_peer_is_waited_out_past_the_keepalive(
    make_lab: MakeLab, served: Served, proxy: FaultProxy
) -> None:
    """A peer that stops sending but whose kernel still answers keep-alive probes: lwIP's
    tcp_keepalive() probes are acknowledged, so nothing aborts; each read timeout is
    ESP_ERR_HTTPS_OTA_IN_PROGRESS and the download completes once data flows again."""
    served.images["next.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    keepalive = KeepAlive(idle_s=1.0, interval_s=1.0, count=2)
    proxy.arm(Stall(seconds=2 * keepalive.give_up_s, at=Position(Counting.WIRE, 60_000)))
    lab = make_lab(config=lab_config(http_timeout_ms=300, keepalive=keepalive))
    start_ota(lab, served, "next.bin", port=proxy.port)
    c = lab.console
    c.expect(r"rig_agent: ota complete bytes=262144$", timeout=30)
    assert "ota failed" not in c.text


def test_a_dead_path_aborts_after_idle_plus_interval_times_count(make_lab: MakeLab, served: Served) -> None:
    """Packets dropped both ways (nftables in the rig's namespace): the probes go unanswered
    and lwIP's tcp_slowtmr() aborts the connection after idle + interval x count; the read
    fails with ECONNABORTED and esp_https_ota_perform() with it."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    served.images["next.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    keepalive = KeepAlive(idle_s=1.0, interval_s=1.0, count=2)
    namespace = NetNamespace().create()
    proxy = FaultProxy(("127.0.0.1", served.server.port), listener=namespace.listener).start()
    try:
        lab = make_lab(config=lab_config(http_timeout_ms=300, keepalive=keepalive))
        c = lab.console
        c.expect(r"rig_agent: ready version=1\.0\.0")
        c.send(f"cert {base64.b64encode(served.pinned_der).decode()}")
        c.expect(r"rig_agent: ok cert")
        c.send(f"ota {served.server.url_for('next.bin', host=namespace.address, port=proxy.port)}")
        c.expect(r"rig_agent: ota saved bytes=")
        namespace.kill_port(proxy.port)
        killed = time.monotonic()
        c.expect(r"^E \(\d+\) esp_https_ota: data read -1, errno 113$", timeout=15)
        waited = time.monotonic() - killed
        assert keepalive.give_up_s * 0.8 <= waited <= keepalive.give_up_s + 2.0, waited
        c.expect(r"rig_agent: ota failed err=0xffffffff reason=download$")
    finally:
        proxy.stop()
        namespace.close()


def test_stall_shorter_than_keepalive_continues_the_download(
    make_lab: MakeLab, served: Served, proxy: FaultProxy
) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", size=256 * 1024)
    proxy.arm(Stall(seconds=1.0, at=Position(Counting.WIRE, 60_000)))
    config = lab_config(http_timeout_ms=300, keepalive=KeepAlive(idle_s=3.0, interval_s=1.0, count=3))
    lab = make_lab(config=config)
    start_ota(lab, served, "next.bin", port=proxy.port)
    c = lab.console
    c.expect(r"rig_agent: ota complete bytes=262144$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert proxy.records[0].fault_at is not None
    assert "rig_agent: ota failed" not in c.text


def test_partial_download_uses_head_and_range_requests(make_lab: MakeLab, served: Served) -> None:
    size = 88 * 1024
    served.images["next.bin"] = make_test_app(version="1.0.1", size=size)
    lab = make_lab()
    c = lab.console
    c.expect(r"rig_agent: ready version=1\.0\.0")
    c.send("ota-config request_size=32768")
    c.expect(r"rig_agent: ok ota-config timeout_ms=\d+ request_size=32768 resume=on version_check=on$")
    start_ota(lab, served, "next.bin", wait_ready=False)
    c.expect(rf"rig_agent: ota complete bytes={size}$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert _requests(served) == [
        ("HEAD", None),
        ("GET", "bytes=0-32767"),
        ("GET", "bytes=32768-65535"),
        ("GET", "bytes=65536-"),
    ]
    # Each range ends with esp_https_ota's D "Connection closed": not shown at the default INFO level.
    lines = c.log_lines()
    assert "Connection closed" not in c.text
    assert lines.count("I esp_https_ota: Starting OTA...") == 1
    assert lines.count(f"I esp_https_ota: Writing to <ota_1> partition at offset 0x{OTA_1:x}") == 1


def _cut_after_a_save(lab: Lab, served: Served) -> int:
    """Start a big OTA, power-cycle mid-download; the last progress it printed as saved."""
    served.images["big.bin"] = make_test_app(version="1.0.1", size=512 * 1024)
    start_ota(lab, served, "big.bin")
    c = lab.console
    c.expect(r"rig_agent: ota saved bytes=[1-9]\d{5,}$")
    lab.power_cycle()
    reset = c.expect(r"rst:0x1 \(POWERON_RESET\)")
    return int(c.text[: reset.start()].rsplit("rig_agent: ota saved bytes=", 1)[1].split()[0])


def test_resume_after_reset_requests_the_rest(make_lab: MakeLab, served: Served) -> None:
    lab = make_lab()
    printed = _cut_after_a_save(lab, served)
    c = lab.console
    saved = start_ota(lab, served, "big.bin", resume_from=None)
    assert saved >= printed
    c.expect(r"rig_agent: ota complete bytes=524288$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert _requests(served)[-1] == ("GET", f"bytes={saved}-")
    assert served.server.records[-1].body_bytes == 512 * 1024 - saved


def test_server_ignoring_range_restarts_from_the_beginning(make_lab: MakeLab, served: Served) -> None:
    """esp_https_ota.c:_http_handle_response_code() turns a 200 to a resumed request into
    ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE with two warnings; esp_https_ota_begin() then logs the
    failure and the fallback and sends a second GET without Range, in the same attempt."""
    lab = make_lab()
    _cut_after_a_save(lab, served)
    served.server.mode = ServeMode(range_support=False)
    c = lab.console
    saved = start_ota(lab, served, "big.bin", resume_from=None)
    c.expect(r"^W \(\d+\) esp_https_ota: Server ignored the requested Range header$")
    c.expect(r"^W \(\d+\) esp_https_ota: OTA resumption requires server with range request support\.$")
    c.expect(r"^E \(\d+\) esp_https_ota: OTA resumption failed with err: 28682\.$")
    c.expect(
        r"^I \(\d+\) esp_https_ota: Falling back to OTA without resumption "
        r"and restarting download from beginning$"
    )
    c.expect(r"rig_agent: ota complete bytes=524288$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    assert _requests(served)[-2:] == [("GET", f"bytes={saved}-"), ("GET", None)]
    assert served.server.records[-1].status == 200


def test_wrong_server_certificate_prints_the_tls_chain_and_writes_nothing(
    make_lab: MakeLab, served: Served, tmp_path: Path
) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", size=64 * 1024)
    other_ca = ensure_bundle(tmp_path / "other-certs").ca_der()
    lab = make_lab()
    c = lab.console
    c.expect(r"rig_agent: ready version=1\.0\.0")
    c.send(f"cert {base64.b64encode(other_ca).decode()}")
    c.expect(r"rig_agent: ok cert")
    c.send(f"ota {served.url('next.bin')}")
    begin = c.expect(r"rig_agent: ota begin url=").end()
    c.expect(r"^E \(\d+\) rig_agent: ota failed err=0x7002 reason=begin$")
    lines = c.log_lines(begin)
    assert lines[:8] == [
        f"W esp-tls-mbedtls: {SKIP_COMMON_NAME_WARNING}",  # esp_tls_mbedtls.c:set_client_config()
        "E esp-tls-mbedtls: mbedtls_ssl_handshake returned -0x2700",
        "I esp-tls-mbedtls: Failed to verify peer certificate!",
        "E esp-tls: Failed to open new connection",
        "E transport_base: Failed to open a new connection",
        "E HTTP_CLIENT: Connection failed, sock < 0",
        "E esp_https_ota: Failed to open HTTP connection: ESP_ERR_HTTP_CONNECT",
        "E esp_https_ota: Failed to establish HTTP connection",
    ]
    assert lab.board.chip.flash.read(OTA_1, 4096) == b"\xff" * 4096
    assert lab.otadata().entries[1].is_erased
