"""Just enough SCPI (IEEE 488.2 / SCPI-99) parsing for a virtual bench instrument.

Real instruments accept every header in its short form (the upper-case part of
the mnemonic, e.g. VOLT) or its long form (VOLTAGE), in any case, with optional
nodes in brackets and numeric suffixes (SOUR2). The rig's drivers send whatever
the real model's manual shows, so the twin must accept all of those spellings.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import IntEnum


class ScpiErrorCode(IntEnum):
    """The standard SCPI error numbers the twin reports through SYST:ERR?."""

    NO_ERROR = 0
    SYNTAX_ERROR = -102
    PARAMETER_NOT_ALLOWED = -108
    MISSING_PARAMETER = -109
    UNDEFINED_HEADER = -113
    ILLEGAL_PARAMETER_VALUE = -224
    DATA_OUT_OF_RANGE = -222
    QUEUE_OVERFLOW = -350
    INPUT_BUFFER_OVERRUN = -363


ERROR_TEXT: dict[ScpiErrorCode, str] = {
    ScpiErrorCode.NO_ERROR: "No error",
    ScpiErrorCode.SYNTAX_ERROR: "Syntax error",
    ScpiErrorCode.PARAMETER_NOT_ALLOWED: "Parameter not allowed",
    ScpiErrorCode.MISSING_PARAMETER: "Missing parameter",
    ScpiErrorCode.UNDEFINED_HEADER: "Undefined header",
    ScpiErrorCode.ILLEGAL_PARAMETER_VALUE: "Illegal parameter value",
    ScpiErrorCode.DATA_OUT_OF_RANGE: "Data out of range",
    ScpiErrorCode.QUEUE_OVERFLOW: "Queue overflow",
    ScpiErrorCode.INPUT_BUFFER_OVERRUN: "Input buffer overrun",
}


class ScpiError(Exception):
    """A command the instrument rejects: queued, never raised to the client."""

    def __init__(self, code: ScpiErrorCode) -> None:
        super().__init__(f'{int(code)},"{ERROR_TEXT[code]}"')
        self.code = code


class ErrorQueue:
    """The instrument's FIFO error queue; overflow replaces the newest entry, as SCPI says."""

    def __init__(self, depth: int = 20) -> None:
        self._depth = depth
        self._queue: deque[ScpiErrorCode] = deque()

    def push(self, code: ScpiErrorCode) -> None:
        if len(self._queue) < self._depth:
            self._queue.append(code)
        else:
            self._queue[-1] = ScpiErrorCode.QUEUE_OVERFLOW

    def pop(self) -> str:
        code = self._queue.popleft() if self._queue else ScpiErrorCode.NO_ERROR
        return f'{int(code)},"{ERROR_TEXT[code]}"'

    def clear(self) -> None:
        self._queue.clear()


@dataclass(frozen=True)
class Node:
    """One header node as received: mnemonic (upper-cased) and its numeric suffix, if any."""

    mnemonic: str
    suffix: int | None


@dataclass(frozen=True)
class Command:
    """One program message unit: header nodes, query flag and raw comma-separated arguments."""

    nodes: tuple[Node, ...]
    query: bool
    args: tuple[str, ...]


_NODE = re.compile(r"^(\*?[A-Z][A-Z_]*?)(\d*)$")


def parse_message(line: str) -> list[Command]:
    """Split one line into commands; relative headers after `;` reuse the previous path, as SCPI does."""
    commands: list[Command] = []
    path: tuple[Node, ...] = ()
    for unit in line.split(";"):
        unit = unit.strip()
        if not unit:
            continue
        header, _, rest = unit.partition(" ")
        query = header.endswith("?")
        header = header.removesuffix("?")
        absolute = header.startswith(":") or header.startswith("*")
        parts = header.lstrip(":").split(":")
        nodes = []
        for part in parts:
            match = _NODE.match(part.upper())
            if match is None:
                raise ScpiError(ScpiErrorCode.SYNTAX_ERROR if part else ScpiErrorCode.UNDEFINED_HEADER)
            nodes.append(Node(match.group(1), int(match.group(2)) if match.group(2) else None))
        full = tuple(nodes) if absolute or not commands else path + tuple(nodes)
        if not header.startswith("*"):
            path = full[:-1]
        args = tuple(arg.strip() for arg in rest.split(",")) if rest.strip() else ()
        commands.append(Command(full, query, args))
    return commands


@dataclass(frozen=True)
class _PatternNode:
    short: str
    long: str
    optional: bool
    takes_suffix: bool

    def accepts(self, node: Node) -> bool:
        if node.suffix is not None and not self.takes_suffix:
            return False
        return node.mnemonic in (self.short, self.long)


class Header:
    """A header pattern in manual notation, e.g. ``[:SOURce#]:VOLTage[:LEVel][:IMMediate]``.

    ``#`` marks a node that takes a numeric suffix; the upper-case letters are the short form.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._nodes: list[_PatternNode] = []
        for token in re.findall(r"\[:?[^\]]+\]|:?[^:\[]+", pattern):
            optional = token.startswith("[")
            name = token.strip("[]").lstrip(":")
            takes_suffix = name.endswith("#")
            name = name.removesuffix("#")
            short = "".join(c for c in name if not c.islower())
            self._nodes.append(_PatternNode(short.upper(), name.upper(), optional, takes_suffix))

    def match(self, nodes: tuple[Node, ...]) -> dict[str, int | None] | None:
        """Return the numeric suffixes seen (keyed by long mnemonic), or None if the header differs."""
        return self._match(0, nodes, {})

    def _match(
        self, index: int, nodes: tuple[Node, ...], suffixes: dict[str, int | None]
    ) -> dict[str, int | None] | None:
        if index == len(self._nodes):
            return suffixes if not nodes else None
        pattern = self._nodes[index]
        if nodes and pattern.accepts(nodes[0]):
            found = self._match(index + 1, nodes[1:], {**suffixes, pattern.long: nodes[0].suffix})
            if found is not None:
                return found
        if pattern.optional:
            return self._match(index + 1, nodes, suffixes)
        return None


def parse_float(text: str, minimum: float, maximum: float) -> float:
    """A numeric parameter, accepting MIN/MAX as SCPI allows; out of range -> -222."""
    word = text.upper()
    if word in ("MIN", "MINIMUM"):
        return minimum
    if word in ("MAX", "MAXIMUM"):
        return maximum
    try:
        value = float(text)
    except ValueError:
        raise ScpiError(ScpiErrorCode.ILLEGAL_PARAMETER_VALUE) from None
    if not minimum <= value <= maximum:
        raise ScpiError(ScpiErrorCode.DATA_OUT_OF_RANGE)
    return value


def parse_bool(text: str) -> bool:
    """ON|OFF|1|0 in any case."""
    word = text.upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(ScpiErrorCode.ILLEGAL_PARAMETER_VALUE)
