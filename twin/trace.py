"""A flight recorder for one twin board: every flash operation with its data, every eFuse
burn, boot and console line, from a snapshot on — what `rig sweep` replays cut by cut.

MCUboot's simulator and littlefs's power-loss runner prove updates power-safe by counting
the flash operations of one run and cutting before (and inside) each; this is the
counting half. The trace starts when the board comes up and starts again at the first
boot after an esptool session wrote flash (a fresh known state), so it holds exactly one
provisioned state and everything the firmware did from there. Read-only esptool sessions
(the rig's otadata read-back) leave it running.

Layout of the trace directory: `base.flash` and `base.efuse.json` (the snapshot),
`events.jsonl` (one JSON object per event, in order), `data.bin` (the bytes of every
program, referenced by offset) and `uart.log` (everything the chip printed; events
carry the byte count printed so far, so an op maps to the log line before it).
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.flash import FlashOp, OpKind

if TYPE_CHECKING:
    from twin.efuse import Efuse
    from twin.flash import NorFlash

TRACE_DIR = "trace"
BASE_FLASH = "base.flash"
BASE_EFUSE = "base.efuse.json"
EVENTS = "events.jsonl"
DATA = "data.bin"
UART_LOG = "uart.log"


class FlashTrace:
    """Appends a board's events to its trace directory (one writer: the chip's threads, locked)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._events: Any = None
        self._data: Any = None
        self._uart: Any = None
        self._data_size = 0
        self._uart_size = 0
        self.download_wrote = False

    def restart(self, flash: NorFlash, efuse: Efuse) -> None:
        """Snapshot flash and eFuses now and start an empty event log after them."""
        with self._lock:
            self._close_files()
            self.directory.mkdir(parents=True, exist_ok=True)
            flash.flush()
            shutil.copyfile(flash.path, self.directory / BASE_FLASH)
            shutil.copyfile(efuse.path, self.directory / BASE_EFUSE)
            self._events = (self.directory / EVENTS).open("w", encoding="utf-8")
            self._data = (self.directory / DATA).open("wb")
            self._uart = (self.directory / UART_LOG).open("wb")
            self._data_size = self._uart_size = 0
            self.download_wrote = False

    def close(self) -> None:
        with self._lock:
            self._close_files()

    def _close_files(self) -> None:
        for handle in (self._events, self._data, self._uart):
            if handle is not None:
                handle.close()
        self._events = self._data = self._uart = None

    def _event(self, record: dict[str, object]) -> None:
        """Caller holds the lock."""
        if self._events is None:
            return
        record["tx"] = self._uart_size
        self._events.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._events.flush()

    # -- what the chip reports ---------------------------------------------------------

    def flash_op(self, op: FlashOp, data: bytes) -> None:
        with self._lock:
            record: dict[str, object] = {"e": op.kind.value, "addr": op.address, "len": op.length}
            if op.kind is OpKind.PROGRAM and self._data is not None:
                self._data.write(data)
                self._data.flush()
                record["data"] = self._data_size
                self._data_size += len(data)
            record["torn"] = op.outcome.value == "torn"
            self._event(record)

    def efuse_burn(self, secure_version_bits: int) -> None:
        with self._lock:
            self._event({"e": "efuse", "bits": secure_version_bits})

    def boot(self, reason: str, download: bool) -> None:
        with self._lock:
            self._event({"e": "boot", "reason": reason, "download": download})

    def console_in(self, line: bytes) -> None:
        with self._lock:
            self._event({"e": "console", "line": line.decode("utf-8", "replace")})

    def console_out(self, data: bytes) -> None:
        with self._lock:
            if self._uart is not None:
                self._uart.write(data)
                self._uart.flush()
                self._uart_size += len(data)


@dataclass(frozen=True)
class TraceEvent:
    """One recorded event; `data` only for programs, `tx` = bytes printed before it."""

    kind: str
    tx: int
    address: int = 0
    length: int = 0
    data: bytes = b""
    torn: bool = False
    reason: str = ""
    download: bool = False
    line: str = ""
    bits: int = 0


@dataclass(frozen=True)
class Trace:
    """A trace read back: the snapshot and the events after it."""

    base_flash: bytes
    base_efuse: str
    events: tuple[TraceEvent, ...]
    uart: bytes


def read_trace(directory: Path) -> Trace:
    """Load a trace written by `FlashTrace` (missing or unreadable: `OSError`/`ValueError`)."""
    data = (directory / DATA).read_bytes()
    events = []
    for text in (directory / EVENTS).read_text(encoding="utf-8").splitlines():
        record = json.loads(text)
        kind = record["e"]
        payload = b""
        if kind == OpKind.PROGRAM.value:
            start = int(record["data"])
            payload = data[start : start + int(record["len"])]
        events.append(
            TraceEvent(
                kind=kind, tx=int(record["tx"]), address=int(record.get("addr", 0)),
                length=int(record.get("len", 0)), data=payload, torn=bool(record.get("torn", False)),
                reason=str(record.get("reason", "")), download=bool(record.get("download", False)),
                line=str(record.get("line", "")), bits=int(record.get("bits", 0)),
            )
        )  # fmt: skip
    return Trace(
        base_flash=(directory / BASE_FLASH).read_bytes(),
        base_efuse=(directory / BASE_EFUSE).read_text(encoding="utf-8"),
        events=tuple(events),
        uart=(directory / UART_LOG).read_bytes(),
    )
