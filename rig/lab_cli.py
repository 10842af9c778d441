"""`rig lab up|status|down`: the virtual lab as a separate process the rig only talks to.

The rig must behave the same on twins and on real boards, so it never imports the
twin package: it starts `python -m twin serve` detached and from then on knows the
lab only by its files (farm.yaml, lab.json, lab.log) and the ports a real bench
would have. `start_lab`/`stop_lab`/`lab_status`/`running_lab` are the same steps
for `rig run` and for tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rig.errors import InfraError, InputError
from rig.labstate import LabRunState, LabStateFile

# The file interface the lab daemon publishes in its directory.
FARM_FILE = "farm.yaml"
LOG_FILE = "lab.log"
DEFAULT_DIR = Path(".lab")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PROBE_TIMEOUT_S = 2.0
_POLL_S = 0.05

# Labs this process started: polled (and so reaped) here, never left as zombies.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LabHealth(Enum):
    """What `rig lab status` found."""

    RUNNING = "running"  # process alive, every port answers
    DEGRADED = "degraded"  # process alive, something does not answer
    DEAD = "dead"  # lab.json names a process that is gone
    STOPPED = "stopped"  # no lab running here


@dataclass(frozen=True)
class BoardStatus:
    """One board as the lab published it, and whether its serial port is there."""

    name: str
    serial: str
    port: int
    power: str
    listening: bool
    by_hand: str | None = None  # socket:// URL for stock esptool (README: flashing a lab board by hand)


@dataclass(frozen=True)
class InstrumentStatus:
    """One instrument of the lab and whether it answers."""

    name: str
    kind: str
    address: str
    answering: bool


@dataclass(frozen=True)
class LabStatus:
    """The lab in one directory, as its files and ports show it."""

    directory: Path
    health: LabHealth
    pid: int | None
    board_count: int | None
    started_at: str
    boards: tuple[BoardStatus, ...]
    instruments: tuple[InstrumentStatus, ...]

    @property
    def farm_path(self) -> Path:
        return self.directory / FARM_FILE

    @property
    def alive(self) -> bool:
        return self.health in (LabHealth.RUNNING, LabHealth.DEGRADED)


def _last_log_line(directory: Path) -> str:
    try:
        lines = (directory / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no lab.log"
    meaningful = [line.strip() for line in lines if line.strip()]
    return meaningful[-1] if meaningful else "lab.log is empty"


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (our own children get reaped)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_lab_process(pid: int) -> bool:
    """Alive and still a twin lab (a recycled pid must not be signalled)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"twin" in cmdline and b"serve" in cmdline


def _port_held(port: int) -> bool:
    """Someone listens on 127.0.0.1:port, found without connecting: a connection would
    take the board's console away from whoever is using it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _scpi_identity(host: str, port: int) -> str | None:
    """*IDN? over a raw SCPI socket; None when the instrument does not answer."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S) as conn:
            conn.sendall(b"*IDN?\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = conn.recv(256)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    return reply.decode("ascii", errors="replace").strip()


def _instruments(state: LabStateFile) -> tuple[InstrumentStatus, ...]:
    found = []
    for name, spec in sorted(state.instruments.items()):
        if spec.kind == "scpi-psu":
            host, port = str(spec.host), spec.port or 0
            answering = _scpi_identity(host, port) is not None
            found.append(InstrumentStatus(name, spec.kind, f"{host}:{port}", answering))
        elif spec.kind == "labgrid-pdu":  # a labgrid host's network PDU (HTTP)
            host, port = str(spec.host), spec.port or 0
            found.append(InstrumentStatus(name, spec.kind, f"http://{host}:{port}", _connects(port)))
        else:
            path = str(spec.path)
            found.append(InstrumentStatus(name, spec.kind, path, os.path.exists(path)))
    return tuple(found)


def _boards(state: LabStateFile, probe: bool) -> tuple[BoardStatus, ...]:
    return tuple(
        BoardStatus(
            b.name,
            b.serial,
            b.port,
            f"{b.instrument} ch{b.channel}",
            probe and _port_held(b.port),
            None if b.download_port is None else f"socket://127.0.0.1:{b.download_port}",
        )
        for b in state.boards
    )


def lab_status(directory: Path = DEFAULT_DIR) -> LabStatus:
    """Running? Its pid alive? Its serial ports listening and its PSU answering?"""
    state = LabStateFile.read(directory)
    pid = state.pid if state is not None else None
    if state is None or pid is None:
        health = LabHealth.STOPPED
    elif not _is_lab_process(pid):
        health = LabHealth.DEAD
    else:
        health = LabHealth.RUNNING
    alive = health is LabHealth.RUNNING
    boards = _boards(state, probe=alive) if state is not None and health is not LabHealth.STOPPED else ()
    instruments = _instruments(state) if state is not None and alive else ()
    if alive and not all([*(b.listening for b in boards), *(i.answering for i in instruments)]):
        health = LabHealth.DEGRADED
    return LabStatus(
        directory=directory,
        health=health,
        pid=pid,
        board_count=state.board_count if state is not None else None,
        started_at=state.started_at if state is not None else "",
        boards=boards,
        instruments=instruments,
    )


def _spawn(directory: Path, boards: int | None, config: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "twin", "serve", "--dir", str(directory)]
    if boards is not None:
        command += ["--boards", str(boards)]
    if config is not None:
        command += ["--config", str(config.resolve())]
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOG_FILE).open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _CHILDREN[process.pid] = process
    return process


def _wait_ready(process: subprocess.Popen[bytes], directory: Path, timeout_s: float) -> None:
    """Until lab.json names this process as running and every port answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            # The daemon exits 2 on bad input (its lab config): the user's to fix, not the rig's.
            failure = InputError if code == InputError.exit_code else InfraError
            raise failure(f"the lab exited with code {code}: {_last_log_line(directory)}")
        state = LabStateFile.read(directory)
        if state is not None and state.pid == process.pid and state.state is LabRunState.RUNNING:
            break
        if time.monotonic() > deadline:
            _kill(process)
            raise InfraError(f"the lab did not come up within {timeout_s:g} s: {_last_log_line(directory)}")
        time.sleep(_POLL_S)
    silent = [b.name for b in _boards(state, probe=False) if not _connects(b.port)]
    silent += [i.name for i in _instruments(state) if not i.answering]
    if silent or not (directory / FARM_FILE).exists():
        _kill(process)
        what = ", ".join(silent) or FARM_FILE
        raise InfraError(f"the lab came up but {what} did not answer: {_last_log_line(directory)}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(timeout=STOP_TIMEOUT_S)
    _CHILDREN.pop(process.pid, None)


def _start(directory: Path, boards: int | None, config: Path | None, timeout_s: float) -> tuple[Path, bool]:
    """The farm file, and whether this call started the lab (False: it was already up)."""
    directory = directory.resolve()
    if boards is not None and boards < 1:
        raise InputError(f"--boards must be at least 1, not {boards}")
    if config is not None and not config.is_file():
        raise InputError(f"{config}: lab config not found")
    status = lab_status(directory)
    if status.alive:
        if boards is not None and status.board_count != boards:
            raise InputError(
                f"the lab in {directory} already runs {status.board_count} boards, not {boards}: "
                f"run `rig lab down --dir {directory}` first"
            )
        return status.farm_path, False
    process = _spawn(directory, boards, config)
    _wait_ready(process, directory, timeout_s)
    return directory / FARM_FILE, True


def start_lab(
    directory: Path = DEFAULT_DIR,
    boards: int | None = None,
    config: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Path:
    """Start (or find running) the lab in `directory`; returns its farm file once every port answers.

    `boards=None` takes the config file's count, else 2.
    """
    return _start(directory, boards, config, timeout_s)[0]


def stop_lab(directory: Path = DEFAULT_DIR, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM the lab, SIGKILL it after `timeout_s`; returns the pid stopped (None: none ran)."""
    directory = directory.resolve()
    state = LabStateFile.read(directory)
    pid = state.pid if state is not None else None
    if state is None or pid is None or not _is_lab_process(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout_s):
        return pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, timeout_s):
        raise InfraError(f"lab process {pid} survived SIGKILL")
    # Killed: it could not withdraw its own files.
    (directory / FARM_FILE).unlink(missing_ok=True)
    replace(state, pid=None, state=LabRunState.KILLED).write(directory)
    return pid


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


@contextlib.contextmanager
def running_lab(
    directory: Path, boards: int | None = None, config: Path | None = None
) -> Iterator[Path]:
    """A lab for the duration of a block; stopped afterwards only if this block started it."""
    farm, started = _start(directory, boards, config, START_TIMEOUT_S)
    try:
        yield farm
    finally:
        if started:
            stop_lab(directory)


# -- CLI --------------------------------------------------------------------------------------

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="lab state directory",
)


def _print_status(status: LabStatus) -> None:
    console = Console(markup=False)  # farm names and paths are text, not markup
    console.print(f"lab in {status.directory}: {status.health.value} (pid {status.pid or '-'})")
    if not status.boards:
        return
    table = Table("board", "serial", "power", "listening", "esptool by hand")
    for board in status.boards:
        listening = "yes" if board.listening else "NO"
        table.add_row(board.name, board.serial, board.power, listening, board.by_hand or "-")
    console.print(table)
    if status.instruments:
        instruments = Table("instrument", "kind", "address", "answering")
        for inst in status.instruments:
            instruments.add_row(inst.name, inst.kind, inst.address, "yes" if inst.answering else "NO")
        console.print(instruments)


@click.group()
def lab() -> None:
    """The virtual lab: twin ESP32 boards on a virtual PSU and USB relay, in a background process."""


@lab.command()
@click.option("--boards", type=click.IntRange(min=1), default=None, help="twin boards [default: 2]")
@_DIR_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="also copy the farm file here")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="lab config YAML (per-board firmware traits, timeouts)",
)
def up(boards: int | None, directory: Path, out: Path | None, config: Path | None) -> None:
    """Start the lab (or report the one already running) and print its boards."""
    if out is not None and not out.parent.is_dir():  # checked first: no lab left running for nothing
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    farm, started = _start(directory, boards, config, START_TIMEOUT_S)
    # --out may name the lab's own farm file: copying a file onto itself fails.
    if out is not None and not (out.exists() and out.samefile(farm)):
        shutil.copyfile(farm, out)
    status = lab_status(directory.resolve())
    if not started:
        click.echo("lab already running")
    _print_status(status)
    click.echo(f"farm file: {out or farm}")


@lab.command()
@_DIR_OPTION
def status(directory: Path) -> None:
    """Is the lab running, and do its ports answer? Exit 3 if it is dead or degraded."""
    found = lab_status(directory.resolve())
    _print_status(found)
    if found.health in (LabHealth.DEAD, LabHealth.DEGRADED):
        last = _last_log_line(found.directory)
        raise InfraError(f"the lab in {found.directory} is {found.health.value}: {last}")


@lab.command()
@_DIR_OPTION
@click.option(
    "--timeout", type=float, default=STOP_TIMEOUT_S, show_default=True, help="seconds before SIGKILL"
)
def down(directory: Path, timeout: float) -> None:
    """Stop the lab (SIGTERM, then SIGKILL after --timeout)."""
    pid = stop_lab(directory, timeout)
    click.echo(f"lab stopped (pid {pid})" if pid is not None else f"no lab running in {directory}")
