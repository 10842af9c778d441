"""`rig rollout` refuses bad input in one line (exit 2) before any lab, board or report exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.cli import main

FARM = "name: bench\nboards:\n  - {name: b1, serial: 'socket://127.0.0.1:9'}\n  - {name: b2, serial: 'socket://127.0.0.1:10'}\n"
POLICIES = {
    "mqtt.yaml": "name: m\ntransport: mqtt\n",
    "big.yaml": "name: big\nfaults: {spread: [{boards: 3, cut: 'power@fraction=0.5'}]}\n",
    "broken.yaml": "name: b\nfaults: {spread: [{boards: 1, firmware: corrupt-write}]}\n",
    "typo.yaml": "name: t\nabort: [{failure_type: FAILED, min_number_of_executed_things: 2, threshold: 5}]\n",
}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "missing.yaml"], "missing.yaml: rollout policy not found"),
        (["--policy", "typo.yaml"], "typo.yaml:2: abort[0].threshold_percentage: missing (required)"),
        (
            ["--policy", "mqtt.yaml", "--lab-boards", "1"],
            "--lab-boards 1: a rollout needs a group of at least 2",
        ),
        (
            ["--policy", "mqtt.yaml", "--farm", "farm.yaml"],
            "mqtt.yaml: transport mqtt needs the farm file's mqtt",
        ),
        (
            ["--policy", "big.yaml", "--farm", "farm.yaml"],
            "big.yaml: the faults name 3 boards but the group has 2",
        ),
        (
            ["--policy", "broken.yaml", "--farm", "farm.yaml"],
            "broken.yaml: a `firmware:` fault builds twins with another firmware model",
        ),
        (["--policy", "big.yaml", "--farm", "farm.yaml", "--boards", "b9"], "farm.yaml: no board named 'b9'"),
    ],
    ids=[
        "no-policy",
        "policy-typo",
        "one-board",
        "no-broker",
        "too-few-boards",
        "firmware-on-real",
        "no-board",
    ],
)
def test_bad_rollout_input_is_one_line_and_exit_2_with_nothing_started(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str],
    message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "farm.yaml").write_text(FARM, encoding="utf-8")
    for name, text in POLICIES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    before = sorted(tmp_path.iterdir())
    assert main(["rollout", *argv]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and err.count("\n") == 1, err
    assert err.removeprefix("rig: error: ").startswith(message), err
    assert sorted(tmp_path.iterdir()) == before  # no reports/, no lab
