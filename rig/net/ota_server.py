"""The rig's HTTPS OTA server: what esp_https_ota talks to, with the modes its field servers have.

TLS is done with `ssl.SSLObject` over memory BIOs rather than a wrapped socket, so the
server knows exactly which ciphertext bytes carry which image bytes: every body write
is one TLS record, announced as a `BodyCheckpoint` before it is sent. The fault proxy
uses that to cut the connection right after a given image byte although it never
decrypts anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

import h11

from rig.errors import InputError
from rig.net.bus import BodyCheckpoint, BodyProgress, EventBus
from rig.net.certs import CertBundle
from rig.net.listener import Service, close_listener, listen, peer_name

MAX_RECORD = 16384  # TLS maximum plaintext per record
_MAX_HEADER = 16384  # a request head beyond this is refused (431), as any production server does
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_RECV = 65536
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_REDIRECT = re.compile(r"/r/(\d{1,3})/(.+)")
_BATCH = 4  # TLS records per sendall
_LINGER_S = 1.0
MAX_CONNECTIONS = 64  # far more than one run's boards ever open at once
_CHUNK_FRAMING = 16  # room for "<hex>\r\n" and "\r\n" inside one record


class ResponseEnd(Enum):
    """How a request (or a connection that never got to one) ended."""

    COMPLETE = "complete"
    CLIENT_CLOSED = "client closed"
    RESET = "reset"
    ERROR = "error"


@dataclass(frozen=True)
class RequestRecord:
    """One line of server.log."""

    connection_id: int
    peer: str
    method: str
    path: str
    range_header: str | None
    status: int
    body_bytes: int
    started_at: float
    duration_s: float
    ending: ResponseEnd
    error: str = ""

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields["ending"] = self.ending.value
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class ServeMode:
    """Runtime-switchable behaviour; replaced whole so a request never sees half a change."""

    range_support: bool = True  # off: ignore Range, always 200 full (like openssl s_server -WWW)
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    redirect_status: int = 301  # status of each hop of /r/<n>/<name>
    record_size: int = MAX_RECORD  # plaintext per body write = per TLS record

    def __post_init__(self) -> None:
        if not 64 <= self.record_size <= MAX_RECORD:
            raise InputError(f"record_size must be 64..{MAX_RECORD}, got {self.record_size}")
        if self.redirect_status not in (301, 302, 303, 307, 308):
            raise InputError(f"redirect_status must be a redirect code, got {self.redirect_status}")


ImageSource = Path | Mapping[str, bytes]


class _Unsatisfiable(Exception):
    """The Range names no byte of the image."""


def select_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a single `Range: bytes=` header asks for, None for "send it all".

    Malformed and multi-range headers are ignored (200 with the whole image), as RFC 9110
    allows; a well-formed range outside the image raises _Unsatisfiable (416).
    """
    if header is None or not header.startswith("bytes="):
        return None
    spec = header.removeprefix("bytes=").strip()
    first, dash, last = spec.partition("-")
    if "," in spec or not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:
        if not last.isdigit():
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - suffix), size
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, (min(int(last) + 1, size) if last else size)


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    refused: int | None = None  # a status h11 already decided: the request was malformed


@dataclass
class _Response:
    """Bytes to send: the header block, then the image slice (if any)."""

    status: int
    headers: list[tuple[str, str]]
    image: bytes = b""
    start: int = 0
    end: int = 0
    chunked: bool = False


_REASONS = {
    200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
}


class _TlsStream:
    """TLS over a socket through memory BIOs, counting the server->client wire bytes."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.wire_out = 0

    def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self.send_wire(self._outgoing.read())
                if not self._fill():
                    raise ConnectionAbortedError("client closed during the TLS handshake") from None
            else:
                self.send_wire(self._outgoing.read())
                return

    def recv(self) -> bytes:
        """Plaintext from the client; b"" once it has closed (with or without close_notify)."""
        while True:
            try:
                return self._tls.read(_RECV)
            except ssl.SSLWantReadError:
                self.send_wire(self._outgoing.read())
                if not self._fill():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def encrypt(self, plaintext: bytes) -> bytes:
        """The ciphertext for `plaintext` (plus anything TLS had queued), not yet sent."""
        self._tls.write(plaintext)
        return self._outgoing.read()

    def send_wire(self, ciphertext: bytes) -> None:
        if ciphertext:
            self._sock.sendall(ciphertext)
            self.wire_out += len(ciphertext)

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        self.send_wire(self._outgoing.read())

    def _fill(self) -> bool:
        data = self._sock.recv(_RECV)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True


class OtaServer(Service):
    """HTTPS image server in a background thread; one thread per client connection."""

    def __init__(
        self,
        bundle: CertBundle,
        images: ImageSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: ServeMode | None = None,
        bus: EventBus | None = None,
        log_path: Path | None = None,
        idle_timeout: float = 30.0,
    ) -> None:
        self.bus = bus if bus is not None else EventBus()
        self.mode = mode if mode is not None else ServeMode()
        self._context = bundle.server_context()
        self._images: ImageSource = images
        self._host = host
        self._requested_port = port
        self._log_path = log_path
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._active: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._next_id = 0
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._listener is not None:
            return self
        listener = listen(self._host, self._requested_port, "OTA server")
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name="ota-server-accept", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        close_listener(listener)
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._lock:
            active, threads = list(self._active), list(self._threads)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)

    # -- public state ----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (valid after start())."""
        return self._port

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def set_images(self, images: ImageSource) -> None:
        """Swap the image set; requests already sending keep the bytes they started with."""
        self._images = images

    def url_for(
        self, name: str, *, redirects: int = 0, host: str | None = None, port: int | None = None
    ) -> str:
        """The URL a board is given; `host`/`port` override it, e.g. to go through the proxy."""
        path = f"/r/{redirects}/{name}" if redirects else f"/{name}"
        return f"https://{host or self._host}:{port or self._port}{path}"

    # -- connection handling -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            with self._lock:
                self._next_id += 1
                connection_id = self._next_id
                crowded = len(self._active) >= MAX_CONNECTIONS
            if crowded:  # one thread per connection: bounded, so idle clients cannot exhaust the rig
                self._refuse(sock, peer, connection_id)
                continue
            with self._lock:
                self._active.add(sock)
                thread = threading.Thread(
                    target=self._serve_connection,
                    args=(sock, peer, connection_id),
                    name=f"ota-server-{connection_id}",
                    daemon=True,
                )
                self._threads.add(thread)
            thread.start()

    def _serve_connection(self, sock: socket.socket, peer: tuple[str, int], connection_id: int) -> None:
        sock.settimeout(self._idle_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = _TlsStream(sock, self._context)
        try:
            self._handshake(stream, peer, connection_id)
            http = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER)
            refused = False
            while True:
                request = self._read_request(stream, http)
                if request is None:
                    break
                refused = request.refused is not None
                keep_going = self._handle(stream, http, request, peer, connection_id)
                if not keep_going:
                    break
            with contextlib.suppress(OSError):
                stream.close_notify()
            if refused:
                _linger(sock)
        except _Done:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self._active.discard(sock)
                self._threads.discard(threading.current_thread())

    def _handshake(self, stream: _TlsStream, peer: tuple[str, int], connection_id: int) -> None:
        started = time.time()
        try:
            stream.handshake()
        except (OSError, ssl.SSLError) as error:
            self._record(
                RequestRecord(
                    connection_id=connection_id, peer=peer_name(peer), method="", path="", range_header=None,
                    status=0, body_bytes=0, started_at=started, duration_s=time.time() - started,
                    ending=_ending_of(error), error=f"TLS handshake: {_describe(error)}",
                )
            )
            raise _Done from None

    def _read_request(self, stream: _TlsStream, http: h11.Connection) -> _Request | None:
        """The next request on the connection (h11 frames it); None when the client closes or
        idles out. A malformed or oversized request head comes back marked with its status."""
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as error:
                return _Request("", "", {}, refused=error.error_status_hint)
            if event is h11.NEED_DATA:
                try:
                    data = stream.recv()
                except (OSError, ssl.SSLError):
                    return None
                http.receive_data(data)  # b"": the client closed
            elif isinstance(event, h11.Request):
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
                return _Request(event.method.decode("ascii"), event.target.decode("latin-1"), headers)
            elif not isinstance(event, h11.Data | h11.EndOfMessage):
                return None  # ConnectionClosed, or PAUSED after an earlier message

    def _handle(
        self, stream: _TlsStream, http: h11.Connection, request: _Request, peer: tuple[str, int],
        connection_id: int,
    ) -> bool:  # fmt: skip
        """Answer one request and log it; False when the connection must end."""
        started = time.time()
        mode = self.mode
        response = self._respond(request, mode)
        if response.status >= 400:
            response.headers.append(("Connection", "close"))
        path = urlsplit(request.target).path
        progress = _Progress()
        ending, error = ResponseEnd.COMPLETE, ""
        try:
            head = h11.Response(
                status_code=response.status, reason=_REASONS[response.status],
                headers=[("Server", "ota-rig"), *response.headers],
            )  # fmt: skip
            stream.send_wire(stream.encrypt(http.send(head) or b""))
            if request.method == "GET" and response.status in (200, 206):
                self._send_body(stream, http, response, mode, _Target(path, peer[1], connection_id), progress)
            stream.send_wire(stream.encrypt(http.send(h11.EndOfMessage()) or b""))
        except (OSError, ssl.SSLError) as failure:
            ending, error = _ending_of(failure), _describe(failure)
        except h11.LocalProtocolError as failure:  # e.g. a header value h11 refuses to send
            ending, error = ResponseEnd.ERROR, f"response not sent: {failure}"
        self._record(
            RequestRecord(
                connection_id=connection_id, peer=peer_name(peer), method=request.method, path=request.target,
                range_header=request.headers.get("range"), status=response.status, body_bytes=progress.sent,
                started_at=started, duration_s=time.time() - started, ending=ending, error=error,
            )
        )
        if ending is not ResponseEnd.COMPLETE or http.our_state is not h11.DONE:
            return False
        return self._next_cycle(stream, http)

    @staticmethod
    def _next_cycle(stream: _TlsStream, http: h11.Connection) -> bool:
        """Keep the connection for another request when both sides allow it (HTTP/1.1 keep-alive)."""
        while http.their_state is h11.SEND_BODY:  # a request body nobody asked for: drop it
            try:
                event = http.next_event()
            except h11.RemoteProtocolError:
                return False
            if event is h11.NEED_DATA:
                try:
                    http.receive_data(stream.recv())
                except (OSError, ssl.SSLError):
                    return False
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            return True
        return False

    def _send_body(
        self,
        stream: _TlsStream,
        http: h11.Connection,
        response: _Response,
        mode: ServeMode,
        target: _Target,
        progress: _Progress,
    ) -> None:
        """Send the body one TLS record per write, counting image bytes into `progress`.

        Records are sent in batches of up to _BATCH (fewer syscalls for the proxy to
        mirror); each record's checkpoint is still published before its bytes leave.
        """
        total = response.end - response.start
        step = mode.record_size - _CHUNK_FRAMING if response.chunked else mode.record_size
        offsets = range(response.start, response.end, step)
        for first in range(0, len(offsets), _BATCH):
            batch: list[bytes] = []
            sizes: list[int] = []
            queued = stream.wire_out
            for offset in offsets[first : first + _BATCH]:
                piece = response.image[offset : min(offset + step, response.end)]
                batch.append(stream.encrypt(http.send(h11.Data(data=piece)) or b""))
                sizes.append(len(piece))
                queued += len(batch[-1])
                self.bus.publish(
                    BodyCheckpoint(
                        connection_id=target.connection_id, peer_port=target.peer_port,
                        server_port=self._port, path=target.path, image_start=offset,
                        image_end=offset + len(piece), image_size=len(response.image), wire_end=queued,
                    )
                )
            stream.send_wire(b"".join(batch))
            for size in sizes:
                progress.sent += size
                self.bus.publish(BodyProgress(target.connection_id, target.path, progress.sent, total))

    def _respond(self, request: _Request, mode: ServeMode) -> _Response:
        if request.refused is not None:
            status = request.refused if request.refused in _REASONS else 400
            return _Response(status, [("Content-Length", "0")])
        if request.method not in ("GET", "HEAD"):
            status = 400 if not request.method else 405
            return _Response(status, [("Allow", "GET, HEAD"), ("Content-Length", "0")])
        path = unquote(urlsplit(request.target).path)
        hop = _REDIRECT.fullmatch(path)
        if hop is not None:
            remaining, name = int(hop.group(1)), hop.group(2)
            if remaining > 0:
                host = request.headers.get("host", "")
                if not _HOST.fullmatch(host):  # the redirect goes back where the client came from, or nowhere
                    return _Response(400, [("Content-Length", "0")])
                target = f"/r/{remaining - 1}/{name}" if remaining > 1 else f"/{name}"
                headers = [("Location", f"https://{host}{target}"), ("Content-Length", "0")]
                return _Response(mode.redirect_status, headers)
            path = f"/{name}"
        image = self._lookup(path.removeprefix("/"))
        if image is None:
            return _Response(404, [("Content-Length", "0")])
        size = len(image)
        headers = [("Content-Type", "application/octet-stream")]
        if mode.range_support:
            headers.append(("Accept-Ranges", "bytes"))
            try:
                selected = select_range(request.headers.get("range"), size)
            except _Unsatisfiable:
                return _Response(416, [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
        else:
            selected = None
        start, end = selected if selected is not None else (0, size)
        status = 200 if selected is None else 206
        if status == 206:
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        if mode.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(end - start)))
        return _Response(status, headers, image, start, end, mode.chunked)

    def _refuse(self, sock: socket.socket, peer: tuple[str, int], connection_id: int) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        now = time.time()
        self._record(
            RequestRecord(
                connection_id=connection_id, peer=peer_name(peer), method="", path="", range_header=None,
                status=0, body_bytes=0, started_at=now, duration_s=0.0, ending=ResponseEnd.ERROR,
                error=f"refused: {MAX_CONNECTIONS} connections already open",
            )
        )  # fmt: skip

    def _lookup(self, name: str) -> bytes | None:
        if not _NAME.fullmatch(name):
            return None
        images = self._images
        if isinstance(images, Path):
            candidate = images / name
            try:
                # A symlink could reach out of the image folder: only the folder's own files are served.
                if candidate.is_symlink() or not candidate.is_file():
                    return None
                return candidate.read_bytes()
            except OSError:
                return None
        return images.get(name)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as log:
                    log.write(record.to_json() + "\n")


@dataclass
class _Progress:
    sent: int = 0


@dataclass(frozen=True)
class _Target:
    """What a body belongs to, as named in its events."""

    path: str
    peer_port: int
    connection_id: int


class _Done(Exception):
    """The connection is over; already logged."""


def _linger(sock: socket.socket) -> None:
    """Close gently after refusing a request the client is still sending: stop sending, then
    read and drop what it sends for a moment, so our error answer is not lost to the RST a
    close with unread input would cause."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(_LINGER_S)
        deadline = time.monotonic() + _LINGER_S
        while time.monotonic() < deadline and sock.recv(_RECV):
            pass


def _ending_of(error: BaseException) -> ResponseEnd:
    if isinstance(error, ConnectionResetError):
        return ResponseEnd.RESET
    if isinstance(error, BrokenPipeError | ConnectionAbortedError):
        return ResponseEnd.CLIENT_CLOSED
    return ResponseEnd.ERROR


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__
