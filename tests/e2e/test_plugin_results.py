"""The plugin on a 2-board virtual lab: outcomes land in results.db, one run id for both
xdist workers, the report is written at the end, and a resume of a finished run runs nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.lab_cli import running_lab
from rig.results import OutcomeClass, ResultsStore

REPO = Path(__file__).resolve().parents[2]
PYTEST_TIMEOUT_S = 240.0


@pytest.fixture
def lab_farm(tmp_path: Path) -> Iterator[Path]:
    with running_lab(tmp_path / "lab", 2) as farm:
        yield farm


def _suite(farm: Path, reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RIG_RUN_ID", "RIG_SEED")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/test_happy_path.py", "--farm", str(farm),
         "--report-dir", str(reports), "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider",
         "-p", "no:labgrid", "-o", "addopts=", "-W", "ignore", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S,
    )  # fmt: skip


def test_outcomes_report_and_resume_through_the_plugin(lab_farm: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    first = _suite(lab_farm, reports)  # no --run-id: the controller picks one for both workers
    assert first.returncode == 0, first.stdout[-3000:]

    store = ResultsStore(reports / "results.db")
    assert len(store.runs()) == 1
    run = store.latest_run()
    run_id = run.run_id
    assert run.status == "finished" and run.farm == "virtual-lab" and run.boards == ("b1", "b2")
    outcomes = store.outcomes(run_id)
    # one row per OTA of the happy path, on each board
    assert {o.board for o in outcomes} == {"b1", "b2"}
    assert {(o.scenario, o.scenario_group, o.outcome) for o in outcomes} == {
        ("test_three_generations", "happy_path", OutcomeClass.PASS)
    }
    # both workers wrote into one run folder; each outcome links its test's artifacts
    assert [p.name for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")] == [run_id]
    assert not list((reports / run_id).rglob("*.key")) and not list((reports / run_id).rglob("lab-key-*"))
    assert all((reports / run_id / o.artifacts / "serial.log").is_file() for o in outcomes)
    for name in ("index.html", "junit.xml", "summary.md"):
        assert (reports / run_id / name).is_file(), name
    assert f"{reports / run_id / 'index.html'} — run {run_id} finished" in first.stdout

    again = _suite(lab_farm, reports, "--resume", run_id)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "no tests ran" in again.stdout  # the workers deselected both tests
    assert len(store.outcomes(run_id)) == len(outcomes)
    assert store.run(run_id).status == "finished"


def test_each_board_runs_on_one_worker_only(lab_farm: Path, tmp_path: Path) -> None:
    """`--dist loadgroup` keeps a board's scenarios on one xdist worker: no worker waits on
    another's board lock while a board idles, and a board's health check runs once."""
    done = _suite(
        lab_farm, tmp_path / "reports", "scenarios/test_power_cut.py", "-vv",  # -q of _suite cancels one -v
        "-k", "three_generations or cut_during_download or cut_during_erase",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"\[(gw\d+)\] .* PASSED \S+\[(b\d)\]", line)
        if match:
            workers.setdefault(match.group(2), set()).add(match.group(1))
    assert set(workers) == {"b1", "b2"} and all(len(w) == 1 for w in workers.values()), workers
    assert workers["b1"] != workers["b2"]
    checks = ResultsStore(tmp_path / "reports" / "results.db").health_checks()
    assert sorted(c.board for c in checks) == ["b1", "b2"]
