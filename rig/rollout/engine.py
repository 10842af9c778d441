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
from dataclasses import dataclass, replace
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
        policy, plan = self.policy, self.plan
        pace = Pace(policy)
        runs = {
            a.board: BoardRun(a.board, a.fault, a.late, BoardState.NEVER_REACHED) for a in plan.assignments
        }
        queue = deque(plan.initial)
        joiners = deque(plan.joiners)
        for a in plan.initial:
            runs[a.board] = replace(runs[a.board], joined_s=0.0)
        updating: dict[Future[Execution], Assignment] = {}
        joining: dict[Future[None], Assignment] = {}
        finished: list[BoardState] = []
        dispatched = 0
        abort: AbortEvent | None = None
        t0 = self._clock()
        with ThreadPoolExecutor(max_workers=len(plan.assignments), thread_name_prefix="rollout") as pool:
            while queue or joiners or updating or joining:
                now = self._clock() - t0
                for joined in [f for f in joining if f.done()]:
                    a = joining.pop(joined)
                    if self._joined(joined, a, runs, now) and abort is None:
                        runs[a.board] = replace(runs[a.board], joined_s=now)
                        queue.append(a)
                for ended in [f for f in updating if f.done()]:
                    a = updating.pop(ended)
                    execution = _outcome(ended)
                    runs[a.board] = replace(
                        runs[a.board], state=execution.state, finished_s=now, version=execution.version,
                        attempts=execution.attempts, detail=execution.detail,
                    )  # fmt: skip
                    self._listener(a.board, execution.state.value)
                    finished.append(execution.state)
                    if execution.state is BoardState.SUCCEEDED:
                        pace.succeeded()
                    if abort is None:
                        abort = abort_due(policy.abort, finished, now)
                        if abort is not None:
                            self._listener("rollout", f"aborted: {abort.criterion}")
                if abort is not None:
                    queue.clear()  # NEVER_REACHED, as they already are
                    joiners.clear()
                if joiners and (dispatched >= policy.join_after or not queue):
                    while joiners:
                        a = joiners.popleft()
                        self._listener(a.board, "joining the group (re-provisioned)")
                        joining[pool.submit(self.fleet.provision, a)] = a
                if queue and now >= pace.next_at:
                    a = queue.popleft()
                    runs[a.board] = replace(runs[a.board], dispatched_s=now)
                    self._listener(a.board, f"update offered ({a.fault})")
                    updating[pool.submit(self.fleet.update, a, t0, t0 + now + policy.timeout_s)] = a
                    dispatched += 1
                    pace.dispatched(now)
                    continue
                until_next = min(POLL_S, max(0.0, pace.next_at - now)) if queue else POLL_S
                pending: list[Future[Any]] = [*updating, *joining]
                if pending:
                    wait(pending, timeout=until_next, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(until_next)
        order = [a.board for a in plan.assignments]
        return RolloutResult(
            name=policy.name, transport=policy.transport.value, release=policy.release, seed=plan.seed,
            wall_s=self._clock() - t0, boards=tuple(runs[b] for b in order), criteria=policy.abort,
            abort=abort,
        )  # fmt: skip

    def _joined(self, future: Future[None], a: Assignment, runs: dict[str, BoardRun], now: float) -> bool:
        """A joiner whose re-provisioning failed is INFRA (the rig's or the bench's fault)."""
        try:
            future.result()
        except RigError as error:
            runs[a.board] = replace(runs[a.board], state=BoardState.INFRA, finished_s=now, detail=str(error))
            self._listener(a.board, f"INFRA: {error}")
            return False
        self._listener(a.board, "joined")
        return True


def _outcome(future: Future[Execution]) -> Execution:
    try:
        return future.result()
    except RigError as error:
        return Execution(BoardState.INFRA, detail=str(error))
