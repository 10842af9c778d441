"""The rig's pytest plugin: farm, boards, images, server, proxy and triggers as fixtures.

Registered through the `pytest11` entry point, so `pytest scenarios/ --farm F` works
in any checkout that installed ota-rig. One xdist worker per board (`-n <boards>
--dist loadgroup`), a file lock per board so two runs never share one, and one
artifact folder per test holding its serial log, server log and otadata dumps.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pluggy
import pytest
from filelock import FileLock, Timeout

from rig.board import Board
from rig.errors import InfraError, RigError
from rig.farm import BoardSpec, Farm, load_farm
from rig.imageset import ImageSet, prepare_image_set
from rig.net.certs import CertBundle, ensure_bundle, ensure_wrong_bundle
from rig.net.events import EventBus
from rig.net.fault_proxy import FaultProxy
from rig.net.ota_server import OtaServer
from rig.session import OtaSession

FARM_KEY = pytest.StashKey[Farm | None]()
MARKERS = {
    "power_cut": "cuts the board's power (needs a power driver that really cuts power)",
    "brownout": "sags the supply voltage (needs a PSU)",
    "network": "injects network faults through the fault proxy",
    "signature": "needs signed-update firmware (board firmware.signing != none)",
    "anti_rollback": "needs anti-rollback firmware (board firmware.anti_rollback)",
    "rollback": "exercises ESP-IDF app rollback",
    "gate": "part of the release gate",
}
BOARD_LOCK_WAIT_S = 3600.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ota-rig")
    group.addoption("--farm", help="farm file (YAML) describing the boards and instruments")
    group.addoption("--boards", default="", help="comma-separated board names (default: all)")
    group.addoption("--board-tags", default="", help="comma-separated tags a board must have")
    group.addoption("--seed", type=int, default=None, help="seed for random cut points (default: random)")
    group.addoption("--report-dir", default="reports", help="where run folders are written")
    group.addoption("--run-id", default=None, help="run identifier (default: UTC timestamp)")
    group.addoption("--base-image", default=None, help="the firmware build to derive the image set from")
    group.addoption("--signing-key", default=None, help="PEM key that signed the base image")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    farm_path = config.getoption("--farm")
    config.stash[FARM_KEY] = load_farm(Path(farm_path)) if farm_path else None
    if config.getoption("--run-id") is None:
        # xdist workers inherit the controller's option values, so all share one id.
        config.option.run_id = os.environ.get("RIG_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if config.getoption("--seed") is None:
        config.option.seed = int(os.environ.get("RIG_SEED", secrets.randbelow(2**31)))


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        spec = callspec.params.get("board_spec") if callspec is not None else None
        if isinstance(spec, BoardSpec):
            item.add_marker(pytest.mark.xdist_group(name=spec.name))


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
    """Tag infrastructure failures so reports never count them as firmware failures."""
    outcome = yield
    report = cast("pluggy.Result[pytest.TestReport]", outcome).get_result()
    if call.excinfo is not None and isinstance(call.excinfo.value, InfraError):
        report.user_properties.append(("outcome_class", "infrastructure"))
        report.longrepr = f"INFRASTRUCTURE: {call.excinfo.value}"
    elif call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def farm(pytestconfig: pytest.Config) -> Farm:
    loaded = pytestconfig.stash[FARM_KEY]
    if loaded is None:
        pytest.skip("no --farm given")
    return loaded


@pytest.fixture(scope="session")
def seed(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getoption("--seed"))


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.getoption("--report-dir")) / str(pytestconfig.getoption("--run-id"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def artifacts(run_dir: Path, request: pytest.FixtureRequest) -> Path:
    folder = run_dir / "artifacts" / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
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


@pytest.fixture
def fault_proxy(ota_server: OtaServer, farm: Farm, bus: EventBus) -> Iterator[FaultProxy]:
    # Same bus as the server: the proxy maps image bytes to wire bytes from its checkpoints.
    proxy = FaultProxy((ota_server.host, ota_server.port), host=farm.network.bind, bus=bus)
    with proxy:
        yield proxy


@pytest.fixture
def board(farm: Farm, board_spec: BoardSpec, artifacts: Path) -> Iterator[Board]:
    lock_dir = Path(tempfile.gettempdir()) / "ota-rig-locks"
    lock_dir.mkdir(exist_ok=True)
    lock = FileLock(str(lock_dir / f"{farm.name}-{board_spec.name}.lock"))
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
) -> Iterator[OtaSession]:
    """Everything one scenario needs to run OTAs on one board, with faults and verdicts."""
    session = OtaSession(board, ota_server, fault_proxy, certs, images, farm.network, seed=seed)
    try:
        yield session
    finally:
        session.close()
