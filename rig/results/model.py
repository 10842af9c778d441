"""The outcome row: one per (scenario, board), the contract between the pytest plugin and reports.

Rows are frozen so a recorded outcome cannot drift from what was committed to the store.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

from rig.errors import InputError


class OutcomeClass(enum.Enum):
    """What happened, ordered from harmless to worst so a matrix cell can take the worst."""

    SKIP = "SKIP"  # scenario not applicable to the board (the message says why)
    PASS = "PASS"
    # The fault missed the window the scenario targets on every try: the run proved nothing
    # about that window. Not a firmware failure, but not a pass either; a gate limits it.
    INCONCLUSIVE = "INCONCLUSIVE"
    INFRA = "INFRA"  # the rig failed (port, instrument, network): never a firmware failure
    FAIL = "FAIL"  # the device did the wrong thing
    BRICK = "BRICK"  # no app reached after recovery: a FAIL that is counted separately

    @property
    def severity(self) -> int:
        """Rank for "worst over repeats": BRICK > FAIL > INFRA > INCONCLUSIVE > PASS > SKIP."""
        return _SEVERITY[self]

    @property
    def is_firmware_failure(self) -> bool:
        return self in (OutcomeClass.FAIL, OutcomeClass.BRICK)


_SEVERITY = {cls: rank for rank, cls in enumerate(OutcomeClass)}

# A run id names a folder under the report directory: nothing that could climb out of it.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    """`run_id` if it is safe as a folder name, else InputError."""
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise InputError(f"run id {run_id!r} must be letters, digits, '.', '_' or '-' (at most 128)")
    return run_id


RunStatus = Literal["running", "finished", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "finished", "interrupted")


@dataclass(frozen=True)
class BootRow:
    """One boot of the board during the scenario, as the log parser folded it."""

    index: int
    reset_reason: str
    slot: str
    version: str
    outcome: str


@dataclass(frozen=True)
class FaultRow:
    """One injected fault: what was asked, what the rig saw, and how late it landed."""

    name: str
    condition: str
    observed: str
    latency_ms: float | None
    t_offset_s: float


@dataclass(frozen=True)
class Outcome:
    """The result of one scenario on one board within one run."""

    run_id: str
    scenario: str
    scenario_group: str
    board: str
    firmware_old: str
    firmware_new: str
    image: str
    fault: str
    cut_point: float | None
    phase: str
    outcome: OutcomeClass
    expected: str
    observed: str
    message: str
    duration_s: float
    time_to_recover_s: float | None
    bytes_served: int  # HTTP body bytes the OTA server handed to its sockets
    boots: tuple[BootRow, ...]
    faults: tuple[FaultRow, ...]
    artifacts: str
    started_at: str
    finished_at: str

    @property
    def key(self) -> tuple[str, str]:
        """(scenario, board): what `rig run --resume` compares against."""
        return (self.scenario, self.board)


@dataclass(frozen=True)
class RunInfo:
    """One run of the suite: who, when, where, and whether it finished."""

    run_id: str
    started_at: str
    farm: str
    boards: tuple[str, ...]
    seed: int
    rig_version: str
    git_revision: str | None
    command: str
    finished_at: str | None
    status: RunStatus
