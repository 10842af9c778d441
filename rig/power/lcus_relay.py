"""LCUS-n USB relay boards (CH340 serial, 4-byte hex frames) as a power switch.

Frames are ``A0 <channel> <0|1> <(A0 + channel + state) & 0xFF>`` at 9600 8N1; the
board never acknowledges. Some multi-channel boards answer a lone ``FF`` byte with
lines like ``CH1:ON``; single-channel boards do not, so readback is opt-in
(`status_query`) and is_on() is None otherwise.
"""

from __future__ import annotations

from typing import Annotated

import serial
from pydantic import Field

from rig.errors import InfraError
from rig.power import register
from rig.power.base import DEFAULT_OFF_SECONDS, Baud, Seconds, Text
from rig.power.serial_relay import SerialRelayDriver

FRAME_START = 0xA0
STATUS_QUERY = b"\xff"


def lcus_frame(channel: int, on: bool) -> bytes:
    """The 4-byte command frame that switches one relay."""
    state = 1 if on else 0
    return bytes((FRAME_START, channel, state, (FRAME_START + channel + state) & 0xFF))


@register("lcus-relay")
class LcusRelayDriver(SerialRelayDriver):
    """One contact of an LCUS board."""

    def __init__(
        self,
        *,
        port: Text,
        channel: Annotated[int, Field(ge=1, le=0xFE)] = 1,  # the frame's channel byte
        baudrate: Baud = 9600,
        status_query: bool = False,
        timeout_s: Seconds = 1.0,
        off_seconds: Seconds = DEFAULT_OFF_SECONDS,
    ) -> None:
        super().__init__(port=port, baudrate=baudrate, timeout_s=timeout_s, off_seconds=off_seconds)
        self.channel = channel
        self.status_query = status_query

    def on(self) -> None:
        self._write(lcus_frame(self.channel, True))

    def off(self) -> None:
        self._write(lcus_frame(self.channel, False))

    def is_on(self) -> bool | None:
        if not self.status_query:
            return None
        try:
            self._serial.reset_input_buffer()
            self._serial.write(STATUS_QUERY)
            self._serial.flush()
            wanted = f"CH{self.channel}:"
            while line := self._serial.read_until(b"\n"):
                text = bytes(line).decode("ascii", errors="replace").strip().upper()
                if text.startswith(wanted):
                    return text[len(wanted) :].strip() == "ON"
        except (serial.SerialException, OSError) as error:
            raise InfraError(f"relay at {self.port}: status query failed: {error}") from None
        raise InfraError(
            f"relay at {self.port} did not report CH{self.channel} within {self.timeout_s:g} s "
            "(does this board support the FF status query?)"
        )

    def describe(self) -> str:
        return f"lcus-relay channel {self.channel} at {self.port}: cuts power"

    def _write(self, frame: bytes) -> None:
        try:
            self._serial.write(frame)
            self._serial.flush()
        except (serial.SerialException, OSError) as error:
            raise InfraError(f"relay at {self.port}: write failed: {error}") from None
