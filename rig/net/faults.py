"""What the fault proxy can do to a connection: the vocabulary the session arms.

Positions count the server->client stream of one connection: WIRE bytes from its first
byte (TLS handshake included), or IMAGE bytes / a FRACTION of the image the rig's own
server is sending (mapped onto the wire from the server's body checkpoints).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

from rig.errors import InputError


class Teardown(Enum):
    """How a cut ends the connection towards the client."""

    FIN = "fin"  # graceful shutdown: the client reads EOF
    RST = "rst"  # SO_LINGER 0: the client gets ECONNRESET


class AfterStall(Enum):
    RESUME = "resume"
    FIN = "fin"
    RST = "rst"


class Apply(Enum):
    ONCE = "once"  # the first connection that matches, then never again
    EVERY = "every"  # every connection (each at most once)


class Counting(Enum):
    """What a `Position` counts (see rig/net/proxy.py for how each maps to the wire)."""

    WIRE = "bytes"
    IMAGE = "image"
    FRACTION = "fraction"


class RefuseMode(Enum):
    RST = "rst"  # accept, then reset at once
    CLOSED = "closed"  # stop listening: connect() gets ECONNREFUSED


@dataclass(frozen=True)
class Position:
    """A point in the server->client stream (see the module docstring for the units)."""

    counting: Counting
    value: float

    def __post_init__(self) -> None:
        if self.counting is Counting.FRACTION and not 0 < self.value <= 1:
            raise InputError(f"fraction must be in (0, 1], got {self.value:g}")
        if self.counting is not Counting.FRACTION and (self.value < 0 or self.value != int(self.value)):
            raise InputError(f"{self.counting.value} must be a whole number ≥ 0, got {self.value:g}")
        if self.counting is Counting.IMAGE and self.value < 1:
            raise InputError("image position must be ≥ 1")

    def describe(self) -> str:
        value = f"{self.value:g}" if self.counting is Counting.FRACTION else str(int(self.value))
        return f"{self.counting.value}={value}"

    def image_byte(self, image_size: int) -> int:
        if self.counting is Counting.FRACTION:
            return max(1, math.floor(self.value * image_size))
        return int(self.value)


@dataclass(frozen=True, kw_only=True)
class Fault(ABC):
    """One armed misbehaviour; `describe()` names it in connection records."""

    apply: Apply = Apply.ONCE

    @abstractmethod
    def describe(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Cut(Fault):
    at: Position
    teardown: Teardown = Teardown.FIN

    def describe(self) -> str:
        return f"cut@{self.at.describe()}:{self.teardown.value}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Stall(Fault):
    """Stop forwarding both ways, connection left open; at=None: at the next server byte."""

    seconds: float
    at: Position | None = None
    then: AfterStall = AfterStall.RESUME

    def describe(self) -> str:
        where = f"@{self.at.describe()}" if self.at else ""
        return f"stall{where}:{_duration(self.seconds)}:{self.then.value}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class _Continuous(Fault):
    """A fault on every forwarded chunk rather than at one position, so it defaults to every connection."""

    apply: Apply = Apply.EVERY


@dataclass(frozen=True, kw_only=True)
class Throttle(_Continuous):
    bytes_per_second: int

    def describe(self) -> str:
        return f"throttle={self.bytes_per_second}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Latency(_Continuous):
    """Delay every forwarded chunk, both directions."""

    seconds: float

    def describe(self) -> str:
        return f"latency={_duration(self.seconds)}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Refuse(Fault):
    """Refuse new connections for `seconds` from arming (time-based: `apply` is ignored)."""

    seconds: float
    mode: RefuseMode = RefuseMode.RST

    def describe(self) -> str:
        return f"refuse={_duration(self.seconds)}:{self.mode.value}"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
