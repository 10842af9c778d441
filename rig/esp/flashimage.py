"""A board's flash contents: bootloader, partition table, otadata and app at their offsets.

The rig writes `flash_regions()` with esptool write-flash (only what a test needs); the twin
starts from `build_flash_image()`, the same regions merged by esptool's own merge-bin into a full
flash image, so both see one layout.
"""

from __future__ import annotations

import contextlib
import io
from typing import TypedDict, Unpack

from esptool.bin_image import ELFSection, ESP32FirmwareImage
from esptool.cmds import merge_bin
from esptool.targets import ESP32ROM
from esptool.util import FatalError

from rig.errors import InputError
from rig.esp.otadata import OtaData
from rig.esp.partitions import MIB, Partition, PartitionTable

DEFAULT_FLASH_SIZE = 4 * MIB
DEFAULT_TABLE_OFFSET = 0x8000
ESP32_BOOTLOADER_OFFSET = 0x1000
FLASH_SIZE_NAMES: dict[int, str] = {int(name[:-2]) * MIB: name for name in ESP32ROM.FLASH_SIZES}

# Where ESP-IDF links an ESP32 second-stage bootloader (iram_loader_seg, dram_seg).
_PLACEHOLDER_IRAM = 0x40078000
_PLACEHOLDER_DRAM = 0x3FFF0000
_PLACEHOLDER_TEXT = b"ota-rig placeholder bootloader\x00\x00"
_FLASH_MODE_DIO = 2
_FLASH_FREQ_40M = 0x0


def flash_size_name(flash_size: int) -> str:
    """esptool's spelling ("4MB") of a supported flash size."""
    try:
        return FLASH_SIZE_NAMES[flash_size]
    except KeyError:
        raise InputError(
            f"flash size 0x{flash_size:x} is not one of {', '.join(FLASH_SIZE_NAMES.values())}"
        ) from None


def parse_flash_size(text: str) -> int:
    """"4MB" (or "4M", "0x400000") to bytes."""
    spelled = text.strip().upper()
    if spelled.endswith("M"):
        spelled += "B"
    for size, name in FLASH_SIZE_NAMES.items():
        if name == spelled:
            return size
    try:
        size = int(text, 0)
    except ValueError:
        known = ", ".join(FLASH_SIZE_NAMES.values())
        raise InputError(f"unknown flash size '{text}' (use one of {known})") from None
    flash_size_name(size)
    return size


def placeholder_bootloader(flash_size: int = DEFAULT_FLASH_SIZE) -> bytes:
    """A minimal, valid ESP32 image (checksum and SHA-256 correct) standing in for a bootloader.

    It marks the bootloader region for tools that parse it (esptool image-info, the twin); it does
    not boot real silicon, so hardware runs must pass the project's real bootloader.
    """
    image = ESP32FirmwareImage()
    image.entrypoint = _PLACEHOLDER_IRAM
    image.flash_mode = _FLASH_MODE_DIO
    image.flash_size_freq = ESP32ROM.FLASH_SIZES[flash_size_name(flash_size)] | _FLASH_FREQ_40M
    image.segments = [
        ELFSection(b".dram0.data", _PLACEHOLDER_DRAM, _PLACEHOLDER_TEXT, 0),
        ELFSection(b".iram_loader.text", _PLACEHOLDER_IRAM, b"\x00" * 4, 0),
    ]
    data = image.save(None)
    assert isinstance(data, bytes)
    return data


def boot_partition(table: PartitionTable, otadata: OtaData | None = None) -> Partition:
    """The app partition a bootloader starts from: the otadata slot, else factory, ota_0, test."""
    slots = table.ota_slots
    slot = None if otadata is None or not slots else otadata.boot_slot(len(slots))
    if slot is not None:
        return slots[slot]
    for candidate in (table.factory, slots[0] if slots else None, table.test_app):
        if candidate is not None:
            return candidate
    raise InputError("the partition table has no app partition")


def flash_regions(
    table: PartitionTable,
    *,
    app: bytes,
    bootloader: bytes | None = None,
    otadata: OtaData | None = None,
    flash_size: int = DEFAULT_FLASH_SIZE,
    table_offset: int = DEFAULT_TABLE_OFFSET,
    bootloader_offset: int = ESP32_BOOTLOADER_OFFSET,
) -> list[tuple[int, bytes]]:
    """(offset, bytes) pairs for esptool write-flash: bootloader, table, otadata, app.

    otadata None writes an erased otadata partition (as idf.py flash does with
    ota_data_initial.bin), so the device boots factory or ota_0 afresh.
    """
    table.validate(flash_size, table_offset=table_offset)
    loader = placeholder_bootloader(flash_size) if bootloader is None else bootloader
    if bootloader_offset + len(loader) > table_offset:
        raise InputError(
            f"bootloader of {len(loader)} bytes at 0x{bootloader_offset:x} runs into the "
            f"partition table at 0x{table_offset:x}"
        )
    regions = [(bootloader_offset, loader), (table_offset, table.to_binary())]
    otadata_partition = table.otadata
    if otadata_partition is not None:
        state = OtaData.blank() if otadata is None else otadata
        regions.append((otadata_partition.offset, state.to_bytes(otadata_partition.size)))
    elif otadata is not None:
        raise InputError("otadata given but the partition table has no otadata partition")
    target = boot_partition(table, otadata)
    if len(app) > target.size:
        raise InputError(f"app of {len(app)} bytes does not fit '{target.name}' (0x{target.size:x} bytes)")
    regions.append((target.offset, app))
    return regions


class Placement(TypedDict, total=False):
    """flash_regions' optional parts and offsets, passed through by build_flash_image."""

    bootloader: bytes | None
    otadata: OtaData | None
    table_offset: int
    bootloader_offset: int


def build_flash_image(
    table: PartitionTable, *, app: bytes, flash_size: int = DEFAULT_FLASH_SIZE, **placement: Unpack[Placement]
) -> bytes:
    """The whole flash (flash_size bytes, 0xFF where nothing is written), via esptool merge-bin."""
    regions = flash_regions(table, app=app, flash_size=flash_size, **placement)
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            merged = merge_bin(list(regions), "esp32", pad_to_size=flash_size_name(flash_size))
    except FatalError as error:
        raise InputError(f"esptool merge-bin: {error}") from error
    assert isinstance(merged, bytes)
    return merged

