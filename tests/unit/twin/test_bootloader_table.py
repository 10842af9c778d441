"""The bootloader's decision table (bootloader_utility.c v5.5.5): every pair of otadata states ×
which slot holds a good image → the slot booted, the otadata left behind, the lines."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from rig.esp.flashimage import flash_regions
from rig.esp.otadata import OtaData, OtaEntry, OtaState
from rig.esp.partitions import PartitionTable
from rig.esp.testimage import make_test_app
from tests.support.cpu import TABLE, FakeCpu, Reset
from twin.bootloader import Bootloader
from twin.config import BoardConfig
from twin.efuse import Efuse
from twin.flash import NorFlash

OTADATA = 0xF000
SLOTS = (0x20000, 0x1D0000)


def entry(kind: str, seq: int) -> OtaEntry:
    if kind == "erased":
        return OtaEntry.erased()
    if kind == "bad_crc":
        good = OtaEntry.make(seq, OtaState.VALID)
        return OtaEntry(good.seq, good.state, good.crc ^ 1)
    return OtaEntry.make(seq, OtaState[kind])


def boot(
    tmp_path: Path, e0: OtaEntry, e1: OtaEntry, good: set[int], config: BoardConfig | None = None,
    secure_versions: tuple[int, int] = (0, 0), fuse: int = 0,
) -> tuple[FakeCpu, str | None]:
    flash = NorFlash(tmp_path / "flash.bin")
    efuse = Efuse(tmp_path / "efuse.json")
    efuse.burn_secure_version(fuse)
    app = make_test_app(version="1.0.0", secure_version=secure_versions[0], size=16 * 1024)
    for offset, data in flash_regions(TABLE, app=app, otadata=OtaData((e0, e1))):
        if offset not in SLOTS:
            flash.program(offset, data)
    for slot in (0, 1):
        image = make_test_app(version=f"1.0.{slot}", secure_version=secure_versions[slot], size=16 * 1024)
        if slot not in good:
            image = image[:100] + bytes([image[100] ^ 0xFF]) + image[101:]
        flash.program(SLOTS[slot], image)
    cpu = FakeCpu(flash, efuse)
    try:
        _, loaded = Bootloader(cpu, config or BoardConfig()).run()  # type: ignore[arg-type]
    except Reset:
        return cpu, None
    return cpu, loaded.partition.name


def read(cpu: FakeCpu) -> OtaData:
    return OtaData.from_bytes(cpu.flash.read(OTADATA, 0x2000))


def expected_slot(k0: str, k1: str, good: set[int]) -> tuple[int | None, bool]:
    """Oracle written from bootloader_utility.c:bootloader_utility_get_selected_boot_partition() and
    load_boot_image(): (slot that boots, entry-0 rewritten as virgin)."""
    states = {0: entry(k0, 1), 1: entry(k1, 2)}
    after = {
        i: e.with_state(OtaState.ABORTED) if e.state == OtaState.PENDING_VERIFY else e
        for i, e in states.items()
    }
    if all(e.is_invalid for e in after.values()):
        start = 0
    else:
        active = OtaData((after[0], after[1])).active_index()
        start = -1 if active is None else active  # seq 1 -> ota_0, seq 2 -> ota_1
    order = [0] if start in (-1, 0) else [1, 0]
    order += [s for s in (0, 1) if s not in order]
    virgin = all(e.seq == 0xFFFFFFFF or not e.crc_ok for e in states.values())
    for slot in order:
        if slot in good:
            return slot, virgin and all(e.is_invalid for e in after.values())
    return None, False


KINDS = [*(s.name for s in OtaState), "erased", "bad_crc"]


@pytest.mark.parametrize("good", [{0, 1}, {0}, {1}], ids=["both", "only0", "only1"])
@pytest.mark.parametrize("k1", KINDS)
@pytest.mark.parametrize("k0", KINDS)
def test_every_pair_of_states(tmp_path: Path, k0: str, k1: str, good: set[int]) -> None:
    cpu, booted = boot(tmp_path, entry(k0, 1), entry(k1, 2), good)
    slot, set_seq = expected_slot(k0, k1, good)
    if slot is None:
        assert booted is None
        assert cpu.lines[-1] == "E boot: No bootable app partitions in the partition table"
        return
    assert booted == f"ota_{slot}"
    assert f"I boot: Loaded app from partition at offset 0x{SLOTS[slot]:x}" in cpu.lines
    after = read(cpu)
    aborted = [e.with_state(OtaState.ABORTED) if e.state == OtaState.PENDING_VERIFY else e
               for e in (entry(k0, 1), entry(k1, 2))]
    active_after_abort = OtaData((aborted[0], aborted[1])).active_index()
    for i, kind in enumerate((k0, k1)):
        before = entry(kind, i + 1)
        got = after.entries[i]
        if i == 0 and set_seq:
            assert (got.seq, got.state) == (slot + 1, OtaState.VALID)
            assert f"I boot: Set actual ota_seq={slot + 1} in otadata[0]" in cpu.lines
        elif before.state == OtaState.PENDING_VERIFY:
            assert got.state == OtaState.ABORTED
        elif before.state == OtaState.NEW and active_after_abort == i:
            assert got.state == OtaState.PENDING_VERIFY
        else:
            assert got == before
    for bad in {0, 1} - good:
        if f"I boot: Loaded app from partition at offset 0x{SLOTS[bad]:x}" not in cpu.lines:
            continue
        raise AssertionError("a corrupt slot was loaded")


def test_corrupt_selected_slot_falls_back_with_its_error(tmp_path: Path) -> None:
    cpu, booted = boot(tmp_path, entry("VALID", 1), entry("VALID", 2), {0})
    assert booted == "ota_0"
    assert "E esp_image: Image hash failed - image is corrupt" in cpu.lines or any(
        line.startswith("E esp_image: Checksum failed.") for line in cpu.lines
    )
    assert "E boot: OTA app partition slot 1 is not bootable" in cpu.lines
    assert read(cpu).entries[1].state == OtaState.VALID  # fallback leaves otadata alone


def test_no_bootable_partition_resets(tmp_path: Path) -> None:
    cpu, booted = boot(tmp_path, entry("VALID", 1), entry("VALID", 2), set())
    assert booted is None
    assert "E boot: OTA app partition slot 0 is not bootable" in cpu.lines
    assert cpu.lines[-1] == "E boot: No bootable app partitions in the partition table"


def test_anti_rollback_skips_a_slot_below_the_efuse(tmp_path: Path) -> None:
    config = BoardConfig(anti_rollback=True)
    cpu, booted = boot(
        tmp_path, entry("VALID", 1), entry("VALID", 2), {0, 1}, config, secure_versions=(2, 1), fuse=2
    )
    assert booted == "ota_0"
    assert "I boot: Enabled a check secure version of app for anti rollback" in cpu.lines
    assert "I boot: Secure version (from eFuse) = 2" in cpu.lines


def test_anti_rollback_valid_entry_raises_the_efuse(tmp_path: Path) -> None:
    config = BoardConfig(anti_rollback=True)
    cpu, booted = boot(tmp_path, entry("VALID", 1), entry("VALID", 2), {0, 1}, config, secure_versions=(1, 3))
    assert booted == "ota_1"
    assert cpu.efuse.secure_version == 3
    assert "I efuse: Anti-rollback is set. eFuse field is updated(3)." in cpu.lines


def test_anti_rollback_without_a_descriptor_says_it_could_not_read_one(tmp_path: Path) -> None:
    """bootloader_utility.c:check_anti_rollback(): bootloader_common_get_partition_description()
    answers ESP_ERR_NOT_FOUND (261) for a slot without the descriptor magic."""
    config = BoardConfig(anti_rollback=True)
    flash_path = tmp_path / "blank"
    flash_path.mkdir()
    cpu, booted = boot(flash_path, entry("VALID", 1), entry("VALID", 2), {0}, config)
    cpu.flash.erase(SLOTS[1], 0x1000)  # slot 1 loses its header and descriptor
    with contextlib.suppress(Reset):
        Bootloader(cpu, config).run()  # type: ignore[arg-type]
    assert "E boot: Failed to get partition description 261" in cpu.lines
    assert booted == "ota_0"


def test_a_too_small_otadata_resets_without_a_partition_table_error(tmp_path: Path) -> None:
    """bootloader_common_read_otadata() logs the size and fails; get_selected_boot_partition()
    returns INVALID_INDEX and bootloader_start.c resets: no `load partition table error!`."""
    # gen_esp32part refuses such a table; a hand-edited one still reaches the bootloader
    small = tuple(replace(p, size=0x1000) if p.name == "otadata" else p for p in TABLE.partitions)
    flash = NorFlash(tmp_path / "flash.bin")
    for offset, data in flash_regions(TABLE, app=make_test_app(version="1.0.0", size=16 * 1024)):
        flash.program(offset, data)
    flash.erase(0x8000, 0x1000)
    flash.program(0x8000, PartitionTable(small).to_binary())
    cpu = FakeCpu(flash, Efuse(tmp_path / "efuse.json"))
    with pytest.raises(Reset):
        Bootloader(cpu, BoardConfig()).run()  # type: ignore[arg-type]
    assert cpu.lines[-1] == "E boot: ota_info partition size 4096 is too small (minimum 8192 bytes)"
    assert "E boot: load partition table error!" not in cpu.lines
