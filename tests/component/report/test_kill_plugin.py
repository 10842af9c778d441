"""Issue 6 "kill mid-run" through the pytest plugin, and how the plugin classes outcomes.

No lab is needed: a throwaway test module in tmp_path attaches synthetic `ota_result`
records the way the `ota` fixture does, and runs in a child `pytest -p rig.plugin`. The kill lands
while test N is running, which is only after tests 0..N-1 ended and (on the controller,
in the same process here) their outcomes were committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rig.results import OutcomeClass, ResultsStore

RUN_ID = "killed-run"
STEPS = 10
KILL_AT = 4
CHILD_TIMEOUT_S = 120.0

# One judged OTA's record on the wire (rig.outcome.OtaRecord.to_wire), of a given class.
ROW = '''
def row(outcome, *problems):
    return {
        "board": "b", "image": "next", "expect": "accept", "firmware_old": "1.0.0", "firmware_new": "1.0.1",
        "fault": "none", "cut": None, "cut_point": None, "phase": "NO_FAULT", "outcome": outcome,
        "final": "new", "acceptable": ["new"],
        "problems": [[{"BRICK": "brick", "INCONCLUSIVE": "window_missed"}.get(outcome, "wrong_end_state"), p]
                     for p in problems],
        "duration_s": 0.01, "time_to_recover_s": None, "bytes_served": 0, "boots": [], "faults": [],
    }
'''

SUITE = ROW + f'''
import os
import sys
import time

import pytest


@pytest.mark.parametrize("step", range({STEPS}))
def test_step(request, step):
    if os.environ.get("KILL_AT") == str(step):
        print(f"blocking at {{step}}", file=sys.__stdout__, flush=True)
        time.sleep(600)
    time.sleep(0.01)
    request.node.user_properties.append(("ota_result", row("PASS")))
'''

CLASSES = ROW + '''
import pytest

from rig.errors import InfraError, WindowMissed


def _row(request, outcome, *problems):
    request.node.user_properties.append(("ota_result", row(outcome, *problems)))


def test_rows_pass(request):
    _row(request, "PASS")
    _row(request, "PASS")


def test_row_brick(request):
    _row(request, "BRICK", "no app after recovery")
    assert False, "bricked"


def test_check_after_a_passing_row(request):
    _row(request, "PASS")
    assert False, "log lacks the proof line\\nmore detail"


def test_no_rows_fails():
    assert 1 == 2, "wrong answer"


def test_no_rows_passes():
    pass


def test_not_applicable():
    pytest.skip("board cannot cut power")


def test_rig_broke(request):
    _row(request, "PASS")
    raise InfraError("USB hub gone")


def test_window_missed(request):
    _row(request, "INCONCLUSIVE", "the fault landed after the switch on 3 tries")
    raise WindowMissed("the fault landed after the switch on 3 tries")


@pytest.fixture
def broken():
    raise RuntimeError("instrument did not answer")


def test_setup_error(broken):
    pass
'''


def _pytest(module: Path, reports: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", str(module), "-p", "rig.plugin", "-p", "no:cacheprovider",
        "-p", "no:labgrid", "-o", "addopts=", "-q", "-s", "--report-dir", str(reports), *extra,
    ]  # fmt: skip


def _run_pytest(cwd: Path, module: Path, reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The child pytest run to completion, output captured."""
    return subprocess.run(
        _pytest(module, reports, *extra), cwd=cwd, env=_env(), capture_output=True, text=True,
        timeout=CHILD_TIMEOUT_S, check=False,
    )  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    # Only this plugin: the rig's entry point would register rig.plugin a second time.
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}


def _run_until_blocked(command: list[str], cwd: Path) -> None:
    """Start the run; SIGKILL it once test KILL_AT says it is running."""
    child = subprocess.Popen(
        command, cwd=cwd, env=_env(KILL_AT=str(KILL_AT)), stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.rstrip().endswith(f"blocking at {KILL_AT}"):  # after pytest's progress dots
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=CHILD_TIMEOUT_S)
    assert child.returncode == -signal.SIGKILL


def test_sigkill_keeps_committed_outcomes_and_resume_runs_only_the_rest(tmp_path: Path) -> None:
    module = tmp_path / "test_suite.py"
    module.write_text(SUITE, encoding="utf-8")
    reports = tmp_path / "reports"
    _run_until_blocked(_pytest(module, reports, "--run-id", RUN_ID), tmp_path)

    store = ResultsStore(reports / "results.db")
    assert store.run(RUN_ID).status == "running"
    killed = [o.scenario for o in store.outcomes(RUN_ID)]
    assert killed == [f"test_step[{step}]" for step in range(KILL_AT)]

    resumed = _run_pytest(tmp_path, module, reports, "--resume", RUN_ID)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert f"{STEPS - KILL_AT} passed, {KILL_AT} deselected" in resumed.stdout

    run = store.run(RUN_ID)
    assert run.status == "finished" and run.finished_at is not None
    keys = Counter(o.key for o in store.outcomes(RUN_ID))
    assert keys == Counter({(f"test_step[{step}]", "-"): 1 for step in range(STEPS)})
    assert (reports / RUN_ID / "index.html").is_file()
    counts = f"0 BRICK, 0 FAIL, 0 INFRA, 0 INCONCLUSIVE, {STEPS} PASS, 0 SKIP"
    assert f"run {RUN_ID} finished: {counts}" in resumed.stdout


def test_resume_of_a_complete_run_runs_nothing_and_succeeds(tmp_path: Path) -> None:
    module = tmp_path / "test_suite.py"
    module.write_text(SUITE, encoding="utf-8")
    reports = tmp_path / "reports"
    first = _run_pytest(tmp_path, module, reports, "--run-id", RUN_ID)
    assert first.returncode == 0, first.stdout[-2000:]
    again = _run_pytest(tmp_path, module, reports, "--resume", RUN_ID)
    assert again.returncode == 0, again.stdout[-2000:]
    assert f"{STEPS} deselected" in again.stdout
    assert len(ResultsStore(reports / "results.db").outcomes(RUN_ID)) == STEPS


def test_resume_of_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    module = tmp_path / "test_suite.py"
    module.write_text(SUITE, encoding="utf-8")
    done = _run_pytest(tmp_path, module, tmp_path / "reports", "--resume", "no-such-run")
    assert done.returncode == 4
    assert "ERROR: no results database at" in done.stderr
    assert "Traceback" not in done.stderr


def test_outcome_classes_follow_rows_skips_and_infrastructure_errors(tmp_path: Path) -> None:
    module = tmp_path / "test_classes.py"
    module.write_text(CLASSES, encoding="utf-8")
    reports = tmp_path / "reports"
    done = _run_pytest(tmp_path, module, reports, "--run-id", RUN_ID)
    assert done.returncode == 1, done.stdout[-2000:]

    outcomes = ResultsStore(reports / "results.db").outcomes(RUN_ID)
    recorded = [(o.scenario, o.outcome, o.message) for o in outcomes]
    assert recorded == [
        ("test_rows_pass", OutcomeClass.PASS, ""),
        ("test_rows_pass", OutcomeClass.PASS, ""),
        ("test_row_brick", OutcomeClass.BRICK, "no app after recovery"),
        ("test_check_after_a_passing_row", OutcomeClass.FAIL, "AssertionError: log lacks the proof line"),
        ("test_no_rows_fails", OutcomeClass.FAIL, "AssertionError: wrong answer"),
        ("test_no_rows_passes", OutcomeClass.PASS, ""),
        ("test_not_applicable", OutcomeClass.SKIP, "board cannot cut power"),
        ("test_rig_broke", OutcomeClass.INFRA, "infrastructure: USB hub gone"),
        ("test_window_missed", OutcomeClass.INCONCLUSIVE, "the fault landed after the switch on 3 tries"),
        ("test_setup_error", OutcomeClass.INFRA, "set-up failed: RuntimeError: instrument did not answer"),
    ]
    assert {(o.scenario_group, o.board) for o in outcomes} == {("classes", "-")}
    assert "2 skipped" in done.stdout  # not applicable, and the missed window: neither a pass nor a fail
    summary = (reports / RUN_ID / "summary.md").read_text(encoding="utf-8")
    assert "USB hub gone" in summary
