"""The DevKitC auto-reset circuit: two transistors turning DTR/RTS into EN and IO0.

RTS asserted alone pulls EN low (chip held in reset); DTR asserted alone pulls IO0
low (download strap); both or neither leave EN and IO0 released. This is what lets
esptool's `--before default-reset` and `--after hard-reset` reach the twin.
"""

from __future__ import annotations

import threading
from typing import Protocol


class StrapPins(Protocol):
    """The chip side of the circuit: its EN (CHIP_PU) and GPIO0 pins."""

    def set_pins(self, en_high: bool, io0_high: bool) -> None:
        """New pin levels; a rising EN starts a boot that samples IO0."""


class DevKitAutoReset:
    """DTR/RTS line state of the USB-UART, wired to a chip's EN and IO0."""

    def __init__(self, pins: StrapPins) -> None:
        self._pins = pins
        self._lock = threading.Lock()
        self._dtr = False
        self._rts = False

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, asserted: bool) -> None:
        self.set_lines(asserted, self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, asserted: bool) -> None:
        self.set_lines(self._dtr, asserted)

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """Set both lines at once (a closing port drops both without a reset pulse)."""
        with self._lock:
            self._dtr, self._rts = dtr, rts
            self._pins.set_pins(en_high=not (rts and not dtr), io0_high=not (dtr and not rts))

    def release(self) -> None:
        self.set_lines(False, False)
