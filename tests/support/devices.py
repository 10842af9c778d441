"""A stand-in board for the virtual supplies (`twin.power.PoweredDevice`)."""

from __future__ import annotations

import threading


class RecordingDevice:
    """Records every rail voltage it is given and draws a settable current.

    Relays switch on their own thread, so a test can `wait_for` a number of changes.
    """

    def __init__(self, amps: float = 0.1) -> None:
        self.volts: list[float] = []
        self.amps = amps
        self._changed = threading.Condition()

    def supply_changed(self, volts: float) -> None:
        with self._changed:
            self.volts.append(volts)
            self._changed.notify_all()

    def current_draw_amps(self) -> float:
        return self.amps

    def wait_for(self, count: int) -> list[float]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.volts) >= count, timeout=10), self.volts
            return list(self.volts)
