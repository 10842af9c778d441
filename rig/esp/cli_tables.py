"""`rig partitions`, `rig otadata`, `rig flash-image`: inspect and build on-flash formats."""

from __future__ import annotations

from pathlib import Path

import click

from rig.errors import FormatError, InputError
from rig.esp.flashimage import DEFAULT_TABLE_OFFSET, build_flash_image, parse_flash_size
from rig.esp.otadata import OTADATA_MIN_SIZE, OtaData
from rig.esp.partitions import ENTRY_MAGIC, PartitionTable
from rig.inputs import read_input

_BINARY_MAGIC = ENTRY_MAGIC.to_bytes(2, "little")


def _read(path: str) -> bytes:
    return read_input(path, "file")


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from error


def _number(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InputError(f"{what} '{text}' is not a number") from None
    if value < 0:
        raise InputError(f"{what} '{text}' is negative")
    return value


def load_table(path: str, *, flash_size: int, table_offset: int) -> PartitionTable:
    """A partition table from a gen_esp32part CSV or binary, told apart by the entry magic."""
    data = _read(path)
    if data.startswith(_BINARY_MAGIC):
        table = PartitionTable.from_binary(data)
        table.validate(flash_size, table_offset=table_offset)
        return table
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path} is neither a partition table binary nor a CSV") from None
    return PartitionTable.from_csv(text, flash_size=flash_size, table_offset=table_offset, source=path)


def _load_cli(path: str, flash_size: str, table_offset: str) -> PartitionTable:
    offset = _number(table_offset, "offset")
    return load_table(path, flash_size=parse_flash_size(flash_size), table_offset=offset)


_flash_size_option = click.option(
    "--flash-size", default="4MB", show_default=True, help="Flash chip size, e.g. 4MB."
)
_offset_option = click.option(
    "--offset", "table_offset", default=hex(DEFAULT_TABLE_OFFSET), show_default=True,
    help="Partition table offset (CONFIG_PARTITION_TABLE_OFFSET).",
)


@click.group()
def partitions() -> None:
    """ESP-IDF partition tables (gen_esp32part CSV and binary)."""


@partitions.command("show")
@click.argument("file")
@_flash_size_option
@_offset_option
def partitions_show(file: str, flash_size: str, table_offset: str) -> None:
    """Print FILE (CSV or binary) as the bootloader's partition table dump."""
    table = _load_cli(file, flash_size, table_offset)
    click.echo(table.describe())


@partitions.command("build")
@click.argument("csv")
@click.option("-o", "--output", required=True, help="Binary table to write.")
@_flash_size_option
@_offset_option
def partitions_build(csv: str, output: str, flash_size: str, table_offset: str) -> None:
    """Build the binary table from CSV, byte-identical to gen_esp32part."""
    table = _load_cli(csv, flash_size, table_offset)
    _write(output, table.to_binary())
    click.echo(f"wrote {output}: {len(table.partitions)} partitions")


@partitions.command("to-csv")
@click.argument("binary")
def partitions_to_csv(binary: str) -> None:
    """Print a binary table as gen_esp32part's CSV."""
    data = _read(binary)
    if not data.startswith(_BINARY_MAGIC):
        raise FormatError(f"{binary} is not a partition table binary (no 0x50AA entry magic)")
    click.echo(PartitionTable.from_binary(data).to_csv(), nl=False)


@click.group()
def otadata() -> None:
    """The otadata partition (which OTA slot boots)."""


@otadata.command("show")
@click.argument("file")
@click.option(
    "--table", help="Partition table (CSV or binary): names the slots; FILE may then be a full flash dump."
)
@click.option("--slots", default=2, show_default=True, help="Number of OTA slots when no --table is given.")
@_flash_size_option
@_offset_option
def otadata_show(file: str, table: str | None, slots: int, flash_size: str, table_offset: str) -> None:
    """Decode an otadata dump (or a full flash dump with --table) and tell which slot boots."""
    data = _read(file)
    labels = [f"ota_{index}" for index in range(slots)]
    if table is None:
        if len(data) != OTADATA_MIN_SIZE:
            raise InputError(
                f"{file}: {len(data)} bytes is not an otadata dump (0x{OTADATA_MIN_SIZE:x} bytes); "
                "for a full flash dump name its partition table with --table"
            )
    else:
        parsed = _load_cli(table, flash_size, table_offset)
        labels = [slot.name for slot in parsed.ota_slots]
        partition = parsed.otadata
        if partition is None:
            raise InputError(f"{table} has no otadata partition")
        if len(data) >= partition.end:
            data = data[partition.offset : partition.end]
        elif len(data) != partition.size:
            raise InputError(
                f"{file}: {len(data)} bytes is neither the otadata partition (0x{partition.size:x} bytes) "
                f"nor a flash dump reaching its end (0x{partition.end:x})"
            )
    click.echo(OtaData.from_bytes(data).describe(labels))


@click.group("flash-image")
def flash_image() -> None:
    """Whole-flash images for a board or the twin."""


@flash_image.command("build")
@click.option("--table", required=True, help="Partition table, CSV or binary.")
@click.option("--app", required=True, help="App image for the partition the bootloader boots first.")
@click.option("--bootloader", help="Bootloader image (default: a placeholder ESP32 image).")
@click.option("-o", "--output", required=True, help="Flash image to write.")
@_flash_size_option
@_offset_option
def flash_image_build(
    table: str, app: str, bootloader: str | None, output: str, flash_size: str, table_offset: str
) -> None:
    """Merge bootloader, partition table, blank otadata and app into one flash image."""
    size = parse_flash_size(flash_size)
    offset = _number(table_offset, "offset")
    parsed = load_table(table, flash_size=size, table_offset=offset)
    image = build_flash_image(
        parsed,
        app=_read(app),
        bootloader=None if bootloader is None else _read(bootloader),
        flash_size=size,
        table_offset=offset,
    )
    _write(output, image)
    click.echo(f"wrote {output}: {len(image)} bytes")
