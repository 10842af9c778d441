"""Reset-only fallback: hold the ESP32 in reset through the USB-UART's RTS line (EN).

On dev boards with the usual two-transistor auto-reset circuit, RTS asserted pulls
EN low and DTR asserted pulls GPIO0 low. Holding EN low stops the chip but the
board stays powered: flash writes in progress still complete on the flash chip's
own supply, so a run with this driver proves "survives reset", never "survives a
power cut" - `cuts_power` is False and describe() says so.
"""

from __future__ import annotations

import serial

from rig.errors import InfraError
from rig.power import register
from rig.power.base import DEFAULT_OFF_SECONDS, Capability, PowerDriver, Seconds, Text


@register("dtr-rts")
class DtrRtsResetDriver(PowerDriver):
    """Drives RTS (EN) on the board's own console port; DTR (GPIO0) is kept released."""

    cuts_power = False
    capabilities = Capability.RESET_ONLY

    def __init__(self, *, port: Text, off_seconds: Seconds = DEFAULT_OFF_SECONDS) -> None:
        super().__init__(off_seconds)
        self.port = port
        try:
            self._serial = serial.serial_for_url(port, do_not_open=True)
            # Set the lines before opening so opening itself does not reset or enter download mode.
            self._serial.dtr = False
            self._serial.rts = False
            self._serial.open()
        except (serial.SerialException, OSError, ValueError) as error:
            raise InfraError(f"serial port {port} cannot be opened for reset control: {error}") from None

    def on(self) -> None:
        self._set_reset(False)

    def off(self) -> None:
        self._set_reset(True)

    def is_on(self) -> bool | None:
        return not self._serial.rts

    def describe(self) -> str:
        return f"dtr-rts on {self.port}: reset only (RTS holds EN low), does NOT cut power"

    def close(self) -> None:
        self._serial.close()

    def _set_reset(self, held: bool) -> None:
        try:
            self._serial.dtr = False
            self._serial.rts = held
        except (serial.SerialException, OSError) as error:
            raise InfraError(f"serial port {self.port} cannot drive RTS/DTR: {error}") from None
