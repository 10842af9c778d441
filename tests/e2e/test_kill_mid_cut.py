"""A CI timeout kills `rig run` (and its pytest and workers) while a power cut is in progress:
the PSU channel stays off. The resumed run must power the board back up itself and finish
with no INFRA outcome, keeping what the killed run had committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from rig.farm import load_farm
from rig.lab_cli import running_lab
from rig.results import OutcomeClass, ResultsStore

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = "test_cut_during_download or test_cut_after_confirm"
WAIT_FOR_CUT_S = 180.0


@pytest.fixture
def lab_farm(tmp_path: Path) -> Iterator[Path]:
    with running_lab(tmp_path / "lab", 1) as farm:
        yield farm


def _rig_run(farm: Path, reports: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rig.cli", "run", "--farm", str(farm), "--report-dir", str(reports),
            "-k", SCENARIOS, *extra]  # fmt: skip


def test_a_run_killed_mid_cut_resumes_with_the_board_powered_and_no_infra(
    lab_farm: Path, tmp_path: Path
) -> None:
    farm = load_farm(lab_farm)
    power = farm.power_spec(farm.boards[0])
    assert power["driver"] == "scpi-psu", power  # b1 of a lab sits on the PSU
    reports = tmp_path / "reports"
    env = {key: value for key, value in os.environ.items() if key not in ("RIG_RUN_ID", "RIG_SEED")}
    killed = subprocess.Popen(
        _rig_run(lab_farm, reports), cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    manager = pyvisa.ResourceManager("@py")
    psu = manager.open_resource(str(power["resource"]), read_termination="\n", write_termination="\n")
    assert isinstance(psu, pyvisa.resources.MessageBasedResource)
    try:
        query = f":OUTP? CH{power['channel']}"
        deadline = time.monotonic() + WAIT_FOR_CUT_S
        while psu.query(query) == "ON":  # the first power cut of the run
            assert killed.poll() is None and time.monotonic() < deadline, "no power cut happened"
            time.sleep(0.005)
        os.killpg(killed.pid, signal.SIGKILL)  # the rig, its pytest and its workers, as CI does
        killed.wait()
        assert psu.query(query) == "OFF"  # nobody is left to power the board back on
    finally:
        psu.close()
        manager.close()

    store = ResultsStore(reports / "results.db")
    (run,) = store.runs()
    assert run.status == "running"  # killed, not finished
    kept = {(o.scenario, o.board) for o in store.outcomes(run.run_id)}
    argv = _rig_run(lab_farm, reports, "--resume", run.run_id)
    resumed = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    outcomes = store.outcomes(run.run_id)
    assert [o.outcome for o in outcomes if o.outcome is not OutcomeClass.PASS] == []
    assert {o.scenario for o in outcomes} == {"test_cut_during_download", "test_cut_after_confirm"}
    assert kept <= {(o.scenario, o.board) for o in outcomes}
