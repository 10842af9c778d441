"""Merged flash images, cross-checked with the real esptool; and the tables CLI."""

from __future__ import annotations

from pathlib import Path

import esptool
import pytest

from rig.cli import main
from rig.errors import InputError
from rig.esp.flashimage import (
    boot_partition,
    build_flash_image,
    flash_regions,
    parse_flash_size,
    placeholder_bootloader,
)
from rig.esp.otadata import OtaData, OtaEntry, OtaState
from rig.esp.partitions import MIB, PartitionTable

VECTORS = Path(__file__).parent / "vectors"
APP = b"\xe9" + bytes(range(256)) * 64


def table(name: str) -> PartitionTable:
    return PartitionTable.from_csv((VECTORS / f"{name}.csv").read_text())


def test_placeholder_bootloader_passes_esptool_image_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bl.bin"
    path.write_bytes(placeholder_bootloader())
    esptool.main(["--chip", "esp32", "image-info", str(path)])
    out = capsys.readouterr().out
    assert "Checksum:" in out and "(valid)" in out
    assert "Validation hash:" in out and "invalid" not in out.lower()
    assert "Flash size: 4MB" in out


def test_image_layout_two_ota_large() -> None:
    image = build_flash_image(table("two_ota_large"), app=APP)
    assert len(image) == 4 * MIB
    assert image[0x1000] == 0xE9 and image[:0x1000] == b"\xff" * 0x1000
    assert image[0x8000 : 0x8C00] == (VECTORS / "two_ota_large.bin").read_bytes()
    assert image[0xF000:0x11000] == b"\xff" * 0x2000  # erased otadata: boots ota_0 afresh
    assert image[0x20000 : 0x20000 + len(APP)] == APP
    assert set(image[0x20000 + len(APP) :]) == {0xFF}


def test_factory_gets_the_app_when_present() -> None:
    assert boot_partition(table("two_ota")).name == "factory"
    image = build_flash_image(table("two_ota"), app=APP)
    assert image[0x10000 : 0x10000 + len(APP)] == APP
    assert image[0x110000] == 0xFF


def test_given_otadata_is_written_and_picks_the_slot() -> None:
    otadata = OtaData((OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.NEW)))
    regions = dict(flash_regions(table("two_ota_large"), app=APP, otadata=otadata))
    assert regions[0xF000] == otadata.to_bytes()
    assert regions[0x1D0000] == APP
    assert 0x20000 not in regions


def test_regions_without_otadata_partition() -> None:
    simple = PartitionTable.from_csv("nvs, data, nvs, , 24K\nphy, data, phy, , 4K\nf, app, factory, , 1M\n")
    assert [offset for offset, _ in flash_regions(simple, app=APP)] == [0x1000, 0x8000, 0x10000]
    with pytest.raises(InputError, match="no otadata partition"):
        flash_regions(simple, app=APP, otadata=OtaData.blank())


def test_esptool_merge_bin_cli_gives_the_same_image(tmp_path: Path) -> None:
    regions = flash_regions(table("two_ota_large"), app=APP, bootloader=placeholder_bootloader())
    argv = ["--chip", "esp32", "merge-bin", "-o", str(tmp_path / "merged.bin"), "--pad-to-size", "4MB"]
    for index, (offset, data) in enumerate(regions):
        part = tmp_path / f"{index}.bin"
        part.write_bytes(data)
        argv += [hex(offset), str(part)]
    esptool.main(argv)
    assert (tmp_path / "merged.bin").read_bytes() == build_flash_image(table("two_ota_large"), app=APP)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="does not fit 'ota_0'"):
        flash_regions(table("two_ota_large"), app=b"\xe9" * (1700 * 1024 + 1))
    with pytest.raises(InputError, match="runs into the partition table"):
        flash_regions(table("two_ota_large"), app=APP, bootloader=b"\xe9" * 0x7001)
    with pytest.raises(InputError, match="flash size 0x600000 is not one of"):
        build_flash_image(table("two_ota_large"), app=APP, flash_size=6 * MIB)
    with pytest.raises(InputError, match="beyond the 2048 KiB flash"):
        build_flash_image(table("two_ota_large"), app=APP, flash_size=2 * MIB)
    with pytest.raises(InputError, match="no app partition"):
        flash_regions(PartitionTable.from_csv("nvs, data, nvs, , 24K\n"), app=APP)


def test_parse_flash_size() -> None:
    assert parse_flash_size("4MB") == parse_flash_size("4m") == parse_flash_size("0x400000") == 4 * MIB
    with pytest.raises(InputError, match="unknown flash size 'big'"):
        parse_flash_size("big")


# --- CLI -------------------------------------------------------------------------------------


def test_cli_partitions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = str(VECTORS / "two_ota_large.csv")
    out = tmp_path / "pt.bin"
    assert main(["partitions", "build", csv, "-o", str(out)]) == 0
    assert out.read_bytes() == (VECTORS / "two_ota_large.bin").read_bytes()
    capsys.readouterr()
    assert main(["partitions", "show", str(out)]) == 0
    assert " 3 ota_0            OTA app          00 10 00020000 001a9000" in capsys.readouterr().out
    assert main(["partitions", "to-csv", str(out)]) == 0
    assert capsys.readouterr().out == (VECTORS / "two_ota_large.expected.csv").read_text()
    two_ota = str(VECTORS / "two_ota.csv")
    assert main(["partitions", "build", two_ota, "-o", str(out), "--offset", "0xC000"]) == 0
    assert out.read_bytes() == (VECTORS / "two_ota.offset_c000.bin").read_bytes()


def test_cli_flash_image_and_otadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app.bin"
    app.write_bytes(APP)
    image = tmp_path / "flash.bin"
    csv = str(VECTORS / "two_ota_large.csv")
    assert main(["flash-image", "build", "--table", csv, "--app", str(app), "-o", str(image)]) == 0
    assert image.read_bytes() == build_flash_image(table("two_ota_large"), app=APP)
    dump = bytearray(image.read_bytes())
    dump[0xF000:0x11000] = OtaData((OtaEntry.make(3, OtaState.VALID), OtaEntry.erased())).to_bytes()
    image.write_bytes(bytes(dump))
    capsys.readouterr()
    assert main(["otadata", "show", str(image), "--table", csv]) == 0
    assert capsys.readouterr().out.startswith("active: entry 0, seq 3 → ota_0, VALID\n")
    part = tmp_path / "otadata.bin"
    part.write_bytes(bytes(dump[0xF000:0x11000]))
    assert main(["otadata", "show", str(part), "--slots", "4"]) == 0
    assert capsys.readouterr().out.startswith("active: entry 0, seq 3 → ota_2, VALID\n")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("partitions show {tmp}/missing.csv", "{tmp}/missing.csv: file not found"),
        ("partitions show {tmp}", "{tmp}: file is not a regular file"),
        ("partitions show {tmp}/good.csv --offset -1", "offset '-1' is negative"),
        ("partitions show {tmp}/junk.bin", "{tmp}/junk.bin is neither a partition table binary nor a CSV"),
        ("partitions show {tmp}/bad.csv", "{tmp}/bad.csv:2: unknown subtype 'ota_99' for type app"),
        ("partitions to-csv {tmp}/bad.csv", "{tmp}/bad.csv is not a partition table binary"),
        ("partitions build {tmp}/good.csv -o {tmp}/no/dir/pt.bin", "cannot write {tmp}/no/dir/pt.bin"),
        ("partitions build {tmp}/good.csv -o {tmp}/x --offset eight", "offset 'eight' is not a number"),
        ("partitions show {tmp}/good.csv --flash-size 3MB", "unknown flash size '3MB'"),
        ("otadata show {tmp}/good.csv", "{tmp}/good.csv: 22 bytes is not an otadata dump (0x2000 bytes)"),
        ("otadata show {tmp}/good.csv --table {tmp}/good.csv", "{tmp}/good.csv has no otadata partition"),
        ("flash-image build --table {tmp}/good.csv --app {tmp}/junk.bin -o {tmp}/f", "the partition table"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, message: str
) -> None:
    (tmp_path / "junk.bin").write_bytes(b"\x00\xff\xfe\x80" * 8)
    (tmp_path / "bad.csv").write_text("nvs, data, nvs, , 24K\nx, app, ota_99, , 1M\n")
    (tmp_path / "good.csv").write_text("nvs, data, nvs, , 24K\n")
    assert main(command.format(tmp=tmp_path).split()) == 2
    err = capsys.readouterr().err
    assert err.startswith("rig: error: " + message.format(tmp=tmp_path))
    assert err.count("\n") == 1 and "Traceback" not in err
