"""The `--cut` mini-language of `rig repro`: what fault to inject and when.

    power@bytes=400000            power@fraction=0.4:off=2s
    power@log="esp_image: Verifying"   power@log=/Loaded app .* 0x1d0000/:delay=0.2s
    power@random=0.1..0.9:seed=7  net@fraction=0.4:stall=20s   net@bytes=300000:rst
    net@fraction=0.5:throttle=20000   brownout@fraction=0.3:volts=2.2:hold=0.5s

A spec parses into a `CutSpec`; `CutSpec.condition()` gives the trigger condition.
Bad specs raise `InputError` naming the offending part.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from rig import triggers
from rig.errors import InputError


class CutKind(enum.Enum):
    """What gets cut."""

    POWER = "power"
    NET = "net"
    BROWNOUT = "brownout"


class On(enum.Enum):
    """What the cut point is measured in."""

    BYTES = "bytes"
    FRACTION = "fraction"
    LOG = "log"
    RANDOM = "random"
    WIRE = "wire"


class NetFault(enum.Enum):
    """What the fault proxy does to the OTA connection."""

    STALL = "stall"  # the proxy stops forwarding; the peer's kernel keeps the connection alive
    RST = "rst"
    FIN = "fin"
    THROTTLE = "throttle"
    DEAD = "dead"  # packets dropped both ways until the OTA ends (rig/net/netns.py)


_PARAMS = {
    CutKind.POWER: {"off", "delay", "seed"},
    CutKind.NET: {"stall", "rst", "fin", "throttle", "dead", "delay", "seed"},
    CutKind.BROWNOUT: {"volts", "hold", "delay", "seed"},
}
_FLAGS = {"rst", "fin", "dead"}
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass(frozen=True)
class CutSpec:
    """One parsed `--cut`. `at` is the threshold (int bytes, float fraction, (lo, hi), or a log regex)."""

    text: str
    kind: CutKind
    on: On
    at: int | float | tuple[float, float] | re.Pattern[str]
    off_s: float | None = None
    delay_s: float = 0.0
    seed: int = 0
    net_fault: NetFault | None = None
    stall_s: float | None = None
    throttle_bps: int | None = None
    volts: float | None = None
    hold_s: float | None = None

    def condition(self) -> triggers.Condition:
        """The trigger condition for this cut (delay is applied by `Trigger.delay_s`)."""
        at = self.at
        if self.on is On.LOG:
            assert isinstance(at, re.Pattern)
            return triggers.LogMatches(at)
        if self.on is On.RANDOM:
            assert isinstance(at, tuple)
            unit = triggers.Unit.FRACTION if at[1] <= 1.0 else triggers.Unit.BYTES
            return triggers.RandomPointInWindow(self.seed, at[0], at[1], unit)
        if self.on is On.FRACTION:
            assert isinstance(at, float)
            return triggers.FractionAtLeast(at)
        assert isinstance(at, int)
        return triggers.WireBytesAtLeast(at) if self.on is On.WIRE else triggers.BytesAtLeast(at)

    def trigger(self, action: triggers.Action) -> triggers.Trigger:
        """A one-shot trigger named after the spec that runs `action` at the cut point (plus `delay_s`)."""
        return triggers.Trigger(self.condition(), action, once=True, name=self.text, delay_s=self.delay_s)


def _fail(text: str, problem: str) -> InputError:
    return InputError(f"--cut {text}: {problem}")


def _split_value(text: str, rest: str) -> tuple[str, str]:
    """Split `value[:params]`, honouring "quoted" and /regex/ values that may contain ':'."""
    if rest[:1] in ('"', "/"):
        quote = rest[0]
        i = 1
        while i < len(rest):
            if rest[i] == "\\" and quote == '"':
                i += 2
                continue
            if rest[i] == quote and rest[i - 1] != "\\":
                break
            i += 1
        else:
            raise _fail(text, f"unterminated {quote} in {rest!r}")
        tail = rest[i + 1 :]
        if tail and not tail.startswith(":"):
            raise _fail(text, f"expected ':' after {rest[: i + 1]!r}, got {tail!r}")
        return rest[: i + 1], tail[1:]
    value, _, params = rest.partition(":")
    return value, params


def _duration(text: str, key: str, value: str) -> float:
    match = _DURATION_RE.match(value)
    if not match:
        raise _fail(text, f"{key}={value!r} is not a duration (e.g. 2s, 0.5s, 200ms)")
    number = float(match[1])
    return number / 1000.0 if match[2] == "ms" else number


def _number(text: str, key: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise _fail(text, f"{key}={value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if number < 0:
        raise _fail(text, f"{key}={value!r} must not be negative")
    return number


def _threshold(text: str, on: On, value: str) -> int | float | tuple[float, float] | re.Pattern[str]:
    if not value:
        raise _fail(text, f"{on.value}= needs a value")
    if on in (On.BYTES, On.WIRE):
        return int(_number(text, on.value, value, int))
    if on is On.FRACTION:
        fraction = _number(text, "fraction", value, float)
        if not 0.0 <= fraction <= 1.0:
            raise _fail(text, f"fraction={value} must be between 0 and 1")
        return fraction
    if on is On.RANDOM:
        lo_text, sep, hi_text = value.partition("..")
        if not sep:
            raise _fail(text, f"random={value!r} must be a window lo..hi (e.g. 0.1..0.9)")
        lo = _number(text, "random", lo_text, float)
        hi = _number(text, "random", hi_text, float)
        if lo > hi or (hi <= 1.0) != (lo <= 1.0):
            raise _fail(text, f"random={value} must be lo..hi fractions (0..1) or byte counts with lo <= hi")
        return (lo, hi)
    return _log_pattern(text, value)


def _log_pattern(text: str, value: str) -> re.Pattern[str]:
    if value.startswith("/"):
        try:
            return re.compile(value[1:-1])
        except re.error as exc:
            raise _fail(text, f"log={value} is not a valid regex ({exc})") from None
    literal = value[1:-1].replace('\\"', '"') if value.startswith('"') else value
    return re.compile(re.escape(literal))


def parse_cut(text: str) -> CutSpec:
    """Parse one `--cut` value."""
    kind_text, at_sign, rest = text.partition("@")
    if not at_sign:
        raise _fail(text, "expected <kind>@<condition>=<value> (e.g. power@fraction=0.4)")
    try:
        kind = CutKind(kind_text)
    except ValueError:
        raise _fail(text, f"unknown kind {kind_text!r} (use power, net, brownout)") from None
    on_text, eq, rest = rest.partition("=")
    try:
        on = On(on_text)
    except ValueError:
        raise _fail(text, f"unknown condition {on_text!r} (use bytes, fraction, log, random, wire)") from None
    if not eq:
        raise _fail(text, f"condition {on_text!r} needs =<value>")
    value, param_text = _split_value(text, rest)
    fields: dict[str, Any] = {"text": text, "kind": kind, "on": on, "at": _threshold(text, on, value)}
    for item in filter(None, param_text.split(":")):
        key, has_value, raw = item.partition("=")
        if key not in _PARAMS[kind]:
            allowed = ", ".join(sorted(_PARAMS[kind]))
            raise _fail(text, f"unknown parameter {key!r} for {kind.value} (use {allowed})")
        if (key in _FLAGS) == bool(has_value):
            raise _fail(text, f"{key} takes no value" if key in _FLAGS else f"{key} needs =<value>")
        _set_param(text, fields, key, raw)
    if "seed" in fields and on is not On.RANDOM:
        raise _fail(text, "seed= only applies to random=")
    _check_kind(text, kind, fields)
    return CutSpec(**fields)


def _set_param(text: str, fields: dict[str, Any], key: str, raw: str) -> None:
    if key in ("off", "delay", "hold"):
        fields[f"{key}_s"] = _duration(text, key, raw)
    elif key == "seed":
        fields["seed"] = int(_number(text, key, raw, int))
    elif key == "volts":
        fields["volts"] = _number(text, key, raw, float)
    else:
        if "net_fault" in fields:
            raise _fail(text, f"{key} conflicts with {fields['net_fault'].value}")
        fields["net_fault"] = NetFault(key)
        if key == "stall":
            fields["stall_s"] = _duration(text, key, raw)
        elif key == "throttle":
            fields["throttle_bps"] = int(_number(text, key, raw, int))


def _check_kind(text: str, kind: CutKind, fields: dict[str, Any]) -> None:
    if kind is CutKind.NET and "net_fault" not in fields:
        raise _fail(text, "net cuts need one of stall=<duration>, rst, fin, throttle=<bytes/s>, dead")
    if kind is CutKind.BROWNOUT and "volts" not in fields:
        raise _fail(text, "brownout cuts need volts=<V>")
