"""Bad input on the command line: one `rig: error: …` line, exit 2 (input) or 3 (infrastructure),
never a traceback, and nothing touched before the input is known to be good."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.cli import main

FARM = """\
name: bench
boards:
  - name: b1
    serial: socket://127.0.0.1:9
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "farm.yaml").write_text(FARM, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("name: x\nboards:\n  - name: [b1\n", encoding="utf-8")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith("rig: error: ") and err.count("\n") == 1, err
    return err.removeprefix("rig: error: ").rstrip("\n")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["repro", "--farm", "missing.yaml"], "missing.yaml: farm file not found"),
        (["repro", "--farm", "farm.yaml", "--board", "nosuch"], "farm.yaml: no board named 'nosuch'"),
        (["repro", "--farm", "farm.yaml", "--cut", "power@bites=1"], "--cut power@bites=1"),
        (["repro", "--farm", "farm.yaml", "--cut", "gamma@bytes=1"], "--cut gamma@bytes=1"),
        (["run", "--farm", "broken.yaml"], "broken.yaml:4: "),
        (["run", "--farm", "farm.yaml", "--boards", "b7"], "farm.yaml: no board named 'b7'"),
        (["farm", "check", "missing.yaml"], "missing.yaml: farm file not found"),
        (["farm", "check", "broken.yaml"], "broken.yaml:4: "),
    ],
    ids=["repro-no-farm", "repro-no-board", "repro-bad-cut-key", "repro-bad-cut-kind", "run-yaml-error",
         "run-no-board", "check-no-farm", "check-yaml-error"],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert one_error_line(capsys).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "farm.yaml"]  # no reports/, no .lab/


def test_a_board_that_does_not_answer_is_infrastructure_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["farm", "check", "farm.yaml"]) == 3
    assert one_error_line(capsys) == "1 of 1 boards failed the check: b1 (infrastructure, see the table)"


def test_lab_down_without_a_lab_says_so_and_succeeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Stopping what is not running is not an error: `rig lab down` is safe to repeat in CI clean-up."""
    assert main(["lab", "down", "--dir", str(tmp_path / "nolab")]) == 0
    out, err = capsys.readouterr()
    assert out == f"no lab running in {tmp_path / 'nolab'}\n" and err == ""


def test_lab_status_without_a_lab_is_not_a_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["lab", "status", "--dir", str(tmp_path / "nolab")]) == 0
    out, err = capsys.readouterr()
    assert "stopped" in out and err == ""


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repro", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "No such option '--bogus'" in err and "Traceback" not in err
