"""The twin's network stack: TLS client sockets that die with the chip, and an
HTTP/1.1 client with esp_http_client's read semantics (esp_http_client.c:esp_http_client_read(),
transport_ssl.c:ssl_read()).

Reads return what esp_http_client returns: data, 0 on a FIN, `ReadTimeout` when
`timeout_ms` passes without data (ESP_ERR_HTTP_EAGAIN), `ReadError` on a reset.
Keep-alive is the kernel's, set from the board's config as esp_http_client sets lwIP's
(esp_transport_tcp_set_keep_alive(): SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
TCP_KEEPCNT): probes a live peer answers reset it, as in lwIP's tcp_keepalive(); unanswered
ones abort the connection after idle + interval × count (tcp_slowtmr()), which only a dead
path (packets dropped) does, never a peer that merely stops sending.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

from twin.config import KeepAlive
from twin.cpu import Cpu, LogLevel

# How often a blocked read looks at the chip's power/reset state.
_POLL_S = 0.05
USER_AGENT = "ESP32 HTTP Client/1.0"
ECONNRESET = 104
ECONNABORTED = 113
TCP_CLOSE = 7  # tcpi_state (linux/tcp_states.h): closed without a FIN from the peer


class ReadTimeout(Exception):
    """No data within the read timeout: ESP_ERR_HTTP_EAGAIN."""


class ReadError(Exception):
    """The socket failed (RST, keep-alive abort); `errno` as lwIP reports it."""

    def __init__(self, errno: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = errno
        self.reason = reason


class ConnectError(Exception):
    """TCP connect or TLS handshake failed; `tls` tells which."""

    def __init__(self, reason: str, *, tls: bool) -> None:
        super().__init__(reason)
        self.tls = tls


SKIP_COMMON_NAME_WARNING = (
    "skip_common_name=true: hostname matching and SNI disabled. This disables ALL server-name "
    "authentication (CN/SAN/SNI), not just CN. Only intended for loopback / debug clients."
)


@dataclass
class TlsConnection:
    """One TLS connection owned by a running app."""

    cpu: Cpu
    sock: ssl.SSLSocket
    timeout_s: float
    keepalive: KeepAlive
    last_rx: float = field(default_factory=time.monotonic)

    def send(self, data: bytes) -> None:
        self.cpu.check()
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes; b"" on FIN; raises ReadTimeout / ReadError."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            self.cpu.check()
            if self.sock.pending() or select.select([self.sock], [], [], _POLL_S)[0]:
                try:
                    data = self.sock.recv(size)
                except ssl.SSLWantReadError:
                    continue
                except TimeoutError as exc:
                    # keep-alive gave up: lwIP's tcp_slowtmr() aborts the pcb, ERR_ABRT -> ECONNABORTED
                    raise ReadError(ECONNABORTED, "Software caused connection abort") from exc
                except (ConnectionResetError, ssl.SSLError, OSError) as exc:
                    raise ReadError(ECONNRESET, "Connection reset by peer") from exc
                if not data and self._aborted():
                    raise ReadError(ECONNABORTED, "Software caused connection abort")
                self.last_rx = time.monotonic()
                return data
            if time.monotonic() >= deadline:
                raise ReadTimeout()

    def _aborted(self) -> bool:
        """An empty read that is the kernel's keep-alive giving up, not a FIN: Python's TLS
        layer reports both as an EOF. Keep-alive can only fire after idle + interval x count
        of silence and leaves the socket closed (TCP_CLOSE); lwIP's tcp_slowtmr() aborts the
        pcb then and the read fails with ECONNABORTED."""
        if time.monotonic() - self.last_rx < self.keepalive.give_up_s:
            return False
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            return False
        return info[0] == TCP_CLOSE

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Net:
    """The app's view of the network (Wi-Fi is always up on a twin).

    `window` is lwIP's TCP receive window: the socket's receive buffer is sized to it
    before connecting, so a server can have only that much of an image in flight, as
    with a real ESP32 (not the megabytes Linux would buffer by default).
    """

    cpu: Cpu
    window: int = 5760
    _open: list[socket.socket] = field(default_factory=list)

    def abort_all(self) -> None:
        """The app's run ended (reset, power cut): the chip's lwIP no longer knows its
        connections, so the peer's next segment is answered with a RST (lwIP tcp_in.c:
        tcp_input() sends tcp_rst() for a segment that matches no PCB). A socket left open
        here would instead keep the server writing into a board that is gone."""
        while self._open:
            sock = self._open.pop()
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()

    def connect_tls(
        self,
        host: str,
        port: int,
        *,
        cadata: bytes | str,
        timeout_ms: int,
        keepalive: KeepAlive,
        check_common_name: bool = False,
        tls13: bool = True,
    ) -> TlsConnection:
        """esp_tls with a pinned certificate (DER) or a `cert_pem` / CA bundle (PEM text);
        the hostname check only when the build did not set skip_cert_common_name_check
        (esp_tls_mbedtls.c:set_client_config(): mbedtls_ssl_set_hostname() with the URL host, or
        NULL and a warning when skipped). `tls13` False is an mbedTLS without
        CONFIG_MBEDTLS_SSL_PROTO_TLS1_3: it offers TLS 1.2 only."""
        self.cpu.check()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = check_common_name
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not tls13:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cadata=cadata)
        if not check_common_name:
            self.cpu.log(LogLevel.WARN, "esp-tls-mbedtls", SKIP_COMMON_NAME_WARNING)
        try:
            raw = self.connect_tcp(host, port, max(timeout_ms / 1000, 0.1))
        except OSError as exc:
            raise ConnectError(str(exc), tls=False) from exc
        _set_keepalive(raw, keepalive)
        try:
            hostname = host if check_common_name else None
            sock = context.wrap_socket(raw, server_hostname=hostname, suppress_ragged_eofs=True)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise ConnectError(str(exc), tls=True) from exc
        sock.setblocking(False)
        self._open[:] = [s for s in self._open if s.fileno() >= 0]
        self._open.append(sock)
        return TlsConnection(self.cpu, sock, timeout_ms / 1000, keepalive)


    def connect_tcp(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """TCP connect with the receive buffer set first: the window is agreed at the handshake."""
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            # Linux doubles the request (bookkeeping) and advertises about half of the result.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.window)
            sock.settimeout(timeout_s)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock


def _set_keepalive(sock: socket.socket, keepalive: KeepAlive) -> None:
    """esp_transport_tcp_set_keep_alive() on the kernel's socket (whole seconds, at least 1)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, round(keepalive.idle_s)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, round(keepalive.interval_s)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, keepalive.count))


@dataclass
class HttpResponse:
    """Status line and headers of one response; the body is read through `read`."""

    status: int
    headers: dict[str, str]
    conn: TlsConnection
    buffered: bytes = b""
    remaining: int | None = None
    version: str = "HTTP/1.1"

    @property
    def complete(self) -> bool:
        """esp_http_client.c:esp_http_client_is_complete_data_received(): the whole
        Content-Length read (a body without one is complete once the peer closed)."""
        return self.remaining is not None and self.remaining <= 0

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    def read(self, size: int) -> bytes:
        """esp_http_client_read: up to `size` body bytes; b"" at a FIN or the end of the body.

        A body without Content-Length ends at the peer's close: esp_http_client.c then runs
        http_parser_execute() with no data, `message_complete` marks the body complete, and
        every later read returns 0 without touching the socket. (A server that sends
        close_notify and waits for the client's before closing TCP, as `openssl s_server
        -WWW` does, never sends a second EOF.)"""
        if self.remaining is not None and self.remaining <= 0:
            return b""
        if self.buffered:
            data, self.buffered = self.buffered[:size], self.buffered[size:]
        else:
            data = self.conn.recv(size)
            if not data and self.remaining is None:
                self.remaining = 0
        if self.remaining is not None and data:
            data = data[: self.remaining]
            self.remaining -= len(data)
        return data


def request(
    conn: TlsConnection, method: str, host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """Send one HTTP/1.1 request and read the response head (ESP_ERR_HTTP_FETCH_HEADER on failure)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise ReadError(ECONNRESET, "connection closed before the response head")
        head += chunk
        if len(head) > 16384:
            raise ReadError(ECONNRESET, "response head too long")
    raw_head, _, rest = head.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ReadError(ECONNRESET, f"bad status line {status_line!r}")
    parsed = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    response = HttpResponse(int(parts[1]), parsed, conn, rest, version=parts[0])
    response.remaining = 0 if method == "HEAD" else response.content_length
    return response
