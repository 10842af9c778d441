"""Analysis on small hand-made runs: worst-case matrix, the flake definition, trends."""

from __future__ import annotations

import math

from rig.report import analysis
from rig.results.model import OutcomeClass, RunInfo
from rig.results.synthetic import make_outcome

P, F, B = OutcomeClass.PASS, OutcomeClass.FAIL, OutcomeClass.BRICK
INF, S = OutcomeClass.INFRA, OutcomeClass.SKIP


def run(run_id: str) -> RunInfo:
    return RunInfo(run_id, f"2024-05-0{run_id[-1]}T02:00:00+00:00", "farm.yaml", ("a", "b"), 1, "0.1.0", None,
                   "rig run", None, "finished")  # fmt: skip


def test_matrix_cell_is_the_worst_repeat_and_links_its_artifacts() -> None:
    frame = analysis.outcome_frame(
        [
            make_outcome(scenario="s1", board="a", outcome=P, artifacts="artifacts/s1-a-1"),
            make_outcome(scenario="s1", board="a", outcome=F, artifacts="artifacts/s1-a-2"),
            make_outcome(scenario="s1", board="a", outcome=INF, artifacts="artifacts/s1-a-3"),
            make_outcome(scenario="s1", board="b", outcome=S),
            make_outcome(scenario="s1", board="b", outcome=P, artifacts="artifacts/s1-b-2"),
            make_outcome(scenario="s2", board="a", outcome=B, artifacts="artifacts/s2-a"),
            make_outcome(scenario="s2", board="a", outcome=F),
        ]
    )
    table = analysis.matrix(frame)
    assert table.loc["s1", "a"] == "FAIL"
    assert table.loc["s1", "b"] == "PASS"
    assert table.loc["s2", "a"] == "BRICK"
    assert not isinstance(table.loc["s2", "b"], str) and math.isnan(table.loc["s2", "b"])
    cells = analysis.worst_cells(frame).set_index(["scenario", "board"])
    assert cells.loc[("s1", "a"), "artifacts"] == "artifacts/s1-a-2"
    assert cells.loc[("s1", "a"), "repeats"] == 3
    expected = {"BRICK": 1, "FAIL": 2, "INFRA": 1, "INCONCLUSIVE": 0, "PASS": 2, "SKIP": 1}
    assert analysis.headline(frame) == expected


def test_flakes_need_a_pass_and_a_failure_of_the_same_firmware_on_the_same_board() -> None:
    frame = analysis.outcome_frame(
        [
            # flaky: same scenario, firmware and board both passed and failed
            make_outcome(run_id="r1", scenario="s1", board="a", outcome=P),
            make_outcome(run_id="r2", scenario="s1", board="a", outcome=B),
            # not flaky: consistently failing
            make_outcome(run_id="r1", scenario="s1", board="b", outcome=F),
            make_outcome(run_id="r2", scenario="s1", board="b", outcome=F),
            # not flaky: a fix in a new firmware is not a flake
            make_outcome(run_id="r1", scenario="s2", board="a", outcome=F, firmware_new="1.1.0"),
            make_outcome(run_id="r2", scenario="s2", board="a", outcome=P, firmware_new="1.2.0"),
            # not flaky: INFRA and SKIP say nothing about the firmware
            make_outcome(run_id="r1", scenario="s2", board="b", outcome=P),
            make_outcome(run_id="r2", scenario="s2", board="b", outcome=INF),
            make_outcome(run_id="r3", scenario="s2", board="b", outcome=S),
            # eligible and steady
            make_outcome(run_id="r1", scenario="s3", board="a", outcome=P),
            make_outcome(run_id="r2", scenario="s3", board="a", outcome=P),
        ]
    )
    flakes = analysis.flake_rates(frame)
    assert (flakes.flaky, flakes.eligible) == (1, 3)
    assert math.isclose(flakes.overall, 1 / 3)
    by_board = flakes.by_board.set_index("board")
    assert by_board.loc["a", "flaky"] == 1 and by_board.loc["a", "combinations"] == 2
    assert by_board.loc["b", "flaky"] == 0
    by_scenario = flakes.by_scenario.set_index("scenario")
    assert by_scenario.loc["s1", "flake_rate"] == 0.5
    assert flakes.by_scenario.iloc[0]["scenario"] == "s1"


def test_trend_counts_per_run_and_ignores_infra_in_the_pass_rate() -> None:
    runs = [run("r1"), run("r2"), run("r3")]
    frame = analysis.outcome_frame(
        [
            make_outcome(run_id="r1", outcome=P),
            make_outcome(run_id="r1", outcome=F),
            make_outcome(run_id="r2", outcome=P),
            make_outcome(run_id="r2", outcome=INF),
            make_outcome(run_id="r2", outcome=B),
            make_outcome(run_id="r2", outcome=P),
        ]
    )
    table = analysis.trend(frame, runs).set_index("run_id")
    assert list(table.index) == ["r1", "r2", "r3"]
    assert table.loc["r1", "pass_rate"] == 0.5
    assert math.isclose(table.loc["r2", "pass_rate"], 2 / 3)
    assert (table.loc["r2", "brick"], table.loc["r2", "infra"], table.loc["r2", "pass"]) == (1, 1, 2)
    assert math.isnan(table.loc["r3", "pass_rate"]) and table.loc["r3", "pass"] == 0


def test_cut_point_map_and_recover_times_keep_only_measured_rows() -> None:
    frame = analysis.outcome_frame(
        [
            make_outcome(scenario="cut", cut_point=0.7, outcome=B),
            make_outcome(scenario="cut", cut_point=0.2, outcome=P, time_to_recover_s=4.5),
            make_outcome(scenario="plain"),
        ]
    )
    cuts = analysis.cut_point_map(frame)
    assert list(cuts["cut_point"]) == [0.2, 0.7] and list(cuts["outcome"]) == ["PASS", "BRICK"]
    assert list(analysis.recover_times(frame)) == [4.5]
