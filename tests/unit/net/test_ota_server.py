"""The OTA server as esp_https_ota meets it: HEAD, ranges, chunked, redirects, logs, pinning."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest

from rig.net.bus import BodyProgress, Event, EventBus
from rig.net.certs import CertBundle, ensure_bundle, ensure_wrong_bundle
from rig.net.ota_server import MAX_CONNECTIONS, OtaServer, RequestRecord, ResponseEnd, ServeMode

from .support import tls_download


def connect(server: OtaServer, bundle: CertBundle) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=bundle.client_context(), timeout=20)


def get(
    server: OtaServer,
    bundle: CertBundle,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = connect(server, bundle)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_head_reports_length_without_body(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    response, body = get(server, bundle, "/fw.bin", method="HEAD")
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(image))
    assert body == b""


def test_get_serves_the_whole_image(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    response, body = get(server, bundle, "/fw.bin")
    assert response.status == 200
    assert response.getheader("Accept-Ranges") == "bytes"
    assert body == image


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-1023", 0, 1024),
        ("bytes=200000-", 200000, 256 * 1024),
        ("bytes=-100", 256 * 1024 - 100, 256 * 1024),
        ("bytes=1024-262144", 1024, 256 * 1024),  # esp_https_ota asks for end = image length
    ],
)
def test_single_range_gives_206(
    server: OtaServer, bundle: CertBundle, image: bytes, header: str, start: int, end: int
) -> None:
    response, body = get(server, bundle, "/fw.bin", {"Range": header})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes {start}-{end - 1}/{len(image)}"
    assert body == image[start:end]


def test_range_past_the_end_is_416(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    response, body = get(server, bundle, "/fw.bin", {"Range": f"bytes={len(image)}-"})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{len(image)}"
    assert body == b""


def test_multi_range_gives_the_whole_image(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    response, body = get(server, bundle, "/fw.bin", {"Range": "bytes=0-9,20-29"})
    assert response.status == 200
    assert body == image


def test_range_support_off_ignores_range(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    server.mode = ServeMode(range_support=False)
    response, body = get(server, bundle, "/fw.bin", {"Range": "bytes=0-9"})
    assert response.status == 200
    assert response.getheader("Accept-Ranges") is None
    assert body == image


def test_chunked_body_reassembles_to_the_image(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    server.mode = ServeMode(chunked=True)
    response, body = get(server, bundle, "/fw.bin")
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    assert body == image


def test_redirect_chain_leads_to_the_image(server: OtaServer, bundle: CertBundle, image: bytes) -> None:
    server.mode = ServeMode(redirect_status=302)
    url = server.url_for("fw.bin", redirects=3)
    statuses = []
    for _ in range(5):
        response, body = get(server, bundle, url.split(str(server.port), 1)[1])
        statuses.append(response.status)
        if response.status != 302:
            break
        url = response.getheader("Location") or ""
        assert url.startswith(f"https://127.0.0.1:{server.port}/")
    assert statuses == [302, 302, 302, 200]
    assert body == image


@pytest.mark.parametrize("path", ["/nope.bin", "/../fw.bin", "/r/x/fw.bin", "/"])
def test_unknown_names_are_404(server: OtaServer, bundle: CertBundle, path: str) -> None:
    response, _ = get(server, bundle, path)
    assert response.status == 404


def test_images_can_be_replaced_while_running(server: OtaServer, bundle: CertBundle, tmp_path: Path) -> None:
    (tmp_path / "new.bin").write_bytes(b"\xe9" * 5000)
    server.set_images(tmp_path)
    assert get(server, bundle, "/new.bin")[1] == b"\xe9" * 5000
    assert get(server, bundle, "/fw.bin")[0].status == 404


def test_keep_alive_serves_several_requests_on_one_connection(
    server: OtaServer, bundle: CertBundle, image: bytes
) -> None:
    connection = connect(server, bundle)
    for start in (0, 65536, 131072):
        connection.request("GET", "/fw.bin", headers={"Range": f"bytes={start}-{start + 65535}"})
        assert connection.getresponse().read() == image[start : start + 65536]
    connection.close()
    assert len({record.connection_id for record in records_after(server, 3)}) == 1


def records_after(server: OtaServer, count: int, timeout: float = 10.0) -> list[RequestRecord]:
    """The server logs a request after its last byte is sent, so the client may be first."""
    deadline = time.monotonic() + timeout
    while len(server.records) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.records


def test_requests_are_logged_in_memory_and_as_json_lines(
    server: OtaServer, bundle: CertBundle, image: bytes, tmp_path: Path
) -> None:
    get(server, bundle, "/fw.bin", {"Range": "bytes=0-99"})
    get(server, bundle, "/missing.bin")
    first, second = records_after(server, 2)
    assert (first.method, first.path, first.range_header) == ("GET", "/fw.bin", "bytes=0-99")
    assert first.status == 206
    assert (first.body_bytes, first.ending) == (100, ResponseEnd.COMPLETE)
    assert (second.status, second.body_bytes) == (404, 0)
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    assert [line["status"] for line in lines] == [206, 404]
    assert lines[0]["ending"] == "complete"
    assert lines[0]["peer"].startswith("127.0.0.1:")


def test_body_progress_reaches_the_total(
    server: OtaServer, bundle: CertBundle, bus: EventBus, image: bytes
) -> None:
    seen: list[int] = []
    done = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, BodyProgress):
            assert event.total == len(image)
            seen.append(event.body_bytes_sent)
            if event.body_bytes_sent == event.total:
                done.set()

    bus.subscribe(on_event)
    get(server, bundle, "/fw.bin")
    # The client may have read the last byte before the server thread publishes its progress.
    assert done.wait(10)
    assert seen == sorted(seen)
    assert seen[-1] == len(image)


def test_a_client_vanishing_mid_transfer_is_logged_not_raised(
    server: OtaServer, bundle: CertBundle, image: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    big = image * 32  # 8 MiB: more than the socket buffers hold
    server.set_images({"big.bin": big})
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock = bundle.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = 0
    while received < 200_000:  # well into the body, yet far from its end
        received += len(sock.recv(65536))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    server.stop()
    (record,) = server.records
    assert record.ending in (ResponseEnd.RESET, ResponseEnd.CLIENT_CLOSED)
    assert 0 < record.body_bytes < len(big)
    assert "Traceback" not in capfd.readouterr().err


def test_board_pinning_the_rig_ca_refuses_the_wrong_identity(
    bundle: CertBundle, cert_dir: Path, image: bytes
) -> None:
    wrong = ensure_wrong_bundle(cert_dir)
    with OtaServer(wrong, {"fw.bin": image}) as impostor:
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_download(impostor.port, "/fw.bin", bundle.client_context())
        impostor.stop()
        (record,) = impostor.records
    assert record.status == 0
    assert record.error.startswith("TLS handshake")


def test_plain_http_is_not_served(server: OtaServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/fw.bin")
        connection.getresponse()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(server: OtaServer, bundle: CertBundle) -> None:
    context = bundle.client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        tls_download(server.port, "/fw.bin", context)


def test_ca_is_kept_and_server_cert_reissued_for_new_hosts(tmp_path: Path) -> None:
    first = ensure_bundle(tmp_path)
    ca, cert = first.ca_pem.read_bytes(), first.cert_pem.read_bytes()
    assert ensure_bundle(tmp_path).cert_pem.read_bytes() == cert
    second = ensure_bundle(tmp_path, ["127.0.0.1", "10.0.0.5", "rig.local"])
    assert second.ca_pem.read_bytes() == ca
    assert second.cert_pem.read_bytes() != cert
    assert ssl.DER_cert_to_PEM_cert(second.ca_der()).strip() == ca.decode().strip()


def raw_exchange(server: OtaServer, bundle: CertBundle, request: bytes) -> bytes:
    """Send `request` as is over TLS; everything the server answers until it closes."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    with raw, bundle.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        with contextlib.suppress(ssl.SSLError, ConnectionResetError, BrokenPipeError):
            sock.sendall(request)  # a server refusing a huge head may stop reading early
        received = b""
        with contextlib.suppress(ssl.SSLError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /fw.bin HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /r/" + b"9" * 5000 + b"/fw.bin HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /r/1/fw.bin HTTP/1.1\r\nHost: evil\rinjected\r\n\r\n", 400),
        (b"GET /fw.bin HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /fw.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    ],
    ids=["huge-header", "huge-redirect-count", "cr-in-host", "no-host", "garbage", "post"],
)
def test_bad_requests_get_an_answer_and_a_log_line(
    server: OtaServer, bundle: CertBundle, request_bytes: bytes, status: int
) -> None:
    before = len(server.records)
    answer = raw_exchange(server, bundle, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    (record,) = records_after(server, before + 1)[before:]
    assert record.status == status


def test_a_redirect_goes_back_to_the_host_the_client_used(server: OtaServer, bundle: CertBundle) -> None:
    request = b"GET /r/1/fw.bin HTTP/1.1\r\nHost: 10.0.0.7:8443\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(server, bundle, request)
    assert b"\r\nlocation: https://10.0.0.7:8443/fw.bin\r\n" in answer.lower()


def test_files_outside_the_image_folder_are_not_served_through_a_symlink(
    bundle: CertBundle, tmp_path: Path
) -> None:
    folder, secret = tmp_path / "images", tmp_path / "secret.bin"
    folder.mkdir()
    secret.write_bytes(b"private")
    (folder / "fw.bin").write_bytes(b"firmware")
    (folder / "leak.bin").symlink_to(secret)
    with OtaServer(bundle, folder) as running:
        assert get(running, bundle, "/fw.bin")[1] == b"firmware"
        assert get(running, bundle, "/leak.bin")[0].status == 404


def test_connections_beyond_the_cap_are_refused_and_logged(server: OtaServer, bundle: CertBundle) -> None:
    """One thread per connection: idle clients must not grow the rig without bound."""
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with extra:
            assert extra.recv(1) == b""  # closed at once, no handshake
        refused = records_after(server, 1)
        assert refused[-1].error == f"refused: {MAX_CONNECTIONS} connections already open"
    finally:
        for sock in idle:
            sock.close()
