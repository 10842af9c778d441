"""The release gate on a passing run, a failing run and invalid policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.catalog import load_catalog
from rig.cli import main
from rig.errors import InputError
from rig.gate import Verdict, evaluate, load_policy
from rig.results import OutcomeClass, ResultsStore
from rig.results.synthetic import make_outcome, make_rollout, make_sweep

from .conftest import BOARDS, run_info

POLICY = """
bricks: 0
max_infra: 0
min_boards: 2
groups: {rollback: all_pass, signature: all_pass}
flake_rate_max: 0.02
flake_window: 1
required_scenarios: [test_three_generations, test_cut_during_download]
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def test_clean_run_passes_every_rule(db: Path, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--policy", str(policy), "good", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "gate: PASS" in out and "FAIL" not in out


def test_bad_run_is_blocked_with_infra_labelled_as_infrastructure(db: Path, policy: Path) -> None:
    store = ResultsStore(db)
    verdicts = {r.rule: r.verdict for r in evaluate(load_policy(policy), store, store.run("bad"))}
    assert verdicts == {
        "run finished": Verdict.PASS,
        "bricks": Verdict.FAIL,
        "infra failures": Verdict.INFRA,
        "boards with results": Verdict.PASS,
        "group rollback": Verdict.FAIL,
        "group signature": Verdict.INFRA,
        "flake rate": Verdict.PASS,
        "scenario test_three_generations": Verdict.PASS,
        "scenario test_cut_during_download": Verdict.FAIL,
    }


def test_blocked_gate_exits_1_and_defaults_to_the_latest_run(
    db: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "--policy", str(policy), "--db", str(db)]) == 1
    captured = capsys.readouterr()
    assert "release gate: run bad" in captured.out
    assert "release blocked by run bad: 5 rule(s) failed, 2 of them infrastructure" in captured.err


def test_flakes_over_the_window_block_the_release(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "flaky.yaml"
    path.write_text("flake_rate_max: 0.1\nflake_window: 2\n", encoding="utf-8")
    store = ResultsStore(db)
    # 8 (scenario, board) pairs; the INFRA and SKIP ones have one decisive result only
    [result] = evaluate(load_policy(path), store, store.run("bad"))[1:]
    assert result.verdict is Verdict.FAIL and result.value == "33.33% (2/6 over 2 runs)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bricks: -1\n", ":1: bricks: input should be greater than or equal to 0, got -1"),
        ("brick: 0\n", ":1: brick: unknown key"),
        (
            "groups: {rollback: sometimes}\n",
            ":1: groups.rollback: must be 'all_pass' or a pass rate between 0 and 1",
        ),
        ("flake_rate_max: 2\n", ":1: flake_rate_max: input should be less than or equal to 1, got 2"),
        ("flake_window: 0\n", ":1: flake_window: input should be greater than or equal to 1, got 0"),
        ("bricks: 0\nmax_fails: 0\nbricks: 1\n", ":3: bricks: given twice (first on line 1)"),
        ("required_scenarios: test_a\n", ":1: required_scenarios: expected a list"),
        ("- bricks\n", ":1: a policy must be a mapping"),
        ("bricks: [\n", ":2: expected the node content"),
        (
            "required_scenarios:\n  - test_bad_app_rolls_back\n  - test_happy_path\n",
            ":3: required_scenarios[1]: 'test_happy_path' is not a scenario of the suite (closest: ",
        ),
        (
            "groups: {rolback: all_pass}\n",
            ":1: groups.rolback: 'rolback' is not a scenario group (closest: rollback",
        ),
    ],
)
def test_invalid_policy_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}{message}") and "\n" not in str(caught.value)


def test_invalid_policy_exits_2(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("min_boards: two\n", encoding="utf-8")
    assert main(["gate", "--policy", str(path), "--db", str(db)]) == 2
    assert "gate.yaml:1: min_boards: expected a whole number, got 'two'" in capsys.readouterr().err


def test_example_policy_is_valid_and_names_only_real_scenarios() -> None:
    example = Path(__file__).parents[3] / "fixtures" / "gate.yaml"
    policy = load_policy(example)
    catalog = load_catalog()
    assert policy.bricks == 0 and policy.groups["rollback"] == "all_pass" and policy.max_inconclusive == 0
    assert set(policy.required_scenarios) <= catalog.scenarios and set(policy.groups) <= catalog.groups


def test_inconclusive_outcomes_block_as_inconclusive_not_as_failures(db: Path, tmp_path: Path) -> None:
    """A fault that missed its window proved nothing: the release waits, but no firmware bug is filed."""
    store = ResultsStore(db)
    with store:
        store.start_run(run_info("missed", 9))
        for board in BOARDS:
            store.record(
                make_outcome(
                    run_id="missed",
                    scenario="test_cut_during_download",
                    scenario_group="power_cut",
                    board=board,
                    outcome=OutcomeClass.INCONCLUSIVE,
                    message="fault landed after the switch on 3 tries",
                )
            )
        store.finish_run("missed", "finished")
    path = tmp_path / "gate.yaml"
    path.write_text("max_inconclusive: 0\nrequired_scenarios: [test_cut_during_download]\n", encoding="utf-8")
    verdicts = {r.rule: r.verdict for r in evaluate(load_policy(path), store, store.run("missed"))}
    assert verdicts["inconclusive"] is Verdict.INCONCLUSIVE
    assert verdicts["scenario test_cut_during_download"] is Verdict.INCONCLUSIVE
    assert Verdict.FAIL not in verdicts.values()


def test_the_rollout_rule_blocks_an_aborted_rollout_and_a_run_without_one(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("rollout: {min_success_rate: 0.5, bricks: 0}\n", encoding="utf-8")
    store = ResultsStore(db)
    with ResultsStore(db) as writer:
        writer.record_rollout("bad", make_rollout())  # 4 of 8 updated, aborted after 4 finished
    rules = {r.rule: (r.value, r.verdict) for r in evaluate(load_policy(path), store, store.run("bad"))}
    assert rules["rollout staged success rate"] == ("50% (4 of 8)", Verdict.PASS)
    assert rules["rollout staged bricks"] == ("0", Verdict.PASS)
    assert rules["rollout staged abort"] == (f"aborted ({make_rollout().abort.criterion})", Verdict.FAIL)  # type: ignore[union-attr]
    assert "rollout staged abort timing" not in rules  # it fired when the criteria say it should
    path.write_text("rollout: {min_success_rate: 0.9, allow_abort: true}\n", encoding="utf-8")
    rules = {r.rule: (r.value, r.verdict) for r in evaluate(load_policy(path), store, store.run("bad"))}
    assert rules["rollout staged success rate"][1] is Verdict.FAIL
    assert "rollout staged abort" not in rules
    verdicts = {r.rule: r.verdict for r in evaluate(load_policy(path), store, store.run("good"))}
    assert verdicts["rollout"] is Verdict.FAIL  # no rollout in that run: nothing proven


def test_the_example_rollout_gate_is_valid() -> None:
    policy = load_policy(Path(__file__).parents[3] / "fixtures" / "gate-rollout.yaml")
    assert policy.rollout is not None and policy.rollout.bricks == 0 and not policy.rollout.allow_abort


def test_the_sweep_rule_blocks_unsafe_cut_points_and_a_run_without_a_sweep(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("sweep: {max_unsafe: 0}\n", encoding="utf-8")
    store = ResultsStore(db)
    with ResultsStore(db) as writer:
        writer.record_sweep("bad", make_sweep())  # 3 unsafe points in the otadata switch
    rules = {r.rule: (r.value, r.verdict) for r in evaluate(load_policy(path), store, store.run("bad"))}
    assert rules["sweep https unsafe cut points"] == ("3 of 81, first op 33", Verdict.FAIL)
    path.write_text("sweep: {max_unsafe: 3}\n", encoding="utf-8")
    rules = {r.rule: (r.value, r.verdict) for r in evaluate(load_policy(path), store, store.run("bad"))}
    assert rules["sweep https unsafe cut points"][1] is Verdict.PASS
    verdicts = {r.rule: r.verdict for r in evaluate(load_policy(path), store, store.run("good"))}
    assert verdicts["sweep"] is Verdict.FAIL  # no sweep in that run: nothing proven


def test_the_example_sweep_gate_is_valid() -> None:
    policy = load_policy(Path(__file__).parents[3] / "fixtures" / "gate-sweep.yaml")
    assert policy.sweep is not None and policy.sweep.max_unsafe == 0
