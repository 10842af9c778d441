"""The rig's pytest plugin: farm, boards, images, server, proxy and triggers as fixtures.

Registered through the `pytest11` entry point, so `pytest scenarios/ --farm F` works
in any checkout that installed ota-rig. One xdist worker per board (`-n <boards>
--dist loadgroup`), a file lock per board so two runs never share one, and one
artifact folder per test holding its serial log, server log and otadata dumps.

A rig run (any of --farm, --report-dir, --results-db, --run-id, --resume given) also
records every test's outcome rows into the results store as each test ends, on the
controller only (the single writer), and writes the run's report when the session
ends. The run id and seed are decided once on the controller and handed to the xdist
workers, so every worker writes artifacts into the same run folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pluggy
import pytest
from filelock import FileLock, Timeout

from rig import __version__
from rig.board import Board
from rig.catalog import FAMILIES, MARKERS
from rig.errors import InfraError, RigError
from rig.farm import BoardSpec, Farm, load_farm
from rig.imageset import ImageSet, prepare_image_set
from rig.net.certs import CertBundle, ensure_bundle, ensure_wrong_bundle
from rig.net.events import EventBus
from rig.net.fault_proxy import FaultProxy
from rig.net.listener import listen
from rig.net.netns import FaultPath, open_fault_path
from rig.net.ota_server import OtaServer
from rig.results.from_pytest import (
    INFRA_PREFIX,
    INFRA_TAG,
    TEST_KEY,
    git_revision,
    outcomes_of,
    summary_line,
)
from rig.results.model import RunInfo
from rig.results.store import ResultsStore, utc_now
from rig.session import OtaSession

FARM_KEY = pytest.StashKey[Farm | None]()
BOARD_LOCK_WAIT_S = 3600.0
DEFAULT_REPORT_DIR = "reports"
NO_BOARD = "-"  # the board of a test that uses none


@dataclass(frozen=True)
class RunSettings:
    """What every process of one run must agree on: decided once, on the controller."""

    run_id: str
    seed: int
    done: frozenset[tuple[str, str]]  # (scenario, board) keys a resume must not run again

    def to_wire(self) -> dict[str, Any]:
        """Plain values for xdist's `workerinput` (execnet only carries builtins)."""
        return {"run_id": self.run_id, "seed": self.seed, "done": [list(key) for key in sorted(self.done)]}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RunSettings:
        done = frozenset((str(scenario), str(board)) for scenario, board in wire["done"])
        return cls(str(wire["run_id"]), int(wire["seed"]), done)


RUN_KEY = pytest.StashKey[RunSettings]()
WIRE_KEY = "ota_rig_run"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ota-rig")
    group.addoption("--farm", help="farm file (YAML) describing the boards and instruments")
    group.addoption("--boards", default="", help="comma-separated board names (default: all)")
    group.addoption("--board-tags", default="", help="comma-separated tags a board must have")
    group.addoption("--seed", type=int, default=None, help="seed for random cut points (default: random)")
    group.addoption(
        "--report-dir", default=None, help=f"where run folders are written (default: {DEFAULT_REPORT_DIR})"
    )
    group.addoption("--run-id", default=None, help="run identifier (default: UTC timestamp)")
    group.addoption("--results-db", default=None, help="results database (default: <report-dir>/results.db)")
    group.addoption(
        "--resume", default=None, metavar="RUN_ID", help="continue RUN_ID: run only what it has not recorded"
    )
    group.addoption("--base-image", default=None, help="the firmware build to derive the image set from")
    group.addoption("--signing-key", default=None, help="PEM key that signed the base image")


def report_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("--report-dir") or DEFAULT_REPORT_DIR)


def results_db(config: pytest.Config) -> Path:
    given = config.getoption("--results-db")
    return Path(given) if given else report_dir(config) / "results.db"


def _is_rig_run(config: pytest.Config) -> bool:
    """Only rig runs keep results: the rig's own test suite loads this plugin too."""
    options = ("--farm", "--report-dir", "--results-db", "--run-id", "--resume")
    return any(config.getoption(name) for name in options)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    farm_path = config.getoption("--farm")
    try:
        config.stash[FARM_KEY] = load_farm(Path(farm_path)) if farm_path else None
    except RigError as error:
        raise pytest.UsageError(str(error)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        settings = RunSettings.from_wire(workerinput[WIRE_KEY])
    else:
        store = ResultsStore(results_db(config)) if _is_rig_run(config) else None
        settings = _decide(config, store)
        if store is not None and not config.option.collectonly:
            config.pluginmanager.register(Recorder(config, store, settings), "ota_rig_recorder")
    config.stash[RUN_KEY] = settings
    # Fixtures and the header read the options; give them the decided values.
    config.option.run_id = settings.run_id
    config.option.seed = settings.seed


def _decide(config: pytest.Config, store: ResultsStore | None) -> RunSettings:
    """Run id and seed from the options, the environment, the resumed run, or fresh."""
    resume = config.getoption("--resume")
    run_id = config.getoption("--run-id")
    if resume and run_id and resume != run_id:
        raise pytest.UsageError(f"--resume {resume} continues that run; it cannot be given --run-id {run_id}")
    seed = config.getoption("--seed")
    if seed is None and "RIG_SEED" in os.environ:
        seed = int(os.environ["RIG_SEED"])
    done: frozenset[tuple[str, str]] = frozenset()
    if resume:
        assert store is not None  # --resume makes this a rig run
        try:
            done = frozenset(store.done_keys(resume))
            resumed_seed = store.run(resume).seed
        except RigError as error:
            raise pytest.UsageError(str(error)) from None
        seed = resumed_seed if seed is None else seed
    fresh_id = os.environ.get("RIG_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_id = resume or run_id or fresh_id
    return RunSettings(run_id, secrets.randbelow(2**31) if seed is None else seed, done)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's run id, seed and resume keys to a worker."""
    node.workerinput[WIRE_KEY] = node.config.stash[RUN_KEY].to_wire()


def _selected(config: pytest.Config) -> tuple[BoardSpec, ...]:
    farm = config.stash[FARM_KEY]
    if farm is None:
        return ()
    names = [n for n in str(config.getoption("--boards")).split(",") if n]
    tags = [t for t in str(config.getoption("--board-tags")).split(",") if t]
    return farm.select(names, tags)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "board_spec" in metafunc.fixturenames:
        specs = _selected(metafunc.config)
        metafunc.parametrize("board_spec", specs, ids=[s.name for s in specs], scope="function")


def _board_spec(item: pytest.Item) -> BoardSpec | None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("board_spec") if callspec is not None else None
    return spec if isinstance(spec, BoardSpec) else None


def board_of(item: pytest.Item) -> str:
    spec = _board_spec(item)
    return spec.name if spec is not None else NO_BOARD


def scenario_of(item: pytest.Item) -> str:
    """The test's name with its parametrisation but without the board: one matrix row per scenario."""
    spec = _board_spec(item)
    if spec is None or not isinstance(item, pytest.Function):
        return item.name
    params = item.callspec.id
    for board_free in (params.removeprefix(f"{spec.name}-"), params.removesuffix(f"-{spec.name}")):
        if board_free != params:
            return f"{item.originalname}[{board_free}]"
    return item.originalname


def group_of(item: pytest.Item) -> str:
    """The first family marker the test carries, else its module's name without `test_`."""
    for mark in item.iter_markers():
        if mark.name in FAMILIES:
            return mark.name
    return item.path.stem.removeprefix("test_")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    done = config.stash[RUN_KEY].done
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        spec = _board_spec(item)
        if spec is not None:
            item.add_marker(pytest.mark.xdist_group(name=spec.name))
        (deselected if (scenario_of(item), board_of(item)) in done else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    # A burnt eFuse makes the base image unbootable on that board for good, so such tests go
    # last (a stable sort: the same order on every xdist worker).
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("burns_efuse") is not None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    farm = config.stash[FARM_KEY]
    if farm is None:
        return ["ota-rig: no --farm given (rig scenarios will be skipped)"]
    boards = ", ".join(b.name for b in _selected(config))
    return [
        f"ota-rig: farm {farm.name} ({boards}), run {config.getoption('--run-id')}, "
        f"seed {config.getoption('--seed')}"
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Tag infrastructure failures so reports never count them as firmware failures, and
    carry what the controller's recorder needs to know about the item on the report."""
    outcome = yield
    report = cast("pluggy.Result[pytest.TestReport]", outcome).get_result()
    if call.excinfo is not None and isinstance(call.excinfo.value, InfraError):
        report.user_properties.append(INFRA_TAG)
        report.longrepr = f"{INFRA_PREFIX}{call.excinfo.value}"
    elif call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    if _is_rig_run(item.config):
        report.user_properties.append((TEST_KEY, _test_facts(item)))


def _artifact_folder(nodeid: str) -> str:
    return "artifacts/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)


def _test_facts(item: pytest.Item) -> dict[str, str]:
    run_dir = report_dir(item.config) / item.config.stash[RUN_KEY].run_id
    artifacts = _artifact_folder(item.nodeid)
    return {
        "scenario": scenario_of(item),
        "group": group_of(item),
        "board": board_of(item),
        "artifacts": artifacts if (run_dir / artifacts).is_dir() else "",
    }


class Recorder:
    """The controller's results writer: starts the run, commits each test's outcomes the
    moment its report arrives, closes the run and writes its report."""

    def __init__(self, config: pytest.Config, store: ResultsStore, settings: RunSettings) -> None:
        self.config = config
        self.store = store
        self.settings = settings
        self.line: str | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        farm = self.config.stash[FARM_KEY]
        info = RunInfo(
            run_id=self.settings.run_id,
            started_at=utc_now(),
            farm=farm.name if farm is not None else "none",
            boards=tuple(spec.name for spec in _selected(self.config)),
            seed=self.settings.seed,
            rig_version=__version__,
            git_revision=git_revision(self.config.rootpath),
            command=shlex.join(["pytest", *self.config.invocation_params.args]),
            finished_at=None,
            status="running",
        )
        self.store.start_run(info)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recordable = report.when == "call" or (report.when == "setup" and not report.passed)
        if recordable and any(key == TEST_KEY for key, _ in report.user_properties):
            for outcome in outcomes_of(report, self.settings.run_id):
                self.store.record(outcome)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.store.finish_run(self.settings.run_id, "interrupted" if interrupted else "finished")
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.settings.done:
            session.exitstatus = pytest.ExitCode.OK  # a resume of a complete run: nothing left to do
        # Imported here: pandas and matplotlib would slow every pytest start that loads the plugin.
        from rig.report.build import write_report

        try:
            files = write_report(self.store, self.settings.run_id, report_dir(self.config))
        except RigError as error:
            self.line = f"ota-rig report: not written: {error}"
            return
        self.line = summary_line(self.store, self.settings.run_id, files.html)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.line is not None:
            terminalreporter.write_line(self.line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.store.close()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def farm(pytestconfig: pytest.Config) -> Farm:
    loaded = pytestconfig.stash[FARM_KEY]
    if loaded is None:
        pytest.skip("no --farm given")
    return loaded


@pytest.fixture(scope="session")
def seed(pytestconfig: pytest.Config) -> int:
    return pytestconfig.stash[RUN_KEY].seed


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    path = report_dir(pytestconfig) / pytestconfig.stash[RUN_KEY].run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def artifacts(run_dir: Path, request: pytest.FixtureRequest) -> Path:
    folder = run_dir / _artifact_folder(request.node.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def certs(run_dir: Path) -> CertBundle:
    return ensure_bundle(run_dir / "certs")


@pytest.fixture(scope="session")
def wrong_certs(run_dir: Path) -> CertBundle:
    return ensure_wrong_bundle(run_dir / "certs-wrong")


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config, run_dir: Path, farm: Farm) -> ImageSet:
    base = pytestconfig.getoption("--base-image")
    key = pytestconfig.getoption("--signing-key")
    return prepare_image_set(
        run_dir / "images",
        base=Path(base) if base else None,
        key=Path(key) if key else None,
        signing={b.firmware.signing for b in farm.boards},
        seed=int(pytestconfig.getoption("--seed")),
    )


@pytest.fixture(scope="session")
def bus() -> EventBus:
    return EventBus()


@pytest.fixture(scope="session")
def ota_server(
    certs: CertBundle, images: ImageSet, farm: Farm, bus: EventBus, run_dir: Path
) -> Iterator[OtaServer]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    server = OtaServer(
        certs, images.source(), host=farm.network.bind, bus=bus, log_path=run_dir / f"server-{worker}.log"
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def fault_path(farm: Farm) -> Iterator[FaultPath]:
    """The network namespace the proxy listens in, when the farm asks for one and this host
    can make it (one per worker); otherwise why not, for the scenarios that need it."""
    with open_fault_path(farm.network) as path:
        yield path


@pytest.fixture
def fault_proxy(
    ota_server: OtaServer, farm: Farm, bus: EventBus, fault_path: FaultPath
) -> Iterator[FaultProxy]:
    # Same bus as the server: the proxy maps image bytes to wire bytes from its checkpoints.
    listener = fault_path.namespace.listener if fault_path.namespace is not None else listen
    proxy = FaultProxy((ota_server.host, ota_server.port), host=farm.network.bind, bus=bus, listener=listener)
    with proxy:
        yield proxy


@pytest.fixture
def board(farm: Farm, board_spec: BoardSpec, artifacts: Path) -> Iterator[Board]:
    lock_dir = Path(tempfile.gettempdir()) / "ota-rig-locks"
    lock_dir.mkdir(exist_ok=True)
    # Keyed by the serial port, the board's physical identity: two farm files (or two labs
    # that share a name) naming different boards must not wait for each other.
    lock = FileLock(str(lock_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", board_spec.serial) + ".lock")))
    try:
        lock.acquire(timeout=BOARD_LOCK_WAIT_S)
    except Timeout:
        waited = f"{BOARD_LOCK_WAIT_S:.0f} s"
        raise InfraError(f"board {board_spec.name} stayed locked by another run for {waited}") from None
    try:
        with Board(farm, board_spec, artifacts) as opened:
            yield opened
    finally:
        lock.release()


@pytest.fixture
def ota(
    board: Board,
    ota_server: OtaServer,
    fault_proxy: FaultProxy,
    certs: CertBundle,
    images: ImageSet,
    farm: Farm,
    seed: int,
    fault_path: FaultPath,
) -> Iterator[OtaSession]:
    """Everything one scenario needs to run OTAs on one board, with faults and verdicts."""
    session = OtaSession(
        board, ota_server, fault_proxy, certs, images, farm.network, seed=seed, path=fault_path
    )
    try:
        yield session
    finally:
        session.close()
