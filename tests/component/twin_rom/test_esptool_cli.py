"""The real esptool command line (subprocess) against the twin over RFC2217."""

from __future__ import annotations

import pytest

from .conftest import HOOK_LINE, Board


def test_cli_rom_write_verify_read_erase(board: Board) -> None:
    data = bytes(range(256)) * 8
    (board.workdir / "img.bin").write_bytes(data)
    done = board.cli("--no-stub", "write-flash", "0x9000", "img.bin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hash of data verified." in done.stdout
    done = board.cli("read-flash", "0x9000", str(len(data)), "back.bin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (board.workdir / "back.bin").read_bytes() == data
    done = board.cli("erase-region", "0x9000", "0x1000")
    assert done.returncode == 0, done.stdout + done.stderr
    assert board.chip.flash.read(0x9000, len(data)) == b"\xff" * len(data)


def test_cli_verify_fails_on_a_flipped_bit(board: Board) -> None:
    data = b"\x5a" * 4096
    (board.workdir / "img.bin").write_bytes(data)
    assert board.cli("write-flash", "0x9000", "img.bin").returncode == 0
    board.chip.flash.program(0x9123, b"\x58")
    done = board.cli("verify-flash", "0x9000", "img.bin")
    assert done.returncode != 0
    assert "Verification failed (digest mismatch)." in done.stdout


@pytest.mark.slow
def test_stock_pyserial_client_resets_into_download_and_back_to_flash(board: Board) -> None:
    """Plain `python -m esptool` (pyserial's own RFC2217 client, 50 ms sleeps and all)."""
    resets = ("--before", "default-reset", "--after", "hard-reset")
    done = board.cli(*resets, "--no-stub", "read-mac", fast=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "24:0a:c4:a1:b2:c3" in done.stdout
    board.console.expect("waiting for download")
    board.console.expect(r"^rst:0x1 \(POWERON_RESET\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)$")
    board.console.expect(HOOK_LINE)
