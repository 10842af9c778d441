"""The behaviour marker (PROTOCOL.md §4): a 32-byte record in DROM that tells the
firmware under test how to misbehave at its first boot.

The rig patches it in a built image, so one build yields every failure mode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from rig.errors import FormatError

MARKER_MAGIC = b"OTARIGBM"
MARKER_LAYOUT_VERSION = 1
MARKER_SIZE = 32
_STRUCT = struct.Struct("<8sHHI16s")


class Behaviour(IntEnum):
    """What the image does at its first boot (state PENDING_VERIFY)."""

    HEALTHY = 0
    CRASH_ON_BOOT = 1
    SELFTEST_FAIL = 2
    HANG = 3
    NEVER_CONFIRM = 4
    CONFIRM_THEN_CRASH = 5

    @property
    def label(self) -> str:
        """The name the firmware prints (`behaviour=crash_on_boot`)."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Behaviour:
        try:
            return cls[label.upper().replace("-", "_")]
        except KeyError:
            names = ", ".join(b.label for b in cls)
            raise FormatError(f"unknown behaviour {label!r} (one of {names})") from None


@dataclass(frozen=True)
class BehaviourMarker:
    """One decoded marker; `param` is milliseconds, meaning per behaviour."""

    behaviour: Behaviour
    param: int = 0

    def encode(self) -> bytes:
        if not 0 <= self.param <= 0xFFFFFFFF:
            raise FormatError(f"behaviour parameter {self.param} does not fit in 32 bits")
        return _STRUCT.pack(MARKER_MAGIC, MARKER_LAYOUT_VERSION, int(self.behaviour), self.param, b"")

    @classmethod
    def decode(cls, raw: bytes) -> BehaviourMarker:
        if len(raw) < MARKER_SIZE:
            raise FormatError(f"behaviour marker truncated: {len(raw)} of {MARKER_SIZE} bytes")
        magic, layout, code, param, _reserved = _STRUCT.unpack_from(raw)
        if magic != MARKER_MAGIC:
            raise FormatError("no behaviour marker magic OTARIGBM")
        if layout != MARKER_LAYOUT_VERSION:
            raise FormatError(f"behaviour marker layout version {layout} unsupported (expected 1)")
        try:
            behaviour = Behaviour(code)
        except ValueError:
            raise FormatError(f"behaviour marker has unknown behaviour code {code}") from None
        return cls(behaviour, param)


def marker_bytes(behaviour: Behaviour, param: int = 0) -> bytes:
    """The 32 bytes to place in `.rodata` of a test app."""
    return BehaviourMarker(behaviour, param).encode()


def find_marker(image_data: bytes) -> tuple[int, BehaviourMarker]:
    """The file offset and value of the image's only marker; none or several is an error."""
    first = image_data.find(MARKER_MAGIC)
    if first < 0:
        raise FormatError("image has no behaviour marker (OTARIGBM); build the app with the rig marker")
    if image_data.find(MARKER_MAGIC, first + 1) >= 0:
        raise FormatError("image has more than one behaviour marker (OTARIGBM); it must occur exactly once")
    return first, BehaviourMarker.decode(image_data[first : first + MARKER_SIZE])
