"""A farm spread over two labgrid exporter hosts, on loopback: a real `labgrid-coordinator`
and two `labgrid-exporter`s (each a virtual lab whose boards sit on ptys behind the
exporter's ser2net, power on a network PDU). The rig reserves and acquires the places,
runs scenarios across both hosts, survives one host dying mid-run, and always releases."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from rig.labgrid.coordinator import Coordinator, session
from rig.results.model import OutcomeClass
from tests.support.labgrid_farm import LabgridFarm, labgrid_farm, rig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Enough scenarios per board that a host can die while its boards still have work queued.
MID_RUN = "three_generations or cut_during_download or cut_during_erase"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabgridFarm]:
    with labgrid_farm(tmp_path_factory.mktemp("labgrid")) as running:
        yield running


def _rig_run(farm: Path, reports: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rig.cli",
        "run",
        "--farm",
        str(farm),
        "--report-dir",
        str(reports),
        "-k",
        MID_RUN,
    ]


def _outcomes(db: Path) -> list[tuple[str, str, str, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        try:
            query = "SELECT board, scenario, outcome, started_at FROM outcomes ORDER BY id"
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError:  # the run has not created its tables yet
            return []


def test_scenarios_run_on_both_hosts_through_the_exporters_ser2net(farm: LabgridFarm, tmp_path: Path) -> None:
    path = farm.write_farm(tmp_path / "farm.yaml")
    reports = tmp_path / "reports"
    done = rig("run", "--farm", str(path), "--report-dir", str(reports), "-k", "three_generations")
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = _outcomes(reports / "results.db")
    boards = {board for board, _, _, _ in outcomes}
    assert boards == {"host-a-b1", "host-a-b2", "host-b-b1", "host-b-b2"}
    assert {outcome for _, _, outcome, _ in outcomes} == {OutcomeClass.PASS.value}
    # Serial went through each exporter's ser2net (RFC2217 on a port the exporter chose), not
    # through the twin's own RFC2217 server, and power through labgrid's simplerest backend.
    acquired = yaml.safe_load(next(reports.glob("*/farm.acquired.yaml")).read_text(encoding="utf-8"))
    own_ports = {
        f"rfc2217://127.0.0.1:{b['port']}"
        for lab in farm.labs.values()
        for b in yaml.safe_load((lab / "lab.json").read_text(encoding="utf-8"))["boards"]
    }
    for board in acquired["boards"]:
        assert board["serial"].startswith("rfc2217://127.0.0.1:") and board["serial"] not in own_ports
        assert board["power"]["driver"] == "labgrid-power" and board["power"]["model"] == "simplerest"
    assert "labgrid" not in acquired
    assert farm.acquired() == {}, "the places were not released"


def test_a_host_dying_mid_run_is_infra_for_its_boards_only_and_its_boards_are_quarantined(
    farm: LabgridFarm, tmp_path: Path
) -> None:
    path = farm.write_farm(tmp_path / "farm.yaml", health={"quarantine_after": 1})
    reports = tmp_path / "reports"
    db = reports / "results.db"
    env = {key: value for key, value in os.environ.items() if key not in ("RIG_RUN_ID", "RIG_SEED")}
    run = subprocess.Popen(
        _rig_run(path, reports),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not any(board.startswith("host-a") for board, _, _, _ in _outcomes(db)):
        assert run.poll() is None and time.monotonic() < deadline, "no outcome on host-a before the run ended"
        time.sleep(0.2)
    before = _outcomes(db)
    killed_at = datetime.now(UTC).isoformat(timespec="seconds")
    farm.kill_exporter("host-a")
    output, _ = run.communicate(timeout=600)
    after = _outcomes(db)

    assert after[: len(before)] == before, "outcomes recorded before the kill were lost"
    host_b = {outcome for board, _, outcome, _ in after if board.startswith("host-b")}
    assert host_b == {OutcomeClass.PASS.value}, output
    # What host-a began after its exporter died could not reach the board: INFRA, or skipped
    # once the health check after that INFRA failed. Nothing is called a firmware failure.
    host_a = [(outcome, started) for board, _, outcome, started in after if board.startswith("host-a")]
    began_after = {outcome for outcome, started in host_a if started > killed_at}
    assert began_after <= {OutcomeClass.INFRA.value, OutcomeClass.SKIP.value}, output
    assert OutcomeClass.INFRA.value in {outcome for outcome, _ in host_a}, output
    assert not {OutcomeClass.FAIL.value, OutcomeClass.BRICK.value} & {o for _, _, o, _ in after}
    assert run.returncode != 0
    assert farm.acquired() == {}, "the places were not released"

    # The INFRA outcome triggered a health check, which failed: with quarantine_after 1 the
    # host's boards are out of service, and the next run skips them with the reason.
    with sqlite3.connect(db) as connection:
        quarantined = dict(connection.execute("SELECT board, reason FROM quarantine").fetchall())
        triggers = connection.execute("SELECT board, trigger, passed FROM health_checks").fetchall()
    assert set(quarantined) <= {"host-a-b1", "host-a-b2"} and quarantined, triggers
    assert all(reason.startswith("read-mac") for reason in quarantined.values()), quarantined
    assert ("host-b-b1", "before-run", 1) in triggers
    assert {(board, trigger, passed) for board, trigger, passed in triggers if board in quarantined} == {
        (board, "before-run", 1) for board in quarantined
    } | {(board, "after-infra", 0) for board in quarantined}

    # The host comes back: `rig farm health --recover` reflashes and returns its boards.
    farm.relaunch_exporter("host-a")
    host_a = "host-a-b1,host-a-b2"
    rerun = rig(
        "run",
        "--farm",
        str(path),
        "--report-dir",
        str(reports),
        "-k",
        "three_generations",
        "--boards",
        host_a,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "rig run: skipping host-a-b1: quarantined since" in rerun.stderr
    assert "2 skipped" in rerun.stdout
    health = rig("farm", "health", str(path), "--recover", "--boards", host_a, "--report-dir", str(reports))
    assert health.returncode == 0, health.stdout + health.stderr
    assert "rig farm health: host-a-b1 returned to service" in health.stdout
    assert "rig farm health: host-a-b2 returned to service" in health.stdout
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert farm.acquired() == {}


def test_sigterm_mid_run_releases_the_places(farm: LabgridFarm, tmp_path: Path) -> None:
    path = farm.write_farm(tmp_path / "farm.yaml")
    reports = tmp_path / "reports"
    run = subprocess.Popen(
        _rig_run(path, reports), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not farm.acquired():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    while not _outcomes(reports / "results.db"):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=120)
    assert farm.acquired() == {}


@contextlib.contextmanager
def as_someone_else(farm: LabgridFarm) -> Iterator[Coordinator]:
    """A coordinator session of another labgrid user (labgrid reads LG_USERNAME)."""
    os.environ["LG_USERNAME"] = "nightly-other"
    try:
        with session(farm.coordinator) as other:
            yield other
    finally:
        del os.environ["LG_USERNAME"]


def test_a_place_held_by_someone_else_is_waited_for_then_refused(farm: LabgridFarm, tmp_path: Path) -> None:
    path = farm.write_farm(
        tmp_path / "farm.yaml", labgrid={"acquire_timeout": 2, "places": [{"place": "host-b-b1"}]}
    )
    with as_someone_else(farm) as other:
        other.acquire("host-b-b1")
    try:
        started = time.monotonic()
        done = rig("farm", "check", str(path))
        waited = time.monotonic() - started
    finally:
        with as_someone_else(farm) as other:
            other.release("host-b-b1")
    assert done.returncode == 3, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("rig: error: waited 2 s for labgrid places held by others")
    )
    assert "host-b-b1 (acquired by" in done.stderr and "nightly-other" in done.stderr
    assert waited >= 2
    assert farm.acquired() == {}


@pytest.mark.parametrize(
    ("labgrid", "code", "message"),
    [
        ({"places": [{"place": "host-z-b9"}]}, 2, "has no place 'host-z-b9' (places: host-a-b1, host-a-b2"),
        ({"places": [{"match": {"host": "host-z"}}]}, 2, "no place matches places tagged host=host-z"),
        (
            {"coordinator": "127.0.0.1:1", "places": [{"place": "x"}]},
            3,
            "labgrid coordinator 127.0.0.1:1 unreachable",
        ),
    ],
)
def test_bad_labgrid_input_is_one_line(
    farm: LabgridFarm, tmp_path: Path, labgrid: dict[str, object], code: int, message: str
) -> None:
    path = farm.write_farm(tmp_path / "farm.yaml", labgrid=labgrid)
    done = rig("farm", "check", str(path))
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_place_whose_exporter_lacks_a_serial_port_is_refused(farm: LabgridFarm, tmp_path: Path) -> None:
    """A place the admin created but matched to nothing: acquired, found empty, released."""
    subprocess.run(
        [sys.executable, "-m", "labgrid.remote.client", "-x", farm.coordinator, "-p", "bare", "create"],
        check=True, capture_output=True,
    )  # fmt: skip
    path = farm.write_farm(tmp_path / "farm.yaml", labgrid={"places": [{"place": "bare"}]})
    done = rig("farm", "check", str(path))
    assert done.returncode == 3, done.stderr
    assert "labgrid place bare has no serial port (NetworkSerialPort); it holds nothing" in done.stderr
    assert farm.acquired() == {}
