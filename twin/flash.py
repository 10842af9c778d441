"""A file-backed SPI NOR flash that tears its operations the way a real chip does.

Power-cut sweeps need two things a plain bytearray cannot give: every erase and
program is a numbered *operation* (so a sweep can count them, then cut inside the
N-th), and an interrupted operation leaves what silicon leaves (a half-erased sector,
a half-programmed entry) instead of all-or-nothing.
"""

from __future__ import annotations

import mmap
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

SECTOR_SIZE = 0x1000
DEFAULT_SIZE = 4 * 1024 * 1024
# Work unit between two looks at the power rail (a page on real NOR).
CHUNK_SIZE = 256
ERASED = 0xFF


class PowerLost(Exception):
    """The supply went away while the chip (or its flash) was working."""


class OpKind(Enum):
    ERASE = "erase"
    PROGRAM = "program"


class OpOutcome(Enum):
    COMPLETE = "complete"
    TORN = "torn"


@dataclass(frozen=True)
class FlashOp:
    """One erase or program, as a sweep replays it."""

    index: int
    kind: OpKind
    address: int
    length: int
    outcome: OpOutcome


@dataclass
class FlashStats:
    ops: int = 0
    bytes_erased: int = 0
    bytes_programmed: int = 0


@dataclass(frozen=True)
class _Cut:
    op_index: int
    fraction: float | None  # None: before the operation starts


class NorFlash:
    """NOR semantics: erase sets 0xFF per 4 KiB sector, program can only clear bits.

    `power_ok` is consulted between chunks of every operation; when it says no, or an
    armed `cut_at` is reached, the operation stops with a physically plausible partial
    result, is logged TORN and `PowerLost` is raised. Without `power_ok` the supply never
    fails, so an operation with no cut armed in it runs in one piece.
    """

    def __init__(
        self,
        path: Path,
        size: int = DEFAULT_SIZE,
        power_ok: Callable[[], bool] | None = None,
        op_log_limit: int = 100_000,
    ) -> None:
        if size <= 0 or size % SECTOR_SIZE:
            raise ValueError(f"flash size {size:#x} is not a positive multiple of {SECTOR_SIZE:#x}")
        self.size = size
        self.path = path
        self.power_ok = power_ok
        # Sees every operation with the bytes it programmed (a `twin.trace.FlashTrace`).
        self.observer: Callable[[FlashOp, bytes], None] | None = None
        self.stats = FlashStats()
        self.on_cut: Callable[[], None] = lambda: None
        self._ops: deque[FlashOp] = deque(maxlen=op_log_limit)
        self._cut: _Cut | None = None
        if not path.exists() or path.stat().st_size != size:
            self._create(path, size)
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), size)

    @staticmethod
    def _create(path: Path, size: int) -> None:
        old = path.read_bytes()[:size] if path.exists() else b""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(old + bytes([ERASED]) * (size - len(old)))

    # -- reading ---------------------------------------------------------------

    def read(self, address: int, length: int) -> bytes:
        self._check_range(address, length)
        return self._map[address : address + length]

    # -- operations ------------------------------------------------------------

    def cut_at(self, op_index: int, fraction: float) -> None:
        """Arm a power cut `fraction` (0.0–1.0) of the way into operation `op_index`."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must lie in [0, 1]")
        self._cut = _Cut(op_index, fraction)

    def cut_before(self, op_index: int) -> None:
        """Arm a power cut just before operation `op_index` starts (nothing of it happens)."""
        self._cut = _Cut(op_index, None)

    def disarm(self) -> None:
        self._cut = None

    def load(self, address: int, data: bytes) -> None:
        """Set raw contents, as restoring a snapshot does: not a flash operation, not counted."""
        self._check_range(address, len(data))
        self._map[address : address + len(data)] = data

    @property
    def op_count(self) -> int:
        """Operations started so far (the index the next one will get)."""
        return self.stats.ops

    def ops(self) -> list[FlashOp]:
        """The most recent operations (bounded), oldest first."""
        return list(self._ops)

    def erase(self, address: int, length: int) -> None:
        """Erase whole sectors, one operation per sector (as the SPI driver does)."""
        if address % SECTOR_SIZE or length % SECTOR_SIZE:
            raise ValueError(f"erase {address:#x}+{length:#x} is not sector aligned")
        self._check_range(address, length)
        for sector in range(address, address + length, SECTOR_SIZE):
            self._erase_sector(sector)

    def erase_all(self) -> None:
        self.erase(0, self.size)

    def program(self, address: int, data: bytes) -> None:
        """Program `data` as one operation: each byte becomes old AND new."""
        self._check_range(address, len(data))
        if not data:
            return
        index = self._begin()
        cut_bytes = self._cut_bytes(index, len(data))
        if cut_bytes is None and self.power_ok is None:
            self._and(address, data)
            self.stats.bytes_programmed += len(data)
            self._finish(FlashOp(index, OpKind.PROGRAM, address, len(data), OpOutcome.COMPLETE), data)
            return
        for offset in range(0, len(data), CHUNK_SIZE):
            end = min(offset + CHUNK_SIZE, len(data))
            if cut_bytes is not None and cut_bytes < end:
                self._and(address + offset, data[offset:cut_bytes])
                self._torn(index, OpKind.PROGRAM, address, data, cut_bytes)
            if offset and not self._powered():
                # The page in flight gets its first half: bytes land in order.
                half = offset + (end - offset) // 2
                self._and(address + offset, data[offset:half])
                self._torn(index, OpKind.PROGRAM, address, data, half, injected=False)
            self._and(address + offset, data[offset:end])
        self.stats.bytes_programmed += len(data)
        self._finish(FlashOp(index, OpKind.PROGRAM, address, len(data), OpOutcome.COMPLETE), data)

    # -- internals -------------------------------------------------------------

    def _erase_sector(self, address: int) -> None:
        index = self._begin()
        cut_bytes = self._cut_bytes(index, SECTOR_SIZE)
        if cut_bytes is None and self.power_ok is None:
            self._fill(address, SECTOR_SIZE)
            self.stats.bytes_erased += SECTOR_SIZE
            self._finish(FlashOp(index, OpKind.ERASE, address, SECTOR_SIZE, OpOutcome.COMPLETE))
            return
        for offset in range(0, SECTOR_SIZE, CHUNK_SIZE):
            if cut_bytes is not None and cut_bytes < offset + CHUNK_SIZE:
                self._fill(address + offset, cut_bytes - offset)
                self._mix(index, address + cut_bytes, offset + CHUNK_SIZE - cut_bytes)
                self._torn(index, OpKind.ERASE, address, SECTOR_SIZE, cut_bytes)
            if offset and not self._powered():
                self._mix(index, address + offset, CHUNK_SIZE)
                self._torn(index, OpKind.ERASE, address, SECTOR_SIZE, offset, injected=False)
            self._fill(address + offset, CHUNK_SIZE)
        self.stats.bytes_erased += SECTOR_SIZE
        self._finish(FlashOp(index, OpKind.ERASE, address, SECTOR_SIZE, OpOutcome.COMPLETE))

    def _powered(self) -> bool:
        return self.power_ok is None or self.power_ok()

    def _begin(self) -> int:
        if not self._powered():
            raise PowerLost("flash operation refused: no power")
        index = self.stats.ops
        if self._cut is not None and self._cut.op_index == index and self._cut.fraction is None:
            self._cut = None
            self.on_cut()
            raise PowerLost(f"power lost before flash operation #{index}")
        self.stats.ops += 1
        return index

    def _cut_bytes(self, index: int, length: int) -> int | None:
        if self._cut is None or self._cut.op_index != index:
            return None
        fraction = self._cut.fraction
        if fraction is None:
            return None
        self._cut = None
        return min(length, int(length * fraction))

    def _fill(self, address: int, length: int) -> None:
        if length > 0:
            self._map[address : address + length] = bytes([ERASED]) * length

    def _mix(self, index: int, address: int, length: int) -> None:
        """An erase pulse cut short: some bits of the chunk reached 1, others did not."""
        if length <= 0:
            return
        noise = random.Random(index * 0x1_0000_0000 + address).randbytes(length)
        old = self._map[address : address + length]
        self._map[address : address + length] = bytes(a | b for a, b in zip(old, noise, strict=True))

    def _and(self, address: int, data: bytes) -> None:
        if not data:
            return
        end = address + len(data)
        current = self._map[address:end]
        if current.count(ERASED) == len(data):  # the usual case: programming erased flash
            self._map[address:end] = data
            return
        new = int.from_bytes(current, "little") & int.from_bytes(data, "little")
        self._map[address:end] = new.to_bytes(len(data), "little")

    def _torn(
        self, index: int, kind: OpKind, address: int, what: int | bytes, done: int, injected: bool = True
    ) -> None:
        """End operation `index` after `done` bytes; `what` is an erase's length or a program's data."""
        data = what if isinstance(what, bytes) else b""
        length = len(data) if isinstance(what, bytes) else what
        if kind is OpKind.ERASE:
            self.stats.bytes_erased += done
        else:
            self.stats.bytes_programmed += done
        self._finish(FlashOp(index, kind, address, length, OpOutcome.TORN), data)
        if injected:
            self.on_cut()
        raise PowerLost(f"power lost during {kind.value} #{index} at {address:#x}")

    def _finish(self, op: FlashOp, data: bytes = b"") -> None:
        self._ops.append(op)
        if self.observer is not None:
            self.observer(op, data)

    def _check_range(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise ValueError(f"flash access {address:#x}+{length:#x} outside {self.size:#x} bytes")

    def flush(self) -> None:
        self._map.flush()

    def close(self) -> None:
        if not self._map.closed:
            self._map.flush()
            self._map.close()
            self._file.close()

