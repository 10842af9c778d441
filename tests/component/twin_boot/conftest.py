"""An in-process twin board flashed with a merged image, and its console."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.esp.flashimage import flash_regions
from rig.esp.otadata import OtaData
from rig.esp.partitions import PartitionTable
from rig.esp.signing import SigningKey, SigningScheme
from rig.esp.testimage import make_test_app
from rig.net.certs import ensure_bundle
from rig.net.ota_server import OtaServer
from twin.board import TwinBoard
from twin.config import BoardConfig, KeepAlive

TWO_OTA_LARGE = """\
nvs,      data, nvs,     ,        0x6000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
ota_0,    app,  ota_0,   ,        1700K,
ota_1,    app,  ota_1,   ,        1700K,
"""
WAIT_S = 20.0
# One ESP-IDF log line without its timestamp: "E esp_image: Secure boot signature verification failed".
_LOG_LINE = re.compile(r"^([EWIDV]) \(\d+\) ([^:]+): (.*)$")


@dataclass
class Console:
    """Everything the board printed, searchable while it keeps printing."""

    board: TwinBoard
    text: str = ""
    mark: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.board.chip.uart.attach(self._sink)

    def _sink(self, data: bytes) -> None:
        with self.cond:
            self.text += data.decode("utf-8", "replace").replace("\r\n", "\n")
            self.cond.notify_all()

    def expect(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """Wait for `pattern` after the last match; later expects continue after it."""
        regex = re.compile(pattern, re.M)
        found: list[re.Match[str]] = []

        def check() -> bool:
            m = regex.search(self.text, self.mark)
            if m:
                found.append(m)
            return m is not None

        with self.cond:
            if not self.cond.wait_for(check, timeout):
                tail = self.text[self.mark :][-3000:]
                raise AssertionError(f"{pattern!r} not seen; console after mark:\n{tail}")
            self.mark = found[0].end()
            return found[0]

    def since(self, start: int) -> str:
        return self.text[start:]

    def send(self, line: str) -> None:
        self.board.chip.uart.feed(line.encode() + b"\n")

    def log_lines(self, start: int = 0) -> list[str]:
        """ESP-IDF log lines printed since `start`, as "L tag: message" (timestamps dropped)."""
        found = (_LOG_LINE.match(line) for line in self.text[start:].split("\n"))
        return [f"{m[1]} {m[2]}: {m[3]}" for m in found if m]


@dataclass
class Lab:
    board: TwinBoard
    console: Console
    table: PartitionTable

    def otadata(self) -> OtaData:
        part = self.table.otadata
        assert part is not None
        return OtaData.from_bytes(self.board.chip.flash.read(part.offset, part.size))

    def power_cycle(self) -> None:
        self.board.power.supply_changed(0.0)
        self.board.power.supply_changed(5.0)


@dataclass
class Served:
    """The rig's HTTPS image server, its image set and the CA a board pins."""

    server: OtaServer
    images: dict[str, bytes]
    pinned_der: bytes

    def url(self, name: str, port: int | None = None) -> str:
        return self.server.url_for(name, port=port)


def start_ota(
    lab: Lab,
    served: Served,
    name: str,
    *,
    port: int | None = None,
    resume_from: int | None = 0,
    wait_ready: bool = True,
) -> int:
    """Wait for `ready`, pin the server's CA, start `ota <url>`, see it begin (resume_from None:
    from wherever the agent saved); returns the resume point."""
    c = lab.console
    if wait_ready:
        c.expect(r"rig_agent: ready version=\S+ running=ota_0")
    c.send(f"cert {base64.b64encode(served.pinned_der).decode()}")
    c.expect(r"rig_agent: ok cert sha256=[0-9a-f]{16}$")
    c.send(f"ota {served.url(name, port)}")
    c.expect(r"rig_agent: ok ota url=")
    where = r"\d+" if resume_from is None else str(resume_from)
    return int(c.expect(rf"rig_agent: ota begin url=\S+ resume_from=({where})$")[1])


def lab_config(**overrides: object) -> BoardConfig:
    base: dict[str, object] = {
        "http_timeout_ms": 1000,
        "keepalive": KeepAlive(idle_s=1.0, interval_s=0.5, count=2),
        "task_wdt_timeout_ms": 300,
    }
    base.update(overrides)
    return BoardConfig(**base)  # type: ignore[arg-type]


Keys = tuple[SigningKey, SigningKey]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Two RSA-3072 signing keys: the one the running app is signed with, and a stranger's."""
    where = tmp_path_factory.mktemp("keys")
    scheme = SigningScheme.RSA3072_SBV2
    return SigningKey.generate(where / "ours.pem", scheme), SigningKey.generate(where / "other.pem", scheme)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    images: dict[str, bytes] = {}
    bundle = ensure_bundle(tmp_path / "certs")
    server = OtaServer(bundle, images).start()
    yield Served(server, images, bundle.ca_der())
    server.stop()


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[object]:
    boards: list[TwinBoard] = []

    def make(app: bytes | None = None, config: BoardConfig | None = None, *, trace: bool = False) -> Lab:
        table = PartitionTable.from_csv(TWO_OTA_LARGE)
        board = TwinBoard(tmp_path / f"board{len(boards)}", config or lab_config(), trace=trace)
        boards.append(board)
        image = app if app is not None else make_test_app(version="1.0.0")
        for offset, data in flash_regions(table, app=image):
            board.chip.flash.program(offset, data)
        if board.chip.trace is not None:  # flashed as esptool would: the trace starts after it
            board.chip.trace.restart(board.chip.flash, board.chip.efuse)
        console = Console(board)
        board.start(rfc2217_port=None)
        return Lab(board, console, table)

    yield make
    for board in boards:
        board.stop()
