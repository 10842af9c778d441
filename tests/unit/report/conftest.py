"""A small results database with two finished runs: one clean, one with a brick, fail, infra, skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.results import FaultRow, OutcomeClass, ResultsStore, RunInfo
from rig.results.synthetic import make_outcome

BOARDS = ("board-a", "board-b")
SCENARIOS = (
    ("test_three_generations", "happy_path"),
    ("test_bad_app_rolls_back", "rollback"),
    ("test_bad_signatures_rejected", "signature"),
    ("test_cut_during_download[0.5]", "power_cut"),
)


def run_info(run_id: str, day: int) -> RunInfo:
    return RunInfo(run_id, f"2024-05-{day:02d}T02:00:00+00:00", "farm.yaml", BOARDS, day, "0.1.0", "abc",
                   "rig run --farm farm.yaml", None, "running")  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "reports" / "results.db"
    with ResultsStore(path) as store:
        store.start_run(run_info("good", 1))
        for scenario, group in SCENARIOS:
            for board in BOARDS:
                cut = 0.5 if group == "power_cut" else None
                outcome = make_outcome(
                    run_id="good",
                    scenario=scenario,
                    scenario_group=group,
                    board=board,
                    cut_point=cut,
                    time_to_recover_s=6.0 if cut else None,
                    artifacts=f"artifacts/{group}-{board}",
                )
                store.record(outcome)
        store.finish_run("good")
        store.start_run(run_info("bad", 2))
        special = {
            ("test_cut_during_download[0.5]", "board-a"): (OutcomeClass.BRICK, "no app after 3 boots"),
            ("test_bad_app_rolls_back", "board-b"): (OutcomeClass.FAIL, "stayed on | new app"),
            ("test_bad_signatures_rejected", "board-b"): (OutcomeClass.INFRA, "serial port vanished"),
            ("test_three_generations", "board-b"): (OutcomeClass.SKIP, "not applicable"),
        }
        for scenario, group in SCENARIOS:
            for board in BOARDS:
                cls, message = special.get((scenario, board), (OutcomeClass.PASS, "ok"))
                outcome = make_outcome(
                    run_id="bad",
                    scenario=scenario,
                    scenario_group=group,
                    board=board,
                    outcome=cls,
                    message=message,
                    cut_point=0.5 if group == "power_cut" else None,
                    faults=(FaultRow("power_cut", "at 50%", "cut", 8.25, 2.0),),
                    artifacts=f"artifacts/{group}-{board}",
                )
                store.record(outcome)
        store.finish_run("bad")
    return path
