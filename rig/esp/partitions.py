"""ESP-IDF partition tables: CSV and binary codecs, checks, and the bootloader's own walk.

The binary output is byte-identical to ESP-IDF's gen_esp32part.py (v5.5) for the same CSV and
table offset, so a table built here can be flashed next to an IDF-built app. Every check a
bootloader or gen_esp32part would make is reported as an InputError naming the CSV line, so a
broken farm file fails before anything is flashed.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from rig.errors import FormatError, InputError
from rig.units import parse_size, size_text

ENTRY_SIZE = 32
TABLE_SECTOR_SIZE = 0x1000
TABLE_MAX_LEN = 0xC00  # entries area; the last 1 KiB of the sector is kept for a signature
MAX_ENTRIES = TABLE_MAX_LEN // ENTRY_SIZE
ENTRY_MAGIC = 0x50AA
MD5_MAGIC = 0xEBEB
END_MAGIC = 0xFFFF
_ENTRY = struct.Struct("<HBBII16sI")
_MD5_ENTRY_HEAD = b"\xeb\xeb" + b"\xff" * 14
_END_ENTRY = b"\xff" * ENTRY_SIZE
NAME_MAX_LEN = 16

FLAG_ENCRYPTED = 1 << 0
FLAG_READONLY = 1 << 1

APP_OFFSET_ALIGN = 0x10000
DATA_OFFSET_ALIGN = 0x1000
APP_SIZE_ALIGN = 0x1000
OTADATA_SIZE = 0x2000
NVS_RW_MIN_SIZE = 0x3000
OTA_SUBTYPE_FLAG = 0x10
OTA_SUBTYPE_MASK = 0x0F
MAX_OTA_SLOTS = 16
KIB = 1024
MIB = 1024 * KIB

Problem = tuple[int | None, str]  # (index of the offending partition or None, message)


class PartitionType(IntEnum):
    """Partition type byte (esp_partition_type_t)."""

    APP = 0x00
    DATA = 0x01
    BOOTLOADER = 0x02
    PARTITION_TABLE = 0x03


# Name tables in gen_esp32part's order: to_csv picks the first name matching a value.
TYPE_NAMES: dict[str, int] = {
    "bootloader": PartitionType.BOOTLOADER,
    "partition_table": PartitionType.PARTITION_TABLE,
    "app": PartitionType.APP,
    "data": PartitionType.DATA,
}

SUBTYPE_NAMES: dict[int, dict[str, int]] = {
    PartitionType.BOOTLOADER: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PartitionType.PARTITION_TABLE: {"primary": 0x00, "ota": 0x01},
    PartitionType.APP: {
        "factory": 0x00,
        "test": 0x20,
        **{f"ota_{slot}": OTA_SUBTYPE_FLAG + slot for slot in range(MAX_OTA_SLOTS)},
        "tee_0": 0x30,
        "tee_1": 0x31,
    },
    PartitionType.DATA: {
        "ota": 0x00,
        "phy": 0x01,
        "nvs": 0x02,
        "coredump": 0x03,
        "nvs_keys": 0x04,
        "efuse": 0x05,
        "undefined": 0x06,
        "esphttpd": 0x80,
        "fat": 0x81,
        "spiffs": 0x82,
        "littlefs": 0x83,
        "tee_ota": 0x90,
    },
}

APP_FACTORY = 0x00
APP_TEST = 0x20
APP_TEE = (0x30, 0x31)
DATA_OTA = 0x00
DATA_COREDUMP = 0x03
DATA_NVS = 0x02
DATA_TEE_OTA = 0x90
PRIMARY = 0x00

# The bootloader's "Usage" column (bootloader_utility_load_partition_table).
_DATA_USAGE = {0x00: "OTA data", 0x01: "RF data", 0x02: "WiFi data", 0x04: "NVS keys", 0x05: "efuse"}
_BOOTLOADER_USAGE = {0: "primary bootloader", 1: "ota bootloader", 2: "recovery bootloader"}
_TABLE_USAGE = {0: "primary partition_table", 1: "ota partition_table"}


def offset_alignment(ptype: int) -> int:
    """Offset alignment gen_esp32part requires: 64 KiB for apps (MMU pages), 4 KiB otherwise."""
    return APP_OFFSET_ALIGN if ptype == PartitionType.APP else DATA_OFFSET_ALIGN


@dataclass(frozen=True)
class Partition:
    """One partition table entry."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    encrypted: bool = False
    readonly: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def is_app(self) -> bool:
        return self.type == PartitionType.APP

    @property
    def ota_index(self) -> int | None:
        """OTA slot number (subtype & 0x0F) for app/ota_N, else None."""
        if self.is_app and self.subtype & ~OTA_SUBTYPE_MASK == OTA_SUBTYPE_FLAG:
            return self.subtype & OTA_SUBTYPE_MASK
        return None

    @property
    def is_otadata(self) -> bool:
        return self.type == PartitionType.DATA and self.subtype == DATA_OTA

    @property
    def is_factory(self) -> bool:
        return self.is_app and self.subtype == APP_FACTORY

    @property
    def is_test(self) -> bool:
        return self.is_app and self.subtype == APP_TEST

    @property
    def usage(self) -> str:
        """Usage column of the bootloader's table dump (bootloader built without TEE)."""
        return self.usage_with(tee=False)

    def usage_with(self, *, tee: bool) -> str:
        """Usage column; `tee` = CONFIG_SECURE_ENABLE_TEE, which names the TEE partitions."""
        if self.type == PartitionType.APP:
            if self.subtype == APP_FACTORY:
                return "factory app"
            if self.subtype == APP_TEST:
                return "test app"
            if tee and self.subtype in APP_TEE:
                return "TEE app"
            return "OTA app" if self.ota_index is not None else "Unknown app"
        if self.type == PartitionType.DATA:
            if tee and self.subtype == DATA_TEE_OTA:
                return "TEE OTA data"
            return _DATA_USAGE.get(self.subtype, "Unknown data")
        if self.type == PartitionType.BOOTLOADER:
            return _BOOTLOADER_USAGE.get(self.subtype, "unknown")
        if self.type == PartitionType.PARTITION_TABLE:
            return _TABLE_USAGE.get(self.subtype, "unknown")
        return "unknown"

    @property
    def type_name(self) -> str:
        return _name_for(self.type, TYPE_NAMES)

    @property
    def subtype_name(self) -> str:
        return _name_for(self.subtype, SUBTYPE_NAMES.get(self.type, {}))

    @property
    def flags(self) -> int:
        return (FLAG_ENCRYPTED if self.encrypted else 0) | (FLAG_READONLY if self.readonly else 0)

    def to_binary(self) -> bytes:
        return _ENTRY.pack(
            ENTRY_MAGIC,
            self.type,
            self.subtype,
            self.offset,
            self.size,
            self.name.encode(),
            self.flags,
        )

    @classmethod
    def from_binary(cls, raw: bytes) -> Partition:
        magic, ptype, subtype, offset, size, label, flags = _ENTRY.unpack(raw)
        if magic != ENTRY_MAGIC:
            raise FormatError(f"partition entry has magic 0x{magic:04x}, expected 0x{ENTRY_MAGIC:04x}")
        try:
            name = label.split(b"\x00", 1)[0].decode()
        except UnicodeDecodeError as error:
            raise FormatError(f"partition label {label!r} is not UTF-8") from error
        return cls(
            name=name,
            type=ptype,
            subtype=subtype,
            offset=offset,
            size=size,
            encrypted=bool(flags & FLAG_ENCRYPTED),
            readonly=bool(flags & FLAG_READONLY),
        )

    def to_csv_row(self) -> str:
        """One CSV row exactly as gen_esp32part writes it."""
        flag_names = [name for name, on in (("encrypted", self.encrypted), ("readonly", self.readonly)) if on]
        return ",".join(
            [
                self.name,
                _keyword_or_decimal(self.type, TYPE_NAMES),
                _keyword_or_decimal(self.subtype, SUBTYPE_NAMES.get(self.type, {})),
                f"0x{self.offset:x}",
                size_text(self.size),
                ":".join(flag_names),
            ]
        )


def _name_for(value: int, names: Mapping[str, int]) -> str:
    for name, known in names.items():
        if known == value:
            return name
    return f"0x{value:02x}"


def _keyword_or_decimal(value: int, names: Mapping[str, int]) -> str:
    for name, known in names.items():
        if known == value:
            return name
    return str(value)


def _parse_number(text: str) -> int | None:
    """int(text, 0) with gen_esp32part's trailing K/M multipliers; None if not a number."""
    try:
        return parse_size(text, signed=True)
    except ValueError:
        return None


@dataclass
class _Row:
    """A CSV row while offsets are still being filled in."""

    line: int
    name: str
    type: int
    subtype: int
    offset: int | None
    size: int
    encrypted: bool
    readonly: bool

    @property
    def is_primary_fixed(self) -> bool:
        return _is_primary_fixed(self.type, self.subtype)


class _CsvParser:
    """gen_esp32part's CSV rules, with errors that name the file and line."""

    def __init__(
        self,
        source: str,
        table_offset: int,
        primary_bootloader_offset: int | None,
        recovery_bootloader_offset: int | None,
    ) -> None:
        self.source = source
        self.table_offset = table_offset
        self.primary_bootloader_offset = primary_bootloader_offset
        self.recovery_bootloader_offset = recovery_bootloader_offset

    def error(self, line: int, message: str) -> InputError:
        return InputError(f"{self.source}:{line}: {message}")

    def parse(self, text: str) -> list[_Row]:
        rows = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                rows.append(self.parse_row(number, line))
        if not rows:
            raise InputError(f"{self.source}: no partitions (every line is empty or a comment)")
        self.fill_offsets(rows)
        return rows

    def parse_row(self, line: int, text: str) -> _Row:
        fields = [field.strip() for field in text.split(",")] + [""] * 6  # trailing fields may be left out
        name, type_text, subtype_text, offset_text, size_text, flags_text = fields[:6]
        ptype = self.parse_type(line, type_text)
        subtype = self.parse_subtype(line, ptype, subtype_text)
        offset = self.parse_offset(line, ptype, subtype, offset_text)
        size = self.parse_size(line, ptype, size_text)
        flags = {flag for flag in flags_text.split(":") if flag}
        unknown = sorted(flags - {"encrypted", "readonly"})
        if unknown:
            raise self.error(line, f"unknown flag '{unknown[0]}' (known: encrypted, readonly)")
        return _Row(line, name, ptype, subtype, offset, size, "encrypted" in flags, "readonly" in flags)

    def parse_type(self, line: int, text: str) -> int:
        if not text:
            raise self.error(line, "type can't be empty")
        value = _parse_number(text)
        if value is None:
            value = TYPE_NAMES.get(text.lower())
        if value is None:
            raise self.error(line, f"unknown type '{text}' (known: {', '.join(TYPE_NAMES)})")
        if not 0 <= value <= 0xFE:
            raise self.error(line, f"type {text} out of range 0x00-0xfe")
        return value

    def parse_subtype(self, line: int, ptype: int, text: str) -> int:
        type_name = _keyword_or_decimal(ptype, TYPE_NAMES)
        if not text:
            if ptype == PartitionType.APP:
                raise self.error(line, "app partition can't have an empty subtype")
            return SUBTYPE_NAMES[PartitionType.DATA]["undefined"]
        value = _parse_number(text)
        if value is None:
            value = SUBTYPE_NAMES.get(ptype, {}).get(text.lower())
        if value is None:
            raise self.error(line, f"unknown subtype '{text}' for type {type_name}")
        if not 0 <= value <= 0xFF:
            raise self.error(line, f"subtype {text} out of range 0x00-0xff")
        return value

    def parse_offset(self, line: int, ptype: int, subtype: int, text: str) -> int | None:
        if ptype == PartitionType.BOOTLOADER and subtype == PRIMARY:
            return self.required_bootloader_offset(line, self.primary_bootloader_offset, "primary")
        if ptype == PartitionType.BOOTLOADER and subtype == 0x02:
            return self.required_bootloader_offset(line, self.recovery_bootloader_offset, "recovery")
        if ptype == PartitionType.PARTITION_TABLE and subtype == PRIMARY:
            return self.table_offset
        if not text:
            return None
        value = _parse_number(text)
        if value is None or not 0 <= value <= 0xFFFFFFFF:
            raise self.error(line, f"invalid offset '{text}'")
        return value

    def required_bootloader_offset(self, line: int, offset: int | None, which: str) -> int:
        if offset is None:
            raise self.error(line, f"{which} bootloader offset is not defined")
        return offset

    def parse_size(self, line: int, ptype: int, text: str) -> int:
        if ptype == PartitionType.BOOTLOADER:
            primary = self.required_bootloader_offset(line, self.primary_bootloader_offset, "primary")
            return self.table_offset - primary
        if ptype == PartitionType.PARTITION_TABLE:
            return TABLE_SECTOR_SIZE
        if not text:
            raise self.error(line, "size can't be empty")
        value = _parse_number(text)
        if value is None or abs(value) > 0xFFFFFFFF:
            raise self.error(line, f"invalid size '{text}'")
        return value

    def fill_offsets(self, rows: list[_Row]) -> None:
        """Blank offsets follow the previous partition, aligned per type; a negative size is an end."""
        table_end = self.table_offset + TABLE_SECTOR_SIZE
        last_end = table_end
        for row in rows:
            if row.is_primary_fixed:
                continue
            if row.offset is not None and row.offset < last_end:
                if last_end == table_end:
                    raise self.error(
                        row.line,
                        f"offset 0x{row.offset:x} overlaps the partition table sector at "
                        f"0x{self.table_offset:x}; use 0x{table_end:x} or higher",
                    )
                raise self.error(
                    row.line,
                    f"offset 0x{row.offset:x} overlaps the previous partition ending at 0x{last_end:x}",
                )
            if row.offset is None:
                row.offset = _align_up(last_end, offset_alignment(row.type))
            if row.size < 0:
                row.size = -row.size - row.offset
            if row.size <= 0 or row.offset + row.size > 0xFFFFFFFF:
                raise self.error(row.line, f"invalid size 0x{row.size:x} at offset 0x{row.offset:x}")
            last_end = row.offset + row.size


def _is_primary_fixed(ptype: int, subtype: int) -> bool:
    """Primary bootloader/table entries sit at fixed offsets, below the table's end."""
    return ptype in (PartitionType.BOOTLOADER, PartitionType.PARTITION_TABLE) and subtype == PRIMARY


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class PartitionTable:
    """An ordered partition table, as stored in flash."""

    partitions: tuple[Partition, ...]

    @classmethod
    def from_csv(
        cls,
        text: str,
        *,
        flash_size: int = 4 * MIB,
        table_offset: int = 0x8000,
        source: str = "<csv>",
        primary_bootloader_offset: int | None = None,
        recovery_bootloader_offset: int | None = None,
    ) -> PartitionTable:
        """Parse and check a gen_esp32part CSV; errors name `source` and the line."""
        parser = _CsvParser(source, table_offset, primary_bootloader_offset, recovery_bootloader_offset)
        rows = parser.parse(text.removeprefix("\ufeff"))
        table = cls(
            tuple(
                Partition(r.name, r.type, r.subtype, r.offset or 0, r.size, r.encrypted, r.readonly)
                for r in rows
            )
        )
        for index, message in table.problems(flash_size, table_offset=table_offset):
            if index is None:
                raise InputError(f"{source}: {message}")
            raise parser.error(rows[index].line, message)
        return table

    @classmethod
    def from_binary(cls, data: bytes) -> PartitionTable:
        """Decode entries up to the end marker, checking the MD5 entry like gen_esp32part."""
        md5 = hashlib.md5()
        partitions: list[Partition] = []
        for start in range(0, len(data) - len(data) % ENTRY_SIZE, ENTRY_SIZE):
            raw = data[start : start + ENTRY_SIZE]
            if raw == _END_ENTRY:
                return cls(tuple(partitions))
            if raw[:2] == _MD5_ENTRY_HEAD[:2]:
                if raw[16:] != md5.digest():
                    raise FormatError(
                        f"partition table MD5 mismatch: computed {md5.hexdigest()}, stored {raw[16:].hex()}"
                    )
                continue
            md5.update(raw)
            try:
                partitions.append(Partition.from_binary(raw))
            except FormatError as error:
                raise FormatError(f"entry {start // ENTRY_SIZE}: {error}") from error
        raise FormatError("partition table has no end marker")

    def to_binary(self) -> bytes:
        """gen_esp32part output: entries, MD5 entry, 0xFF up to 0xC00 bytes."""
        entries = b"".join(partition.to_binary() for partition in self.partitions)
        blob = entries + _MD5_ENTRY_HEAD + hashlib.md5(entries).digest()
        if len(blob) >= TABLE_MAX_LEN:
            raise InputError(f"binary partition table length ({len(blob)}) longer than max {TABLE_MAX_LEN}")
        return blob + b"\xff" * (TABLE_MAX_LEN - len(blob))

    def to_csv(self) -> str:
        rows = ["# ESP-IDF Partition Table", "# Name, Type, SubType, Offset, Size, Flags"]
        rows += [partition.to_csv_row() for partition in self.partitions]
        return "\n".join(rows) + "\n"

    def find(self, name: str) -> Partition:
        for partition in self.partitions:
            if partition.name == name:
                return partition
        raise InputError(f"no partition named '{name}' (have: {', '.join(p.name for p in self.partitions)})")

    @property
    def ota_slots(self) -> tuple[Partition, ...]:
        slots = [p for p in self.partitions if p.ota_index is not None]
        return tuple(sorted(slots, key=lambda p: p.ota_index or 0))

    def _first(self, kind: str) -> Partition | None:
        return next((p for p in self.partitions if getattr(p, kind)), None)

    @property
    def otadata(self) -> Partition | None:
        return self._first("is_otadata")

    @property
    def factory(self) -> Partition | None:
        return self._first("is_factory")

    @property
    def test_app(self) -> Partition | None:
        return self._first("is_test")

    def slot_for_offset(self, offset: int) -> Partition | None:
        """The app partition holding `offset` (as in "Loaded app from partition at offset 0x…")."""
        return next((p for p in self.partitions if p.is_app and p.offset <= offset < p.end), None)

    def validate(self, flash_size: int, *, table_offset: int | None = None) -> None:
        """Raise InputError for the first problem gen_esp32part or the bootloader would reject."""
        for index, message in self.problems(flash_size, table_offset=table_offset):
            where = "" if index is None else f"partition '{self.partitions[index].name}': "
            raise InputError(f"{where}{message}")

    def problems(self, flash_size: int, *, table_offset: int | None = None) -> Iterator[Problem]:
        """Every problem as (index of the partition or None, message), in gen_esp32part's order."""
        parts = self.partitions
        for index, partition in enumerate(parts):
            for message in _entry_problems(partition):
                yield index, message
        seen: dict[str, int] = {}
        for index, partition in enumerate(parts):
            if partition.name in seen:
                yield index, f"duplicate partition name '{partition.name}'"
            seen.setdefault(partition.name, index)
        order = sorted(range(len(parts)), key=lambda i: parts[i].offset)
        for previous, current in itertools.pairwise(order):
            if parts[current].offset < parts[previous].end:
                yield current, (
                    f"offset 0x{parts[current].offset:x} overlaps '{parts[previous].name}' "
                    f"0x{parts[previous].offset:x}-0x{parts[previous].end - 1:x}"
                )
        if table_offset is not None:
            table_end = table_offset + TABLE_SECTOR_SIZE
            for index, p in enumerate(parts):
                if p.offset < table_end and not _is_primary_fixed(p.type, p.subtype):
                    yield index, f"offset 0x{p.offset:x} is below the table's end 0x{table_end:x}"
        yield from _otadata_problems(parts, DATA_OTA, "otadata")
        yield from _otadata_problems(parts, DATA_TEE_OTA, "TEE otadata")
        yield from _ota_slot_problems(parts)
        if parts and max(p.end for p in parts) > flash_size:
            index = max(range(len(parts)), key=lambda i: parts[i].end)
            yield index, f"ends at 0x{parts[index].end:x}, beyond the {flash_size // KIB} KiB flash"
        if (len(parts) + 1) * ENTRY_SIZE >= TABLE_MAX_LEN:
            yield None, f"{len(parts)} partitions do not fit in the 0x{TABLE_MAX_LEN:x}-byte table"

    def describe(self) -> str:
        """The table as the bootloader's `boot:` log prints it."""
        lines = ["Partition Table:", "## Label            Usage          Type ST Offset   Length"]
        for index, p in enumerate(self.partitions):
            lines.append(
                f"{index:2d} {p.name:<16} {p.usage:<16} "
                f"{p.type:02x} {p.subtype:02x} {p.offset:08x} {p.size:08x}"
            )
        lines.append("End of partition table")
        return "\n".join(lines)


def _entry_problems(p: Partition) -> Iterator[str]:
    if len(p.name.encode()) > NAME_MAX_LEN:
        yield f"name '{p.name}' is longer than {NAME_MAX_LEN} bytes"
    align = offset_alignment(p.type)
    if p.offset % align:
        yield f"offset 0x{p.offset:x} is not aligned to 0x{align:x}"
    if p.is_app and p.size % APP_SIZE_ALIGN:
        yield f"size 0x{p.size:x} is not aligned to 0x{APP_SIZE_ALIGN:x}"
    if p.type == PartitionType.DATA and p.subtype in (DATA_OTA, DATA_COREDUMP) and p.readonly:
        yield f"{p.subtype_name} partitions are always read-write and can't be readonly"
    if p.type == PartitionType.DATA and p.subtype == DATA_NVS and p.size < NVS_RW_MIN_SIZE and not p.readonly:
        yield f"nvs size 0x{p.size:x} is below 0x{NVS_RW_MIN_SIZE:x}; flag it readonly"


def _otadata_problems(parts: tuple[Partition, ...], subtype: int, label: str) -> Iterator[Problem]:
    found = [i for i, p in enumerate(parts) if p.type == PartitionType.DATA and p.subtype == subtype]
    if len(found) > 1:
        yield found[1], f"more than one {label} partition"
    if found and parts[found[0]].size != OTADATA_SIZE:
        # gen_esp32part insists on exactly two sectors; the bootloader rejects anything smaller.
        yield found[0], f"{label} size 0x{parts[found[0]].size:x} must be 0x{OTADATA_SIZE:x}"


def _ota_slot_problems(parts: tuple[Partition, ...]) -> Iterator[Problem]:
    slots = [(i, p.ota_index) for i, p in enumerate(parts) if p.ota_index is not None]
    seen: set[int] = set()
    for index, slot in slots:
        if slot in seen:
            yield index, f"second ota_{slot} partition"
        seen.add(slot)
    if seen and seen != set(range(len(seen))):
        # The bootloader counts slots and indexes them by subtype: a gap leaves a slot unbootable.
        yield slots[0][0], f"OTA slots must run from ota_0 without gaps, have {sorted(seen)}"
    if slots and not any(p.is_otadata for p in parts):
        yield slots[0][0], "OTA app partitions need an otadata partition (data, ota)"


def verify_table_bytes(data: bytes, flash_size: int) -> PartitionTable:
    """The bootloader's esp_partition_table_verify walk; errors carry its exact flash_parts text."""
    md5_seen = False
    partitions: list[Partition] = []
    count = min(MAX_ENTRIES, len(data) // ENTRY_SIZE)
    for index in range(count):
        raw = data[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE]
        magic, ptype, subtype, offset, size = struct.unpack_from("<HBBII", raw)
        if magic == ENTRY_MAGIC:
            if offset > flash_size or (offset + size) & 0xFFFFFFFF > flash_size:
                raise FormatError(
                    f"partition {index} invalid - offset 0x{offset:x} size 0x{size:x} "
                    f"exceeds flash chip size 0x{flash_size:x}"
                )
            partitions.append(Partition.from_binary(raw))
        elif magic == MD5_MAGIC:
            if md5_seen:
                raise FormatError("Only one MD5 checksum is allowed")
            if hashlib.md5(data[: index * ENTRY_SIZE]).digest() != raw[16:]:
                raise FormatError("Incorrect MD5 checksum")
            md5_seen = True
        elif index != 0 and magic == END_MAGIC and ptype == 0xFF and subtype == 0xFF:
            return PartitionTable(tuple(partitions))
        else:
            raise FormatError(f"partition {index} invalid magic number 0x{magic:x}")
    raise FormatError("partition table has no terminating entry, not valid")
