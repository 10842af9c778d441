"""Rollout results: what counts as which failure, the success rate, and the abort-timing check."""

from __future__ import annotations

import pytest

from rig.rollout.model import AbortEvent, BoardRun, BoardState, RolloutResult, first_abort
from rig.rollout.policy import AbortCriterion, FailureType

QUARTER = AbortCriterion(FailureType.ALL, 4, 25.0)


@pytest.mark.parametrize(
    ("state", "counts"),
    [
        (BoardState.SUCCEEDED, set()),
        (BoardState.FAILED, {FailureType.FAILED, FailureType.ALL}),
        (BoardState.ROLLED_BACK, {FailureType.FAILED, FailureType.ALL}),
        (BoardState.BRICKED, {FailureType.FAILED, FailureType.ALL}),
        (BoardState.REJECTED, {FailureType.REJECTED, FailureType.ALL}),
        (BoardState.TIMED_OUT, {FailureType.TIMED_OUT, FailureType.ALL}),
        (BoardState.INFRA, set()),
        (BoardState.NEVER_REACHED, set()),
    ],
)
def test_each_end_state_counts_as_the_aws_failure_types_it_belongs_to(
    state: BoardState, counts: set[FailureType]
) -> None:
    assert {f for f in FailureType if state.counts_as(f)} == counts


def board(name: str, state: BoardState, finished: float | None, dispatched: float | None = 0.0) -> BoardRun:
    return BoardRun(name, "none", False, state, 0.0, dispatched, finished)


def rollout(boards: list[BoardRun], abort: AbortEvent | None) -> RolloutResult:
    return RolloutResult("r", "https", "next", 0, 10.0, tuple(boards), (QUARTER,), abort)


FOUR = [
    board("b1", BoardState.FAILED, 1.0),
    board("b2", BoardState.SUCCEEDED, 2.0),
    board("b3", BoardState.SUCCEEDED, 3.0),
    board("b4", BoardState.SUCCEEDED, 4.0),
]


def test_the_abort_is_due_on_the_finish_that_meets_the_minimum() -> None:
    due = first_abort((QUARTER,), [(b.finished_s, b.state) for b in FOUR])
    assert due is not None and (due.t_s, due.executed, due.failures) == (4.0, 4, 1)


def test_abort_timing_accepts_the_right_moment_and_names_every_wrong_one() -> None:
    on_time = AbortEvent(4.0, QUARTER.describe(), 4, 1)
    assert rollout(FOUR, on_time).abort_timing() is None
    assert "yet the rollout went on" in (rollout(FOUR, None).abort_timing() or "")
    late = AbortEvent(5.0, QUARTER.describe(), 5, 1)
    assert "the criterion was met after 4" in (rollout([*FOUR, board("b5", BoardState.SUCCEEDED, 5.0)], late)
                                               .abort_timing() or "")  # fmt: skip
    healthy = [board(b.board, BoardState.SUCCEEDED, b.finished_s) for b in FOUR]
    assert "no criterion was met" in (rollout(healthy, on_time).abort_timing() or "")
    after = [*FOUR, board("b5", BoardState.SUCCEEDED, 6.0, dispatched=4.5)]
    assert "b5 dispatched after the abort" in (rollout(after, on_time).abort_timing() or "")


def test_infra_boards_are_left_out_of_the_success_rate_and_the_abort() -> None:
    boards = [
        *FOUR[1:],
        board("b5", BoardState.INFRA, 1.0),
        board("b6", BoardState.NEVER_REACHED, None, None),
    ]
    result = rollout(boards, None)
    assert result.success_rate == pytest.approx(3 / 4)  # b5 INFRA: no verdict either way
    assert result.abort_timing() is None
    assert result.boards_per_minute == pytest.approx(18.0)
