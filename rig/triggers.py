"""Fire fault actions (PSU off, proxy stall, …) at precise moments of an OTA.

Observers (serial reader, OTA server, fault proxy, scenario code) report what they
see; each registered `Trigger` whose condition is met runs its action right away
on the observing thread, because a power cut 50 ms late is a different test.
Only delayed triggers (`After`, `delay_s`, time windows) go through a timer.
Every firing is recorded with its latency so a run can prove where it cut.
"""

from __future__ import annotations

import enum
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rig.logs.parser import strip_ansi

Action = Callable[[], object]


BLOCKS = "blocks"  # the progress source an MQTT stream reports whole blocks under


class Source(enum.Enum):
    """Which observer produced an observation."""

    LOG = "log"
    PROGRESS = "progress"
    WIRE = "wire"
    EVENT = "event"


@dataclass(frozen=True)
class Observation:
    """One thing an observer saw at host time `t` (the engine's clock)."""

    source: Source
    t: float
    board: str | None = None
    line: str = ""
    connection_id: object = None
    amount: int = 0
    total: int | None = None
    name: str = ""


@dataclass(frozen=True)
class Hit:
    """A satisfied condition: what was observed, and how long after it the action is due."""

    observed: object
    delay_s: float = 0.0


class Condition(Protocol):
    """When a trigger fires; `check` is called under the engine lock, so it may keep state."""

    def check(self, obs: Observation) -> Hit | None: ...

    def describe(self) -> str: ...


@dataclass
class BytesAtLeast:
    """OTA image body bytes served (from `on_progress`) reached `n`; `source` narrows to one server."""

    n: int
    source: str | None = None

    def check(self, obs: Observation) -> Hit | None:
        if obs.source is Source.PROGRESS and self.source in (None, obs.name) and obs.amount >= self.n:
            return Hit(obs.amount)
        return None

    def describe(self) -> str:
        return f"image bytes >= {self.n}"


@dataclass
class FractionAtLeast:
    """The served fraction of the image body (bytes / total) reached `f`."""

    f: float
    source: str | None = None

    def check(self, obs: Observation) -> Hit | None:
        if obs.source is not Source.PROGRESS or self.source not in (None, obs.name) or not obs.total:
            return None
        fraction = obs.amount / obs.total
        return Hit(round(fraction, 6)) if fraction >= self.f else None

    def describe(self) -> str:
        return f"image fraction >= {self.f:g}"


@dataclass
class BlocksAtLeast:
    """The device has written `n` blocks of an MQTT stream (its block bitmap, as the rig's
    Streams service sees it in each request; `on_progress` with source BLOCKS)."""

    n: int

    def check(self, obs: Observation) -> Hit | None:
        if obs.source is Source.PROGRESS and obs.name == BLOCKS and obs.amount >= self.n:
            return Hit(obs.amount)
        return None

    def describe(self) -> str:
        return f"stream blocks >= {self.n}"


@dataclass
class WireBytesAtLeast:
    """Bytes the fault proxy relayed on one connection (cumulative, as `on_wire` reports) reached `n`."""

    n: int
    connection_id: object = None

    def check(self, obs: Observation) -> Hit | None:
        if (
            obs.source is Source.WIRE
            and self.connection_id in (None, obs.connection_id)
            and obs.amount >= self.n
        ):
            return Hit(obs.amount)
        return None

    def describe(self) -> str:
        return f"wire bytes >= {self.n}"


@dataclass
class LogMatches:
    """A serial line (colour codes stripped) matches `pattern` (`re.search`); `board` narrows to one DUT."""

    pattern: str | re.Pattern[str]
    board: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = self.pattern if isinstance(self.pattern, re.Pattern) else re.compile(self.pattern)

    def check(self, obs: Observation) -> Hit | None:
        if obs.source is not Source.LOG or self.board not in (None, obs.board):
            return None
        line = strip_ansi(obs.line) if "\x1b" in obs.line or "\r" in obs.line else obs.line
        return Hit(line) if self._regex.search(line) else None

    def describe(self) -> str:
        return f"log matches /{self._regex.pattern}/"


@dataclass
class OnEvent:
    """A named scenario event (`on_event`) such as `psu_on` or `ota_command_sent`."""

    name: str

    def check(self, obs: Observation) -> Hit | None:
        return Hit(obs.name) if obs.source is Source.EVENT and obs.name == self.name else None

    def describe(self) -> str:
        return f"event {self.name}"


@dataclass
class After:
    """`delay_s` after the trigger named `other` finished its action (runs on a timer)."""

    other: str
    delay_s: float = 0.0

    def check(self, obs: Observation) -> Hit | None:
        return None  # fired by the engine when `other` fires

    def describe(self) -> str:
        return f"{self.delay_s:g}s after {self.other}"


class Unit(enum.Enum):
    """What a random window is measured in."""

    BYTES = "bytes"
    FRACTION = "fraction"
    WIRE_BYTES = "wire_bytes"
    SECONDS = "seconds"


@dataclass
class RandomPointInWindow:
    """A point drawn once from `random.Random(seed)` inside [lo, hi]: the same seed cuts at the same place.

    For SECONDS the window is measured from the moment `start` is met (a calibrated
    window, e.g. "between `ota complete` and `app confirmed valid`").
    """

    seed: int
    lo: float
    hi: float
    unit: Unit = Unit.FRACTION
    start: Condition | None = None
    point: float = field(init=False)
    _inner: Condition | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.hi < self.lo:
            raise ValueError(f"random window {self.lo:g}..{self.hi:g} is empty")
        if self.unit is Unit.SECONDS and self.start is None:
            raise ValueError("a time window needs a start condition")
        rng = random.Random(self.seed)
        if self.unit in (Unit.BYTES, Unit.WIRE_BYTES):
            self.point = float(rng.randint(int(self.lo), int(self.hi)))
        else:
            self.point = rng.uniform(self.lo, self.hi)
        self._inner = self._threshold()

    def _threshold(self) -> Condition | None:
        if self.unit is Unit.BYTES:
            return BytesAtLeast(int(self.point))
        if self.unit is Unit.WIRE_BYTES:
            return WireBytesAtLeast(int(self.point))
        if self.unit is Unit.FRACTION:
            return FractionAtLeast(self.point)
        return self.start

    @classmethod
    def between(cls, seed: int, start: Condition, end: Condition) -> RandomPointInWindow:
        """A window between two thresholds of the same kind, e.g. BytesAtLeast(1000)..BytesAtLeast(9000)."""
        for kind, unit, attr in (
            (BytesAtLeast, Unit.BYTES, "n"),
            (FractionAtLeast, Unit.FRACTION, "f"),
            (WireBytesAtLeast, Unit.WIRE_BYTES, "n"),
        ):
            if isinstance(start, kind) and isinstance(end, kind):
                return cls(seed, float(getattr(start, attr)), float(getattr(end, attr)), unit)
        raise ValueError(f"cannot draw between {start.describe()} and {end.describe()}")

    def check(self, obs: Observation) -> Hit | None:
        assert self._inner is not None
        hit = self._inner.check(obs)
        if hit is None or self.unit is not Unit.SECONDS:
            return hit
        return Hit(hit.observed, self.point)

    def describe(self) -> str:
        if self.unit is Unit.SECONDS:
            assert self.start is not None
            return f"random {self.point:.3f}s after {self.start.describe()} (seed {self.seed})"
        return f"random {self.unit.value} >= {self.point:g} in {self.lo:g}..{self.hi:g} (seed {self.seed})"


@dataclass
class Trigger:
    """A condition and the action it fires; `once=False` fires on every matching observation."""

    condition: Condition
    action: Action
    once: bool = True
    name: str = ""
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.condition.describe()


@dataclass(frozen=True)
class Firing:
    """One executed action: what was observed when, and how long until the action finished."""

    trigger: str
    condition: str
    observed: object
    t_observed: float
    t_action_start: float
    t_action_done: float
    error: str | None = None

    @property
    def latency_ms(self) -> float:
        """Observation (or due time, for delayed triggers) to action done."""
        return (self.t_action_done - self.t_observed) * 1000.0


class TriggerEngine:
    """Holds triggers, receives observations, runs actions, records firings. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._triggers: list[Trigger] = []
        self._spent: set[int] = set()
        self._timers: list[threading.Timer] = []
        self._closed = False
        self.firings: list[Firing] = []

    def add(self, trigger: Trigger) -> Trigger:
        """Register a trigger; names must be unique (After refers to them)."""
        with self._lock:
            if any(t.name == trigger.name for t in self._triggers):
                raise ValueError(f"a trigger named {trigger.name!r} already exists")
            self._triggers.append(trigger)
        return trigger

    def remove(self, trigger: Trigger) -> None:
        """Forget `trigger`, fired or not (a retried experiment arms one with the same name)."""
        with self._lock:
            self._triggers = [t for t in self._triggers if t is not trigger]
            # Spent triggers are known by id(); once this one is gone, a new trigger may get its id.
            self._spent.discard(id(trigger))

    def on_log_line(self, board: str | None, line: str, t: float | None = None) -> list[Firing]:
        """A serial line from `board`."""
        return self._observe(Observation(Source.LOG, self._t(t), board=board, line=line))

    def on_progress(
        self, source: str, connection_id: object, body_bytes: int, total: int | None, t: float | None = None
    ) -> list[Firing]:
        """The OTA server has sent `body_bytes` of the image body (absolute offset, `total` = image size)."""
        return self._observe(
            Observation(
                Source.PROGRESS,
                self._t(t),
                name=source,
                connection_id=connection_id,
                amount=body_bytes,
                total=total,
            )
        )

    def on_wire(self, connection_id: object, nbytes: int, t: float | None = None) -> list[Firing]:
        """The fault proxy has relayed `nbytes` (cumulative) on `connection_id`."""
        return self._observe(Observation(Source.WIRE, self._t(t), connection_id=connection_id, amount=nbytes))

    def on_event(self, name: str, t: float | None = None) -> list[Firing]:
        """A named scenario event."""
        return self._observe(Observation(Source.EVENT, self._t(t), name=name))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait for pending delayed actions (including ones they schedule); False on timeout."""
        deadline = self._clock() + timeout
        while True:
            with self._lock:
                pending = [timer for timer in self._timers if timer.is_alive()]
                self._timers = pending
            if not pending:
                return True
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            pending[0].join(remaining)

    def close(self) -> None:
        """Cancel pending delayed actions; later observations fire nothing."""
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _t(self, t: float | None) -> float:
        return self._clock() if t is None else t

    def _observe(self, obs: Observation) -> list[Firing]:
        due: list[tuple[Trigger, Hit]] = []
        with self._lock:
            if self._closed:
                return []
            for trigger in self._triggers:
                if id(trigger) in self._spent or isinstance(trigger.condition, After):
                    continue
                hit = trigger.condition.check(obs)
                if hit is None:
                    continue
                if trigger.once:
                    self._spent.add(id(trigger))
                due.append((trigger, hit))
        fired: list[Firing] = []
        for trigger, hit in due:
            delay = hit.delay_s + trigger.delay_s
            if delay > 0:
                self._schedule(trigger, hit.observed, obs.t + delay)
            else:
                fired.append(self._run(trigger, hit.observed, obs.t))
        return fired

    def _run(self, trigger: Trigger, observed: object, t_observed: float) -> Firing:
        start = self._clock()
        error = None
        try:
            trigger.action()
        except Exception as exc:  # an action failing must not kill the observing thread
            error = f"{type(exc).__name__}: {exc}"
        done = self._clock()
        firing = Firing(trigger.name, trigger.condition.describe(), observed, t_observed, start, done, error)
        followers: list[Trigger] = []
        with self._lock:
            self.firings.append(firing)
            for other in self._triggers:
                cond = other.condition
                if isinstance(cond, After) and cond.other == trigger.name and id(other) not in self._spent:
                    if other.once:
                        self._spent.add(id(other))
                    followers.append(other)
        for other in followers:
            assert isinstance(other.condition, After)
            self._schedule(other, trigger.name, done + other.condition.delay_s + other.delay_s)
        return firing

    def _schedule(self, trigger: Trigger, observed: object, due: float) -> None:
        timer = threading.Timer(max(0.0, due - self._clock()), self._run, (trigger, observed, due))
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.append(timer)
            timer.start()
