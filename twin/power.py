"""The seam between a virtual supply (PSU channel, relay contact) and a twin board.

A supply tells each device wired to it the rail voltage whenever it changes and
asks it how much current it draws; that is all a real bench wire carries.
"""

from __future__ import annotations

from typing import Protocol

# ESP32 brownout detector, level 0 (CONFIG_ESP_BROWNOUT_DET_LVL_SEL_0): ~2.43 V.
BROWNOUT_VOLTS = 2.43
# Below this the chip is simply unpowered (no ROM, no reset reason printed).
POWER_ON_VOLTS = 1.8
# What a USB relay contact delivers to a board's 5 V input.
USB_RAIL_VOLTS = 5.0


class PoweredDevice(Protocol):
    """Anything a virtual supply can feed: in practice a twin board."""

    def supply_changed(self, volts: float) -> None:
        """The rail now sits at `volts` (0.0 = off). Must return quickly."""

    def current_draw_amps(self) -> float:
        """The current drawn right now, so the PSU's MEAS:CURR? can report it."""
