"""Real esptool (v5, in-process with the fast RFC2217 client) against the twin."""

from __future__ import annotations

import random
from pathlib import Path

import esptool
import pytest

from twin.flash import SECTOR_SIZE, OpOutcome

from .conftest import HOOK_LINE, Board


def random_image(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    # Half noise, half text-like: exercises both compressible and raw deflate blocks.
    noise = rng.randbytes(size // 2)
    return noise + bytes(rng.choice(b"abcdefgh \n") for _ in range(size - len(noise)))


def write_file(board: Board, name: str, data: bytes) -> str:
    path = board.workdir / name
    path.write_bytes(data)
    return str(path)


def test_chip_and_flash_identity(board: Board) -> None:
    out = board.esptool("flash-id")
    assert "Chip type:          ESP32-D0WD-V3 (revision v3.0)" in out
    assert "MAC:                24:0a:c4:a1:b2:c3" in out
    assert "Stub flasher running." in out
    for line in ("Manufacturer: ef", "Device: 4016", "Detected flash size: 4MB"):
        assert line in out


def test_read_mac_and_chip_id_in_rom_mode(board: Board) -> None:
    out = board.esptool("--no-stub", "chip-id")
    assert "WARNING: ESP32 has no chip ID. Reading MAC address instead." in out
    assert "24:0a:c4:a1:b2:c3" in out
    assert "24:0a:c4:a1:b2:c3" in board.esptool("--no-stub", "read-mac")


@pytest.mark.parametrize(
    ("loader", "compression"),
    [([], []), ([], ["-u"]), (["--no-stub"], []), (["--no-stub"], ["-z"])],
    ids=["stub-deflate", "stub-raw", "rom-raw", "rom-deflate"],
)
def test_write_flash_lands_exact_bytes(board: Board, loader: list[str], compression: list[str]) -> None:
    data = random_image(40 * 1024 + 123)
    out = board.esptool(*loader, "write-flash", *compression, "0x20000", write_file(board, "img.bin", data))
    assert "Hash of data verified." in out
    assert board.chip.flash.read(0x20000, len(data)) == data


def test_write_then_read_back_over_stub_and_rom(board: Board, tmp_path: Path) -> None:
    data = random_image(256 * 1024, seed=2)
    board.esptool("write-flash", "0x40000", write_file(board, "big.bin", data))
    board.esptool("read-flash", "0x40000", str(len(data)), str(tmp_path / "stub.bin"))
    assert (tmp_path / "stub.bin").read_bytes() == data
    board.esptool("--no-stub", "read-flash", "0x40100", "300", str(tmp_path / "rom.bin"))
    assert (tmp_path / "rom.bin").read_bytes() == data[0x100:0x100 + 300]


@pytest.mark.parametrize("mode", [[], ["--no-stub"]], ids=["stub", "rom"])
def test_verify_flash_catches_a_flipped_bit(board: Board, mode: list[str]) -> None:
    data = random_image(8 * 1024, seed=3).replace(b"\x00", b"\x01")
    image = write_file(board, "v.bin", data)
    board.esptool("write-flash", "0x10000", image)
    out = board.esptool(*mode, "verify-flash", "0x10000", image)
    assert "Verification successful (digest matched)." in out
    board.chip.flash.program(0x10000 + 4000, bytes([data[4000] & 0xFE]))
    with pytest.raises(esptool.FatalError):
        board.esptool(*mode, "verify-flash", "0x10000", image)


def test_erase_region_and_erase_flash(board: Board) -> None:
    board.esptool("write-flash", "0x10000", write_file(board, "e.bin", b"\x00" * 0x3000))
    board.esptool("erase-region", "0x11000", "0x1000")
    flash = board.chip.flash
    assert flash.read(0x10000, 0x1000) == b"\x00" * 0x1000
    assert flash.read(0x11000, 0x1000) == b"\xff" * 0x1000
    assert flash.read(0x12000, 0x1000) == b"\x00" * 0x1000
    board.esptool("erase-flash")
    assert flash.read(0, flash.size) == b"\xff" * flash.size


def test_baud_change(board: Board, tmp_path: Path) -> None:
    data = random_image(16 * 1024, seed=4)
    out = board.esptool("-b", "460800", "write-flash", "0x30000", write_file(board, "b.bin", data))
    assert "Changing baud rate to 460800" in out
    assert board.chip.flash.read(0x30000, len(data)) == data


def test_default_reset_then_hard_reset_boots_from_flash(board: Board) -> None:
    board.esptool("--before", "default-reset", "--after", "hard-reset", "--no-stub", "chip-id")
    download = r"rst:0x1 \(POWERON_RESET\),boot:0x3 \(DOWNLOAD_BOOT\(UART0/UART1/SDIO_REI_REO_V2\)\)$"
    board.console.expect(download)
    board.console.expect("waiting for download")
    board.console.expect(r"^rst:0x1 \(POWERON_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)$")
    board.console.expect("^mode:DIO, clock div:2$")
    board.console.expect("^load:0x3fff0018,len:4$")
    board.console.expect("^entry 0x40080764$")
    board.console.expect(rf"^{HOOK_LINE} reset=POWERON_RESET$")


def test_power_cut_mid_erase_leaves_a_torn_sector(board: Board) -> None:
    flash = board.chip.flash
    board.esptool("write-flash", "-u", "0x10000", write_file(board, "t.bin", b"\x00" * 0x4000))
    # erase-region erases one sector per operation; cut half way into the third.
    flash.cut_at(flash.op_count + 2, 0.5)
    with pytest.raises(esptool.FatalError):
        board.esptool("--after", "no-reset", "erase-region", "0x10000", "0x4000")
    assert flash.read(0x10000, 2 * SECTOR_SIZE) == b"\xff" * 2 * SECTOR_SIZE
    torn = flash.read(0x12000, SECTOR_SIZE)
    assert torn[: SECTOR_SIZE // 2] == b"\xff" * (SECTOR_SIZE // 2)
    assert torn[-256:] == b"\x00" * 256
    assert flash.read(0x13000, SECTOR_SIZE) == b"\x00" * SECTOR_SIZE
    assert flash.ops()[-1].outcome is OpOutcome.TORN
    # The cut was a power glitch: the chip came back up on its own.
    board.console.expect(r"rst:0x1 \(POWERON_RESET\)")
