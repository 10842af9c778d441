"""Espressif's three OTA examples (ESP-IDF v5.5.5 examples/system/ota/*/main/*.c) on a twin:
what their own pytest files wait for, and how each reacts to what the field does to it."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.esp.example_image import KconfigValue, make_example_app
from rig.esp.image import parse
from rig.esp.otadata import OtaState
from rig.net.certs import ensure_bundle

from .conftest import Lab, Served, lab_config

MakeLab = Callable[..., Lab]
OTA_0, OTA_1 = 0x20000, 0x1D0000
CI = {"EXAMPLE_SKIP_COMMON_NAME_CHECK": True, "EXAMPLE_SKIP_VERSION_CHECK": True}


def _pem(served: Served) -> bytes:
    return ssl.DER_cert_to_PEM_cert(served.pinned_der).encode()


def _app(served: Served, project: str, version: str, **choices: KconfigValue) -> bytes:
    return make_example_app(project=project, version=version, ca_pem=_pem(served), choices=choices or CI)


def _booted(lab: Lab, offset: int, version: str) -> None:
    c = lab.console
    c.expect(rf"Loaded app from partition at offset 0x{offset:x}$")
    c.expect(rf"App version:\s+{version}$")


def test_advanced_example_takes_its_url_from_the_console_and_boots_the_update(
    make_lab: MakeLab, served: Served
) -> None:
    served.images["advanced_https_ota.bin"] = _app(served, "advanced_https_ota", "2.0.0")
    lab = make_lab(_app(served, "advanced_https_ota", "1.0.0"))
    c = lab.console
    _booted(lab, OTA_0, "1.0.0")
    c.expect(r"advanced_https_ota_example: OTA example app_main start$")
    c.expect(r"example_common: - IPv4 address: 127\.0\.0\.1,$")
    c.expect(r"advanced_https_ota_example: Starting Advanced OTA example$")
    c.send(served.url("advanced_https_ota.bin"))
    for line in (
        "OTA started",
        "Connected to server",
        "Reading Image Description",
        "Running firmware version: 1.0.0",
        "Verifying chip id of new image: 0",
        "Boot partition updated. Next Partition: 17",
        "OTA finish",
        "ESP_HTTPS_OTA upgrade successful. Rebooting ...",
    ):
        c.expect(rf"advanced_https_ota_example: {line.replace('.', chr(92) + '.')}$")
    _booted(lab, OTA_1, "2.0.0")
    c.expect(r"advanced_https_ota_example: App is valid, rollback cancelled successfully$")
    entry = lab.otadata().active_entry
    assert entry is not None and entry.state == OtaState.VALID


def test_simple_example_prints_the_digests_its_test_compares_and_asks_for_wifi(
    make_lab: MakeLab, served: Served
) -> None:
    """simple_ota_example.c:get_sha256_of_partitions(), then example_connect() reading
    `ssid password` from stdin (CONFIG_EXAMPLE_WIFI_SSID_PWD_FROM_STDIN), then esp_https_ota()."""
    served.images["simple_ota.bin"] = _app(served, "simple_ota", "2.0.0")
    base = _app(
        served,
        "simple_ota",
        "1.0.0",
        EXAMPLE_WIFI_SSID_PWD_FROM_STDIN=True,
        EXAMPLE_SKIP_COMMON_NAME_CHECK=True,
    )
    lab = make_lab(base)
    c = lab.console
    c.expect(rf"simple_ota_example: SHA-256 for current firmware:  {parse(base).hash_stored.hex()}$")  # type: ignore[union-attr]
    c.expect(r"example_connect: Please input ssid password:$")
    c.send("lab-ap secret")
    c.expect(r"example_connect: Connecting to lab-ap\.\.\.$")
    c.expect(r"simple_ota_example: Starting OTA example task$")
    c.send(served.url("simple_ota.bin"))
    c.expect(r"simple_ota_example: OTA Succeed, Rebooting\.\.\.$")
    _booted(lab, OTA_1, "2.0.0")


def test_native_example_refuses_a_short_first_block_and_a_bad_magic_byte(
    make_lab: MakeLab, served: Served
) -> None:
    """native_ota_example.c: the first read must be longer than header + segment header +
    esp_app_desc_t (288 bytes); esp_ota_write() checks the 0xE9 magic of the first byte."""
    good = _app(served, "native_ota", "2.0.0")
    served.images["short.bin"] = good[:180]
    served.images["random.bin"] = b"\x00" + bytes(range(256)) * 125
    lab = make_lab(_app(served, "native_ota", "1.0.0"))
    c = lab.console
    for image, refusal in (
        ("short.bin", r"native_ota_example: received package is not fit len"),
        ("random.bin", r"esp_ota_ops: OTA image has invalid magic byte \(expected 0xE9, saw 0x00\)"),
    ):
        c.expect(r"native_ota_example: Starting OTA example task$")
        c.send(served.url(image))
        c.expect(rf"E \(\d+\) {refusal}$")
        c.expect(r"native_ota_example: Exiting task due to fatal error\.\.\.$")
        lab.power_cycle()  # the task is gone: the next URL needs a fresh boot
    assert lab.otadata().active_entry is not None and lab.otadata().active_entry.seq == 1  # type: ignore[union-attr]


def test_advanced_example_refuses_its_own_version_before_writing(make_lab: MakeLab, served: Served) -> None:
    """validate_image_header() without CONFIG_EXAMPLE_SKIP_VERSION_CHECK: the same 32-byte
    version is refused from the descriptor, before esp_https_ota_perform() erases anything."""
    served.images["same.bin"] = _app(
        served, "advanced_https_ota", "1.0.0", EXAMPLE_SKIP_COMMON_NAME_CHECK=True
    )
    lab = make_lab(_app(served, "advanced_https_ota", "1.0.0", EXAMPLE_SKIP_COMMON_NAME_CHECK=True))
    c = lab.console
    c.expect(r"Starting Advanced OTA example$")
    c.send(served.url("same.bin"))
    c.expect(
        r"W \(\d+\) advanced_https_ota_example: Current running version is the same as a new\. "
        r"We will not continue the update\.$"
    )
    c.expect(r"E \(\d+\) advanced_https_ota_example: image header verification failed$")
    c.expect(r"E \(\d+\) advanced_https_ota_example: ESP_HTTPS_OTA upgrade failed$")
    assert lab.board.chip.flash.read(OTA_1, 4096) == b"\xff" * 4096


def test_advanced_example_resumes_from_the_kilobytes_it_saved(make_lab: MakeLab, served: Served) -> None:
    """CONFIG_EXAMPLE_ENABLE_OTA_RESUMPTION: the written length is saved in NVS in whole KiB
    after each perform; after a power cut the same URL is asked from there with Range."""
    resumable = {**CI, "EXAMPLE_ENABLE_OTA_RESUMPTION": True}
    served.images["next.bin"] = make_example_app(
        project="advanced_https_ota", version="2.0.0", ca_pem=_pem(served), choices=resumable, size=512 * 1024
    )
    lab = make_lab(_app(served, "advanced_https_ota", "1.0.0", **resumable), lab_config(sector_erase_ms=20.0))
    c = lab.console
    c.expect(r"Starting Advanced OTA example$")
    c.send(served.url("next.bin"))
    c.expect(r"esp_https_ota: Writing to <ota_1>")
    time.sleep(0.6)  # part of the image written and its length saved
    lab.power_cycle()
    c.expect(r"Starting Advanced OTA example$")
    c.send(served.url("next.bin"))
    c.expect(r"ESP_HTTPS_OTA upgrade successful\. Rebooting \.\.\.$", timeout=60)
    ranges = [r.range_header for r in served.server.records if r.method == "GET"]
    assert ranges[0] == "bytes=0-"  # v5.5.5: resumption asks a fresh download with a Range too
    resumed = int(str(ranges[-1]).removeprefix("bytes=").rstrip("-"))
    assert resumed > 0 and resumed % 1024 == 0, ranges
    _booted(lab, OTA_1, "2.0.0")


class PlainServer:
    """A bare TLS server answering one file per connection the way `openssl s_server -WWW`
    does: HTTP/1.0, no Content-Length, then close_notify, and the TCP connection left open
    until the client closes it."""

    def __init__(self, directory: Path, body: bytes, *, tls13_only: bool = False) -> None:
        bundle = ensure_bundle(directory / "certs")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(bundle.cert_pem), str(bundle.key_pem))
        if tls13_only:
            self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ca_pem = bundle.ca_pem.read_bytes()
        self.body = body
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        self.write_error: type[BaseException] | None = None
        self.written = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1
                raw.close()
                continue
            tls.recv(4096)
            try:
                tls.sendall(b"HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\n" + self.body)
                kept = tls.unwrap()  # close_notify; the socket stays open
            except OSError as error:
                self.write_error = type(error)
                tls.close()
                continue
            finally:
                self.written.set()
            threading.Timer(30, kept.close).start()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[Callable[..., PlainServer]]:
    servers: list[PlainServer] = []

    def start(body: bytes, **kwargs: bool) -> PlainServer:
        servers.append(PlainServer(tmp_path, body, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_body_ended_by_close_notify_alone_completes(
    make_lab: MakeLab, plain_server: Callable[..., PlainServer]
) -> None:
    """esp_http_client.c:esp_http_client_read(): a body without Content-Length is complete at
    the peer's close (`message_complete`); later reads return 0 without waiting for a FIN the
    server never sends. (Espressif's openssl_aligned_bin test: image + 160 padding bytes.)"""
    probe = plain_server(b"")
    pem = probe.ca_pem
    image = make_example_app(project="advanced_https_ota", version="2.0.0", ca_pem=pem, choices=CI)
    server = plain_server(image + bytes(160))
    lab = make_lab(make_example_app(project="advanced_https_ota", version="1.0.0", ca_pem=pem, choices=CI))
    c = lab.console
    c.expect(r"Starting Advanced OTA example$")
    c.send(f"https://127.0.0.1:{server.port}/aligned.bin")
    c.expect(r"ESP_HTTPS_OTA upgrade successful\. Rebooting \.\.\.$", timeout=15)
    _booted(lab, OTA_1, "2.0.0")


def test_tls13_needs_the_mbedtls_option(make_lab: MakeLab, plain_server: Callable[..., PlainServer]) -> None:
    """A build without CONFIG_MBEDTLS_SSL_PROTO_TLS1_3 offers TLS 1.2 only: a TLS 1.3-only
    server (simple_ota's tls1_3 test) refuses the handshake; the tls1_3 build connects."""
    probe = plain_server(b"")
    image = make_example_app(project="simple_ota", version="2.0.0", ca_pem=probe.ca_pem, choices=CI)
    server = plain_server(image, tls13_only=True)
    for tls13, outcome in (
        (False, r"simple_ota_example: Firmware upgrade failed"),
        (True, r"simple_ota_example: OTA Succeed, Rebooting\.\.\."),
    ):
        choices: dict[str, KconfigValue] = {**CI, "MBEDTLS_SSL_PROTO_TLS1_3": tls13}
        lab = make_lab(
            make_example_app(project="simple_ota", version="1.0.0", ca_pem=probe.ca_pem, choices=choices)
        )
        lab.console.expect(r"Starting OTA example task$")
        lab.console.send(f"https://127.0.0.1:{server.port}/simple_ota.bin")
        lab.console.expect(rf"{outcome}$", timeout=15)
    assert server.handshakes_failed == 1


def test_partial_download_closes_each_range_in_a_debug_build(make_lab: MakeLab, served: Served) -> None:
    """esp_https_ota_perform(): D `Connection closed` at the end of every range (Espressif's
    partial_request test counts size / request_size - 1 of them), D `Connection start` before
    the next."""
    partial = {**CI, "EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD": True, "LOG_DEFAULT_LEVEL_DEBUG": True}
    served.images["next.bin"] = _app(served, "advanced_https_ota", "2.0.0", **partial)
    lab = make_lab(_app(served, "advanced_https_ota", "1.0.0", **partial))
    c = lab.console
    c.expect(r"Starting Advanced OTA example$")
    start = len(c.text)
    c.send(served.url("next.bin"))
    c.expect(r"ESP_HTTPS_OTA upgrade successful\. Rebooting \.\.\.$")
    size = len(served.images["next.bin"])
    ranges = -(-size // 16384)  # CONFIG_EXAMPLE_HTTP_REQUEST_SIZE = MBEDTLS_SSL_IN_CONTENT_LEN
    log = c.since(start)
    assert len(re.findall(r"^D \(\d+\) esp_https_ota: Connection closed$", log, re.M)) == ranges
    assert len(re.findall(r"^D \(\d+\) esp_https_ota: Connection start$", log, re.M)) == ranges - 1
    assert ranges - 1 >= int(size / 16384 - 1) > 1


def test_a_reset_mid_download_resets_the_servers_connection(
    make_lab: MakeLab, plain_server: Callable[..., PlainServer]
) -> None:
    """A rebooted chip's lwIP has no PCB for the old connection: the server's next segment is
    answered with a RST (lwIP tcp_in.c:tcp_input()), so a server never writes into a board
    that is gone."""
    probe = plain_server(b"")
    server = plain_server(bytes(8 * 1024 * 1024))  # more than any socket buffers hold
    image = make_example_app(project="advanced_https_ota", version="1.0.0", ca_pem=probe.ca_pem, choices=CI)
    lab = make_lab(image, lab_config(sector_erase_ms=20.0))
    lab.console.expect(r"Starting Advanced OTA example$")
    lab.console.send(f"https://127.0.0.1:{server.port}/big.bin")
    lab.console.expect(r"esp_https_ota: Writing to <ota_1>")
    time.sleep(0.3)
    lab.power_cycle()
    assert server.written.wait(10), "the server is still writing into a board that was reset"
    assert server.write_error in (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)
