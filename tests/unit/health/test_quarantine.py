"""Health checks in the results store, and when a board leaves and re-enters service."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rig.health.policy import apply_check, failures_in_a_row
from rig.health.records import HealthCheck, Quarantine, Step, StepResult, Trigger
from rig.results.model import OutcomeClass
from rig.results.store import ResultsStore
from rig.results.synthetic import make_outcome
from tests.unit.results.test_store import run_info


def check(passed: bool, at: str = "2026-12-05T01:00:00+00:00", board: str = "rack-1-b01") -> HealthCheck:
    steps = (StepResult(Step.READ_MAC, 0.4, True, "24:0a:c4:00:00:01"),)
    if not passed:
        steps += (StepResult(Step.FLASH_BASE, 3.0, False, "esptool write-flash failed: timed out"),)
    return HealthCheck(board, at, Trigger.BEFORE_RUN, steps, "run-1")


def test_a_check_says_which_step_failed_and_why() -> None:
    assert check(False).reason == "flash-base: esptool write-flash failed: timed out"
    assert check(False).passed is False
    assert check(True).reason == "read-mac 24:0a:c4:00:00:01"
    assert HealthCheck("b", "t", Trigger.ON_DEMAND, ()).passed is False  # nothing ran, nothing proven


def test_failures_in_a_row_count_back_to_the_last_pass() -> None:
    assert failures_in_a_row([check(False), check(True), check(False), check(False)]) == 2
    assert failures_in_a_row([check(True)]) == 0
    assert failures_in_a_row([]) == 0


def test_a_board_is_quarantined_after_n_failures_in_a_row_and_only_then(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.db")
    assert apply_check(store, check(False, "t1"), 3, may_return=False) is None
    assert apply_check(store, check(True, "t2"), 3, may_return=False) is None  # the run resets the count
    assert apply_check(store, check(False, "t3"), 3, may_return=False) is None
    assert apply_check(store, check(False, "t4"), 3, may_return=False) is None
    benched = apply_check(store, check(False, "t5"), 3, may_return=False)
    assert benched == Quarantine("rack-1-b01", "t5", "flash-base: esptool write-flash failed: timed out", 3)
    assert store.quarantined() == {"rack-1-b01": benched}
    # Further failures keep the first date; a run's passing check does not return the board.
    assert apply_check(store, check(False, "t6"), 3, may_return=False) == benched
    assert apply_check(store, check(True, "t7"), 3, may_return=False) == benched
    # `rig farm health` does.
    assert apply_check(store, check(True, "t8"), 3, may_return=True) is None
    assert store.quarantined() == {}
    assert [c.at for c in store.health_checks("rack-1-b01")] == [f"t{i}" for i in range(1, 9)]


def test_checks_round_trip_with_their_steps(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.db")
    store.record_health(check(False))
    store.record_health(check(True, board="rack-2-b01"))
    reader = ResultsStore(tmp_path / "results.db")
    assert reader.health_checks() == [check(False), check(True, board="rack-2-b01")]
    assert reader.health_checks("rack-2-b01") == [check(True, board="rack-2-b01")]


def test_a_missing_store_has_no_checks_and_no_quarantine(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "none.db")
    assert store.health_checks() == [] and store.quarantined() == {}
    assert not (tmp_path / "none.db").exists()


def test_a_version_4_database_gains_the_health_tables_and_keeps_its_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with ResultsStore(path) as store:
        store.start_run(run_info())
        store.record(make_outcome())
    with sqlite3.connect(path) as db:  # as ota-rig before board health left it
        db.execute("DROP TABLE quarantine")
        db.execute("DROP TABLE health_checks")
        db.execute("PRAGMA user_version = 4")
    reader = ResultsStore(path)
    assert reader.health_checks() == []
    assert reader.outcomes("run-1") == [make_outcome()]
    with ResultsStore(path) as store:
        store.record_health(check(True))
    assert reader.health_checks() == [check(True)]


def test_infra_per_board_counts_each_run_in_order_with_zeros(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.db")
    store.start_run(run_info("run-1"))
    store.start_run(run_info("run-2"))
    store.record(make_outcome(run_id="run-1", board="b1", outcome=OutcomeClass.INFRA))
    store.record(make_outcome(run_id="run-2", board="b1", outcome=OutcomeClass.INFRA))
    store.record(make_outcome(run_id="run-2", board="b1", outcome=OutcomeClass.INFRA))
    store.record(make_outcome(run_id="run-2", board="b2", outcome=OutcomeClass.PASS))
    assert store.infra_by_board(["run-1", "run-2"]) == {
        "b1": [("run-1", 1), ("run-2", 2)],
        "b2": [("run-1", 0), ("run-2", 0)],
    }
    assert store.infra_by_board([]) == {}


@pytest.mark.parametrize("failures", [1, 2])
def test_quarantine_after_one_is_immediate_and_two_waits(tmp_path: Path, failures: int) -> None:
    store = ResultsStore(tmp_path / "results.db")
    results = [apply_check(store, check(False, f"t{i}"), failures, may_return=False) for i in range(2)]
    assert [r is not None for r in results] == ([True, True] if failures == 1 else [False, True])
