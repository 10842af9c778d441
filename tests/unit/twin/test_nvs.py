"""NVS in the flash's nvs partition: empty when erased, survives re-opening, cleared by
an erase of the partition, and a power cut inside any write leaves old or new values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.esp.partitions import PartitionTable
from twin.flash import NorFlash, PowerLost
from twin.nvs import Nvs, NvsFull, find_nvs_partition

TABLE = PartitionTable.from_csv(
    "nvs, data, nvs, , 0x6000,\notadata, data, ota, , 0x2000,\nphy_init, data, phy, , 0x1000,\n"
    "ota_0, app, ota_0, , 1700K,\nota_1, app, ota_1, , 1700K,\n"
)
NVS_PART = find_nvs_partition(TABLE)
assert NVS_PART is not None


@pytest.fixture
def flash(tmp_path: Path) -> Iterator[NorFlash]:
    nor = NorFlash(tmp_path / "flash.bin")
    yield nor
    nor.close()


def nvs(flash: NorFlash) -> Nvs:
    assert NVS_PART is not None
    return Nvs(flash, NVS_PART)


def test_the_partition_is_found_by_type_subtype_and_label() -> None:
    assert NVS_PART is not None
    assert (NVS_PART.offset, NVS_PART.size) == (0x9000, 0x6000)
    no_nvs = PartitionTable.from_csv("otadata, data, ota, , 0x2000,\nota_0, app, ota_0, , 1M,\n")
    assert find_nvs_partition(no_nvs) is None


def test_erased_flash_is_an_empty_nvs(flash: NorFlash) -> None:
    assert nvs(flash).get("ota_progress") is None


def test_values_live_in_the_partition_and_survive_reopening(flash: NorFlash) -> None:
    store = nvs(flash)
    store.set("ota_progress", {"url": "https://x/a.bin", "bytes": 4096})
    store.set("cert", "QUJD")
    store.erase("cert")
    again = nvs(flash)
    assert again.get("ota_progress") == {"url": "https://x/a.bin", "bytes": 4096}
    assert again.get("cert") is None
    assert flash.read(0x9000, 0x6000) != b"\xff" * 0x6000


def test_erasing_the_partition_forgets_everything(flash: NorFlash) -> None:
    """What `esptool erase-region 0x9000 0x6000` does before a scenario."""
    store = nvs(flash)
    for saved in range(1024, 8192, 1024):
        store.set("ota_progress", {"url": "u", "bytes": saved})
    flash.erase(0x9000, 0x6000)
    assert nvs(flash).get("ota_progress") is None


def test_nothing_outside_the_partition_is_touched(flash: NorFlash) -> None:
    for value in range(10):
        nvs(flash).set("k", value)
    assert flash.read(0, 0x9000) == b"\xff" * 0x9000
    assert flash.read(0xF000, 0x1000) == b"\xff" * 0x1000


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.99])
def test_a_cut_inside_a_write_keeps_the_previous_values(flash: NorFlash, fraction: float) -> None:
    """A torn record fails its CRC; the other half's older record stands (as NVS loses only
    the entry being written)."""
    store = nvs(flash)
    store.set("cert", "QUJD")
    store.set("ota_progress", {"url": "u", "bytes": 1024})
    first = flash.op_count
    store.set("ota_progress", {"url": "u", "bytes": 2048})
    assert flash.op_count - first == 2, "one sector erase and one program per write"
    for op in range(2):
        flash.cut_at(flash.op_count + op, fraction)
        with pytest.raises(PowerLost):
            store.set("ota_progress", {"url": "u", "bytes": 3072 + op})
        after = nvs(flash)
        assert after.get("ota_progress") == {"url": "u", "bytes": 2048}, f"cut in op {op} at {fraction}"
        assert after.get("cert") == "QUJD"
    store.set("ota_progress", {"url": "u", "bytes": 4096})
    assert nvs(flash).get("ota_progress") == {"url": "u", "bytes": 4096}


def test_values_larger_than_a_half_are_refused(flash: NorFlash) -> None:
    store = nvs(flash)
    store.set("small", 1)
    with pytest.raises(NvsFull):
        store.set("big", "x" * 0x3000)
    assert store.get("small") == 1
