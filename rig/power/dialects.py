"""SCPI dialects of bench supplies: the same abstract operations, each model's own spelling.

SCPI fixes the syntax, not the command tree: Rigol addresses channels in the
arguments, Keysight selects a channel first and then talks to "the" output,
Siglent prefixes the channel as a header node. A new model is one entry in DIALECTS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig.errors import InputError


def on_off_or_digit(reply: str, channel: int) -> bool:
    """Replies such as ON/OFF or 1/0 (Rigol, Keysight)."""
    word = reply.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ValueError(f"not an output state: {reply!r}")


def siglent_status_bits(reply: str, channel: int) -> bool:
    """SPD3303X SYST:STAT? is a hex word; bit 4 is CH1's output, bit 5 CH2's."""
    return bool(int(reply.strip(), 16) >> (3 + channel) & 1)


@dataclass(frozen=True)
class Dialect:
    """Command templates; `{channel}`, `{volts}` and `{amps}` are filled in by the driver."""

    name: str
    model: str
    set_volts: str
    get_volts: str
    set_amps: str
    output_on: str
    output_off: str
    output_query: str
    measure_amps: str
    parse_output: Callable[[str, int], bool]
    select: str | None = None
    error_query: str = "SYST:ERR?"

    def prefix(self, channel: int) -> list[str]:
        """Commands that must precede a channel operation (channel selection, if the model needs it)."""
        return [self.select.format(channel=channel)] if self.select else []


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            name="rigol-dp8xx",
            model="Rigol DP800 series (DP811/DP821/DP831/DP832)",
            set_volts=":SOUR{channel}:VOLT {volts:.3f}",
            get_volts=":SOUR{channel}:VOLT?",
            set_amps=":SOUR{channel}:CURR {amps:.4f}",
            output_on=":OUTP CH{channel},ON",
            output_off=":OUTP CH{channel},OFF",
            output_query=":OUTP? CH{channel}",
            measure_amps=":MEAS:CURR? CH{channel}",
            parse_output=on_off_or_digit,
        ),
        Dialect(
            name="keysight-e36xx",
            model="Keysight/Agilent E36xx (E3631A, E36312A, E36103B ...)",
            select="INST:NSEL {channel}",
            set_volts="VOLT {volts:.3f}",
            get_volts="VOLT?",
            set_amps="CURR {amps:.3f}",
            output_on="OUTP ON",
            output_off="OUTP OFF",
            output_query="OUTP?",
            measure_amps="MEAS:CURR?",
            parse_output=on_off_or_digit,
        ),
        Dialect(
            name="siglent-spd3303x",
            model="Siglent SPD3303X / SPD3303X-E",
            set_volts="CH{channel}:VOLT {volts:.3f}",
            get_volts="CH{channel}:VOLT?",
            set_amps="CH{channel}:CURR {amps:.3f}",
            output_on="OUTP CH{channel},ON",
            output_off="OUTP CH{channel},OFF",
            output_query="SYST:STAT?",
            measure_amps="MEAS:CURR? CH{channel}",
            parse_output=siglent_status_bits,
        ),
    )
}


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise InputError(f"unknown SCPI dialect {name!r} (known: {', '.join(sorted(DIALECTS))})") from None
