"""The rollout itself: hand the update to the group at the policy's pace, add late joiners,
stop at the abort threshold. It knows nothing of HTTPS or MQTT: a `Fleet` provisions and
updates one board at a time, and the engine only decides who goes next and when.

Like an AWS IoT job with abort action CANCEL, an abort stops every dispatch not yet made
(those boards are NEVER_REACHED) and lets the executions in progress finish.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rig.errors import RigError
from rig.rollout.model import AbortEvent, Attempt, BoardRun, BoardState, RolloutResult, abort_due
from rig.rollout.plan import Assignment, RolloutPlan
from rig.rollout.policy import RolloutPolicy

POLL_S = 0.2


@dataclass(frozen=True)
class Execution:
    """What a fleet reports back for one board's update."""

    state: BoardState
    version: str = ""
    attempts: tuple[Attempt, ...] = ()
    detail: str = ""


class Fleet(Protocol):
    """The boards of a rollout, reached over one transport."""

    def provision(self, assignment: Assignment) -> None:
        """Flash the base firmware into a known state and wait until the board is online."""

    def update(self, assignment: Assignment, t0: float, deadline: float) -> Execution:
        """Offer the release until it takes, is refused, or `deadline` (monotonic) passes;
        attempt times are given from `t0`."""


Listener = Callable[[str, str], None]  # board, what happened


class Pace:
    """When the next dispatch may go: AWS `maximumPerMinute`, or `exponentialRate` capped by it."""

    def __init__(self, policy: RolloutPolicy) -> None:
        self._exponential = policy.exponential
        self._cap = policy.maximum_per_minute or math.inf
        self.per_minute = (
            min(self._exponential.base_per_minute, self._cap) if self._exponential else self._cap
        )
        self.next_at = 0.0
        self._counted = 0

    def dispatched(self, now: float) -> None:
        self.next_at = now + (60.0 / self.per_minute if math.isfinite(self.per_minute) else 0.0)
        if self._exponential is not None and not self._exponential.on_success:
            self._count()

    def succeeded(self) -> None:
        if self._exponential is not None and self._exponential.on_success:
            self._count()

    def _count(self) -> None:
        assert self._exponential is not None
        self._counted += 1
        if self._counted >= self._exponential.every:
            self._counted = 0
            self.per_minute = min(self.per_minute * self._exponential.factor, self._cap)


@dataclass
class _Course:
    """The rollout while it runs: who waits, who updates, who joins, what finished."""

    runs: dict[str, BoardRun]
    queue: deque[Assignment]
    joiners: deque[Assignment]
    updating: dict[Future[Execution], Assignment] = field(default_factory=dict)
    joining: dict[Future[None], Assignment] = field(default_factory=dict)
    finished: list[BoardState] = field(default_factory=list)
    dispatched: int = 0
    abort: AbortEvent | None = None

    @property
    def going(self) -> bool:
        return bool(self.queue or self.joiners or self.updating or self.joining)

    def note(self, board: str, **changes: Any) -> None:
        self.runs[board] = replace(self.runs[board], **changes)


class RolloutEngine:
    def __init__(
        self, policy: RolloutPolicy, plan: RolloutPlan, fleet: Fleet, *, listener: Listener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.policy = policy
        self.plan = plan
        self.fleet = fleet
        self._listener = listener or (lambda board, what: None)
        self._clock = clock

    def run(self) -> RolloutResult:
        plan = self.plan
        runs = {
            a.board: BoardRun(a.board, a.fault, a.late, BoardState.NEVER_REACHED) for a in plan.assignments
        }
        course = _Course(runs, deque(plan.initial), deque(plan.joiners))
        for a in plan.initial:
            course.note(a.board, joined_s=0.0)
        pace = Pace(self.policy)
        t0 = self._clock()
        with ThreadPoolExecutor(max_workers=len(plan.assignments), thread_name_prefix="rollout") as pool:
            while course.going:
                now = self._clock() - t0
                self._take_joined(course, now)
                self._take_finished(course, pace, now)
                if course.abort is not None:
                    course.queue.clear()  # NEVER_REACHED, as they already are
                    course.joiners.clear()
                self._admit_joiners(course, pool)
                if course.queue and now >= pace.next_at:
                    self._offer(course, pool, pace, t0, now)
                    continue
                self._wait(course, pace, now)
        boards = tuple(course.runs[a.board] for a in plan.assignments)
        return RolloutResult(
            name=self.policy.name, transport=self.policy.transport.value, release=self.policy.release,
            seed=plan.seed, wall_s=self._clock() - t0, boards=boards, criteria=self.policy.abort,
            abort=course.abort,
        )  # fmt: skip

    def _take_joined(self, course: _Course, now: float) -> None:
        """Re-provisioned joiners enter the queue, unless the rollout aborted meanwhile; one
        whose re-provisioning failed is INFRA (the rig's or the bench's fault)."""
        for future in [f for f in course.joining if f.done()]:
            a = course.joining.pop(future)
            try:
                future.result()
            except RigError as error:
                course.note(a.board, state=BoardState.INFRA, finished_s=now, detail=str(error))
                self._listener(a.board, f"INFRA: {error}")
                continue
            self._listener(a.board, "joined")
            if course.abort is None:
                course.note(a.board, joined_s=now)
                course.queue.append(a)

    def _take_finished(self, course: _Course, pace: Pace, now: float) -> None:
        """Record each finished execution, then judge the abort criteria on what finished."""
        for future in [f for f in course.updating if f.done()]:
            a = course.updating.pop(future)
            execution = _outcome(future)
            course.note(
                a.board, state=execution.state, finished_s=now, version=execution.version,
                attempts=execution.attempts, detail=execution.detail,
            )  # fmt: skip
            self._listener(a.board, execution.state.value)
            course.finished.append(execution.state)
            if execution.state is BoardState.SUCCEEDED:
                pace.succeeded()
            if course.abort is None:
                course.abort = abort_due(self.policy.abort, course.finished, now)
                if course.abort is not None:
                    self._listener("rollout", f"aborted: {course.abort.criterion}")

    def _admit_joiners(self, course: _Course, pool: ThreadPoolExecutor) -> None:
        """After `join_after` offers (or once the queue ran dry) the late joiners are re-provisioned."""
        if not course.joiners or (course.dispatched < self.policy.join_after and course.queue):
            return
        while course.joiners:
            a = course.joiners.popleft()
            self._listener(a.board, "joining the group (re-provisioned)")
            course.joining[pool.submit(self.fleet.provision, a)] = a

    def _offer(self, course: _Course, pool: ThreadPoolExecutor, pace: Pace, t0: float, now: float) -> None:
        a = course.queue.popleft()
        course.note(a.board, dispatched_s=now)
        self._listener(a.board, f"update offered ({a.fault})")
        course.updating[pool.submit(self.fleet.update, a, t0, t0 + now + self.policy.timeout_s)] = a
        course.dispatched += 1
        pace.dispatched(now)

    @staticmethod
    def _wait(course: _Course, pace: Pace, now: float) -> None:
        """Until something finishes or the pace allows the next offer."""
        until_next = min(POLL_S, max(0.0, pace.next_at - now)) if course.queue else POLL_S
        pending: list[Future[Any]] = [*course.updating, *course.joining]
        if pending:
            wait(pending, timeout=until_next, return_when=FIRST_COMPLETED)
        else:
            time.sleep(until_next)


def _outcome(future: Future[Execution]) -> Execution:
    try:
        return future.result()
    except RigError as error:
        return Execution(BoardState.INFRA, detail=str(error))
