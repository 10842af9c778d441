"""What every power driver offers the rig, whatever hardware sits behind it.

A run's verdict depends on knowing what really happened to the board: a relay or a
PSU output cuts power, a DTR/RTS toggle only resets the chip. Drivers therefore
declare `cuts_power` and their `capabilities`, and anything they cannot do fails
with one clear line instead of silently doing something weaker.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from enum import Flag, auto
from types import TracebackType
from typing import Annotated, ClassVar, Self

from pydantic import Field, StringConstraints

from rig.errors import InputError

# Long enough for a dev board's bulk capacitors to drain so the chip really loses power.
DEFAULT_OFF_SECONDS = 1.0

# Nothing an ESP32 board is fed from goes above a USB rail's 5.5 V; a bench supply set higher
# than this (or a current limit above 5 A) in a farm file is a typo, refused at load.
MAX_SUPPLY_VOLTS = 5.5
MAX_SUPPLY_AMPS = 5.0

# Parameter types drivers declare: the registry validates farm files against them.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Baud = Annotated[int, Field(ge=300, le=5_000_000)]
Text = Annotated[str, StringConstraints(min_length=1)]


class Capability(Flag):
    """What a driver can do to the board."""

    NONE = 0
    POWER_CUT = auto()
    VOLTAGE_RAMP = auto()
    CURRENT_READBACK = auto()
    RESET_ONLY = auto()


class PowerDriver(ABC):
    """Switches one board's power (or, for reset-only drivers, its EN line)."""

    name: ClassVar[str] = ""
    cuts_power: ClassVar[bool] = True
    capabilities: ClassVar[Capability] = Capability.POWER_CUT

    def __init__(self, off_seconds: float = DEFAULT_OFF_SECONDS) -> None:
        if off_seconds < 0:
            raise InputError(f"power driver {self.name}: off_seconds must be >= 0, not {off_seconds}")
        self.off_seconds = off_seconds

    @abstractmethod
    def on(self) -> None:
        """Power the board (at its nominal voltage, for drivers that set one)."""

    @abstractmethod
    def off(self) -> None:
        """Remove power (or hold reset, for reset-only drivers)."""

    @abstractmethod
    def is_on(self) -> bool | None:
        """The output state read back from the hardware; None when it cannot tell."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the driver, its hardware and what it really does to the board."""

    @abstractmethod
    def close(self) -> None:
        """Release the port or session; the output keeps its state."""

    def cycle(self, off_seconds: float | None = None) -> None:
        """Off, wait (default: the driver's off_seconds), on."""
        self.off()
        time.sleep(self.off_seconds if off_seconds is None else off_seconds)
        self.on()

    def set_voltage(self, volts: float) -> None:
        """Move the output's setpoint while it stays on (brownout sags)."""
        raise self._cannot("sag the voltage")

    def voltage_setpoint(self) -> float:
        """The output's present setpoint, where a ramp starts."""
        raise self._cannot("sag the voltage")

    @property
    def nominal_volts(self) -> float | None:
        """The supply voltage the farm set (the ceiling of every sag), None if it sets none."""
        return None

    def ramp(self, to_volts: float, seconds: float, steps: int) -> None:
        """Walk the setpoint to `to_volts` in `steps` equal steps spread over `seconds`."""
        if Capability.VOLTAGE_RAMP not in self.capabilities:
            raise self._cannot("sag the voltage")
        if steps < 1 or seconds < 0:
            raise InputError(f"ramp needs steps >= 1 and seconds >= 0, not steps={steps} seconds={seconds}")
        start = self.voltage_setpoint()
        began = time.monotonic()
        for step in range(1, steps + 1):
            delay = began + seconds * step / steps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.set_voltage(start + (to_volts - start) * step / steps)

    def measure_current(self) -> float | None:
        """The board's current draw in amps; None for drivers that cannot measure it."""
        return None

    def _cannot(self, what: str) -> InputError:
        return InputError(f"driver {self.name} cannot {what}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
