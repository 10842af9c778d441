"""`rig rollout` end to end: a throwaway virtual lab of 6–8 boards, one update to all of them,
the shipped rollout scenarios (scenarios/rollouts/), judged per board and as a rollout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rig.cli import main
from rig.resources import scenarios_dir
from rig.results.model import OutcomeClass
from rig.results.store import ResultsStore
from rig.rollout.model import BoardState, RolloutResult

pytestmark = pytest.mark.timeout(600)


def roll(reports: Path, scenario: str, boards: int) -> tuple[int, RolloutResult]:
    policy = scenarios_dir() / "rollouts" / f"{scenario}.yaml"
    code = main(
        ["rollout", "--policy", str(policy), "--lab-boards", str(boards), "--report-dir", str(reports)]
    )
    store = ResultsStore(reports / "results.db")
    (rollout,) = store.rollouts(store.latest_run().run_id)
    return code, rollout


def offered_updates(serial_log: Path) -> int:
    return len(re.findall(r"rig_agent: ota begin ", serial_log.read_text(encoding="utf-8", errors="replace")))


def test_a_broken_model_on_3_of_8_boards_trips_25_percent_after_the_minimum_and_stops_the_rest(
    tmp_path: Path,
) -> None:
    code, rollout = roll(tmp_path, "broken-release-aborts", 8)
    assert code == 1  # aborted
    states = {b.board: b.state for b in rollout.boards}
    assert rollout.abort is not None and rollout.abort.executed == 4  # the policy's minimum
    assert rollout.abort_timing() is None
    broken = {b.board for b in rollout.boards if b.fault == "firmware corrupt-write"}
    assert len(broken) == 3
    first = min((b for b in rollout.boards if b.finished_s is not None), key=lambda b: b.finished_s or 0)
    assert first.board in broken and first.state is BoardState.FAILED  # one failure in, no abort yet
    never = [b for b in rollout.boards if b.state is BoardState.NEVER_REACHED]
    assert len(never) >= 3
    run = next(p for p in tmp_path.iterdir() if p.name.startswith("rollout-"))
    for board in never:  # not offered, so nothing written: still on the old firmware
        assert board.dispatched_s is None and offered_updates(run / board.board / "serial.log") == 0
    for board in rollout.boards:
        if board.state is BoardState.SUCCEEDED:
            assert board.board not in broken and board.version == "1.0.1"
        elif board.board in broken and board.state is not BoardState.NEVER_REACHED:
            assert states[board.board] is BoardState.FAILED and board.verdict is OutcomeClass.FAIL
    html = (run / "index.html").read_text(encoding="utf-8")
    assert "Rollout broken-release-aborts" in html and 'alt="rollout broken-release-aborts timeline"' in html


@pytest.mark.parametrize("scenario", ["staged", "staged-mqtt"])
def test_a_staged_rollout_updates_every_healthy_board_through_its_fault_and_the_late_joiner(
    tmp_path: Path, scenario: str
) -> None:
    code, rollout = roll(tmp_path, scenario, 6)
    assert code == 1  # the deliberately broken board is a firmware failure
    assert rollout.abort is None and rollout.abort_timing() is None
    by_fault = {b.fault.split("@")[0].split(" ")[0]: b for b in rollout.boards}
    broken = by_fault["firmware"]
    assert (broken.state, broken.verdict) == (BoardState.FAILED, OutcomeClass.FAIL)
    healthy = [b for b in rollout.boards if b is not broken]
    assert all(b.state is BoardState.SUCCEEDED and b.verdict is OutcomeClass.PASS for b in healthy), [
        (b.board, b.fault, b.state, b.detail) for b in healthy
    ]
    (joiner,) = [b for b in rollout.boards if b.late]
    assert joiner.joined_s is not None and joiner.joined_s > 0
    assert joiner.dispatched_s is not None and joiner.dispatched_s >= joiner.joined_s
    cut = [b for b in healthy if b.fault.startswith("power@")]
    assert len(cut) == 2 and all(b.attempts[0].cut == b.fault for b in cut)
    if scenario == "staged":  # HTTPS: a download cut by the power is offered again
        assert all(len(b.attempts) == 2 and b.attempts[1].cut == "none" for b in cut)
    else:  # MQTT: the job survives the cut and the device resumes it by itself
        assert all(len(b.attempts) == 1 for b in cut)


def test_a_board_on_a_stream_that_never_answers_times_out_and_the_timed_out_criterion_aborts(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "stalled.yaml"
    policy.write_text(
        "name: stalled\ntransport: mqtt\ntimeout_per_board: 3s\n"
        "abort: [{failure_type: TIMED_OUT, min_number_of_executed_things: 2, threshold_percentage: 50}]\n"
        "faults: {seed: 1, spread: [{boards: 1, cut: 'mqtt@block=2:stall=forever'}]}\n",
        encoding="utf-8",
    )
    code = main(["rollout", "--policy", str(policy), "--lab-boards", "2", "--report-dir", str(tmp_path)])
    store = ResultsStore(tmp_path / "results.db")
    (rollout,) = store.rollouts(store.latest_run().run_id)
    assert code == 1
    stalled = next(b for b in rollout.boards if b.fault.startswith("mqtt@"))
    other = next(b for b in rollout.boards if b is not stalled)
    assert stalled.state is BoardState.TIMED_OUT and stalled.detail.startswith("job TIMED_OUT")
    # The fleet withdrew the job at its timeout: the device, told of no job, keeps its old firmware.
    assert stalled.version == "1.0.0" and stalled.verdict is OutcomeClass.PASS
    assert other.state is BoardState.SUCCEEDED
    assert rollout.abort is not None and rollout.abort.criterion.startswith("TIMED_OUT >= 50 %")
    assert rollout.abort_timing() is None


def test_a_rollout_on_a_farm_file_takes_the_boards_it_names(lab_farm: Path, tmp_path: Path) -> None:
    """`--farm` (here a running lab's farm file, as a real bench's would be) with `--boards`."""
    policy = tmp_path / "two.yaml"
    policy.write_text("name: two\nrollout: {maximum_per_minute: 120}\n", encoding="utf-8")
    reports = tmp_path / "reports"
    argv = ["rollout", "--policy", str(policy), "--farm", str(lab_farm), "--boards", "b2,b1"]
    assert main([*argv, "--report-dir", str(reports)]) == 0
    store = ResultsStore(reports / "results.db")
    (rollout,) = store.rollouts(store.latest_run().run_id)
    assert [b.board for b in rollout.boards] == ["b2", "b1"]  # offered in the order named
    assert all(b.state is BoardState.SUCCEEDED and b.verdict is OutcomeClass.PASS for b in rollout.boards)
    assert rollout.boards[1].dispatched_s is not None and rollout.boards[1].dispatched_s >= 0.5
