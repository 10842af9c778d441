"""The otadata partition: two `esp_ota_select_entry_t` records that pick the OTA slot to boot.

Pure codec and decision rules (ESP-IDF bootloader_common_loader.c and esp_ota_ops.c) so that
the rig can read a device's otadata back and the twin's bootloader can decide exactly what a
real one would; flash writes stay with the caller.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from rig.errors import FormatError, InputError

SECTOR_SIZE = 0x1000
OTADATA_MIN_SIZE = 0x2000
ENTRY_SIZE = 32
LABEL_SIZE = 20
ERASED_WORD = 0xFFFFFFFF
_ENTRY = struct.Struct("<I20sII")


class OtaState(IntEnum):
    """esp_ota_img_states_t."""

    NEW = 0x0
    PENDING_VERIFY = 0x1
    VALID = 0x2
    INVALID = 0x3
    ABORTED = 0x4
    UNDEFINED = 0xFFFFFFFF


def ota_seq_crc(seq: int) -> int:
    """esp_rom_crc32_le(UINT32_MAX, seq, 4): only the sequence number is covered."""
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


@dataclass(frozen=True)
class OtaEntry:
    """One 32-byte otadata record."""

    seq: int
    state: int
    crc: int
    label: bytes = b"\xff" * LABEL_SIZE

    @classmethod
    def make(cls, seq: int, state: OtaState, label: bytes = b"\xff" * LABEL_SIZE) -> OtaEntry:
        return cls(seq=seq, state=state, crc=ota_seq_crc(seq), label=label)

    @classmethod
    def erased(cls) -> OtaEntry:
        return cls(seq=ERASED_WORD, state=ERASED_WORD, crc=ERASED_WORD)

    @classmethod
    def decode(cls, raw: bytes) -> OtaEntry:
        if len(raw) != ENTRY_SIZE:
            raise FormatError(f"otadata entry must be {ENTRY_SIZE} bytes, got {len(raw)}")
        seq, label, state, crc = _ENTRY.unpack(raw)
        return cls(seq=seq, state=state, crc=crc, label=label)

    def encode(self) -> bytes:
        return _ENTRY.pack(self.seq, self.label, self.state, self.crc)

    @property
    def is_erased(self) -> bool:
        return self.encode() == b"\xff" * ENTRY_SIZE

    @property
    def is_unused(self) -> bool:
        """Never given a sequence number: erased, or an erased entry whose state word alone was
        rewritten in place (esp-aws-iot's aws_esp_ota_set_boot_flags() does that to the passive
        entry). bootloader_common_ota_select_valid() ignores it; no torn write of ESP-IDF's
        leaves it, as an entry is programmed seq first."""
        return self.seq == ERASED_WORD and self.crc == ERASED_WORD

    @property
    def crc_ok(self) -> bool:
        return self.crc == ota_seq_crc(self.seq)

    @property
    def is_invalid(self) -> bool:
        """bootloader_common_ota_select_invalid: empty seq or a rejected image (CRC not looked at)."""
        return self.seq == ERASED_WORD or self.state in (OtaState.INVALID, OtaState.ABORTED)

    @property
    def is_selectable(self) -> bool:
        """bootloader_common_ota_select_valid: not invalid and the CRC matches."""
        return not self.is_invalid and self.crc_ok

    @property
    def state_name(self) -> str:
        try:
            return OtaState(self.state).name
        except ValueError:
            return f"0x{self.state:08x}"

    def with_state(self, state: OtaState) -> OtaEntry:
        """The same record with a new state; the CRC is unchanged since it covers seq only."""
        return replace(self, state=state)

    def describe(self) -> str:
        if self.is_erased:
            return "erased"
        crc = "crc ok" if self.crc_ok else f"BAD crc 0x{self.crc:08x} (want 0x{ota_seq_crc(self.seq):08x})"
        return f"seq {self.seq}, {self.state_name}, {crc}"


def slot_for_seq(seq: int, num_slots: int) -> int:
    """OTA slot a sequence number selects: (seq - 1) mod n, in uint32 arithmetic like the C code."""
    if num_slots <= 0:
        raise InputError("no OTA slots")
    return ((seq - 1) & 0xFFFFFFFF) % num_slots


def next_seq(active_seq: int | None, target_slot: int, num_slots: int) -> int:
    """esp_ota_set_boot_partition's rule: smallest ((k+1) mod n) + i*n >= S; none active -> k + 1."""
    if not 0 <= target_slot < num_slots:
        raise InputError(f"OTA slot {target_slot} does not exist (have {num_slots})")
    if active_seq is None:
        return target_slot + 1
    base = (target_slot + 1) % num_slots
    rounds = max(0, -(-(active_seq - base) // num_slots))
    return (base + rounds * num_slots) & 0xFFFFFFFF


@dataclass(frozen=True)
class OtaData:
    """Both otadata records: entry 0 at offset 0x0, entry 1 at 0x1000."""

    entries: tuple[OtaEntry, OtaEntry]

    @classmethod
    def from_bytes(cls, partition_bytes: bytes) -> OtaData:
        if len(partition_bytes) < SECTOR_SIZE + ENTRY_SIZE:
            raise FormatError(
                f"otadata dump is {len(partition_bytes)} bytes; need at least 0x{SECTOR_SIZE + ENTRY_SIZE:x}"
            )
        return cls(
            (
                OtaEntry.decode(partition_bytes[:ENTRY_SIZE]),
                OtaEntry.decode(partition_bytes[SECTOR_SIZE : SECTOR_SIZE + ENTRY_SIZE]),
            )
        )

    @classmethod
    def blank(cls) -> OtaData:
        return cls((OtaEntry.erased(), OtaEntry.erased()))

    def to_bytes(self, size: int = OTADATA_MIN_SIZE) -> bytes:
        """The partition image: each sector holds its record, then 0xFF."""
        if size < OTADATA_MIN_SIZE:
            raise InputError(f"otadata size 0x{size:x} is below 0x{OTADATA_MIN_SIZE:x}")
        sector = [entry.encode().ljust(SECTOR_SIZE, b"\xff") for entry in self.entries]
        return b"".join(sector).ljust(size, b"\xff")

    def active_index(self) -> int | None:
        """bootloader_common_get_active_otadata: both valid -> higher seq (tie -> 0); else the valid one."""
        first, second = (entry.is_selectable for entry in self.entries)
        if first and second:
            return 0 if self.entries[0].seq >= self.entries[1].seq else 1
        if first:
            return 0
        if second:
            return 1
        return None

    @property
    def active_entry(self) -> OtaEntry | None:
        index = self.active_index()
        return None if index is None else self.entries[index]

    def boot_slot(self, num_slots: int) -> int | None:
        entry = self.active_entry
        return None if entry is None or num_slots <= 0 else slot_for_seq(entry.seq, num_slots)

    def with_entry(self, index: int, entry: OtaEntry) -> OtaData:
        """The otadata after `index`'s sector was erased and `entry` programmed."""
        entries = list(self.entries)
        entries[index] = entry
        return OtaData((entries[0], entries[1]))

    def describe(self, slot_labels: Sequence[str]) -> str:
        """Which slot boots and why, then both records."""
        index = self.active_index()
        entry = self.active_entry
        if index is None or entry is None:
            head = "active: none (no valid entry: bootloader falls back to factory / ota_0)"
        elif not slot_labels:
            head = f"active: entry {index}, seq {entry.seq}, {entry.state_name} (no OTA slots)"
        else:
            slot = slot_for_seq(entry.seq, len(slot_labels))
            head = f"active: entry {index}, seq {entry.seq} → {slot_labels[slot]}, {entry.state_name}"
        rows = [f"entry {i} @0x{i * SECTOR_SIZE:04x}: {e.describe()}" for i, e in enumerate(self.entries)]
        return "\n".join([head, *rows])


def plan_set_boot(otadata: OtaData, target_slot: int, num_slots: int, rollback: bool) -> tuple[int, OtaEntry]:
    """esp_ota_set_boot_partition for an OTA slot: (sector to erase and program, record to write).

    The record goes into the sector that is not active (sector 0 if none is); its label is the one
    read from that sector; state NEW with rollback enabled, else UNDEFINED.
    """
    index = otadata.active_index()
    active = otadata.active_entry
    sector = 0 if index is None else 1 - index
    seq = next_seq(None if active is None else active.seq, target_slot, num_slots)
    state = OtaState.NEW if rollback else OtaState.UNDEFINED
    return sector, OtaEntry.make(seq, state, label=otadata.entries[sector].label)
