"""One builder for an OTA run: certs → images → event bus → server → fault path → proxy →
board → session, wired the same way for the pytest fixtures and for `rig repro`.

`Services` are what every board of one process shares (one server, one bus, one fault
path); each board gets its own proxy and session from them. Like pytest-embedded's
`DutFactory`, the fixtures and scripts differ only in who owns the lifetimes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.board import Board
from rig.errors import InputError
from rig.farm import Farm
from rig.imageset import ImageSet
from rig.mqtt.broker import Mosquitto
from rig.mqtt.images import AwsImages
from rig.mqtt.pki import MqttPki
from rig.mqtt.service import JobsService
from rig.mqtt.session import LAB_SETTLE_QUIET_S, SETTLE_QUIET_S, BrokerLink, MqttSession
from rig.net.bus import EventBus
from rig.net.certs import CertBundle, ensure_bundle
from rig.net.listener import free_port, listen
from rig.net.netns import FaultPath, open_fault_path
from rig.net.ota_server import OtaServer
from rig.net.proxy import FaultProxy
from rig.session import OtaSession, Recorder, Tuning

# A twin answers in milliseconds and boots in ~60 ms: the agent notices a dead link in about
# a second, and an app that stays up 0.15 s after `ready` has settled. A real farm keeps the
# firmware's own timeouts and the session's default settle time.
LAB_TUNING = Tuning(quiet_s=0.15, agent={"timeout_ms": "1200"})


def tuning_for(farm: Farm) -> Tuning:
    return LAB_TUNING if farm.virtual else Tuning()


def server_identity(farm: Farm, private: Path) -> CertBundle:
    """The certificate the OTA server presents: the farm's own (stock firmware trusts what it
    was built with; a self-signed one is its own CA), else one the rig's CA signed."""
    network = farm.network
    if network.server_cert is not None and network.server_key is not None:
        return CertBundle(network.server_cert, network.server_cert, network.server_key)
    return ensure_bundle(private / "certs")


@dataclass(frozen=True)
class Services:
    """The run's shared services on this process."""

    farm: Farm
    certs: CertBundle
    images: ImageSet
    bus: EventBus
    server: OtaServer
    path: FaultPath
    seed: int

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, farm: Farm, private: Path, images: ImageSet, *, seed: int, server_log: Path
    ) -> Iterator[Services]:
        """Certs under `private/certs` (`rig.keyfiles.private_folder`), the OTA server on the
        farm's bind address, the fault path the farm asks for (or why it cannot be had); all
        closed on exit."""
        certs = server_identity(farm, private)
        bus = EventBus()
        with (
            OtaServer(certs, images.source(), host=farm.network.bind, bus=bus, log_path=server_log) as server,
            open_fault_path(farm.network) as path,
        ):
            yield cls(farm, certs, images, bus, server, path, seed)

    @contextlib.contextmanager
    def proxy(self) -> Iterator[FaultProxy]:
        """A fault proxy in front of the server, listening inside the fault path when there is one.

        Same bus as the server: the proxy maps image bytes to wire bytes from its checkpoints.
        """
        listener = self.path.namespace.listener if self.path.namespace is not None else listen
        with FaultProxy(
            (self.server.host, self.server.port), host=self.farm.network.bind, bus=self.bus, listener=listener
        ) as proxy:
            yield proxy

    @contextlib.contextmanager
    def session(
        self,
        board: Board,
        proxy: FaultProxy,
        recorder: Recorder | None = None,
        *,
        images: ImageSet | None = None,
    ) -> Iterator[OtaSession]:
        """`board`'s OTA session, tuned for the farm, every result handed to `recorder`;
        `images` when the board's firmware is served its own set (a stock example's)."""
        session = OtaSession(
            board, self.server, proxy, self.certs, images or self.images, self.farm.network,
            seed=self.seed, path=self.path, tuning=tuning_for(self.farm), recorder=recorder,
        )  # fmt: skip
        try:
            yield session
        finally:
            session.close()


@contextlib.contextmanager
def mqtt_session(
    farm: Farm, board: Board, images: AwsImages, workdir: Path, *, seed: int, recorder: Recorder | None = None
) -> Iterator[MqttSession]:
    """`board`'s AWS IoT OTA session: with an embedded broker, mosquitto on a port of its own
    behind a fault proxy that listens where the board's firmware connects; with an external
    one, the rig's Jobs/Streams client of that broker only."""
    spec, thing = farm.mqtt, board.spec.mqtt
    if spec is None or thing is None:
        raise InputError(f"board {board.name}: no AWS IoT thing (the farm file's mqtt sections)")
    pki = MqttPki(spec.pki)
    pki.check(embedded=spec.broker == "embedded")
    with contextlib.ExitStack() as stack:
        broker = proxy = None
        host, port = spec.host, thing.port or spec.port
        if spec.broker == "embedded":
            broker = stack.enter_context(Mosquitto(pki, spec.host, free_port(spec.host), workdir))
            proxy = stack.enter_context(FaultProxy((spec.host, broker.port), host=spec.host, port=port))
            host, port = spec.host, broker.port
        service = JobsService(host, port, str(pki.ca), pki.service, thing.thing)
        service.start()
        stack.callback(service.stop)
        link = BrokerLink(service, str(pki.ca), pki.service, host, port, broker, proxy)
        quiet = LAB_SETTLE_QUIET_S if farm.virtual else SETTLE_QUIET_S
        session = MqttSession(board, link, images, seed=seed, recorder=recorder, quiet_s=quiet)
        stack.callback(session.close)
        yield session
