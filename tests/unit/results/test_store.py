"""The results store: round trip, concurrent writers, resume keys and clear errors."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from rig.errors import InfraError, InputError
from rig.results import BootRow, FaultRow, OutcomeClass, ResultsStore, RunInfo
from rig.results.synthetic import make_outcome, make_rollout, make_sweep


def run_info(run_id: str = "run-1", started_at: str = "2024-05-01T02:00:00+00:00") -> RunInfo:
    return RunInfo(
        run_id=run_id,
        started_at=started_at,
        farm="farm.yaml",
        boards=("board-a", "board-b"),
        seed=7,
        rig_version="0.1.0",
        git_revision="abc123",
        command="rig run --farm farm.yaml",
        finished_at=None,
        status="running",
    )


def test_outcome_round_trip_keeps_every_field(tmp_path: Path) -> None:
    outcome = make_outcome(
        scenario="test_cut_during_download[0.5]",
        scenario_group="power_cut",
        cut_point=0.5,
        outcome=OutcomeClass.BRICK,
        time_to_recover_s=None,
        boots=(
            BootRow(0, "POWERON_RESET", "ota_0", "1.0.0", "app"),
            BootRow(1, "BROWNOUT", "-", "-", "none"),
        ),
        faults=(
            FaultRow("power_cut", "at 50%", "cut", 3.5, 1.25),
            FaultRow("restore", "after 2s", "on", None, 3.3),
        ),
    )
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info())
        store.record(outcome)
        store.record(make_outcome())
    reader = ResultsStore(tmp_path / "results.db")
    assert reader.outcomes("run-1") == [outcome, make_outcome()]
    assert reader.run("run-1") == run_info()


def test_finish_run_and_runs_listing(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info("old", "2024-05-01T02:00:00+00:00"))
        store.start_run(run_info("new", "2024-05-02T02:00:00+00:00"))
        store.finish_run("old", "interrupted")
        assert [r.run_id for r in store.runs()] == ["old", "new"]
        assert [r.run_id for r in store.runs(last=1)] == ["new"]
        old = store.run("old")
        assert old.status == "interrupted" and old.finished_at is not None
        with pytest.raises(InputError, match="run status must be one of"):
            store.finish_run("new", "exploded")  # type: ignore[arg-type]


def test_done_keys_leave_infra_to_be_rerun(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info())
        store.record(make_outcome(scenario="s1", outcome=OutcomeClass.PASS))
        store.record(make_outcome(scenario="s2", outcome=OutcomeClass.FAIL))
        store.record(make_outcome(scenario="s3", outcome=OutcomeClass.INFRA))
        store.record(make_outcome(scenario="s4", outcome=OutcomeClass.SKIP))
        store.record(make_outcome(scenario="s1", board="board-b", outcome=OutcomeClass.BRICK))
        assert store.done_keys("run-1") == {
            ("s1", "board-a"),
            ("s2", "board-a"),
            ("s4", "board-a"),
            ("s1", "board-b"),
        }


def test_unknown_run_names_the_latest_runs(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.db")
    store.start_run(run_info("20240501-020000"))
    with pytest.raises(InputError, match=r"no run 'nope' in .*results\.db \(last runs: 20240501-020000\)"):
        store.run("nope")
    with pytest.raises(InputError, match="no run 'nope'"):
        store.done_keys("nope")
    with pytest.raises(InputError, match="no run 'nope'"):
        store.finish_run("nope")
    with pytest.raises(InputError, match="run not started"):
        store.record(make_outcome(run_id="nope"))


def test_missing_database_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no results database at"):
        ResultsStore(tmp_path / "absent.db").runs()
    assert not (tmp_path / "absent.db").exists()


def test_garbage_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    garbage = b"this is not sqlite at all\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(InputError, match=r"not a readable results database.*left untouched"):
        ResultsStore(path).runs()
    with pytest.raises(InputError, match="not a readable results database"):
        ResultsStore(path).start_run(run_info())
    assert path.read_bytes() == garbage


def test_foreign_and_newer_databases_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(InputError, match="not an ota-rig results database"):
        ResultsStore(foreign).start_run(run_info())
    newer = tmp_path / "newer.db"
    ResultsStore(newer).start_run(run_info())
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(InputError, match=r"schema version 99.*upgrade ota-rig"):
        ResultsStore(newer).runs()


def test_locked_database_is_an_infra_error_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    ResultsStore(path).start_run(run_info())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(InfraError, match="locked by another process"):
            ResultsStore(path, lock_timeout_s=0.2).record(make_outcome())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = ResultsStore(path)
    assert store.outcomes("run-1") == []
    store.record(make_outcome())
    assert len(store.outcomes("run-1")) == 1


def _write_outcomes(path: str, board: str, count: int) -> None:
    with ResultsStore(path) as store:
        for index in range(count):
            store.record(make_outcome(scenario=f"test_{index}", board=board))


def test_two_processes_write_concurrently_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    ResultsStore(path).start_run(run_info())
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_outcomes, args=(str(path), b, 40)) for b in ("board-a", "board-b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    keys = ResultsStore(path).done_keys("run-1")
    assert len(ResultsStore(path).outcomes("run-1")) == 80
    assert keys == {(f"test_{i}", b) for i in range(40) for b in ("board-a", "board-b")}


def test_a_committed_outcome_survives_a_host_power_loss(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: every commit reaches the disk before `record` returns."""
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info())
        db = store._connect_writer()
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_rollout_round_trips_with_every_board_and_its_abort(tmp_path: Path) -> None:
    rollout = make_rollout()
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info())
        store.record_rollout("run-1", rollout)
        store.record_rollout("run-1", make_rollout("second"))
    assert ResultsStore(tmp_path / "results.db").rollouts("run-1") == [rollout, make_rollout("second")]


def test_a_version_2_database_gains_the_rollout_tables_and_keeps_its_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with ResultsStore(path) as store:
        store.start_run(run_info())
        store.record(make_outcome())
    with sqlite3.connect(path) as db:  # as ota-rig before rollouts left it
        db.execute("DROP TABLE rollout_boards")
        db.execute("DROP TABLE rollouts")
        db.execute("PRAGMA user_version = 2")
    reader = ResultsStore(path)
    assert reader.rollouts("run-1") == []
    assert reader.outcomes("run-1") == [make_outcome()]
    with ResultsStore(path) as store:
        store.record_rollout("run-1", make_rollout())
    assert reader.rollouts("run-1") == [make_rollout()]


def test_a_sweep_round_trips_with_every_point(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "results.db") as store:
        store.start_run(run_info())
        store.record_sweep("run-1", make_sweep())
        store.record_sweep("run-1", make_sweep("second"))
    assert ResultsStore(tmp_path / "results.db").sweeps("run-1") == [make_sweep(), make_sweep("second")]


def test_a_version_3_database_gains_the_sweep_tables_and_keeps_its_rollouts(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with ResultsStore(path) as store:
        store.start_run(run_info())
        store.record_rollout("run-1", make_rollout())
    with sqlite3.connect(path) as db:  # as ota-rig before sweeps left it
        db.execute("DROP TABLE sweep_points")
        db.execute("DROP TABLE sweeps")
        db.execute("PRAGMA user_version = 3")
    reader = ResultsStore(path)
    assert reader.sweeps("run-1") == []
    assert reader.rollouts("run-1") == [make_rollout()]
    with ResultsStore(path) as store:
        store.record_sweep("run-1", make_sweep())
    assert reader.sweeps("run-1") == [make_sweep()]
