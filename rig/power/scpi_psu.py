"""A SCPI bench supply output as a power switch, through pyvisa (pyvisa-py by default).

The PSU is the only driver that can both cut power and sag the voltage (brownout
tests), and read the board's current. An instrument that stops answering is the
lab's fault, so every I/O failure becomes InfraError naming the resource, never
something the firmware's verdict could absorb.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import pyvisa
from pydantic import Field
from pyvisa.constants import StatusCode

from rig.errors import InfraError, InputError
from rig.power import register
from rig.power.base import (
    DEFAULT_OFF_SECONDS,
    MAX_SUPPLY_AMPS,
    MAX_SUPPLY_VOLTS,
    Capability,
    PowerDriver,
    Seconds,
    Text,
)
from rig.power.dialects import get_dialect

# SCPI -2xx execution errors mean the instrument understood and refused the value.
_VALUE_ERRORS = (-222, -224)


DEFAULT_SUPPLY_VOLTS = 3.3  # a DevKitC fed on its 3V3 pin


@register("scpi-psu")
class ScpiPsuDriver(PowerDriver):
    """One channel of a SCPI PSU; `resource` is any VISA string, e.g. TCPIP::host::5025::SOCKET."""

    cuts_power = True
    capabilities = Capability.POWER_CUT | Capability.VOLTAGE_RAMP | Capability.CURRENT_READBACK

    def __init__(
        self,
        *,
        resource: Text,
        channel: Annotated[int, Field(ge=1)] = 1,
        dialect: str = "rigol-dp8xx",
        volts: Annotated[float, Field(gt=0, le=MAX_SUPPLY_VOLTS, allow_inf_nan=False)] = DEFAULT_SUPPLY_VOLTS,
        current_limit: Annotated[float, Field(gt=0, le=MAX_SUPPLY_AMPS, allow_inf_nan=False)] = 0.5,
        timeout_ms: Annotated[int, Field(gt=0)] = 2000,
        visa_library: Text = "@py",
        check_errors: bool = True,
        off_seconds: Seconds = DEFAULT_OFF_SECONDS,
    ) -> None:
        super().__init__(off_seconds)
        self.resource = resource
        self.channel = channel
        self.dialect = get_dialect(dialect)
        self.volts = volts
        self.current_limit = current_limit
        self.timeout_ms = timeout_ms
        self.check_errors = check_errors
        try:
            self._manager = pyvisa.ResourceManager(visa_library)
        except (OSError, ValueError) as error:
            raise InputError(f"VISA library {visa_library!r} cannot be loaded: {error}") from None
        try:
            instrument = self._manager.open_resource(
                resource, read_termination="\n", write_termination="\n", timeout=timeout_ms
            )
        except (pyvisa.errors.VisaIOError, OSError, ValueError) as error:
            raise InfraError(f"PSU at {resource} cannot be opened: {_describe(error)}") from None
        if not isinstance(instrument, pyvisa.resources.MessageBasedResource):
            instrument.close()
            raise InputError(f"VISA resource {resource} is not a message-based instrument")
        self._instrument = instrument
        try:
            self.identity = self._query("*IDN?")
            self._send(self.dialect.set_amps.format(channel=channel, amps=current_limit))
            self._send(self.dialect.set_volts.format(channel=channel, volts=volts))
        except BaseException:
            self.close()
            raise

    def on(self) -> None:
        """The farm's supply: its current limit and voltage (a killed run may have left others), then on."""
        self._send(self.dialect.set_amps.format(channel=self.channel, amps=self.current_limit))
        self._send(self.dialect.set_volts.format(channel=self.channel, volts=self.volts))
        self._send(self.dialect.output_on.format(channel=self.channel))

    def off(self) -> None:
        self._send(self.dialect.output_off.format(channel=self.channel))

    def is_on(self) -> bool | None:
        reply = self._channel_query(self.dialect.output_query.format(channel=self.channel))
        try:
            return self.dialect.parse_output(reply, self.channel)
        except ValueError:
            raise InfraError(f"PSU at {self.resource} gave an unreadable output state {reply!r}") from None

    def set_voltage(self, volts: float) -> None:
        """Move the setpoint, never above the farm's nominal `volts` (or below 0): a typo such as
        22 for 2.2 must not reach a 3V3 rail, whoever asked."""
        if not 0.0 <= volts <= self.volts:
            raise InputError(
                f"power driver scpi-psu: refusing {volts:g} V on channel {self.channel}: "
                f"outside 0..{self.volts:g} V (the farm's nominal supply)"
            )
        self._send(self.dialect.set_volts.format(channel=self.channel, volts=volts))

    @property
    def nominal_volts(self) -> float:
        return self.volts

    def voltage_setpoint(self) -> float:
        return self._number(self.dialect.get_volts.format(channel=self.channel))

    def measure_current(self) -> float | None:
        return self._number(self.dialect.measure_amps.format(channel=self.channel))

    def describe(self) -> str:
        return (
            f"scpi-psu {self.dialect.name} channel {self.channel} at {self.resource} "
            f"({self.volts:g} V, limit {self.current_limit:g} A): cuts power"
        )

    def close(self) -> None:
        """Close this driver's session only: pyvisa shares one ResourceManager per VISA library
        in a process, and closing it would close every other driver's session with it."""
        if hasattr(self, "_instrument"):
            with contextlib.suppress(pyvisa.errors.VisaIOError, pyvisa.errors.InvalidSession, OSError):
                self._instrument.close()

    def _send(self, command: str) -> None:
        """Write one channel command (after the dialect's channel selection), then check the error queue."""
        for line in [*self.dialect.prefix(self.channel), command]:
            self._write_raw(line)
        if self.check_errors:
            self._check(command)

    def _check(self, command: str) -> None:
        reply = self._query(self.dialect.error_query)
        code_text = reply.split(",", 1)[0].strip()
        try:
            code = int(code_text)
        except ValueError:
            raise InfraError(f"PSU at {self.resource} gave an unreadable error reply {reply!r}") from None
        if code in _VALUE_ERRORS:
            raise InputError(f"PSU at {self.resource} refused {command!r}: {reply}")
        if code != 0:
            raise InfraError(f"PSU at {self.resource} rejected {command!r}: {reply}")

    def _channel_query(self, command: str) -> str:
        for line in self.dialect.prefix(self.channel):
            self._write_raw(line)
        return self._query(command)

    def _query(self, command: str) -> str:
        try:
            return str(self._instrument.query(command)).strip()
        except pyvisa.errors.VisaIOError as error:
            if error.error_code == StatusCode.error_timeout:
                raise InfraError(
                    f"PSU at {self.resource} did not answer {command} within {self.timeout_ms} ms"
                ) from None
            raise InfraError(f"PSU at {self.resource}: {command} failed: {_describe(error)}") from None
        except OSError as error:
            raise InfraError(f"PSU at {self.resource}: {command} failed: {_describe(error)}") from None

    def _write_raw(self, line: str) -> None:
        try:
            self._instrument.write(line)
        except (pyvisa.errors.VisaIOError, OSError) as error:
            raise InfraError(f"PSU at {self.resource}: sending {line!r} failed: {_describe(error)}") from None

    def _number(self, query: str) -> float:
        reply = self._channel_query(query)
        try:
            return float(reply)
        except ValueError:
            raise InfraError(f"PSU at {self.resource} answered {query} with non-number {reply!r}") from None


def _describe(error: Exception) -> str:
    text = getattr(error, "description", None) or str(error) or type(error).__name__
    return str(text).splitlines()[0]
