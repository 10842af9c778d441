"""NVS kept where a real ESP32 keeps it: in the `nvs` partition of the board's flash.

The rig reaches a known state by erasing that partition with esptool, so saved
settings and OTA progress must live there, not beside the flash file. The format is
the twin's own (not ESP-IDF's page format) but fails the same way: the partition is
split into two halves holding alternate records, every write erases and programs
one half through `NorFlash` (so a power cut tears it), a torn or erased record
reads as absent and the other half's older record stands — as a torn NVS entry
loses only the newest write. A fully erased partition (0xFF) is an empty NVS.

Record layout, little-endian, at the start of a half:
`magic "TNVS" | seq u32 | length u32 | crc32(seq, length, payload) u32 | payload (JSON)`.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

from rig.esp.partitions import Partition, PartitionTable, PartitionType
from twin.flash import SECTOR_SIZE, NorFlash

NVS_LABEL = "nvs"
NVS_SUBTYPE = 0x02
MAGIC = b"TNVS"
_HEADER = struct.Struct("<4sIII")
_SEQ_MASK = 0xFFFFFFFF


class NvsFull(Exception):
    """The stored values no longer fit one half of the partition (ESP_ERR_NVS_NOT_ENOUGH_SPACE)."""


@dataclass(frozen=True)
class _Record:
    slot: int
    seq: int
    payload: bytes  # the values as JSON: every read hands out fresh objects

    @property
    def values(self) -> dict[str, object]:
        values = json.loads(self.payload)
        assert isinstance(values, dict), "checked when the record was read"
        return values


def find_nvs_partition(table: PartitionTable) -> Partition | None:
    """nvs_flash_init's partition: data/nvs labelled "nvs"."""
    for part in table.partitions:
        if part.type == PartitionType.DATA and part.subtype == NVS_SUBTYPE and part.name == NVS_LABEL:
            return part
    return None


class Nvs:
    """Key/value storage in the `nvs` partition: survives resets and power cuts, not an erase."""

    def __init__(self, flash: NorFlash, partition: Partition) -> None:
        self.flash = flash
        self.partition = partition
        sectors = partition.size // SECTOR_SIZE
        if sectors < 1:
            raise ValueError(f"nvs partition of {partition.size:#x} bytes holds no sector")
        self._slot_size = max(1, sectors // 2) * SECTOR_SIZE
        self._slots = 2 if sectors >= 2 else 1
        # nvs_flash_init() reads the partition once; afterwards this handle is its only writer
        # for as long as the app runs (a reset or power cut ends both), so it keeps what it read.
        self._known: _Record | None = None
        self._loaded = False

    # -- the API firmware models use -----------------------------------------------------

    def get(self, key: str) -> object | None:
        return self._values().get(key)

    def set(self, key: str, value: object) -> None:
        values = self._values()
        values[key] = value
        self._store(values)

    def erase(self, key: str) -> None:
        values = self._values()
        if values.pop(key, None) is not None:
            self._store(values)

    # -- storage -------------------------------------------------------------------------

    def _values(self) -> dict[str, object]:
        newest = self._newest()
        return newest.values if newest is not None else {}

    def _newest(self) -> _Record | None:
        if not self._loaded:
            self._known = self._scan()
            self._loaded = True
        return self._known

    def _scan(self) -> _Record | None:
        records = [r for r in (self._read(slot) for slot in range(self._slots)) if r is not None]
        if not records:
            return None
        if len(records) == 1:
            return records[0]
        a, b = records
        # Sequence numbers wrap: the newer one is at most half the space ahead.
        return b if (b.seq - a.seq) & _SEQ_MASK < 1 << 31 else a

    def _read(self, slot: int) -> _Record | None:
        base = self.partition.offset + slot * self._slot_size
        magic, seq, length, crc = _HEADER.unpack(self.flash.read(base, _HEADER.size))
        if magic != MAGIC or length > self._slot_size - _HEADER.size:
            return None
        payload = self.flash.read(base + _HEADER.size, length)
        if zlib.crc32(struct.pack("<II", seq, length) + payload) != crc:
            return None
        try:
            values = json.loads(payload)
        except ValueError:
            return None
        return _Record(slot, seq, payload) if isinstance(values, dict) else None

    def _store(self, values: dict[str, object]) -> None:
        payload = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
        if _HEADER.size + len(payload) > self._slot_size:
            raise NvsFull(f"{len(payload)} bytes of NVS values exceed the {self._slot_size}-byte record")
        newest = self._newest()
        seq = 1 if newest is None else (newest.seq + 1) & _SEQ_MASK
        slot = 0 if newest is None else (newest.slot + 1) % self._slots
        crc = zlib.crc32(struct.pack("<II", seq, len(payload)) + payload)
        record = _HEADER.pack(MAGIC, seq, len(payload), crc) + payload
        base = self.partition.offset + slot * self._slot_size
        used = -(-len(record) // SECTOR_SIZE) * SECTOR_SIZE
        self._loaded = False  # a write cut short leaves what the next scan finds
        self.flash.erase(base, used)
        self.flash.program(base, record)
        self._known, self._loaded = _Record(slot, seq, payload), True
