"""SLIP framing (RFC 1055) as the ESP32 ROM loader and esptool speak it.

Every 0xC0 is treated as a frame boundary, so noise on the line only ever produces
one bogus frame (which the loader drops) and the next real frame is read intact.
Work is done per frame with bytes methods, not per byte: flash writes push
megabytes through here.
"""

from __future__ import annotations

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

_END = bytes([END])


def encode(payload: bytes) -> bytes:
    """One framed packet: C0, payload with DB → DB DD and C0 → DB DC, C0."""
    body = payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return _END + body + _END


def unescape(body: bytes) -> bytes:
    # DB DC first: its DB can only be an escape head, never the tail of DB DD.
    return body.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")


class Decoder:
    """Incremental decoder: feed any byte chunks, get back complete payloads."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._synced = False

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        self._pending += data
        start = 0
        while True:
            end = self._pending.find(_END, start)
            if end < 0:
                break
            body = bytes(self._pending[start:end])
            if self._synced and body:
                frames.append(unescape(body))
            # Bytes before the first C0 ever seen are line noise, not a frame tail.
            self._synced = True
            start = end + 1
        del self._pending[:start]
        return frames

    def reset(self) -> None:
        self._pending.clear()
        self._synced = False
