"""Numato Lab USB relay modules (ASCII command shell over CDC serial) as a power switch.

The module echoes every command, answers reads on a line of their own and ends
with a ``>`` prompt; commands are ``relay on|off|read <n>`` terminated by CR, with
relays 0-9 then A-V on the larger boards. Waiting for the prompt after each
command keeps the echo out of the next reply.
"""

from __future__ import annotations

from typing import Annotated

import serial
from pydantic import Field

from rig.errors import InfraError
from rig.power import register
from rig.power.base import DEFAULT_OFF_SECONDS, Baud, Seconds, Text
from rig.power.serial_relay import SerialRelayDriver

RELAY_INDEX = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
PROMPT = b">"


@register("numato-relay")
class NumatoRelayDriver(SerialRelayDriver):
    """One relay of a Numato module."""

    def __init__(
        self,
        *,
        port: Text,
        relay: Annotated[int, Field(ge=0, le=len(RELAY_INDEX) - 1)] = 0,
        baudrate: Baud = 19200,
        timeout_s: Seconds = 1.0,
        off_seconds: Seconds = DEFAULT_OFF_SECONDS,
    ) -> None:
        super().__init__(port=port, baudrate=baudrate, timeout_s=timeout_s, off_seconds=off_seconds)
        self.relay = relay

    def on(self) -> None:
        self._command("on")

    def off(self) -> None:
        self._command("off")

    def is_on(self) -> bool | None:
        lines = self._command("read")
        for line in lines:
            if line in ("on", "off"):
                return line == "on"
        raise InfraError(f"Numato relay at {self.port} answered 'relay read' with {lines!r}")

    def describe(self) -> str:
        return f"numato-relay relay {self.relay} at {self.port}: cuts power"

    def _command(self, verb: str) -> list[str]:
        """Send `relay <verb> <n>`; return the reply lines with the echo removed."""
        command = f"relay {verb} {RELAY_INDEX[self.relay]}"
        try:
            self._serial.reset_input_buffer()
            self._serial.write(command.encode("ascii") + b"\r")
            self._serial.flush()
            reply = self._serial.read_until(PROMPT)
        except (serial.SerialException, OSError) as error:
            raise InfraError(f"Numato relay at {self.port}: {command!r} failed: {error}") from None
        if not reply.endswith(PROMPT):
            raise InfraError(
                f"Numato relay at {self.port} did not answer {command!r} within {self.timeout_s:g} s"
            )
        text = reply[: -len(PROMPT)].decode("ascii", errors="replace")
        lines = [line.strip().lower() for line in text.replace("\r", "\n").split("\n")]
        return [line for line in lines if line and line != command.lower()]
