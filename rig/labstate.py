"""lab.json: what a running virtual lab publishes about itself, in one schema.

The lab daemon (`twin/lab.py`) writes it; `rig lab status|down` and the next `lab up` (which
keeps the ports of the previous one) read it. Both sides use these records, so a field is
named and typed in one place.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "lab.json"


def lab_board_name(index: int) -> str:
    """The name of the lab's board number `index` (from 0) in its farm file and lab config."""
    return f"b{index + 1}"


class LabRunState(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"  # the lab shut down and withdrew its farm file
    KILLED = "killed"  # `rig lab down` had to SIGKILL it


@dataclass(frozen=True)
class InstrumentEntry:
    """An instrument the lab hosts: a SCPI PSU on `host:port`, or a relay on a serial `path`."""

    kind: str
    host: str | None = None
    port: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class BoardEntry:
    """A twin board: its RFC2217 port, serial URL and the instrument output feeding it."""

    name: str
    port: int
    serial: str
    instrument: str
    channel: int
    download_port: int | None = None  # raw TCP for stock esptool by hand (twin/uart.py DownloadPort)
    mqtt_port: int | None = None  # the broker port its AWS IoT firmware is built to reach


@dataclass(frozen=True)
class LabStateFile:
    pid: int | None
    state: LabRunState
    started_at: str
    board_count: int
    farm: str
    instruments: dict[str, InstrumentEntry] = field(default_factory=dict)
    boards: tuple[BoardEntry, ...] = ()

    def write(self, directory: Path) -> None:
        """Atomically: readers see the old file or the new one, never half of one."""
        document = {**asdict(self), "state": self.state.value, "boards": [asdict(b) for b in self.boards]}
        path = directory / STATE_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def read(cls, directory: Path) -> LabStateFile | None:
        """The lab's state, or None when there is none or it is not a lab state file."""
        try:
            data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
            return cls._from_json(data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    @classmethod
    def _from_json(cls, data: Any) -> LabStateFile:
        pid = data["pid"]
        return cls(
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            state=LabRunState(data["state"]),
            started_at=str(data["started_at"]),
            board_count=int(data["board_count"]),
            farm=str(data["farm"]),
            instruments={str(name): InstrumentEntry(**spec) for name, spec in data["instruments"].items()},
            boards=tuple(BoardEntry(**entry) for entry in data["boards"]),
        )
