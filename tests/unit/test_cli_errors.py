"""Bad input on the command line: one `rig: error: …` line, exit 2 (input) or 3 (infrastructure),
never a traceback, and nothing touched before the input is known to be good."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.cli import main
from rig.flashing import _cause

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
        (["idf-tests", "nosuch"], "nosuch: no such directory (give the root of an ESP-IDF checkout)"),
        (["idf-tests", "."], ".: not an ESP-IDF checkout (no tools/ci/python_packages/"),
        (["embedded"], "give pytest's arguments after `--`"),
    ],
    ids=[
        "repro-no-farm",
        "repro-no-board",
        "repro-bad-cut-key",
        "repro-bad-cut-kind",
        "run-yaml-error",
        "run-no-board",
        "check-no-farm",
        "check-yaml-error",
        "idf-tests-no-dir",
        "idf-tests-not-idf",
        "embedded-no-args",
    ],
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


def test_a_killed_rig_run_takes_its_suite_with_it(tmp_path: Path) -> None:
    """SIGKILL of `rig run` alone (a CI timeout) must not leave pytest cutting power on the boards."""
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    rig_run = (
        "import os, sys; from rig.run_cli import run_child; "
        f"run_child([sys.executable, '-c', {child!r}], os.environ)"
    )
    parent = subprocess.Popen([sys.executable, "-c", rig_run])
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the suite child never started"
        time.sleep(0.05)
    suite = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    while _alive(suite):
        assert time.monotonic() < deadline + 10, "the suite outlived the killed rig run"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie (not yet reaped by init) counts as gone
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return False


def test_an_esptool_error_names_its_cause_not_its_closing_advice() -> None:
    error = RuntimeError(
        "Failed to connect to ESP32: No serial data received.\n"
        "For troubleshooting steps visit: https://docs.espressif.com/projects/esptool/en/latest/troubleshooting.html"
    )
    assert _cause(error) == "Failed to connect to ESP32: No serial data received."


def test_a_bug_in_the_rig_exits_3_with_its_traceback_in_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("rig.esp.cli_tables.PartitionTable.from_csv", broken)
    csv = Path(__file__).parents[2] / "fixtures" / "partitions" / "two_ota_large.csv"
    assert main(["partitions", "show", str(csv)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("rig: internal error (a bug in ota-rig, not in the device): ZeroDivisionError")
    report = Path(err.rsplit("traceback in ", 1)[1].strip())
    assert "ZeroDivisionError" in report.read_text() and "Traceback" not in err
