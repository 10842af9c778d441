"""What the serial-port relay drivers share: the port, opened through pyserial's serial_for_url.

serial_for_url takes a device path, a by-path link, a pty or rfc2217://, so a relay
behind a network serial server is configured like a local one.
"""

from __future__ import annotations

import serial

from rig.errors import InfraError
from rig.power.base import PowerDriver


class SerialRelayDriver(PowerDriver):
    """A relay board on a serial port; normally open contacts, so closed = board powered."""

    def __init__(self, *, port: str, baudrate: int, timeout_s: float, off_seconds: float) -> None:
        super().__init__(off_seconds)
        self.port = port
        self.timeout_s = timeout_s
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout_s)
        except (serial.SerialException, OSError, ValueError) as error:
            raise InfraError(f"relay port {port} cannot be opened: {error}") from None

    def close(self) -> None:
        self._serial.close()
