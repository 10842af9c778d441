"""A virtual LCUS-n USB relay board (CH340 serial, hex frames) served on a pty.

The real board takes 4-byte frames ``A0 <channel> <0|1> <sum & 0xFF>`` at 9600 8N1,
silently ignores a frame whose checksum is wrong, and (on the multi-channel LCUS
boards that support it) answers a single ``FF`` byte with one text line per channel,
``CH1:OFF \\r\\n`` / ``CH1:ON \\r\\n``. The contacts are normally open: a closed
contact puts the USB rail on the board wired to it.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import tty
from dataclasses import dataclass, field
from types import TracebackType

from twin.power import USB_RAIL_VOLTS, PoweredDevice

FRAME_START = 0xA0
STATUS_QUERY = 0xFF


def frame_checksum(channel: int, state: int) -> int:
    """The LCUS checksum: the low byte of the sum of the first three bytes."""
    return (FRAME_START + channel + state) & 0xFF


@dataclass
class RelayContact:
    """One relay: whether it is closed, and the board (and rail) behind it."""

    number: int
    closed: bool = False
    device: PoweredDevice | None = field(default=None, repr=False)
    rail_volts: float = USB_RAIL_VOLTS

    def supply(self) -> float:
        return self.rail_volts if self.closed else 0.0


class VirtualRelay:
    """An LCUS relay board twin; `port` is the pty slave path the rig opens like /dev/ttyUSB0."""

    def __init__(self, channels: int = 4, status_query: bool = True) -> None:
        if not 1 <= channels <= 0xFE:
            raise ValueError(f"an LCUS board has 1..254 channels, not {channels}")
        self._status_query = status_query
        self._lock = threading.Lock()
        self._contacts = {n: RelayContact(n) for n in range(1, channels + 1)}
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_read, self._wake_write = os.pipe()
        self._closed = False
        self.frames_ignored = 0
        self._thread = threading.Thread(target=self._serve, name="virtual-relay", daemon=True)
        self._thread.start()

    def attach(self, channel: int, device: PoweredDevice, rail_volts: float = USB_RAIL_VOLTS) -> None:
        """Wire a board behind a contact; it immediately sees the contact's current state."""
        with self._lock:
            contact = self._contacts[channel]
            contact.device = device
            contact.rail_volts = rail_volts
            device.supply_changed(contact.supply())

    def is_closed(self, channel: int) -> bool:
        with self._lock:
            return self._contacts[channel].closed

    def close(self) -> None:
        """Stop the reader thread and release the pty."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            os.close(fd)

    def __enter__(self) -> VirtualRelay:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self) -> None:
        pending = bytearray()
        while True:
            ready, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            try:
                chunk = os.read(self._master, 256)
            except OSError:
                return
            pending += chunk
            self._consume(pending)

    def _consume(self, pending: bytearray) -> None:
        """Act on every complete frame in `pending`; leave a partial one for the next read."""
        while pending:
            first = pending[0]
            if first == STATUS_QUERY and self._status_query:
                del pending[0]
                os.write(self._master, self._status_text())
                continue
            if first != FRAME_START:
                del pending[0]
                continue
            if len(pending) < 4:
                return
            channel, state, checksum = pending[1], pending[2], pending[3]
            if checksum != frame_checksum(channel, state) or state > 1 or channel not in self._contacts:
                self.frames_ignored += 1
                del pending[0]
                continue
            del pending[:4]
            self._switch(channel, state == 1)

    def _switch(self, channel: int, closed: bool) -> None:
        with self._lock:
            contact = self._contacts[channel]
            if contact.closed == closed:
                return
            contact.closed = closed
            if contact.device is not None:
                contact.device.supply_changed(contact.supply())

    def _status_text(self) -> bytes:
        with self._lock:
            lines = [f"CH{c.number}:{'ON' if c.closed else 'OFF'} \r\n" for c in self._contacts.values()]
        return "".join(lines).encode("ascii")
