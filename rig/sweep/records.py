"""What a power-cut sweep's replay reports, one JSON object per line: the recorded update's
operations, every distinct device run and every cut point that maps to one.

The replay runs beside the twin (`python -m twin sweep`, reached as a separate process so
`rig/` never imports `twin/`); these records are the interface between the two, so both
sides build and read them from this one module. The replay reports facts only (which image
booted, in which state, what otadata holds); judging them is `rig.sweep.judge`'s job.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, fields
from typing import Any


class Image(enum.Enum):
    """Which firmware a boot ran, by the bytes of its image."""

    OLD = "old"
    NEW = "new"
    OTHER = "other"


class EntryHealth(enum.Enum):
    """One otadata entry as the bootloader would see it."""

    ERASED = "erased"  # erased, or never given a sequence number
    VALID = "valid"  # its CRC matches its sequence number
    TORN = "torn"  # anything else: half an erase or half a program


class RunEnd(enum.Enum):
    STEADY = "steady"  # the app idles at its console
    BOOT_LOOP = "boot_loop"  # reset after reset without an app settling


class Stage(enum.Enum):
    """Where the recorded update stood when an operation ran."""

    PREPARE = "prepare"  # before the update command (the rig's settings, pinned certificate)
    UPDATE = "update"  # from the update command to the restart
    LATER = "later"  # later boots: the new image's first boot, self-test and confirm


@dataclass(frozen=True)
class OpInfo:
    """One operation of the recorded update and what otadata selects once it completed."""

    index: int
    kind: str  # erase | program | efuse
    address: int
    length: int
    region: str  # the partition it falls in ("" outside any; "efuse")
    stage: Stage
    log_line: str  # the last complete console line printed before it
    selects: Image | None  # the image otadata selects after it (None: nothing valid)
    selected_state: str  # that entry's state name ("" when nothing is selected)
    secure_version: int  # the eFuse anti-rollback counter after it


@dataclass(frozen=True)
class TraceFacts:
    """The recorded update as a whole."""

    ops: tuple[OpInfo, ...]
    base_selects: Image | None  # what otadata selected before the first operation
    base_state: str
    old_version: str
    new_version: str
    old_secure_version: int
    new_secure_version: int
    rollback: bool
    anti_rollback: bool
    efuse_base: int  # secure version counter at the start
    update_command: str  # the console line that started the update
    fractions: tuple[float, ...]  # where inside an operation its torn variants cut


@dataclass(frozen=True)
class BootFacts:
    image: Image
    slot: str
    state: str  # the running slot's otadata state as its app started
    reason: str


@dataclass(frozen=True)
class RunFacts:
    """One device run from power-on to steady state (shared by every point it stands for)."""

    run: int
    boots: tuple[BootFacts, ...]
    end: RunEnd
    retried: bool
    boots_before_retry: int  # how many of `boots` came before the retried update
    state_end: str  # the running slot's otadata state at steady state
    efuse_end: int  # the anti-rollback counter at the end
    otadata_end: tuple[EntryHealth, EntryHealth]
    log: str

    @property
    def final(self) -> BootFacts | None:
        return self.boots[-1] if self.boots and self.end is RunEnd.STEADY else None


@dataclass(frozen=True)
class PointFacts:
    """A cut before operation `op` (torn None) or `torn` of the way into it."""

    op: int
    torn: float | None
    run: int
    otadata_at_cut: tuple[EntryHealth, EntryHealth]


@dataclass(frozen=True)
class Progress:
    done: int
    total: int


@dataclass(frozen=True)
class Done:
    points: int
    runs: int
    seconds: float


Record = TraceFacts | RunFacts | PointFacts | Progress | Done
_KINDS: dict[str, type[Any]] = {
    "trace": TraceFacts, "run": RunFacts, "point": PointFacts, "progress": Progress, "done": Done,
}  # fmt: skip
_NAMES = {cls: name for name, cls in _KINDS.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def encode(record: Record) -> str:
    """One JSON line for `record`."""
    return json.dumps({"type": _NAMES[type(record)], **_plain(asdict(record))}, separators=(",", ":"))


def decode(line: str) -> Record:
    """The record of one JSON line (`ValueError` on anything else)."""
    try:
        data = json.loads(line)
        built: Record = _build(_KINDS[data.pop("type")], data)
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise ValueError(f"not a sweep record: {line[:80]!r}") from error
    return built


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    values = {}
    for field in fields(cls):
        values[field.name] = _field(cls, field.name, data[field.name])
    return cls(**values)


def _field(cls: type[Any], name: str, value: Any) -> Any:
    converters: dict[tuple[type[Any], str], Any] = {
        (TraceFacts, "ops"): lambda v: tuple(_op(o) for o in v),
        (TraceFacts, "base_selects"): _image,
        (TraceFacts, "fractions"): tuple,
        (RunFacts, "boots"): lambda v: tuple(_boot(b) for b in v),
        (RunFacts, "end"): RunEnd,
        (RunFacts, "otadata_end"): _health,
        (PointFacts, "otadata_at_cut"): _health,
    }
    convert = converters.get((cls, name))
    return convert(value) if convert else value


def _health(value: list[str]) -> tuple[EntryHealth, EntryHealth]:
    first, second = (EntryHealth(v) for v in value)
    return first, second


def _op(data: dict[str, Any]) -> OpInfo:
    values = dict(data)
    values["stage"] = Stage(values["stage"])
    values["selects"] = _image(values["selects"])
    return OpInfo(**values)


def _image(value: str | None) -> Image | None:
    return None if value is None else Image(value)


def _boot(data: dict[str, Any]) -> BootFacts:
    return BootFacts(**{**data, "image": Image(data["image"])})
