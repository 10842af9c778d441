"""The virtual lab daemon: twin boards wired to a virtual PSU and a virtual USB relay.

The rig must not know it talks to twins, so the lab's only outputs are what a real
bench has: serial ports (RFC2217), a SCPI instrument on TCP, a relay on a pty, and a
farm file describing them. A lab can also play a labgrid exporter host
(twin/labgrid_host.py). Everything the boards remember (flash, eFuses, NVS)
lives in the lab directory so a restarted lab is the same bench, on the same ports
when they are still free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import filelock
import yaml

from rig.errors import InfraError, InputError, RigError
from rig.esp.example_image import STOCK_PROJECTS
from rig.esp.flashimage import placeholder_bootloader
from rig.labstate import BoardEntry, InstrumentEntry, LabRunState, LabStateFile, lab_board_name
from rig.mqtt.pki import ensure_pki
from rig.units import size_text
from twin.board import TwinBoard
from twin.chip import BOOTLOADER_OFFSET
from twin.config import BoardConfig, MqttEndpoint
from twin.efuse import DEFAULT_MAC, Efuse
from twin.flash import NorFlash
from twin.instruments import VirtualPdu, VirtualPsu, VirtualRelay
from twin.instruments.relay import FRAME_START, frame_checksum
from twin.labconfig import LabConfig
from twin.labgrid_host import ExportedBoard, ExporterHost

FARM_FILE = "farm.yaml"
MQTT_DIR = "mqtt"
LOG_FILE = "lab.log"
LOCK_FILE = "lab.lock"
BOARDS_DIR = "boards"

PSU_CHANNELS = 3
RELAY_CHANNELS = 4
PSU_VOLTS = 3.3
PSU_CURRENT_LIMIT = 0.5
OFF_SECONDS = 0.3
_RELAY_SWITCH_TIMEOUT_S = 5.0
# The boards' CPU threads (TLS, flash, SHA) keep the GIL busy; at CPython's default 5 ms
# switch interval a PSU or relay thread waits up to that long per hand-over before it
# can cut power. A real bench answers in well under a millisecond.
GIL_SWITCH_INTERVAL_S = 0.0005

log = logging.getLogger("twin.lab")


class InstrumentKind(Enum):
    """Farm-file `kind` of each instrument the lab hosts."""

    PSU = "scpi-psu"
    RELAY = "lcus-relay"
    # A labgrid host's network PDU, switched through the rig's `labgrid-power` driver.
    PDU = "labgrid-pdu"


@dataclass(frozen=True)
class Wire:
    """Which instrument output feeds a board."""

    instrument: str
    channel: int

    @property
    def kind(self) -> InstrumentKind:
        for kind, prefix in ((InstrumentKind.RELAY, "relay"), (InstrumentKind.PDU, "pdu")):
            if self.instrument.startswith(prefix):
                return kind
        return InstrumentKind.PSU


def plan_wiring(count: int, *, pdu: bool = False) -> list[Wire]:
    """Odd boards on PSU channels, even boards on relay contacts; overflow fills the other,
    and only when both are full (more than 7 boards) does another PSU join the bench.
    A labgrid host's boards all sit on its network PDU's outlets 0..n-1."""
    if count < 1:
        raise InputError(f"a lab needs at least one board, not {count}")
    if pdu:
        return [Wire("pdu1", index) for index in range(count)]
    wires: list[Wire] = []
    psu_used = relay_used = 0
    for index in range(count):
        odd = index % 2 == 0
        if relay_used < RELAY_CHANNELS and (not odd or psu_used >= PSU_CHANNELS):
            relay_used += 1
            wires.append(Wire("relay1", relay_used))
        else:
            wires.append(Wire(f"psu{psu_used // PSU_CHANNELS + 1}", psu_used % PSU_CHANNELS + 1))
            psu_used += 1
    return wires


def _free_port(previous: int | None) -> int:
    """The port a board's AWS IoT firmware is built to reach; the previous lab's when free.
    Nothing listens on it until the rig starts that board's broker."""
    for candidate in (previous or 0, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise InfraError("no free loopback port for a board's MQTT broker")


def _mqtt_port(board: LabBoard) -> int:
    endpoint = board.twin.config.mqtt
    assert endpoint is not None, "lab boards are built with a broker endpoint"
    return endpoint.port


def board_mac(index: int) -> bytes:
    """Distinct MACs in Espressif's OUI, b1 keeping the twin's default."""
    base = int.from_bytes(DEFAULT_MAC, "big")
    return (base + index).to_bytes(6, "big")


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def factory_fresh(state_dir: Path, config: BoardConfig, index: int) -> bool:
    """Give a new board its eFuses and a flash holding only a bootloader (0xFF elsewhere).

    The flash file is written last, so its presence marks a finished setup; an existing
    board is left alone (its contents are the point of keeping the directory).
    """
    flash_path = state_dir / "flash.bin"
    if flash_path.exists():
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    rev = config.chip_rev_full
    Efuse(state_dir / "efuse.json", board_mac(index), rev // 100, rev % 100)
    tmp = state_dir / ".flash.bin.tmp"
    tmp.unlink(missing_ok=True)
    flash = NorFlash(tmp, config.flash_size)
    try:
        flash.program(BOOTLOADER_OFFSET, placeholder_bootloader(config.flash_size))
    finally:
        flash.close()
    os.replace(tmp, flash_path)
    return True


@dataclass
class LabBoard:
    """One twin on the bench and the wire that powers it."""

    name: str
    twin: TwinBoard
    wire: Wire
    pty: str | None = None

    @property
    def port(self) -> int:
        port = self.twin.port
        assert port is not None, "board started without its RFC2217 server"
        return port

    @property
    def serial(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}"

    @property
    def by_hand(self) -> str:
        """Where a person's stock esptool flashes this board at full speed (`DownloadPort`)."""
        return f"socket://127.0.0.1:{self.twin.download_port}"


class Lab:
    """N twin boards, the PSUs and relay that feed them, and the farm file describing them."""

    def __init__(self, directory: Path, count: int, config: LabConfig | None = None) -> None:
        self.directory = directory
        self.count = count
        self.config = config or LabConfig()
        self.wires = plan_wiring(count, pdu=self.config.labgrid is not None)
        self.boards: list[LabBoard] = []
        self.psus: dict[str, VirtualPsu] = {}
        self.relay: VirtualRelay | None = None
        self.pdu: VirtualPdu | None = None
        self.exporter = ExporterHost(directory, self.config.labgrid) if self.config.labgrid else None
        # Boards on different labgrid hosts get different MACs, as real boards have.
        host = self.config.labgrid.exporter if self.config.labgrid else ""
        self._mac_base = (zlib.crc32(host.encode()) & 0xFFF) << 4 if host else 0
        self.started_at = ""

    @property
    def farm_path(self) -> Path:
        return self.directory / FARM_FILE

    @property
    def mqtt_pki(self) -> Path:
        """The boards' AWS IoT identities (the certs their firmware embeds) and the rig's."""
        return self.directory / MQTT_DIR

    def start(self) -> None:
        """Bring every instrument and board up, power the boards, then publish farm + state."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.farm_path.unlink(missing_ok=True)
        previous = LabStateFile.read(self.directory)
        try:
            self._start_instruments(previous)
            self._start_boards(previous)
            self._power_up()
            if self.exporter is not None:
                assert self.pdu is not None
                exported = [ExportedBoard(b.name, str(b.pty), b.wire.channel) for b in self.boards]
                self.exporter.start(exported, self.pdu.url_template)
        except BaseException:
            self.stop()
            raise
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        write_atomic(self.farm_path, yaml.safe_dump(self.farm_document(), sort_keys=False))
        self._write_state(LabRunState.RUNNING)

    def stop(self) -> None:
        """Exporter down, boards off (flash flushed), instruments closed, farm file withdrawn,
        pid cleared."""
        if self.exporter is not None:
            self.exporter.stop()
        for board in self.boards:
            board.twin.stop()
        for psu in self.psus.values():
            psu.close()
        if self.relay is not None:
            self.relay.close()
        if self.pdu is not None:
            self.pdu.close()
        self.farm_path.unlink(missing_ok=True)
        if self.started_at:
            self._write_state(LabRunState.STOPPED)
        self.boards, self.psus, self.relay, self.pdu = [], {}, None, None

    # -- bring-up -------------------------------------------------------------------------

    def _start_instruments(self, previous: LabStateFile | None) -> None:
        old = previous.instruments if previous is not None else {}
        for name in sorted({w.instrument for w in self.wires if w.kind is InstrumentKind.PSU}):
            port = old[name].port if name in old else None
            serial_number = f"DP8C{int(name[3:]):09d}"
            try:
                psu = VirtualPsu(port=port if isinstance(port, int) else 0, serial_number=serial_number)
            except OSError:
                log.info("%s: port %s is taken, using a new one", name, port)
                psu = VirtualPsu(serial_number=serial_number)
            self.psus[name] = psu
        if any(w.kind is InstrumentKind.RELAY for w in self.wires):
            self.relay = VirtualRelay(channels=RELAY_CHANNELS, status_query=True)
        if any(w.kind is InstrumentKind.PDU for w in self.wires):
            self.pdu = VirtualPdu(outlets=len(self.wires))

    def _start_boards(self, previous: LabStateFile | None) -> None:
        old_ports = {b.name: b.port for b in previous.boards} if previous is not None else {}
        old_download = {b.name: b.download_port for b in previous.boards} if previous is not None else {}
        old_mqtt = {b.name: b.mqtt_port for b in previous.boards} if previous is not None else {}
        names = [lab_board_name(index) for index in range(len(self.wires))]
        ensure_pki(self.mqtt_pki, names)
        for index, wire in enumerate(self.wires):
            name = lab_board_name(index)
            endpoint = MqttEndpoint("127.0.0.1", _free_port(old_mqtt.get(name)), name, str(self.mqtt_pki))
            config = replace(self.config.board_config(name), mqtt=endpoint)
            state_dir = self.directory / BOARDS_DIR / name
            if factory_fresh(state_dir, config, self._mac_base + index):
                log.info("%s: factory-fresh flash (bootloader only) in %s", name, state_dir)
            twin = TwinBoard(state_dir, config, trace=self.config.trace_flash)
            board = LabBoard(name, twin, wire)
            self.boards.append(board)
            port, download = old_ports.get(name), old_download.get(name)
            try:
                twin.start(rfc2217_port=port or 0, download_port=download or 0, powered=False)
            except OSError:
                log.info("%s: port %s or %s is taken, using new ones", name, port, download)
                twin.start(rfc2217_port=0, download_port=0, powered=False)
            if self.exporter is not None:
                board.pty = twin.chip.serve_pty(self.exporter.modem_dir).path

    def _power_up(self) -> None:
        """Every output on, as a bench left powered: boards answer esptool at once."""
        relay_channels: list[int] = []
        for board in self.boards:
            wire = board.wire
            if wire.kind is InstrumentKind.PSU:
                psu = self.psus[wire.instrument]
                psu.attach(wire.channel, board.twin.power)
                psu.execute(f":APPL CH{wire.channel},{PSU_VOLTS},{PSU_CURRENT_LIMIT}")
                psu.execute(f":OUTP CH{wire.channel},ON")
            elif wire.kind is InstrumentKind.PDU:
                assert self.pdu is not None
                self.pdu.attach(wire.channel, board.twin.power)
                self.pdu.switch(wire.channel, on=True)
            else:
                assert self.relay is not None
                self.relay.attach(wire.channel, board.twin.power)
                relay_channels.append(wire.channel)
        if relay_channels:
            self._close_relays(relay_channels)

    def _close_relays(self, channels: list[int]) -> None:
        """Switch contacts the way the rig does, through the relay's serial port."""
        assert self.relay is not None
        relay = self.relay
        fd = os.open(relay.port, os.O_WRONLY | os.O_NOCTTY)
        try:
            for channel in channels:
                os.write(fd, bytes((FRAME_START, channel, 1, frame_checksum(channel, 1))))
        finally:
            os.close(fd)
        deadline = time.monotonic() + _RELAY_SWITCH_TIMEOUT_S
        while not all(relay.is_closed(c) for c in channels):
            if time.monotonic() > deadline:
                raise InfraError(f"virtual relay on {relay.port} did not close channels {channels}")
            time.sleep(0.01)

    # -- what the lab publishes -------------------------------------------------------------

    def farm_document(self) -> dict[str, Any]:
        """The farm file the rig reads (rig.farm.parse_farm's schema)."""
        instruments: dict[str, dict[str, Any]] = {}
        for name, psu in self.psus.items():
            instruments[name] = {
                "kind": InstrumentKind.PSU.value,
                "resource": psu.resource,
                "dialect": "rigol-dp8xx",
                "volts": PSU_VOLTS,
                "current_limit": PSU_CURRENT_LIMIT,
            }
        if self.relay is not None:
            instruments["relay1"] = {
                "kind": InstrumentKind.RELAY.value,
                "port": self.relay.port,
                "status_query": True,
            }
        boards = []
        for board in self.boards:
            config = board.twin.config
            boards.append(
                {
                    "name": board.name,
                    "chip": "esp32",
                    "serial": board.serial,
                    "flash_size": size_text(config.flash_size),
                    "power": self._power_section(board.wire),
                    "firmware": _firmware_traits(config),
                    "mqtt": {"thing": board.name, "port": _mqtt_port(board)},
                    "tags": [
                        "virtual",
                        board.wire.kind.name.lower(),
                        *(["efuse-burnable"] if self.config.throwaway else []),
                    ],
                }
            )
        return {
            "name": "virtual-lab",
            "virtual": True,
            "network": {"bind": "127.0.0.1", "board_facing_address": "127.0.0.1", "fault_path": "namespace"},
            "instruments": instruments,
            "boards": boards,
            "mqtt": {"broker": "embedded", "host": "127.0.0.1", "pki": str(self.mqtt_pki)},
        }

    def _power_section(self, wire: Wire) -> dict[str, Any]:
        if wire.kind is InstrumentKind.PDU:
            assert self.pdu is not None
            return {
                "driver": "labgrid-power",
                "model": "simplerest",
                "host": self.pdu.url_template,
                "index": wire.channel,
                "off_seconds": OFF_SECONDS,
            }
        return {"instrument": wire.instrument, "channel": wire.channel, "off_seconds": OFF_SECONDS}

    def _write_state(self, state: LabRunState) -> None:
        running = state is LabRunState.RUNNING
        instruments = {
            name: InstrumentEntry(InstrumentKind.PSU.value, host=psu.host, port=psu.port)
            for name, psu in self.psus.items()
        }
        if self.relay is not None:
            instruments["relay1"] = InstrumentEntry(InstrumentKind.RELAY.value, path=self.relay.port)
        if self.pdu is not None:
            instruments["pdu1"] = InstrumentEntry(
                InstrumentKind.PDU.value, host="127.0.0.1", port=self.pdu.port
            )
        LabStateFile(
            pid=os.getpid() if running else None,
            state=state,
            started_at=self.started_at,
            board_count=self.count,
            farm=FARM_FILE,
            instruments=instruments,
            boards=tuple(
                BoardEntry(
                    b.name,
                    b.port,
                    b.serial,
                    b.wire.instrument,
                    b.wire.channel,
                    b.twin.download_port,
                    _mqtt_port(b),
                )
                for b in self.boards
            ),
        ).write(self.directory)


@contextlib.contextmanager
def _log_to(directory: Path) -> Iterator[None]:
    """lab.log always; the terminal too when someone is watching a foreground lab."""
    handlers: list[logging.Handler] = [logging.FileHandler(directory / LOG_FILE, encoding="utf-8")]
    if sys.stderr.isatty():
        handlers.append(logging.StreamHandler())
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def serve(directory: Path, count: int, config: LabConfig) -> int:
    """Run the lab in the foreground until SIGTERM/SIGINT; returns the process exit code."""
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before any thread starts, so every thread inherits the mask and the
    # signal waits in sigwait below, even when it lands during bring-up.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    directory.mkdir(parents=True, exist_ok=True)
    with _log_to(directory):
        lock = filelock.FileLock(str(directory / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            running = LabStateFile.read(directory)
            pid = running.pid if running is not None else None
            log.error("a lab is already running in %s (pid %s)", directory, pid)
            return InputError.exit_code
        try:
            return _run(Lab(directory, count, config), stop_signals)
        finally:
            lock.release()


def _run(lab: Lab, stop_signals: set[signal.Signals]) -> int:
    try:
        lab.start()
    except RigError as error:
        log.error("lab failed to start: %s", error)
        return error.exit_code
    except Exception:
        log.exception("lab failed to start")
        return InfraError.exit_code
    for board in lab.boards:
        log.info(
            "%s: %s, power %s channel %d", board.name, board.serial, board.wire.instrument, board.wire.channel
        )
    log.info("lab up: %d board(s), pid %d, farm file %s", len(lab.boards), os.getpid(), lab.farm_path)
    received = signal.sigwait(stop_signals)
    log.info("%s received: stopping the lab", signal.Signals(received).name)
    lab.stop()
    log.info("lab stopped")
    return 0


def _firmware_traits(config: BoardConfig) -> dict[str, Any]:
    """The farm file's `firmware` section for a board built as `config`: a board whose
    firmware is one of Espressif's stock OTA examples is driven by its prompts (idf-example);
    simple_ota checks no version at all."""
    traits: dict[str, Any] = {
        "rollback": config.rollback,
        "anti_rollback": config.anti_rollback,
        "signing": config.signed_updates.value,
    }
    if config.firmware in STOCK_PROJECTS:
        traits |= {"protocol": "idf-example", "example": config.firmware}
        traits["version_check"] = config.firmware != "simple_ota"
    return traits
