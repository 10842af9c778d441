"""The fixtures: a farm's boards, the run's shared services, and one OTA session per test
whose every result is recorded on the test item (scenarios never pass `request` around)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from rig.board import Board
from rig.builder import Services, mqtt_session, server_identity
from rig.errors import InfraError
from rig.farm import BoardSpec, Farm
from rig.health.records import Trigger
from rig.imageset import ImageLibrary, ImageSet, prepare_image_set
from rig.keyfiles import private_folder
from rig.mqtt.images import LAB_PROJECT, AwsImages
from rig.mqtt.pki import MqttPki
from rig.mqtt.session import MqttSession
from rig.net.certs import CertBundle, ensure_wrong_bundle
from rig.outcome import OtaRecord
from rig.plugin.health import INFRA_SEEN, HealthKeeper
from rig.plugin.recorder import artifact_folder
from rig.plugin.run import FARM_KEY, RUN_KEY, is_rig_run, report_dir, results_db
from rig.results.from_pytest import ROW_KEY
from rig.results.store import ResultsStore
from rig.session import OtaSession

BOARD_LOCK_WAIT_S = 3600.0


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


@pytest.fixture(scope="session")
def private_dir(pytestconfig: pytest.Config) -> Path:
    """The run's private keys, beside its report folder rather than in it."""
    return private_folder(report_dir(pytestconfig), pytestconfig.stash[RUN_KEY].run_id)


@pytest.fixture
def artifacts(run_dir: Path, request: pytest.FixtureRequest) -> Path:
    folder = run_dir / artifact_folder(request.node.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def certs(services: Services) -> CertBundle:
    return services.certs


@pytest.fixture(scope="session")
def wrong_certs(private_dir: Path) -> CertBundle:
    return ensure_wrong_bundle(private_dir / "certs-wrong")


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config, run_dir: Path, farm: Farm, private_dir: Path) -> ImageSet:
    base = pytestconfig.getoption("--base-image")
    key = pytestconfig.getoption("--signing-key")
    return prepare_image_set(
        run_dir / "images",
        base=Path(base) if base else None,
        key=Path(key) if key else None,
        signing={b.firmware.signing for b in farm.boards},
        seed=int(pytestconfig.getoption("--seed")),
        private=private_dir,
    )


@pytest.fixture(scope="session")
def image_library(
    pytestconfig: pytest.Config, run_dir: Path, farm: Farm, private_dir: Path, images: ImageSet
) -> ImageLibrary:
    """Each board's image set: `images`, or (lab) its stock example's, embedding the rig's CA."""
    key = pytestconfig.getoption("--signing-key")
    return ImageLibrary(
        run_dir / "images", images, custom_base=bool(pytestconfig.getoption("--base-image")),
        key=Path(key) if key else None, signing=frozenset(b.firmware.signing for b in farm.boards),
        seed=int(pytestconfig.getoption("--seed")), private=private_dir,
        ca_pem=lambda: server_identity(farm, private_dir).ca_pem.read_bytes(),
    )  # fmt: skip


@pytest.fixture(scope="session")
def services(farm: Farm, images: ImageSet, run_dir: Path, private_dir: Path, seed: int) -> Iterator[Services]:
    """This worker's OTA server, event bus and fault path (one per worker, shared by its boards)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with Services.open(
        farm, private_dir, images, seed=seed, server_log=run_dir / f"server-{worker}.log"
    ) as shared:
        yield shared


@pytest.fixture(scope="session")
def board_health(
    pytestconfig: pytest.Config, farm: Farm, image_library: ImageLibrary, run_dir: Path
) -> HealthKeeper:
    """This worker's board health checks; results go to the run's store (rig runs only)."""
    store = ResultsStore(results_db(pytestconfig)) if is_rig_run(pytestconfig) else None
    settings = pytestconfig.stash[RUN_KEY]
    return HealthKeeper(farm, image_library.base_for, run_dir / "health", settings.run_id, store)


@pytest.fixture
def board(
    farm: Farm,
    board_spec: BoardSpec,
    artifacts: Path,
    board_health: HealthKeeper,
    request: pytest.FixtureRequest,
) -> Iterator[Board]:
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
        board_health.admit(board_spec)
        opening_failed = True
        try:
            with Board(farm, board_spec, artifacts) as opened:
                opening_failed = False
                yield opened
        finally:
            # INFRA in the test (hooks.py marks it) or in opening the board itself: is the
            # board still fit for the scenarios queued behind this one?
            if opening_failed or request.node.stash.get(INFRA_SEEN, False):
                board_health.check(board_spec, Trigger.AFTER_INFRA)
    finally:
        lock.release()


@pytest.fixture
def ota(
    board: Board, services: Services, image_library: ImageLibrary, request: pytest.FixtureRequest
) -> Iterator[OtaSession]:
    """Everything one scenario needs to run OTAs on one board, with faults and verdicts; every
    judged OTA is recorded on the test item for the results store."""

    def record(outcome: OtaRecord) -> None:
        request.node.user_properties.append((ROW_KEY, outcome.to_wire()))

    images = image_library.for_board(board.spec)
    with services.proxy() as proxy, services.session(board, proxy, record, images=images) as session:
        yield session


@pytest.fixture(scope="session")
def aws_images(farm: Farm, images: ImageSet, private_dir: Path) -> AwsImages:
    """The run's AWS IoT OTA files, code-signed with the farm's code-signing key."""
    if farm.mqtt is None:
        pytest.skip("the farm file has no mqtt section (no AWS IoT broker)")
    return AwsImages(
        images.data("base"), images.key, MqttPki(farm.mqtt.pki).codesign, private_dir / "mqtt",
        project=LAB_PROJECT if farm.virtual else None,
    )  # fmt: skip


@pytest.fixture
def ota_mqtt(
    farm: Farm, board: Board, aws_images: AwsImages, artifacts: Path, seed: int,
    request: pytest.FixtureRequest,
) -> Iterator[MqttSession]:  # fmt: skip
    """`ota` for AWS IoT OTA over MQTT: the board's broker, the rig's Jobs/Streams service and
    the three-source verdicts; every judged OTA recorded like `ota`'s."""
    if board.spec.mqtt is None:
        pytest.skip(f"board {board.name} has no AWS IoT thing (its farm entry has no mqtt section)")

    def record(outcome: OtaRecord) -> None:
        request.node.user_properties.append((ROW_KEY, outcome.to_wire()))

    with mqtt_session(farm, board, aws_images, artifacts, seed=seed, recorder=record) as session:
        yield session
