"""The lab as one labgrid exporter host: an exporter YAML for its boards, the
`labgrid-exporter` process, and one place per board on the coordinator.

Each board is a group with a `RawSerialPort` (its pty: the exporter serves it through
ser2net as RFC2217, as it would a /dev/ttyUSB0) and a `NetworkPowerPort` (an outlet of
the lab's network PDU). ser2net runs with twin/usb_uart's shim preloaded, so esptool's
DTR/RTS reset reaches the board across the exporter like across a real USB-UART.
The exporter runs in its own session: stopping the host stops its ser2net children too,
as a host going down would.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rig.errors import InfraError
from twin.labconfig import LabgridHost
from twin.usb_uart.bridge import MODEM_DIR_ENV, modem_shim

EXPORTER_FILE = "exporter.yaml"
EXPORTER_PID = "exporter.pid"
EXPORTER_LOG = "exporter.log"
MODEM_DIR = "modem"
_REGISTER_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0

_EXEC_UNBLOCKED = (
    "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

log = logging.getLogger("twin.labgrid")


@dataclass(frozen=True)
class ExportedBoard:
    """What the exporter publishes for one board."""

    name: str
    pty: str
    outlet: int
    baud: int = 115200


def place_name(exporter: str, board: str) -> str:
    return f"{exporter}-{board}"


def exporter_document(boards: Sequence[ExportedBoard], pdu_url: str) -> dict[str, Any]:
    """labgrid's exporter config: one resource group per board."""
    return {
        board.name: {
            "RawSerialPort": {"port": board.pty, "speed": board.baud},
            "NetworkPowerPort": {"model": "simplerest", "host": pdu_url, "index": board.outlet},
        }
        for board in boards
    }


def labgrid_tool(name: str) -> str:
    """labgrid's console scripts sit beside the interpreter that has labgrid installed."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise InfraError(f"{name} not found: install labgrid (it is part of ota-rig's dependencies)")
    return found


class ExporterHost:
    """Runs `labgrid-exporter` for a lab's boards and registers their places."""

    def __init__(self, directory: Path, host: LabgridHost) -> None:
        self.directory = directory
        self.host = host
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def modem_dir(self) -> Path:
        return self.directory / MODEM_DIR

    def start(self, boards: Sequence[ExportedBoard], pdu_url: str) -> None:
        if any(r.startswith(f"{self.host.exporter}/") for r in self._client("resources").split()):
            raise InfraError(
                f"an exporter named {self.host.exporter} is already connected to {self.host.coordinator}"
            )
        config = self.directory / EXPORTER_FILE
        config.write_text(
            yaml.safe_dump(exporter_document(boards, pdu_url), sort_keys=False), encoding="utf-8"
        )
        self.launch([board.name for board in boards])

    def launch(self, boards: Sequence[str]) -> None:
        """Start the exporter on the config `start` wrote and register the boards' places
        (what an admin does after the host comes back: the places are already there)."""
        config = self.directory / EXPORTER_FILE
        env = {
            **os.environ,
            "LD_PRELOAD": str(modem_shim()),
            MODEM_DIR_ENV: str(self.modem_dir),
            "GRPC_ENABLE_FORK_SUPPORT": "0",
        }
        command = [
            # The lab blocks SIGTERM in every thread (twin/lab.py `serve`); the exporter must
            # not inherit that mask, or it could not be stopped.
            sys.executable, "-c", _EXEC_UNBLOCKED,
            labgrid_tool("labgrid-exporter"),
            "-c", self.host.coordinator,
            "--hostname", "127.0.0.1",
            "-n", self.host.exporter,
            str(config),
        ]  # fmt: skip
        with (self.directory / EXPORTER_LOG).open("ab") as output:
            self._process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        (self.directory / EXPORTER_PID).write_text(f"{self._process.pid}\n", encoding="utf-8")
        self._wait_registered(boards)
        self._create_places(boards)
        log.info(
            "exporter %s up (pid %d) on %s", self.host.exporter, self._process.pid, self.host.coordinator
        )

    def stop(self) -> None:
        """SIGTERM to the exporter's session (the exporter stops its ser2nets), then SIGKILL."""
        process, self._process = self._process, None
        (self.directory / EXPORTER_PID).unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(_STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass

    def _client(self, *args: str) -> str:
        command = [labgrid_tool("labgrid-client"), "-x", self.host.coordinator, *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise InfraError(f"labgrid-client {' '.join(args)}: {done.stderr.strip().splitlines()[-1:]}")
        return done.stdout

    def _wait_registered(self, boards: Sequence[str]) -> None:
        wanted = {f"{self.host.exporter}/{board}/NetworkSerialPort" for board in boards}
        deadline = time.monotonic() + _REGISTER_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise InfraError(
                    f"labgrid-exporter {self.host.exporter} exited ({self._process.returncode}); "
                    f"see {self.directory / EXPORTER_LOG}"
                )
            listed = set(self._client("resources").split())
            if wanted <= listed:
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"exporter {self.host.exporter} did not register with {self.host.coordinator}"
                )
            time.sleep(0.2)

    def _create_places(self, boards: Sequence[str]) -> None:
        """One place per board, tagged with its host; places that exist are left as they are."""
        existing = set(self._client("places").split())
        for board in boards:
            place = place_name(self.host.exporter, board)
            if place in existing:
                continue
            self._client("-p", place, "create")
            self._client("-p", place, "add-match", f"{self.host.exporter}/{board}/*")
            self._client("-p", place, "set-tags", f"host={self.host.exporter}", "chip=esp32")
