"""`esp_app_desc_t`: the 256-byte record at the start of DROM segment 0 of every app.

OTA agents read it before writing a byte (version and anti-rollback checks), so
mutants that change the version are made by re-encoding this record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rig.errors import FormatError, InputError

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
#: File offset of the descriptor inside an app image (data of segment 0).
APP_DESC_FILE_OFFSET = 0x20

# magic, secure_version, reserv1, version, project_name, time, date, idf_ver,
# app_elf_sha256, min/max efuse blk rev, mmu_page_size, reserv3, reserv2
_STRUCT = struct.Struct("<II8s32s32s16s16s32s32sHHB3s72s")
assert _STRUCT.size == APP_DESC_SIZE


def _text(raw: bytes) -> str:
    """A NUL-terminated C string field (ESP-IDF fills them with strncpy)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _field(name: str, value: str, size: int) -> bytes:
    encoded = value.encode("utf-8")
    if b"\0" in encoded or len(encoded) >= size:
        raise InputError(f"app descriptor {name} {value!r} must be at most {size - 1} bytes without NUL")
    return encoded


@dataclass(frozen=True)
class AppDescriptor:
    """The fields of `esp_app_desc_t` that anyone reads (reserved bytes are zero)."""

    secure_version: int
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    app_elf_sha256: bytes
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0
    mmu_page_size: int = 16

    def encode(self) -> bytes:
        """The 256 bytes as the linker places them in `.rodata_desc`."""
        if len(self.app_elf_sha256) != 32:
            raise InputError("app descriptor app_elf_sha256 must be 32 bytes")
        if not 0 <= self.secure_version <= 0xFFFFFFFF:
            raise InputError(f"secure_version {self.secure_version} does not fit in 32 bits")
        return _STRUCT.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            b"",
            _field("version", self.version, 32),
            _field("project_name", self.project_name, 32),
            _field("time", self.time, 16),
            _field("date", self.date, 16),
            _field("idf_ver", self.idf_ver, 32),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size,
            b"",
            b"",
        )


def decode(raw: bytes) -> AppDescriptor:
    """Parse the first 256 bytes of `raw`; the magic check is the one esp_https_ota makes."""
    if len(raw) < APP_DESC_SIZE:
        raise FormatError(f"app descriptor truncated: {len(raw)} of {APP_DESC_SIZE} bytes")
    fields = _STRUCT.unpack_from(raw)
    if fields[0] != APP_DESC_MAGIC:
        raise FormatError(
            f"Incorrect app descriptor magic (0x{fields[0]:08x}, expected 0x{APP_DESC_MAGIC:08x})"
        )
    return AppDescriptor(
        secure_version=fields[1],
        version=_text(fields[3]),
        project_name=_text(fields[4]),
        time=_text(fields[5]),
        date=_text(fields[6]),
        idf_ver=_text(fields[7]),
        app_elf_sha256=fields[8],
        min_efuse_blk_rev_full=fields[9],
        max_efuse_blk_rev_full=fields[10],
        mmu_page_size=fields[11],
    )
