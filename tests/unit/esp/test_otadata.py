"""otadata: CRC vectors, codec, active-entry selection and the set-boot sequence rule."""

from __future__ import annotations

import binascii
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import FormatError, InputError
from rig.esp.otadata import (
    SECTOR_SIZE,
    OtaData,
    OtaEntry,
    OtaState,
    next_seq,
    ota_seq_crc,
    plan_set_boot,
    slot_for_seq,
)

# bootloader_common_ota_select_crc(): the right CRC, and what plain zlib.crc32 would (wrongly) give.
CRC_TABLE = [
    (1, 0x4743989A, 0x99F8B879),
    (2, 0x55F63774, 0x8B4D1797),
    (3, 0xED4A5011, 0x33F170F2),
    (4, 0x709D68A8, 0xAE26484B),
    (5, 0xC8210FCD, 0x169A2F2E),
]


@pytest.mark.parametrize(("seq", "good", "wrong"), CRC_TABLE)
def test_crc_vectors(seq: int, good: int, wrong: int) -> None:
    assert ota_seq_crc(seq) == good
    assert ota_seq_crc(seq) != wrong
    assert binascii.crc32(struct.pack("<I", seq)) == wrong  # the wrong table really is zlib's
    assert not OtaEntry(seq, OtaState.VALID, wrong).is_selectable


def test_entry_layout() -> None:
    entry = OtaEntry.make(2, OtaState.PENDING_VERIFY)
    raw = entry.encode()
    assert raw == struct.pack("<I", 2) + b"\xff" * 20 + struct.pack("<II", 1, 0x55F63774)
    assert OtaEntry.decode(raw) == entry
    assert OtaEntry.decode(b"\xff" * 32).is_erased
    assert OtaEntry.decode(b"\xff" * 32).state_name == "UNDEFINED"
    assert OtaEntry(1, 7, ota_seq_crc(1)).state_name == "0x00000007"
    with pytest.raises(FormatError):
        OtaEntry.decode(b"\x00" * 31)


def test_state_change_keeps_crc() -> None:
    entry = OtaEntry.make(3, OtaState.NEW)
    assert entry.with_state(OtaState.VALID).crc == entry.crc
    assert entry.with_state(OtaState.VALID).crc_ok


def test_partition_layout() -> None:
    data = OtaData((OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.NEW)))
    image = data.to_bytes()
    assert len(image) == 0x2000
    assert image[:32] == data.entries[0].encode()
    assert image[SECTOR_SIZE : SECTOR_SIZE + 32] == data.entries[1].encode()
    assert set(image[32:SECTOR_SIZE]) == {0xFF} and set(image[SECTOR_SIZE + 32 :]) == {0xFF}
    assert OtaData.from_bytes(image) == data
    assert OtaData.blank().to_bytes() == b"\xff" * 0x2000
    with pytest.raises(FormatError):
        OtaData.from_bytes(b"\xff" * 0x1000)
    with pytest.raises(InputError):
        data.to_bytes(0x1000)


ERASED = OtaEntry.erased()
BAD_CRC = OtaEntry(5, OtaState.VALID, 0)
ENTRY_KINDS = {
    "erased": ERASED,
    "bad_crc": BAD_CRC,
    **{state.name: OtaEntry.make(1, state) for state in OtaState},
}
SELECTABLE = {"NEW", "PENDING_VERIFY", "VALID", "UNDEFINED"}


@pytest.mark.parametrize("first", sorted(ENTRY_KINDS))
@pytest.mark.parametrize("second", sorted(ENTRY_KINDS))
def test_active_entry_for_every_pair(first: str, second: str) -> None:
    """Entry 0 holds seq 1 (or erased/bad), entry 1 the same kind at seq 2: higher seq wins."""
    entry1 = ENTRY_KINDS[second]
    if entry1.seq == 1:
        entry1 = OtaEntry.make(2, OtaState(entry1.state))
    data = OtaData((ENTRY_KINDS[first], entry1))
    expected = 1 if second in SELECTABLE else 0 if first in SELECTABLE else None
    assert data.active_index() == expected
    assert data.boot_slot(2) == (None if expected is None else expected)


def test_tie_picks_entry_0_and_lower_seq_loses() -> None:
    same = OtaEntry.make(4, OtaState.VALID)
    assert OtaData((same, same)).active_index() == 0
    assert OtaData((OtaEntry.make(7, OtaState.VALID), OtaEntry.make(6, OtaState.NEW))).active_index() == 0


def test_slot_for_seq() -> None:
    assert [slot_for_seq(seq, 2) for seq in (1, 2, 3, 4)] == [0, 1, 0, 1]
    assert slot_for_seq(0, 2) == 1  # (0 - 1) as uint32 is 0xFFFFFFFF
    assert slot_for_seq(9, 3) == 2


@pytest.mark.parametrize(
    ("active", "target", "slots", "expected"),
    [
        (1, 1, 2, 2),  # ota_0 -> ota_1
        (2, 0, 2, 3),
        (3, 1, 2, 4),
        (None, 1, 2, 2),  # no active entry: k + 1
        (None, 0, 2, 1),
        (2, 1, 2, 2),  # re-selecting the running slot keeps the seq
        (4, 7, 8, 8),  # IDF comment: running ota[4] (seq 5 or 4+) -> ota[7]
        (5, 4, 8, 5),
        (10, 0, 3, 10),
    ],
)
def test_next_seq_rule(active: int | None, target: int, slots: int, expected: int) -> None:
    assert next_seq(active, target, slots) == expected
    assert slot_for_seq(expected, slots) == target


def test_next_seq_rejects_missing_slot() -> None:
    with pytest.raises(InputError, match="OTA slot 2 does not exist"):
        next_seq(1, 2, 2)


def test_plan_set_boot_canonical_trace() -> None:
    """bootloader_utility.c / esp_ota_ops.c: virgin -> ota_0 seq 1 in sector 0; OTA to ota_1 -> {2, NEW}
    in sector 1."""
    virgin = OtaData.blank()
    sector, entry = plan_set_boot(virgin, 0, 2, rollback=True)
    assert (sector, entry.seq, entry.state, entry.crc_ok) == (0, 1, OtaState.NEW, True)
    booted = virgin.with_entry(0, OtaEntry.make(1, OtaState.VALID))
    sector, entry = plan_set_boot(booted, 1, 2, rollback=True)
    assert (sector, entry.seq, entry.state) == (1, 2, OtaState.NEW)
    after = booted.with_entry(sector, entry)
    assert after.boot_slot(2) == 1
    sector, entry = plan_set_boot(after, 0, 2, rollback=False)
    assert (sector, entry.seq, entry.state) == (0, 3, OtaState.UNDEFINED)


def test_plan_keeps_label_of_target_sector() -> None:
    label = b"L" * 20
    data = OtaData((OtaEntry.make(1, OtaState.VALID), OtaEntry(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, label)))
    assert plan_set_boot(data, 1, 2, rollback=True)[1].label == label


def test_describe() -> None:
    data = OtaData((OtaEntry.make(1, OtaState.VALID), OtaEntry.make(2, OtaState.PENDING_VERIFY)))
    assert data.describe(["ota_0", "ota_1"]).splitlines() == [
        "active: entry 1, seq 2 → ota_1, PENDING_VERIFY",
        "entry 0 @0x0000: seq 1, VALID, crc ok",
        "entry 1 @0x1000: seq 2, PENDING_VERIFY, crc ok",
    ]
    broken = OtaData((BAD_CRC, ERASED)).describe(["ota_0", "ota_1"]).splitlines()
    assert broken[0].startswith("active: none")
    assert broken[1] == "entry 0 @0x0000: seq 5, VALID, BAD crc 0x00000000 (want 0xc8210fcd)"
    assert broken[2] == "entry 1 @0x1000: erased"


# --- properties ------------------------------------------------------------------------------

words = st.integers(0, 0xFFFFFFFF)
states = st.one_of(st.sampled_from(list(OtaState)).map(int), words)
entries = st.one_of(
    st.builds(OtaEntry, seq=words, state=states, crc=words, label=st.binary(min_size=20, max_size=20)),
    st.builds(lambda seq, state: OtaEntry.make(seq, OtaState(state)), words, st.sampled_from(list(OtaState))),
)


@given(entries)
def test_entry_round_trip(entry: OtaEntry) -> None:
    assert OtaEntry.decode(entry.encode()) == entry


@given(entries, entries)
def test_selection_invariants(first: OtaEntry, second: OtaEntry) -> None:
    data = OtaData((first, second))
    assert OtaData.from_bytes(data.to_bytes()) == data
    index = data.active_index()
    if index is None:
        assert not first.is_selectable and not second.is_selectable
        return
    chosen, other = data.entries[index], data.entries[1 - index]
    assert chosen.is_selectable
    if other.is_selectable:
        assert chosen.seq >= other.seq
        assert index == 0 or chosen.seq > other.seq


set_boot_cases = st.integers(1, 16).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, 10**6))
)


@given(set_boot_cases)
def test_next_seq_lands_on_target_and_never_goes_back(case: tuple[int, int, int]) -> None:
    slots, target, active = case
    seq = next_seq(active, target, slots)
    assert slot_for_seq(seq, slots) == target
    assert active <= seq < active + slots
