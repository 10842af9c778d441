"""The rollout engine against a fake fleet: pace, abort threshold, late joiners, timeouts."""

from __future__ import annotations

import threading
import time

import pytest

from rig.errors import InfraError
from rig.results.model import OutcomeClass
from rig.rollout.engine import Execution, Pace, RolloutEngine
from rig.rollout.model import Attempt, BoardState
from rig.rollout.plan import Assignment, RolloutPlan
from rig.rollout.policy import RolloutPolicy, parse_rollout_policy
from rig.yamlfile import parse_yaml

UPDATE_S = 0.3


def policy(text: str) -> RolloutPolicy:
    return parse_rollout_policy(parse_yaml("name: t\n" + text, "t.yaml"))


class FakeFleet:
    """Boards whose update takes UPDATE_S; boards with a firmware swap fail it."""

    def __init__(self, fail_with: BoardState = BoardState.FAILED) -> None:
        self.fail_with = fail_with
        self.provisioned: list[tuple[str, float]] = []
        self.updated: list[str] = []
        self.deadlines: dict[str, float] = {}
        self._lock = threading.Lock()

    def provision(self, assignment: Assignment) -> None:
        time.sleep(0.05)
        with self._lock:
            self.provisioned.append((assignment.board, time.monotonic()))

    def update(self, assignment: Assignment, t0: float, deadline: float) -> Execution:
        start = time.monotonic()
        with self._lock:
            self.updated.append(assignment.board)
            self.deadlines[assignment.board] = deadline - start
        if assignment.fault == "infra":
            raise InfraError(f"{assignment.board}: serial port vanished")
        time.sleep(UPDATE_S)
        state = BoardState.SUCCEEDED if assignment.firmware is None else self.fail_with
        verdict = OutcomeClass.PASS if state is BoardState.SUCCEEDED else OutcomeClass.FAIL
        attempt = Attempt(start - t0, time.monotonic() - t0, "none", verdict, "")
        return Execution(state, "1.0.1" if state is BoardState.SUCCEEDED else "1.0.0", (attempt,))


def plan(broken: set[str], count: int = 8, late: set[str] = frozenset()) -> RolloutPlan:  # type: ignore[assignment]
    boards = [f"b{i}" for i in range(1, count + 1)]
    made = [Assignment(b, firmware="corrupt-write" if b in broken else None, late=b in late) for b in boards]
    return RolloutPlan(tuple([a for a in made if not a.late] + [a for a in made if a.late]), seed=0)


def test_a_broken_model_on_3_of_8_trips_25_percent_after_the_minimum_and_stops_the_rest() -> None:
    rules = policy(
        "rollout: {maximum_per_minute: 300}\n"
        "abort: [{failure_type: FAILED, min_number_of_executed_things: 4, threshold_percentage: 25}]\n"
    )
    fleet = FakeFleet()
    result = RolloutEngine(rules, plan({"b1", "b3", "b5"}), fleet).run()
    assert result.abort is not None
    # b1 failed first (100 % of 1), but nothing is judged before 4 boards have finished.
    assert (result.abort.executed, result.abort.failures) == (4, 2)
    assert result.abort_timing() is None
    reached = [b for b in result.boards if b.dispatched_s is not None]
    never = [b for b in result.boards if b.dispatched_s is None]
    assert never, "the abort came after every board had been offered the update"
    assert all(b.state is BoardState.NEVER_REACHED and b.verdict is OutcomeClass.SKIP for b in never)
    assert sorted(fleet.updated) == sorted(b.board for b in reached)
    assert all(b.dispatched_s is not None and b.dispatched_s <= result.abort.t_s for b in reached)
    assert all(b.state is not BoardState.NEVER_REACHED for b in reached)  # in flight: let finish


def test_a_late_joiner_is_provisioned_mid_rollout_and_gets_the_update() -> None:
    rules = policy("rollout: {maximum_per_minute: 600}\nlate_joiners: {boards: 1, after_dispatched: 2}\n")
    fleet = FakeFleet()
    t0 = time.monotonic()
    result = RolloutEngine(rules, plan(set(), count=4, late={"b4"}), fleet).run()
    joiner = next(b for b in result.boards if b.board == "b4")
    assert joiner.late and joiner.state is BoardState.SUCCEEDED
    assert joiner.joined_s is not None and joiner.joined_s > 0
    assert joiner.dispatched_s is not None and joiner.dispatched_s >= joiner.joined_s
    assert [name for name, _ in fleet.provisioned] == ["b4"]
    assert fleet.provisioned[0][1] - t0 >= 0.1  # after two boards went, not before the rollout
    assert result.count(BoardState.SUCCEEDED) == 4 and result.abort is None


def test_a_joiner_that_would_join_after_the_abort_is_never_reached() -> None:
    rules = policy(
        "rollout: {maximum_per_minute: 60}\n"
        "abort: [{failure_type: ALL, min_number_of_executed_things: 1, threshold_percentage: 50}]\n"
        "late_joiners: {boards: 1, after_dispatched: 2}\n"
    )
    result = RolloutEngine(rules, plan({"b1"}, count=3, late={"b3"}), FakeFleet()).run()
    assert result.abort is not None
    joiner = next(b for b in result.boards if b.board == "b3")
    assert joiner.state is BoardState.NEVER_REACHED and joiner.dispatched_s is None


def test_every_board_gets_the_policy_timeout_from_its_own_dispatch() -> None:
    rules = policy("timeout_per_board: 42s\n")
    fleet = FakeFleet()
    RolloutEngine(rules, plan(set(), count=3), fleet).run()
    assert all(abs(d - 42.0) < 0.2 for d in fleet.deadlines.values())


def test_a_lost_board_is_infra_and_counts_towards_no_abort() -> None:
    rules = policy(
        "abort: [{failure_type: ALL, min_number_of_executed_things: 1, threshold_percentage: 1}]\n"
    )
    boards = (Assignment("b1", cut=None), Assignment("b2"))
    infra_plan = RolloutPlan((boards[0], boards[1]), seed=0)
    fleet = FakeFleet()
    fleet.update = _infra_on("b1", fleet.update)  # type: ignore[method-assign]
    result = RolloutEngine(rules, infra_plan, fleet).run()
    states = {b.board: b.state for b in result.boards}
    assert states == {"b1": BoardState.INFRA, "b2": BoardState.SUCCEEDED}
    assert result.abort is None and result.success_rate == 1.0
    assert "serial port vanished" in result.boards[0].detail


def _infra_on(board: str, update):  # type: ignore[no-untyped-def]
    def wrapped(assignment: Assignment, t0: float, deadline: float) -> Execution:
        if assignment.board == board:
            raise InfraError(f"{board}: serial port vanished")
        return update(assignment, t0, deadline)  # type: ignore[no-any-return]

    return wrapped


@pytest.mark.parametrize(
    ("text", "gaps"),
    [
        ("rollout: {maximum_per_minute: 30}\n", [2.0, 2.0, 2.0, 2.0, 2.0]),
        (
            "rollout: {maximum_per_minute: 200, exponential_rate: {base_rate_per_minute: 60,"
            " increment_factor: 2, rate_increase_criteria: {number_of_notified_things: 2}}}\n",
            [1.0, 1.0, 0.5, 0.5, 0.3],
        ),
        ("timeout_per_board: 1m\n", [0.0] * 5),
    ],
)
def test_the_pace_follows_the_aws_rollout_config(text: str, gaps: list[float]) -> None:
    pace = Pace(policy(text))
    seen = []
    for _ in gaps:
        pace.dispatched(0.0)
        seen.append(round(pace.next_at, 3))
    assert seen == gaps


def test_an_exponential_rate_on_successes_only_rises_with_them() -> None:
    pace = Pace(policy(
        "rollout: {exponential_rate: {base_rate_per_minute: 60, increment_factor: 3,"
        " rate_increase_criteria: {number_of_succeeded_things: 1}}}\n"
    ))  # fmt: skip
    pace.dispatched(0.0)
    pace.dispatched(0.0)
    assert pace.per_minute == 60
    pace.succeeded()
    assert pace.per_minute == 180
