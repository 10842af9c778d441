"""A sweep scenario (`scenarios/sweeps/*.yaml`): which update is swept, on what build.

    name: https-resume
    update: next                 # an image of the run's image set
    agent: {resume: "on"}        # `ota-config` settings for the agent (PROTOCOL.md §2)
    retry: true                  # a board that settles on the old image is sent the update again
    board: {rollback: true}      # lab build (sdkconfig) of the board, virtual lab only
    image_size: 128KiB           # the lab's base image (and so the update) size
    fractions: [0.5]             # torn variants: where inside an operation the cut falls
    time_sweep: {points_per_window: 3}    # real boards: cuts per update window

Every mistake is one line naming the file, line and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rig.errors import InputError
from rig.images.mutants import Expect
from rig.resources import scenarios_dir
from rig.units import parse_size
from rig.yamlfile import YamlDocument, load_yaml, validate

DEFAULT_SWEEP = "https"
SWEEPS_DIR = "sweeps"
AGENT_KEYS = ("resume", "version_check", "timeout_ms", "request_size")
BOARD_KEYS = ("rollback", "anti_rollback", "signing")


@dataclass(frozen=True)
class SweepSpec:
    name: str
    update: str
    retry: bool
    agent: dict[str, str]
    board: dict[str, Any]
    image_size: int
    fractions: tuple[float, ...]
    points_per_window: int
    description: str = ""
    source: Path = field(default=Path("."))


class _TimeSweep(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    points_per_window: Annotated[int, Field(ge=1, le=100)] = 3


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    description: str = ""
    update: str = "next"
    retry: bool = True
    agent: dict[str, str] = Field(default_factory=dict)
    board: dict[str, Any] = Field(default_factory=dict)
    image_size: str | int = "128KiB"
    fractions: list[float] = Field(default_factory=lambda: [0.5])
    time_sweep: _TimeSweep = Field(default_factory=_TimeSweep)


def must_land(expect: str, update: str) -> bool:
    """Whether the image set says `update` must land (True) or be refused (False). An image
    that must boot once and roll back is judged by the rollback scenarios, not by a sweep."""
    if expect == Expect.ROLL_BACK.value:
        raise InputError(
            f"update {update!r} must boot once and roll back; a sweep judges updates that must land "
            "or be refused (the rollback scenarios of `rig run` judge this one)"
        )
    return expect == Expect.ACCEPT.value


def find_sweep(name_or_path: str | None) -> Path:
    """A scenario name (`scenarios/sweeps/<name>.yaml`) or a file path."""
    text = name_or_path or DEFAULT_SWEEP
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    known = scenarios_dir() / SWEEPS_DIR / f"{text}.yaml"
    if not known.exists():
        names = sorted(p.stem for p in (scenarios_dir() / SWEEPS_DIR).glob("*.yaml"))
        raise InputError(f"no sweep scenario {text!r} (known: {', '.join(names)})")
    return known


def load_sweep_spec(path: Path) -> SweepSpec:
    return parse_sweep_spec(load_yaml(path, "sweep scenario"), path)


def parse_sweep_spec(document: YamlDocument, source: Path) -> SweepSpec:
    if not isinstance(document.data, dict):
        raise document.error((), "a sweep scenario must be a mapping (name, update, retry, …)")
    parsed = validate(_SpecFile, document)
    for key in parsed.agent:
        if key not in AGENT_KEYS:
            raise document.error(("agent", key), f"unknown agent setting (known: {', '.join(AGENT_KEYS)})")
    for key in parsed.board:
        if key not in BOARD_KEYS:
            raise document.error(("board", key), f"unknown board setting (known: {', '.join(BOARD_KEYS)})")
    try:
        size = parse_size(parsed.image_size)
    except ValueError as error:
        raise document.error(("image_size",), str(error)) from None
    if not 16 * 1024 <= size <= 1536 * 1024:
        raise document.error(("image_size",), "must lie between 16KiB and 1536KiB (an OTA slot of the lab)")
    for index, fraction in enumerate(parsed.fractions):
        if not 0.0 < fraction < 1.0:
            raise document.error(("fractions", index), f"{fraction} must lie strictly between 0 and 1")
    return SweepSpec(
        name=parsed.name, update=parsed.update, retry=parsed.retry, agent=dict(parsed.agent),
        board=dict(parsed.board), image_size=size, fractions=tuple(parsed.fractions),
        points_per_window=parsed.time_sweep.points_per_window, description=parsed.description,
        source=source,
    )  # fmt: skip
