"""Plain-TCP helpers for the proxy tests: wire faults are exact without any TLS in the way."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading


class BlobServer:
    """Plain TCP: reads one line, answers with `payload`, then closes; wire faults need no TLS."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(sock,), daemon=True).start()

    def _answer(self, sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            request = b""
            while not request.endswith(b"\n"):
                chunk = sock.recv(1024)
                if not chunk:
                    return
                request += chunk
            sock.sendall(self.payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


def raw_download(port: int, request: bytes = b"get\n") -> tuple[bytes, BaseException | None]:
    """Everything a plain TCP client receives, and the error that ended it (None on EOF)."""
    received = bytearray()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                received += chunk
    except ConnectionRefusedError:
        raise
    except OSError as error:
        return bytes(received), error
    return bytes(received), None


def tls_download(
    port: int, path: str, context: ssl.SSLContext, *, ragged_eof_ok: bool = True
) -> tuple[bytes, bytes, BaseException | None]:
    """GET over TLS on a raw socket: (response head, body bytes received, error that ended it).

    With `ragged_eof_ok` False a close without TLS close_notify is an error, as on a board.
    """
    received = bytearray()
    error: BaseException | None = None
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    wrapped = context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=ragged_eof_ok)
    with raw, wrapped as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as failure:
            error = failure
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return head, body, error
