"""Partition tables: byte-identity with gen_esp32part, CSV rules, checks and the bootloader walk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import FormatError, InputError
from rig.esp.partitions import (
    MIB,
    Partition,
    PartitionTable,
    PartitionType,
    verify_table_bytes,
)

VECTORS = Path(__file__).parent / "vectors"
FIXTURES = Path(__file__).parents[3] / "fixtures" / "partitions"
VECTOR_NAMES = ["two_ota_large", "two_ota", "anti_rollback", "blank_offsets_km", "flags"]
FOUR_MB = 4 * MIB
OTA = "o, data, ota, , 8K\n"


def load(name: str) -> PartitionTable:
    return PartitionTable.from_csv((VECTORS / f"{name}.csv").read_text(), source=f"{name}.csv")


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_binary_is_byte_identical_to_gen_esp32part(name: str) -> None:
    assert load(name).to_binary() == (VECTORS / f"{name}.bin").read_bytes()


def test_table_offset_moves_the_first_free_offset_like_gen_esp32part() -> None:
    table = PartitionTable.from_csv((VECTORS / "two_ota.csv").read_text(), table_offset=0xC000)
    assert table.to_binary() == (VECTORS / "two_ota.offset_c000.bin").read_bytes()
    assert table.find("nvs").offset == 0xD000


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_csv_output_matches_gen_esp32part(name: str) -> None:
    binary = (VECTORS / f"{name}.bin").read_bytes()
    assert PartitionTable.from_binary(binary).to_csv() == (VECTORS / f"{name}.expected.csv").read_text()


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_round_trip_csv_bin_table_csv_bin(name: str) -> None:
    table = load(name)
    binary = table.to_binary()
    again = PartitionTable.from_binary(binary)
    assert again == table
    assert PartitionTable.from_csv(again.to_csv()).to_binary() == binary


def test_fixtures_are_the_vectors_tables() -> None:
    for name in ("two_ota_large", "two_ota", "anti_rollback"):
        assert (FIXTURES / f"{name}.csv").read_text() == (VECTORS / f"{name}.csv").read_text()


def test_two_ota_large_layout_matches_idf_examples() -> None:
    table = load("two_ota_large")
    assert [(p.offset, p.size) for p in table.ota_slots] == [(0x20000, 1700 * 1024), (0x1D0000, 1700 * 1024)]
    assert table.otadata == Partition("otadata", PartitionType.DATA, 0x00, 0xF000, 0x2000)
    assert table.factory is None and table.test_app is None
    assert table.to_binary()[:16].hex() == "aa50010200900000006000006e767300"


def test_queries() -> None:
    table = load("two_ota")
    assert table.factory is not None and table.factory.offset == 0x10000
    assert [p.ota_index for p in table.ota_slots] == [0, 1]
    assert table.slot_for_offset(0x110000) == table.find("ota_0")
    assert table.slot_for_offset(0x20FFFF) == table.find("ota_0")
    assert table.slot_for_offset(0x9000) is None
    with pytest.raises(InputError, match="no partition named 'spiffs'"):
        table.find("spiffs")


def test_emul_efuse_table() -> None:
    table = load("anti_rollback")
    efuse = table.find("emul_efuse")
    assert (efuse.type_name, efuse.subtype_name, efuse.usage) == ("data", "efuse", "efuse")
    assert efuse.offset == 0x12000 and efuse.size == 0x2000


def test_describe_is_the_bootloader_dump() -> None:
    assert load("two_ota_large").describe().splitlines() == [
        "Partition Table:",
        "## Label            Usage          Type ST Offset   Length",
        " 0 nvs              WiFi data        01 02 00009000 00006000",
        " 1 otadata          OTA data         01 00 0000f000 00002000",
        " 2 phy_init         RF data          01 01 00011000 00001000",
        " 3 ota_0            OTA app          00 10 00020000 001a9000",
        " 4 ota_1            OTA app          00 11 001d0000 001a9000",
        "End of partition table",
    ]


@pytest.mark.parametrize(
    ("ptype", "subtype", "usage"),
    [
        (0, 0x00, "factory app"),
        (0, 0x20, "test app"),
        (0, 0x1F, "OTA app"),
        (0, 0x30, "Unknown app"),
        (1, 0x00, "OTA data"),
        (1, 0x01, "RF data"),
        (1, 0x02, "WiFi data"),
        (1, 0x04, "NVS keys"),
        (1, 0x05, "efuse"),
        (1, 0x82, "Unknown data"),
        (2, 0x00, "primary bootloader"),
        (2, 0x01, "ota bootloader"),
        (2, 0x02, "recovery bootloader"),
        (3, 0x00, "primary partition_table"),
        (3, 0x01, "ota partition_table"),
        (0x40, 0x00, "unknown"),
    ],
)
def test_usage_strings(ptype: int, subtype: int, usage: str) -> None:
    assert Partition("p", ptype, subtype, 0x10000, 0x10000).usage == usage


def test_tee_usage_only_with_tee_enabled() -> None:
    assert Partition("tee", 0, 0x30, 0x10000, 0x10000).usage_with(tee=True) == "TEE app"
    assert Partition("t", 1, 0x90, 0x10000, 0x2000).usage_with(tee=True) == "TEE OTA data"
    assert Partition("t", 1, 0x90, 0x10000, 0x2000).usage == "Unknown data"


def test_properties() -> None:
    ota = Partition("ota_3", PartitionType.APP, 0x13, 0x10000, 0x10000)
    assert (ota.ota_index, ota.is_app, ota.end, ota.subtype_name) == (3, True, 0x20000, "ota_3")
    custom = Partition("c", 0x40, 0x07, 0x10000, 0x1000)
    assert (custom.type_name, custom.subtype_name, custom.ota_index) == ("0x40", "0x07", None)


def test_primary_bootloader_and_table_entries() -> None:
    csv = (
        "bootloader, bootloader, primary, N/A, N/A\n"
        "pt, partition_table, primary, N/A, N/A\n"
        "nvs, data, nvs, , 24K\n"
    )
    table = PartitionTable.from_csv(csv, primary_bootloader_offset=0x1000)
    layout = [(p.offset, p.size) for p in table.partitions]
    assert layout == [(0x1000, 0x7000), (0x8000, 0x1000), (0x9000, 0x6000)]
    with pytest.raises(InputError, match=r"<csv>:1: primary bootloader offset is not defined"):
        PartitionTable.from_csv(csv)


def test_negative_size_is_an_end_address() -> None:
    table = PartitionTable.from_csv("nvs, data, nvs, 0x9000, -0x10000\n")
    assert table.find("nvs").size == 0x7000


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("n, data, nvs, , 24K\nx, app, ota_99, , 1M\n", r"p\.csv:2: unknown subtype 'ota_99' for type app"),
        ("\n# comment\nx, blob, nvs, , 24K\n", r"p\.csv:3: unknown type 'blob'"),
        ("x, app, , , 1M\n", r"p\.csv:1: app partition can't have an empty subtype"),
        ("x, data, nvs, ,\n", r"p\.csv:1: size can't be empty"),
        ("x, data, nvs, , 1.5M\n", r"p\.csv:1: invalid size '1\.5M'"),
        ("x, data, nvs, 0x9000, 24K, secret\n", r"p\.csv:1: unknown flag 'secret'"),
        ("x, data, nvs, 0x7000, 24K\n", r"p\.csv:1: offset 0x7000 overlaps the partition table sector"),
        ("a, data, nvs, , 24K\nb, data, phy, 0xA000, 4K\n", r"p\.csv:2: offset 0xa000 overlaps the previous"),
        ("a, data, nvs, , 24K\nf, app, factory, 0x18000, 1M\n", r"p\.csv:2: offset 0x18000 is not aligned"),
        ("a, data, nvs, 0x9800, 24K\n", r"p\.csv:1: offset 0x9800 is not aligned to 0x1000"),
        ("f, app, factory, , 0x10800\n", r"p\.csv:1: size 0x10800 is not aligned to 0x1000"),
        ("a, data, nvs, , 24K\na, data, phy, , 4K\n", r"p\.csv:2: duplicate partition name 'a'"),
        ("o, data, ota, , 0x1000\n", r"p\.csv:1: otadata size 0x1000 must be 0x2000"),
        ("o, data, ota, , 8K\no2, data, ota, , 8K\n", r"p\.csv:2: more than one otadata partition"),
        ("o, data, ota, , 8K, readonly\n", r"p\.csv:1: ota partitions are always read-write"),
        ("n, data, nvs, , 8K\n", r"p\.csv:1: nvs size 0x2000 is below 0x3000; flag it readonly"),
        ("ota_0, app, ota_0, , 1M\n", r"p\.csv:1: OTA app partitions need an otadata partition"),
        (OTA + "a, app, ota_0, , 1M\nb, app, ota_2, , 1M\n", r"p\.csv:2: OTA slots must run from ota_0"),
        (OTA + "a, app, ota_0, , 1M\nb, app, ota_0, , 1M\n", r"p\.csv:3: second ota_0 partition"),
        ("f, app, factory, , 4M\n", r"p\.csv:1: ends at 0x410000, beyond the 4096 KiB flash"),
        ("averyveryverylongname, data, nvs, , 24K\n", r"p\.csv:1: name 'averyvery\w+' is longer than 16"),
    ],
)
def test_csv_errors_name_file_and_line(csv: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        PartitionTable.from_csv(csv, source="p.csv")


def test_too_many_entries() -> None:
    csv = "".join(f"p{i}, data, 0x40, , 4K\n" for i in range(95))
    with pytest.raises(InputError, match=r"p\.csv: 95 partitions do not fit"):
        PartitionTable.from_csv(csv, flash_size=16 * MIB, source="p.csv")
    PartitionTable.from_csv(csv.rsplit("p94", 1)[0], flash_size=16 * MIB).to_binary()


def test_validate_without_csv_names_the_partition() -> None:
    table = PartitionTable((Partition("a", 1, 2, 0x9000, 0x6000), Partition("b", 0, 0, 0x10000, 8 * MIB)))
    with pytest.raises(InputError, match=r"partition 'b': ends at 0x810000"):
        table.validate(FOUR_MB)
    table.validate(16 * MIB)
    with pytest.raises(InputError, match=r"partition 'a': offset 0x9000 is below the table's end 0xd000"):
        table.validate(16 * MIB, table_offset=0xC000)


def test_from_binary_rejects_bad_input() -> None:
    good = load("two_ota").to_binary()
    with pytest.raises(FormatError, match="MD5 mismatch"):
        PartitionTable.from_binary(good[:12] + b"N" + good[13:])
    with pytest.raises(FormatError, match="no end marker"):
        PartitionTable.from_binary(good[: 7 * 32])
    with pytest.raises(FormatError, match="entry 1: partition entry has magic 0x1234"):
        PartitionTable.from_binary(good[:32] + b"\x34\x12" + good[34:])


# --- the bootloader's walk (flash_partitions.c) ----------------------------------------------


def sector(table: PartitionTable) -> bytes:
    return table.to_binary() + b"\xff" * 0x400


def test_bootloader_walk_accepts_gen_output() -> None:
    table = load("two_ota_large")
    assert verify_table_bytes(sector(table), FOUR_MB) == table


def test_bootloader_walk_accepts_a_table_without_md5() -> None:
    table = load("two_ota_large")
    entries = b"".join(p.to_binary() for p in table.partitions)
    assert verify_table_bytes(entries + b"\xff" * 0x100, FOUR_MB) == table


def test_bootloader_invalid_magic_text() -> None:
    data = bytearray(sector(load("two_ota_large")))
    data[2 * 32 : 2 * 32 + 2] = b"\x34\x12"
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(bytes(data), FOUR_MB)
    assert str(caught.value) == "partition 2 invalid magic number 0x1234"


def test_bootloader_md5_texts() -> None:
    data = bytearray(sector(load("two_ota_large")))
    data[40] ^= 0x01  # a label byte of entry 1
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(bytes(data), FOUR_MB)
    assert str(caught.value) == "Incorrect MD5 checksum"
    table = load("two_ota_large").to_binary()
    md5_entry = table[5 * 32 : 6 * 32]
    entries = table[: 5 * 32]
    doubled = entries + md5_entry + b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries + md5_entry).digest()
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(doubled + b"\xff" * 64, FOUR_MB)
    assert str(caught.value) == "Only one MD5 checksum is allowed"


def test_bootloader_empty_and_unterminated_texts() -> None:
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(b"\xff" * 0xC00, FOUR_MB)
    assert str(caught.value) == "partition 0 invalid magic number 0xffff"
    entry = Partition("d", 1, 0x40, 0x10000, 0x1000).to_binary()
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(entry * 96 + b"\xff" * 0x400, 16 * MIB)
    assert str(caught.value) == "partition table has no terminating entry, not valid"


def test_bootloader_flash_size_text() -> None:
    with pytest.raises(FormatError) as caught:
        verify_table_bytes(sector(load("two_ota_large")), 2 * MIB)
    assert str(caught.value) == (
        "partition 4 invalid - offset 0x1d0000 size 0x1a9000 exceeds flash chip size 0x200000"
    )


# --- properties ------------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=16)
partitions = st.builds(
    Partition,
    name=names,
    type=st.integers(0, 0xFE),
    subtype=st.integers(0, 0xFF),
    offset=st.integers(0, 0xFFFF).map(lambda n: n * 0x1000),
    size=st.integers(1, 0xFFFFF),
    encrypted=st.booleans(),
    readonly=st.booleans(),
)


@given(st.lists(partitions, max_size=40).map(tuple))
def test_binary_round_trip(parts: tuple[Partition, ...]) -> None:
    table = PartitionTable(parts)
    binary = table.to_binary()
    assert len(binary) == 0xC00
    assert PartitionTable.from_binary(binary) == table
    if parts:
        assert verify_table_bytes(binary, 0xFFFFFFFF) == table


rows = st.tuples(
    st.sampled_from(["data, phy", "data, spiffs", "data, 0x40", "app, factory", "app, test", "0x40, 3"]),
    st.integers(1, 64).map(lambda k: f"{4 * k}K"),
    st.sampled_from(["", "encrypted", "readonly", "encrypted:readonly"]),
)


@given(st.lists(rows, min_size=1, max_size=12))
def test_csv_round_trip_of_valid_tables(generated: list[tuple[str, str, str]]) -> None:
    csv = "".join(f"p{i}, {kind}, , {size}, {flags}\n" for i, (kind, size, flags) in enumerate(generated))
    table = PartitionTable.from_csv(csv)
    again = PartitionTable.from_csv(table.to_csv())
    assert again == table
    assert verify_table_bytes(again.to_binary(), FOUR_MB) == table
