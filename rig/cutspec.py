"""The `--cut` mini-language of `rig repro` and the scenarios: what fault to inject and when.

    power@bytes=400000            power@fraction=0.4:off=2s
    power@log="esp_image: Verifying"   power@log=/Loaded app .* 0x1d0000/:delay=0.2s
    power@random=0.1..0.9:seed=7  net@fraction=0.4:stall=20s   net@bytes=300000:rst
    net@fraction=0.5:throttle=20000   brownout@fraction=0.3:volts=2.2:hold=0.5s
    power@block=40   mqtt@block=40:kick   mqtt@fraction=0.5:stall=3s   mqtt@block=3:corrupt

A spec parses into one of a small family of cuts (`PowerCut`, `Brownout`, `NetClose`,
`NetStall`, `NetThrottle`, `MqttFault`), each holding only its own parameters, at one of a
family of cut points (`AtBytes`, `AtFraction`, `AtWire`, `AtLog`, `AtRandom`, `AtBlock`: a
block of an MQTT stream, counted from 0). Bad specs raise
`InputError` naming the offending part.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, replace
from typing import ClassVar, Self

from rig import triggers
from rig.errors import InputError
from rig.power.base import MAX_SUPPLY_VOLTS
from rig.units import parse_duration


class CutKind(enum.Enum):
    """What gets cut (the results store's `fault` column)."""

    POWER = "power"
    NET = "net"
    BROWNOUT = "brownout"
    MQTT = "mqtt"


class On(enum.Enum):
    """What the cut point is measured in, as the spec names it."""

    BYTES = "bytes"
    FRACTION = "fraction"
    LOG = "log"
    RANDOM = "random"
    WIRE = "wire"
    BLOCK = "block"


class MqttAction(enum.Enum):
    """What the rig's Jobs/Streams side does at the cut point of an `mqtt@…` cut."""

    DROP = "drop"  # the block is not sent once: the device must ask again after its request timer
    DUPLICATE = "duplicate"  # sent twice: the library must ignore the second copy
    REORDER = "reorder"  # the next wanted block goes out first
    CORRUPT = "corrupt"  # one payload byte flipped: the signature check must refuse the file
    STALL = "stall"  # block requests go unanswered for `seconds` (for good without it)
    KICK = "kick"  # the broker drops the device (the rig connects with the device's client id)
    CANCEL = "cancel"  # the job is cancelled mid-stream
    RESTART = "restart"  # the broker restarts: every connection drops
    OUTAGE = "outage"  # the device's broker connections are refused for `seconds`

    @property
    def needs_block(self) -> bool:
        """Acts on one block of the stream, so only block, byte or fraction points fit."""
        return self in (MqttAction.DROP, MqttAction.DUPLICATE, MqttAction.REORDER, MqttAction.CORRUPT)


class Close(enum.Enum):
    """How the link ends for a `NetClose`."""

    RST = "rst"
    FIN = "fin"
    DEAD = "dead"  # packets dropped both ways until the OTA ends (rig/net/netns.py)


# -- cut points ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AtBytes:
    """Once the device reports `count` image bytes written."""

    count: int

    def condition(self, seed: int) -> triggers.Condition:
        return triggers.BytesAtLeast(self.count)

    def earlier(self, by: float) -> AtBytes:
        return AtBytes(max(int(self.count * (1.0 - by)), 1))

    def unmet(self, image_size: int) -> str:
        return f"the device never reported byte {self.count} of the {image_size}-byte image written"


@dataclass(frozen=True)
class AtFraction:
    """Once the device reports this fraction of the image written."""

    fraction: float

    def condition(self, seed: int) -> triggers.Condition:
        return triggers.FractionAtLeast(self.fraction)

    def earlier(self, by: float) -> AtFraction:
        return AtFraction(max(round(self.fraction * (1.0 - by), 3), 0.01))

    def unmet(self, image_size: int) -> str:
        return f"the device never reported {self.fraction:.0%} of the {image_size}-byte image written"


@dataclass(frozen=True)
class AtWire:
    """Once `count` bytes went down the OTA connection (TLS records included)."""

    count: int

    def condition(self, seed: int) -> triggers.Condition:
        return triggers.WireBytesAtLeast(self.count)

    def earlier(self, by: float) -> AtWire:
        return self

    def unmet(self, image_size: int) -> str:
        return f"only fewer than {self.count} bytes went down the OTA connection"


@dataclass(frozen=True)
class AtLog:
    """When a console line matches `pattern`."""

    pattern: re.Pattern[str]
    typed: str  # as the user wrote it, for messages

    def condition(self, seed: int) -> triggers.Condition:
        return triggers.LogMatches(self.pattern)

    def earlier(self, by: float) -> AtLog:
        return self

    def unmet(self, image_size: int) -> str:
        return f"the log line /{self.typed}/ never appeared"


@dataclass(frozen=True)
class AtRandom:
    """A point drawn from [lo, hi] (fractions when hi <= 1, else device-written bytes); the
    run's seed unless the spec names one, so a run's random cuts are reproducible."""

    lo: float
    hi: float
    seed: int | None = None

    def condition(self, seed: int) -> triggers.Condition:
        unit = triggers.Unit.FRACTION if self.hi <= 1.0 else triggers.Unit.BYTES
        return triggers.RandomPointInWindow(seed if self.seed is None else self.seed, self.lo, self.hi, unit)

    def earlier(self, by: float) -> AtRandom:
        return self

    def unmet(self, image_size: int) -> str:
        return f"the drawn point in {self.lo:g}..{self.hi:g} was never reached"


@dataclass(frozen=True)
class AtBlock:
    """Once the device has written `index` blocks of an MQTT stream (its block bitmap)."""

    index: int

    def condition(self, seed: int) -> triggers.Condition:
        return triggers.BlocksAtLeast(self.index)

    def earlier(self, by: float) -> AtBlock:
        return AtBlock(max(int(self.index * (1.0 - by)), 1))

    def unmet(self, image_size: int) -> str:
        return f"the device never wrote block {self.index} of the stream"


CutPoint = AtBytes | AtFraction | AtWire | AtLog | AtRandom | AtBlock


# -- cuts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cut:
    text: str
    point: CutPoint
    delay_s: float
    kind: ClassVar[CutKind]

    def condition(self, seed: int = 0) -> triggers.Condition:
        """The trigger condition for this cut (delay is applied by `Trigger.delay_s`)."""
        return self.point.condition(seed)

    def trigger(self, action: triggers.Action, seed: int = 0) -> triggers.Trigger:
        """A one-shot trigger named after the spec that runs `action` at the cut point (plus `delay_s`)."""
        return triggers.Trigger(self.condition(seed), action, once=True, name=self.text, delay_s=self.delay_s)

    def earlier(self, by: float) -> Self:
        """The same cut with a byte or fraction threshold moved earlier by `by` (0.1 = 10 %):
        how a retry aims again at a window the cut landed after."""
        point = self.point.earlier(by)
        if point == self.point:
            return self
        on, value = _spec_of(point)
        text = re.sub(rf"@{on}=[0-9.]+", f"@{on}={value}", self.text, count=1)
        return replace(self, point=point, text=text)


@dataclass(frozen=True)
class PowerCut(_Cut):
    """The supply goes off, then on again after `off_s` (the power driver's default if None)."""

    off_s: float | None = None
    kind: ClassVar[CutKind] = CutKind.POWER


@dataclass(frozen=True)
class Brownout(_Cut):
    """The supply sags to `volts` for `hold_s`, then returns to its setpoint."""

    volts: float = 2.2
    hold_s: float = 0.5
    kind: ClassVar[CutKind] = CutKind.BROWNOUT


@dataclass(frozen=True)
class NetClose(_Cut):
    """The OTA connection ends: FIN, RST, or a dead path (nothing answers any more)."""

    close: Close = Close.FIN
    kind: ClassVar[CutKind] = CutKind.NET


@dataclass(frozen=True)
class NetStall(_Cut):
    """The proxy stops forwarding for `seconds`; the peer's kernel keeps the connection alive."""

    seconds: float = 30.0
    kind: ClassVar[CutKind] = CutKind.NET


@dataclass(frozen=True)
class NetThrottle(_Cut):
    """The proxy forwards at most `bytes_per_second` from the cut point on."""

    bytes_per_second: int = 10_000
    kind: ClassVar[CutKind] = CutKind.NET


@dataclass(frozen=True)
class MqttFault(_Cut):
    """A fault on the MQTT side of an AWS IoT OTA (see `MqttAction`)."""

    action: MqttAction = MqttAction.KICK
    seconds: float | None = None  # STALL (None: for good) and OUTAGE
    kind: ClassVar[CutKind] = CutKind.MQTT


CutSpec = PowerCut | Brownout | NetClose | NetStall | NetThrottle | MqttFault

_PARAMS = {
    CutKind.POWER: {"off", "delay", "seed"},
    CutKind.NET: {"stall", "rst", "fin", "throttle", "dead", "delay", "seed"},
    CutKind.BROWNOUT: {"volts", "hold", "delay", "seed"},
    CutKind.MQTT: {*(a.value for a in MqttAction), "delay", "seed"},
}
_TIMED_ACTIONS = (MqttAction.STALL, MqttAction.OUTAGE)
_FLAGS = {"rst", "fin", "dead", *(a.value for a in MqttAction if a not in _TIMED_ACTIONS)}
_NET_FAULTS = ("stall", "rst", "fin", "throttle", "dead")
_MQTT_ACTIONS = tuple(a.value for a in MqttAction)


def _spec_of(point: CutPoint) -> tuple[str, str]:
    if isinstance(point, AtFraction):
        return On.FRACTION.value, f"{point.fraction:g}"
    if isinstance(point, AtBytes):
        return On.BYTES.value, str(point.count)
    if isinstance(point, AtBlock):
        return On.BLOCK.value, str(point.index)
    return "", ""


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


def _duration(text: str, key: str, value: str, *, allow_zero: bool = False) -> float:
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except ValueError:
        shape = "a duration" if allow_zero else "a duration above zero"
        raise _fail(text, f"{key}={value!r} is not {shape} (e.g. 2s, 0.5s, 200ms)") from None


def _number(text: str, key: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise _fail(text, f"{key}={value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(number) or number < 0:
        raise _fail(text, f"{key}={value!r} must be a finite number, not negative")
    return number


def _log_pattern(text: str, value: str) -> re.Pattern[str]:
    if value.startswith("/"):
        try:
            return re.compile(value[1:-1])
        except re.error as exc:
            raise _fail(text, f"log={value} is not a valid regex ({exc})") from None
    literal = value[1:-1].replace('\\"', '"') if value.startswith('"') else value
    if not literal:
        raise _fail(text, "log= needs text to wait for (an empty one matches every line)")
    return re.compile(re.escape(literal))


def parse_cut(text: str) -> CutSpec:
    """Parse one `--cut` value."""
    kind_text, at_sign, rest = text.partition("@")
    if not at_sign:
        raise _fail(text, "expected <kind>@<condition>=<value> (e.g. power@fraction=0.4)")
    try:
        kind = CutKind(kind_text)
    except ValueError:
        raise _fail(text, f"unknown kind {kind_text!r} (use power, net, brownout, mqtt)") from None
    on_text, eq, rest = rest.partition("=")
    try:
        on = On(on_text)
    except ValueError:
        conditions = ", ".join(o.value for o in On)
        raise _fail(text, f"unknown condition {on_text!r} (use {conditions})") from None
    if not eq:
        raise _fail(text, f"condition {on_text!r} needs =<value>")
    value, param_text = _split_value(text, rest)
    params: dict[str, str] = {}
    for item in filter(None, param_text.split(":")):
        key, has_value, raw = item.partition("=")
        if key not in _PARAMS[kind]:
            allowed = ", ".join(sorted(_PARAMS[kind]))
            raise _fail(text, f"unknown parameter {key!r} for {kind.value} (use {allowed})")
        if (key in _FLAGS) == bool(has_value):
            raise _fail(text, f"{key} takes no value" if key in _FLAGS else f"{key} needs =<value>")
        exclusive = _NET_FAULTS if kind is CutKind.NET else _MQTT_ACTIONS
        earlier_fault = next((k for k in params if k in exclusive), None)
        if key in exclusive and earlier_fault is not None:
            raise _fail(text, f"{key} conflicts with {earlier_fault}")
        params[key] = raw
    if "seed" in params and on is not On.RANDOM:
        raise _fail(text, "seed= only applies to random=")
    seed = int(_number(text, "seed", params["seed"], int)) if "seed" in params else None
    point = _point(text, on, value, seed)
    delay = _duration(text, "delay", params["delay"], allow_zero=True) if "delay" in params else 0.0
    if kind is CutKind.POWER:
        off = _duration(text, "off", params["off"]) if "off" in params else None
        return PowerCut(text, point, delay, off_s=off)
    if kind is CutKind.BROWNOUT:
        if "volts" not in params:
            raise _fail(text, "brownout cuts need volts=<V>")
        volts = _number(text, "volts", params["volts"], float)
        if volts > MAX_SUPPLY_VOLTS:  # the board's own nominal supply is checked before flashing
            ceiling = f"any ESP32 board's supply ({MAX_SUPPLY_VOLTS:g} V)"
            raise _fail(text, f"volts={params['volts']} is above {ceiling}")
        hold = _duration(text, "hold", params["hold"]) if "hold" in params else 0.5
        return Brownout(text, point, delay, volts=volts, hold_s=hold)
    if kind is CutKind.MQTT:
        return _mqtt_fault(text, point, delay, params)
    if "stall" in params:
        return NetStall(text, point, delay, seconds=_duration(text, "stall", params["stall"]))
    if "throttle" in params:
        rate = int(_number(text, "throttle", params["throttle"], int))
        if rate == 0:
            raise _fail(text, "throttle=0 would stop the link: use stall=<duration> for that")
        return NetThrottle(text, point, delay, bytes_per_second=rate)
    close = next((Close(k) for k in params if k in _FLAGS), None)
    if close is None:
        raise _fail(text, "net cuts need one of stall=<duration>, rst, fin, throttle=<bytes/s>, dead")
    return NetClose(text, point, delay, close=close)


def _mqtt_fault(text: str, point: CutPoint, delay: float, params: dict[str, str]) -> MqttFault:
    action = next((MqttAction(k) for k in params if k in _MQTT_ACTIONS), None)
    if action is None:
        raise _fail(text, f"mqtt cuts need one of {', '.join(_MQTT_ACTIONS)}")
    if action.needs_block and not isinstance(point, AtBlock | AtBytes | AtFraction):
        raise _fail(text, f"{action.value} acts on one block: use block=, bytes= or fraction=")
    seconds = None
    if action is MqttAction.STALL and params["stall"] != "forever":
        seconds = _duration(text, "stall", params["stall"])
    if action is MqttAction.OUTAGE:
        seconds = _duration(text, "outage", params["outage"])
    return MqttFault(text, point, delay, action=action, seconds=seconds)


def _point(text: str, on: On, value: str, seed: int | None) -> CutPoint:
    if not value:
        raise _fail(text, f"{on.value}= needs a value")
    if on is On.BLOCK:
        return AtBlock(int(_number(text, on.value, value, int)))
    if on is On.BYTES:
        return AtBytes(int(_number(text, on.value, value, int)))
    if on is On.WIRE:
        return AtWire(int(_number(text, on.value, value, int)))
    if on is On.FRACTION:
        fraction = _number(text, "fraction", value, float)
        if not 0.0 < fraction <= 1.0:
            raise _fail(text, f"fraction={value} must be above 0 and at most 1")
        return AtFraction(fraction)
    if on is On.RANDOM:
        lo_text, sep, hi_text = value.partition("..")
        if not sep:
            raise _fail(text, f"random={value!r} must be a window lo..hi (e.g. 0.1..0.9)")
        lo = _number(text, "random", lo_text, float)
        hi = _number(text, "random", hi_text, float)
        if lo > hi or (hi <= 1.0) != (lo <= 1.0):
            raise _fail(text, f"random={value} must be lo..hi fractions (0..1) or byte counts with lo <= hi")
        return AtRandom(lo, hi, seed)
    typed = value[1:-1] if value[:1] in ('"', "/") else value
    return AtLog(_log_pattern(text, value), typed.replace('\\"', '"'))
