"""App version ordering (PROTOCOL.md §6), shared by the rig, the twin and `rig images derive`.

Dotted numbers with an optional suffix; a leading `v` is ignored, missing parts are
0, a suffixed version sorts before the same numbers without one, and two suffixes on
the same numbers compare as ASCII strings (as the C core's `strcmp`). Anything
unparsable compares only for equality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"v?(?P<numbers>\d+(?:\.\d+)*)(?:[-+~_]?(?P<suffix>[A-Za-z0-9][A-Za-z0-9.+~_-]*))?")


@dataclass(frozen=True)
class ParsedVersion:
    """A version split into its numbers and its (possibly empty) suffix."""

    numbers: tuple[int, ...]
    suffix: str

    def bumped(self, delta: int) -> ParsedVersion:
        """The same version with `delta` added to its last number (borrowing leftwards)."""
        numbers = list(self.numbers)
        index = len(numbers) - 1
        numbers[index] += delta
        while numbers[index] < 0 and index > 0:
            numbers[index] += 10
            numbers[index - 1] -= 1
            index -= 1
        if numbers[0] < 0:
            raise ValueError("version cannot go below zero")
        return ParsedVersion(tuple(numbers), "")

    def __str__(self) -> str:
        text = ".".join(str(n) for n in self.numbers)
        return f"{text}-{self.suffix}" if self.suffix else text


def parse_version(text: str) -> ParsedVersion | None:
    """Split a version string, or None when it does not follow §6."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    numbers = tuple(int(part) for part in match["numbers"].split("."))
    return ParsedVersion(numbers, match["suffix"] or "")


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as `a` is older, equal or newer than `b`; None when incomparable."""
    if a == b:
        return 0
    pa, pb = parse_version(a), parse_version(b)
    if pa is None or pb is None:
        return None
    width = max(len(pa.numbers), len(pb.numbers))
    na = pa.numbers + (0,) * (width - len(pa.numbers))
    nb = pb.numbers + (0,) * (width - len(pb.numbers))
    if na != nb:
        return -1 if na < nb else 1
    if pa.suffix == pb.suffix:
        return 0
    if not pa.suffix:
        return 1
    if not pb.suffix:
        return -1
    return -1 if pa.suffix < pb.suffix else 1
