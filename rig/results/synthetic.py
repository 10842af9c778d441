"""Synthetic outcome histories: deterministic, realistic-looking runs for benchmarks and demos.

`rig report` has to stay fast on a month of nightly runs across a large farm; this builds
such a history (with bricks, infra failures and a flaky board) without any hardware.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from rig.results.model import BootRow, FaultRow, Outcome, OutcomeClass, RunInfo
from rig.rollout.model import AbortEvent, Attempt, BoardRun, BoardState, RolloutResult
from rig.rollout.policy import AbortCriterion, FailureType
from rig.sweep.judge import Band, Judged, Problem
from rig.sweep.model import PointVerdict, SweepMode, SweepResult, SweptPoint
from rig.sweep.records import Image

SCENARIOS: tuple[tuple[str, str], ...] = (
    ("test_happy_path", "happy_path"),
    ("test_power_cut_during_download[0.1]", "power_cut"),
    ("test_power_cut_during_download[0.5]", "power_cut"),
    ("test_power_cut_during_download[0.9]", "power_cut"),
    ("test_power_cut_at_random_point", "power_cut"),
    ("test_network_drop_mid_image", "network"),
    ("test_network_stall_then_resume", "network"),
    ("test_rollback_on_crash", "rollback"),
    ("test_rollback_on_failed_self_test", "rollback"),
    ("test_unsigned_image_refused", "signature"),
    ("test_truncated_image_refused", "image"),
)


def make_outcome(**fields: object) -> Outcome:
    """A passing happy-path outcome with `fields` overridden (hand-made test data)."""
    base = Outcome(
        run_id="run-1",
        scenario="test_three_generations",
        scenario_group="happy_path",
        board="board-a",
        firmware_old="1.0.0",
        firmware_new="1.1.0",
        image="app_v1.1.0.bin",
        fault="",
        cut_point=None,
        phase="done",
        outcome=OutcomeClass.PASS,
        expected="boots 1.1.0 from ota_1",
        observed="boots 1.1.0 from ota_1",
        message="update applied",
        duration_s=42.0,
        time_to_recover_s=None,
        bytes_served=1_048_576,
        boots=(
            BootRow(0, "POWERON_RESET", "ota_0", "1.0.0", "app"),
            BootRow(1, "SW_CPU_RESET", "ota_1", "1.1.0", "app"),
        ),
        faults=(),
        artifacts="artifacts/test_happy_path-board-a",
        started_at="2024-05-01T02:00:00+00:00",
        finished_at="2024-05-01T02:00:42+00:00",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HistoryShape:
    """How big the history is: `outcomes` rows over `runs` nightly runs on `boards` boards."""

    outcomes: int = 10_000
    runs: int = 30
    boards: int = 32
    seed: int = 1


def synthetic_history(shape: HistoryShape) -> Iterator[tuple[RunInfo, list[Outcome]]]:
    """Yield (run, outcomes) night by night; the last run stops where `outcomes` runs out."""
    rng = random.Random(shape.seed)
    boards = tuple(f"esp32-{i:02d}" for i in range(shape.boards))
    flaky_board = boards[-1]
    start = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    remaining = shape.outcomes
    for night in range(shape.runs):
        if remaining <= 0:
            return
        when = start + timedelta(days=night)
        run_id = when.strftime("%Y%m%d-%H%M%S")
        firmware_new = f"1.{night // 7 + 1}.0"
        outcomes: list[Outcome] = []
        for scenario, group in SCENARIOS:
            for board in boards:
                if remaining <= 0:
                    break
                remaining -= 1
                outcomes.append(
                    _outcome(rng, run_id, when, scenario, group, board, firmware_new, board == flaky_board)
                )
        info = RunInfo(
            run_id=run_id,
            started_at=when.isoformat(),
            farm="farm-nightly.yaml",
            boards=boards,
            seed=shape.seed + night,
            rig_version="0.1.0",
            git_revision=None,
            command="rig run --farm farm-nightly.yaml",
            finished_at=(when + timedelta(hours=3)).isoformat() if remaining > 0 else None,
            status="finished" if remaining > 0 else "interrupted",
        )
        yield info, outcomes


def _outcome(
    rng: random.Random,
    run_id: str,
    when: datetime,
    scenario: str,
    group: str,
    board: str,
    firmware_new: str,
    flaky: bool,
) -> Outcome:
    roll = rng.random()
    cls = OutcomeClass.PASS
    if roll < 0.01:
        cls = OutcomeClass.INFRA
    elif roll < 0.02 or (flaky and roll < 0.3):
        cls = OutcomeClass.FAIL
    elif roll < 0.025 and group == "power_cut":
        cls = OutcomeClass.BRICK
    elif roll > 0.99 and group == "signature":
        cls = OutcomeClass.SKIP
    cut_point = round(rng.random(), 3) if group in ("power_cut", "network") else None
    recover = round(rng.uniform(2.0, 30.0), 2) if cut_point is not None and cls is OutcomeClass.PASS else None
    folder = f"artifacts/{scenario}-{board}".replace("[", "_").replace("]", "")
    faults = (
        (FaultRow("power_cut" if group == "power_cut" else "drop", f"at {cut_point:.0%}", "cut", 12.5, 3.0),)
        if cut_point is not None
        else ()
    )
    return make_outcome(
        run_id=run_id,
        scenario=scenario,
        scenario_group=group,
        board=board,
        firmware_new=firmware_new,
        image=f"app_v{firmware_new}.bin",
        fault=f"cut at {cut_point:.0%} of image" if cut_point is not None else "",
        cut_point=cut_point,
        outcome=cls,
        observed="boots 1.0.0 from ota_0" if cls.is_firmware_failure else "boots as expected",
        message=f"{cls.value.lower()}: synthetic",
        duration_s=round(rng.uniform(20.0, 120.0), 1),
        time_to_recover_s=recover,
        faults=faults,
        artifacts=folder,
        started_at=when.isoformat(),
        finished_at=(when + timedelta(minutes=2)).isoformat(),
    )


def make_rollout(name: str = "staged") -> RolloutResult:
    """An 8-board rollout that aborted: a late joiner, two failures, two boards never reached."""
    criterion = AbortCriterion(FailureType.FAILED, 4, 25.0)

    def run(board: str, state: BoardState, dispatched: float | None, finished: float | None,
            verdict: OutcomeClass = OutcomeClass.PASS, *, late: bool = False) -> BoardRun:  # fmt: skip
        attempts = () if dispatched is None or finished is None else (
            Attempt(dispatched, finished, "none", verdict, f"{board}: {state.value}"),
        )  # fmt: skip
        version = "1.0.1" if state is BoardState.SUCCEEDED else "1.0.0"
        joined = 3.0 if late else 0.0
        return BoardRun(board, "none", late, state, joined, dispatched, finished, version, attempts)

    boards = (
        run("b1", BoardState.SUCCEEDED, 0.0, 2.1),
        run("b2", BoardState.FAILED, 1.0, 2.9, OutcomeClass.FAIL),
        run("b3", BoardState.SUCCEEDED, 2.0, 4.0),
        run("b4", BoardState.ROLLED_BACK, 3.0, 5.5, OutcomeClass.FAIL),
        run("b5", BoardState.SUCCEEDED, 4.0, 6.2),
        run("b6", BoardState.NEVER_REACHED, None, None, OutcomeClass.SKIP),
        run("b7", BoardState.NEVER_REACHED, None, None, OutcomeClass.SKIP),
        run("b8", BoardState.SUCCEEDED, 3.5, 5.6, late=True),
    )
    abort = AbortEvent(5.5, criterion.describe(), 4, 2)
    return RolloutResult(name, "https", "next", 7, 6.4, boards, (criterion,), abort)


def make_sweep(name: str = "https") -> SweepResult:
    """A replayed sweep of 40 operations with one unsafe window of three points in the otadata switch."""
    bands = [Band.PREPARE] * 2 + [Band.DOWNLOAD] * 30 + [Band.OTADATA] * 4
    bands += [Band.FIRST_BOOT] * 2 + [Band.CONFIRM] * 2
    unsafe = {(33, None), (33, 0.5), (34, None)}
    problem = ((Problem.WRONG_IMAGE, "runs the new image; otadata at the cut selects the old one"),)
    points = []
    for op, band in enumerate([*bands, Band.END]):
        for torn in (None, 0.5) if band is not Band.END else (None,):
            bad = (op, torn) in unsafe
            settled = Image.NEW if op >= 34 else Image.OLD
            expected = frozenset({Image.OLD})
            judged = Judged(op, torn, op, band, expected, settled, Image.NEW, problem if bad else ())
            repro = f"rig repro --sweep reports/run-1/sweep --op {op}" if bad else ""
            verdict = PointVerdict.UNSAFE if bad else PointVerdict.SAFE
            points.append(SweptPoint(judged, verdict, twin_repro=repro))
    return SweepResult(
        name=name, mode=SweepMode.REPLAY, board="b1", firmware="switch-before-verify", update="next",
        accepted=True, seconds=0.25, runs=6, folder="reports/run-1/sweep", points=tuple(points),
        first_unsafe_log="I (56) rig_agent: ready version=1.0.1 running=ota_1 state=PENDING_VERIFY\n",
    )  # fmt: skip
