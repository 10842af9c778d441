"""What a health check found, and a quarantine: plain records the results store keeps."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Trigger(Enum):
    """Why a check ran."""

    BEFORE_RUN = "before-run"
    AFTER_INFRA = "after-infra"
    ON_DEMAND = "farm-health"
    RECOVERY = "recovery"


class Step(Enum):
    READ_MAC = "read-mac"
    FLASH_BASE = "flash-base"
    BOOT_READY = "boot-ready"
    POWER_CYCLE = "power-cycle"
    STATUS = "status"


@dataclass(frozen=True)
class StepResult:
    step: Step
    seconds: float
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthCheck:
    """One check of one board: every step that ran, in order."""

    board: str
    at: str
    trigger: Trigger
    steps: tuple[StepResult, ...]
    run_id: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def reason(self) -> str:
        """The failed step and why, or what the board answered."""
        for step in self.steps:
            if not step.ok:
                return f"{step.step.value}: {step.detail}"
        return "; ".join(f"{s.step.value} {s.detail}" for s in self.steps if s.detail)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)


@dataclass(frozen=True)
class Quarantine:
    """A board out of service: since when, after how many failed checks in a row, and why."""

    board: str
    since: str
    reason: str
    failures: int

    def skip_reason(self) -> str:
        """What a skipped scenario of this board says."""
        return (
            f"board {self.board} quarantined since {self.since} after {self.failures} failed health "
            f"checks: {self.reason} (rig farm health --recover)"
        )
