"""What a rollout did: each board's execution and the rollout's own course (rate, abort).

A board's `state` is the fleet's view (did the update take?), its `verdict` the rig's view
(did the device do what ESP-IDF says is correct under its fault?). A board with a broken
firmware is FAILED and FAIL; a board that lost power mid-download and took the update on
the next offer is SUCCEEDED and PASS.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rig.results.model import OutcomeClass
from rig.rollout.policy import AbortCriterion, FailureType


class BoardState(enum.Enum):
    """Where a board's job execution ended (AWS IoT execution statuses, plus what a rig sees)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # the update did not take; the old firmware runs
    REJECTED = "REJECTED"  # the device refused the image (version, signature, platform)
    ROLLED_BACK = "ROLLED_BACK"  # the new image booted, failed its self-test, the old one is back
    TIMED_OUT = "TIMED_OUT"  # not finished within the policy's timeout per board
    BRICKED = "BRICKED"  # no app came up at all
    INFRA = "INFRA"  # the rig lost the board (port, broker, instrument): no verdict on it
    NEVER_REACHED = "NEVER_REACHED"  # not dispatched: the rollout aborted first

    @property
    def executed(self) -> bool:
        """Counts towards an abort criterion's `min_number_of_executed_things`."""
        return self not in (BoardState.INFRA, BoardState.NEVER_REACHED)

    def counts_as(self, failure: FailureType) -> bool:
        if failure is FailureType.ALL:
            return self.executed and self is not BoardState.SUCCEEDED
        if failure is FailureType.FAILED:
            return self in (BoardState.FAILED, BoardState.ROLLED_BACK, BoardState.BRICKED)
        return bool(self.value == failure.value)


@dataclass(frozen=True)
class Attempt:
    """One offer of the update to a board (a judged OTA)."""

    start_s: float  # from the rollout's start
    end_s: float
    cut: str
    verdict: OutcomeClass
    summary: str


@dataclass(frozen=True)
class BoardRun:
    board: str
    fault: str
    late: bool
    state: BoardState
    joined_s: float | None = None  # in the group from (0 for the initial group)
    dispatched_s: float | None = None
    finished_s: float | None = None
    version: str = ""  # the firmware it runs at the end
    attempts: tuple[Attempt, ...] = ()
    detail: str = ""

    @property
    def verdict(self) -> OutcomeClass:
        """The worst verdict over its attempts; SKIP when it was never reached."""
        if self.state is BoardState.INFRA and not self.attempts:
            return OutcomeClass.INFRA
        return max((a.verdict for a in self.attempts), key=lambda c: c.severity, default=OutcomeClass.SKIP)

    @property
    def time_to_update_s(self) -> float | None:
        if self.state is not BoardState.SUCCEEDED or self.dispatched_s is None or self.finished_s is None:
            return None
        return self.finished_s - self.dispatched_s


@dataclass(frozen=True)
class AbortEvent:
    """The abort criterion that fired, and on how many finished executions."""

    t_s: float
    criterion: str
    executed: int
    failures: int


@dataclass(frozen=True)
class RolloutResult:
    name: str
    transport: str
    release: str
    seed: int
    wall_s: float
    boards: tuple[BoardRun, ...]
    criteria: tuple[AbortCriterion, ...] = ()
    abort: AbortEvent | None = None

    def count(self, state: BoardState) -> int:
        return sum(1 for b in self.boards if b.state is state)

    @property
    def success_rate(self) -> float:
        """Boards running the release over the group (INFRA boards left out: no verdict)."""
        judged = [b for b in self.boards if b.state is not BoardState.INFRA]
        return self.count(BoardState.SUCCEEDED) / len(judged) if judged else 0.0

    @property
    def boards_per_minute(self) -> float:
        """Boards updated per minute of the rollout's wall time."""
        return self.count(BoardState.SUCCEEDED) * 60.0 / self.wall_s if self.wall_s > 0 else 0.0

    def headline(self) -> str:
        """One line a person reads first: how many took the update, the abort, the pace."""
        counts = ", ".join(f"{self.count(s)} {s.value}" for s in BoardState if self.count(s))
        abort = self.abort
        aborted = (
            f"aborted at {abort.t_s:.1f} s ({abort.criterion}: {abort.failures} of {abort.executed})"
            if abort is not None
            else "not aborted"
        )
        timing = self.abort_timing() or "abort timing as the policy says"
        return (
            f"rollout {self.name}: {counts}; success {self.success_rate:.0%}; {aborted}; {timing}; "
            f"{len(self.boards)} boards in {self.wall_s:.1f} s ({self.boards_per_minute:.1f} boards/min)"
        )

    def abort_timing(self) -> str | None:
        """None when the abort fired exactly when the criteria say it should (or never fired
        and never had to) and stopped every dispatch after it; else what went wrong."""
        due = first_abort(self.criteria, [(b.finished_s, b.state) for b in self.boards])
        if due is None and self.abort is not None:
            return f"aborted at {self.abort.t_s:.1f} s although no criterion was met"
        if due is not None and self.abort is None:
            return f"{due.criterion} was met at {due.t_s:.1f} s, yet the rollout went on"
        if due is not None and self.abort is not None and due.executed != self.abort.executed:
            said, due_at = self.abort.executed, due.executed
            return f"aborted after {said} finished boards; the criterion was met after {due_at}"
        late = [
            b.board for b in self.boards if self.abort and b.dispatched_s and b.dispatched_s > self.abort.t_s
        ]
        if late:
            return f"{', '.join(late)} dispatched after the abort"
        return None


def abort_due(
    criteria: Iterable[AbortCriterion], states: Sequence[BoardState], t_s: float
) -> AbortEvent | None:
    """The first criterion met by these finished executions, if any."""
    executed = [s for s in states if s.executed]
    for criterion in criteria:
        if len(executed) < criterion.min_executed:
            continue
        failures = sum(1 for s in executed if s.counts_as(criterion.failure_type))
        if 100.0 * failures / len(executed) >= criterion.threshold_percent:
            return AbortEvent(t_s, criterion.describe(), len(executed), failures)
    return None


def first_abort(
    criteria: Sequence[AbortCriterion], finishes: Iterable[tuple[float | None, BoardState]]
) -> AbortEvent | None:
    """Replay the finishes in time order: where the criteria were first met."""
    done = sorted(((t, s) for t, s in finishes if t is not None and s.executed), key=lambda pair: pair[0])
    for index in range(len(done)):
        event = abort_due(criteria, [s for _, s in done[: index + 1]], done[index][0])
        if event is not None:
            return event
    return None
