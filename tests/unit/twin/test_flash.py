"""NOR flash semantics, persistence, torn operations and the op log."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.flash import SECTOR_SIZE, FlashOp, NorFlash, OpKind, OpOutcome, PowerLost

SIZE = 64 * 1024


@pytest.fixture
def flash(tmp_path: Path) -> NorFlash:
    return NorFlash(tmp_path / "flash.bin", SIZE)


def test_new_flash_reads_erased(flash: NorFlash) -> None:
    assert flash.read(0, SIZE) == b"\xff" * SIZE


def test_program_only_clears_bits(flash: NorFlash) -> None:
    flash.program(0x100, b"\xf0\x0f")
    flash.program(0x100, b"\x3c\x3c")
    assert flash.read(0x100, 2) == b"\x30\x0c"


def test_erase_restores_ff_for_whole_sector(flash: NorFlash) -> None:
    flash.program(SECTOR_SIZE + 10, b"\x00" * 100)
    flash.program(2 * SECTOR_SIZE, b"\x00")
    flash.erase(SECTOR_SIZE, SECTOR_SIZE)
    assert flash.read(SECTOR_SIZE, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE
    assert flash.read(2 * SECTOR_SIZE, 1) == b"\x00"


def test_unaligned_erase_and_out_of_range_are_refused(flash: NorFlash) -> None:
    with pytest.raises(ValueError):
        flash.erase(100, SECTOR_SIZE)
    with pytest.raises(ValueError):
        flash.program(SIZE - 1, b"\x00\x00")


def test_contents_survive_reopen(tmp_path: Path) -> None:
    first = NorFlash(tmp_path / "f.bin", SIZE)
    first.program(0x2000, b"persist")
    first.close()
    second = NorFlash(tmp_path / "f.bin", SIZE)
    assert second.read(0x2000, 7) == b"persist"


def test_ops_are_counted_and_observed(tmp_path: Path) -> None:
    seen: list[tuple[FlashOp, bytes]] = []
    flash = NorFlash(tmp_path / "f.bin", SIZE)
    flash.observer = lambda op, data: seen.append((op, data))
    flash.erase(0, 2 * SECTOR_SIZE)
    flash.program(0x10, b"abc")
    assert flash.op_count == 3
    assert flash.stats.bytes_erased == 2 * SECTOR_SIZE
    assert flash.stats.bytes_programmed == 3
    kinds = [(op.index, op.kind, op.address) for op in flash.ops()]
    assert kinds == [(0, OpKind.ERASE, 0), (1, OpKind.ERASE, SECTOR_SIZE), (2, OpKind.PROGRAM, 0x10)]
    assert [op for op, _ in seen] == flash.ops()
    assert [data for _, data in seen] == [b"", b"", b"abc"]


def test_cut_inside_erase_leaves_a_torn_sector(flash: NorFlash) -> None:
    flash.program(0, b"\x00" * SECTOR_SIZE)
    flash.cut_at(flash.op_count, 0.5)
    with pytest.raises(PowerLost):
        flash.erase(0, SECTOR_SIZE)
    sector = flash.read(0, SECTOR_SIZE)
    assert sector[: SECTOR_SIZE // 2] == b"\xff" * (SECTOR_SIZE // 2)
    # The chunk in flight is a mix; what was never reached keeps its old data.
    assert sector[-256:] == b"\x00" * 256
    assert flash.ops()[-1].outcome is OpOutcome.TORN


def test_torn_erase_is_deterministic(tmp_path: Path) -> None:
    results = []
    for name in ("a", "b"):
        flash = NorFlash(tmp_path / f"{name}.bin", SIZE)
        flash.program(0, b"\x00" * SECTOR_SIZE)
        flash.cut_at(1, 0.3)
        with pytest.raises(PowerLost):
            flash.erase(0, SECTOR_SIZE)
        results.append(flash.read(0, SECTOR_SIZE))
    assert results[0] == results[1]
    assert b"\x00" in results[0] and b"\xff" in results[0]


def test_torn_program_lands_bytes_in_order(flash: NorFlash) -> None:
    # A 32-byte otadata entry cut half way: seq and part of the label, no CRC.
    entry = bytes(range(32))
    flash.cut_at(flash.op_count, 0.5)
    with pytest.raises(PowerLost):
        flash.program(0, entry)
    assert flash.read(0, 32) == entry[:16] + b"\xff" * 16


def test_power_loss_between_chunks_stops_the_operation(flash: NorFlash) -> None:
    # Power is seen at the start and before pages 2 and 3; gone before page 4.
    looks = iter([True, True, True, False])
    flash.power_ok = lambda: next(looks, False)
    with pytest.raises(PowerLost):
        flash.program(0, b"\x00" * 1024)
    data = flash.read(0, 1024)
    # Three pages done, the page in flight half programmed, nothing after it.
    assert data[: 768 + 128] == b"\x00" * (768 + 128)
    assert data[768 + 128 :] == b"\xff" * 128
    assert flash.ops()[-1].outcome is OpOutcome.TORN


def test_no_power_means_no_operation(flash: NorFlash) -> None:
    flash.power_ok = lambda: False
    with pytest.raises(PowerLost):
        flash.erase(0, SECTOR_SIZE)
    assert flash.op_count == 0


def test_cut_callback_fires_only_for_injected_cuts(flash: NorFlash) -> None:
    fired: list[bool] = []
    flash.on_cut = lambda: fired.append(True)
    flash.cut_at(0, 0.0)
    with pytest.raises(PowerLost):
        flash.program(0, b"\x00")
    assert fired == [True]
