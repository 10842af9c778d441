"""Shared fixtures: one rig identity per session, an OTA server, a raw TCP blob server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.net.bus import EventBus
from rig.net.certs import CertBundle, ensure_bundle
from rig.net.ota_server import OtaServer
from rig.net.proxy import FaultProxy

from .support import BlobServer

IMAGE_SIZE = 256 * 1024


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="session")
def bundle(cert_dir: Path) -> CertBundle:
    return ensure_bundle(cert_dir)


@pytest.fixture(scope="session")
def image() -> bytes:
    return random.Random(42).randbytes(IMAGE_SIZE)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def server(bundle: CertBundle, image: bytes, bus: EventBus, tmp_path: Path) -> Iterator[OtaServer]:
    with OtaServer(bundle, {"fw.bin": image}, bus=bus, log_path=tmp_path / "server.log") as running:
        yield running


@pytest.fixture
def blob(image: bytes) -> Iterator[BlobServer]:
    server = BlobServer(image * 4)
    yield server
    server.close()


@pytest.fixture
def blob_proxy(blob: BlobServer, bus: EventBus) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", blob.port), bus=bus) as proxy:
        yield proxy


@pytest.fixture
def tls_proxy(server: OtaServer, bus: EventBus) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", server.port), bus=bus) as proxy:
        yield proxy
