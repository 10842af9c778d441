"""One OTA experiment's outcome: the record the framework owns.

The session observes and judges; the checks it runs add `Problem`s, each of a kind, and
`OtaResult.outcome` classes the experiment from those kinds alone (a BRICK is a problem
of kind BRICK, never a matched prefix of a message). The `ota` fixture records every
result on the test item as an `OtaRecord`, whose wire form crosses xdist unchanged and
is read back field by field, without defaults, by the results store.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from rig.board import Ready
from rig.esp.otadata import OtaData
from rig.logs.boots import BootTimeline
from rig.phase import Final, Phase
from rig.results.model import BootRow, FaultRow, OutcomeClass
from rig.triggers import Firing


class ProblemKind(enum.Enum):
    """What a problem says about the device; `outcome` and the checks key on this."""

    BRICK = "brick"  # no app reached `ready` after recovery
    UNKNOWN_FIRMWARE = "unknown_firmware"  # runs a version that is neither old nor new
    WRONG_END_STATE = "wrong_end_state"  # runs old where new is correct, or the reverse
    PROOF_MISSING = "proof_missing"  # an ESP-IDF line the image's manifest promises is absent
    SOURCES_DISAGREE = "sources_disagree"  # otadata torn, or log and otadata name different slots
    FLASH_WRITTEN = "flash_written"  # a slot that must not change did
    RESUME = "resume"  # resumed past what was saved, or fetched other bytes than it resumed from
    CONFIRM_ORDER = "confirm_order"  # confirmed before its self-test passed
    WINDOW_MISSED = "window_missed"  # the fault landed outside the targeted phase on every try
    JOB_STATUS = "job_status"  # the job status the device reported is not the correct one
    OLD_IMAGE_KEPT = "old_image_kept"  # an accepted update left the old image bootable (forced rollback)


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class OtaResult:
    """Everything one OTA experiment observed, and what was wrong with it."""

    board: str
    image: str
    expect: str
    old_version: str
    new_version: str
    cut: str | None
    fault: str
    cut_point: float | None
    firings: list[Firing]
    phase: Phase
    acceptable: frozenset[Final]
    final: Final | None
    final_ready: Ready | None
    otadata: OtaData | None
    timeline: BootTimeline
    bytes_served: int  # HTTP body bytes the server handed to its sockets (not device-written)
    duration_s: float
    mark: int
    readback_mark: int
    started: float
    time_to_recover_s: float | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome is OutcomeClass.PASS

    @property
    def outcome(self) -> OutcomeClass:
        """BRICK when no app came back, INCONCLUSIVE when the fault missed its window (and
        nothing else was wrong), FAIL on any other problem, else PASS."""
        kinds = {p.kind for p in self.problems}
        if ProblemKind.BRICK in kinds:
            return OutcomeClass.BRICK
        if kinds == {ProblemKind.WINDOW_MISSED}:
            return OutcomeClass.INCONCLUSIVE
        return OutcomeClass.FAIL if kinds else OutcomeClass.PASS

    def add(self, kind: ProblemKind, text: str) -> None:
        self.problems.append(Problem(kind, text))

    def summary(self) -> str:
        final = self.final.value if self.final else "nothing"
        allowed = "/".join(sorted(f.value for f in self.acceptable))
        head = (
            f"{self.outcome.value} {self.board}: {self.image} ({self.expect}), cut {self.cut or 'none'} "
            f"→ {self.phase.value}; ended on {final} firmware (correct: {allowed})"
        )
        return "\n".join([head, *(f"  - {p.text}" for p in self.problems)])

    def record(self) -> OtaRecord:
        return OtaRecord(
            board=self.board,
            image=self.image,
            expect=self.expect,
            firmware_old=self.old_version,
            firmware_new=self.new_version,
            fault=self.fault,
            cut=self.cut,
            cut_point=self.cut_point,
            phase=self.phase,
            outcome=self.outcome,
            final=self.final,
            acceptable=tuple(sorted(self.acceptable, key=lambda f: f.value)),
            problems=tuple(self.problems),
            duration_s=round(self.duration_s, 3),
            time_to_recover_s=None if self.time_to_recover_s is None else round(self.time_to_recover_s, 3),
            bytes_served=self.bytes_served,
            boots=tuple(
                BootRow(b.index, b.reset_reason or "", b.slot_name or "", b.app_version or "",
                        b.outcome.value)
                for b in self.timeline
            ),
            faults=tuple(
                FaultRow(f.trigger, f.condition, str(f.observed), round(f.latency_ms, 2),
                         round(f.t_action_start - self.started, 3))
                for f in self.firings
            ),
        )  # fmt: skip


@dataclass(frozen=True)
class OtaRecord:
    """What the results store keeps of one OTA; `to_wire` / `from_wire` carry it across xdist."""

    board: str
    image: str
    expect: str
    firmware_old: str
    firmware_new: str
    fault: str
    cut: str | None
    cut_point: float | None
    phase: Phase
    outcome: OutcomeClass
    final: Final | None
    acceptable: tuple[Final, ...]
    problems: tuple[Problem, ...]
    duration_s: float
    time_to_recover_s: float | None
    bytes_served: int
    boots: tuple[BootRow, ...]
    faults: tuple[FaultRow, ...]

    @property
    def message(self) -> str:
        return "; ".join(p.text for p in self.problems)

    def to_wire(self) -> dict[str, Any]:
        return {
            "board": self.board, "image": self.image, "expect": self.expect,
            "firmware_old": self.firmware_old, "firmware_new": self.firmware_new,
            "fault": self.fault, "cut": self.cut, "cut_point": self.cut_point,
            "phase": self.phase.name, "outcome": self.outcome.value,
            "final": None if self.final is None else self.final.value,
            "acceptable": [f.value for f in self.acceptable],
            "problems": [[p.kind.value, p.text] for p in self.problems],
            "duration_s": self.duration_s, "time_to_recover_s": self.time_to_recover_s,
            "bytes_served": self.bytes_served,
            "boots": [list(b.__dict__.values()) for b in self.boots],
            "faults": [list(f.__dict__.values()) for f in self.faults],
        }  # fmt: skip

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> OtaRecord:
        """The record `to_wire` made; a missing or mistyped field raises (never defaulted)."""
        final = wire["final"]
        return cls(
            board=str(wire["board"]), image=str(wire["image"]), expect=str(wire["expect"]),
            firmware_old=str(wire["firmware_old"]), firmware_new=str(wire["firmware_new"]),
            fault=str(wire["fault"]), cut=wire["cut"], cut_point=wire["cut_point"],
            phase=Phase[wire["phase"]], outcome=OutcomeClass(wire["outcome"]),
            final=None if final is None else Final(final),
            acceptable=tuple(Final(f) for f in wire["acceptable"]),
            problems=tuple(Problem(ProblemKind(kind), str(text)) for kind, text in wire["problems"]),
            duration_s=float(wire["duration_s"]), time_to_recover_s=wire["time_to_recover_s"],
            bytes_served=int(wire["bytes_served"]),
            boots=tuple(BootRow(*b) for b in wire["boots"]),
            faults=tuple(FaultRow(*f) for f in wire["faults"]),
        )  # fmt: skip
