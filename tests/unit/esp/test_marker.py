"""Behaviour marker (PROTOCOL.md §4): layout, round trips, exactly-once rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import FormatError
from rig.esp.marker import MARKER_MAGIC, Behaviour, BehaviourMarker, find_marker, marker_bytes


@given(st.sampled_from(Behaviour), st.integers(0, 0xFFFFFFFF))
def test_round_trip(behaviour: Behaviour, param: int) -> None:
    marker = BehaviourMarker(behaviour, param)
    assert BehaviourMarker.decode(marker.encode()) == marker


def test_layout_matches_protocol() -> None:
    raw = marker_bytes(Behaviour.CONFIRM_THEN_CRASH, 1500)
    assert raw == b"OTARIGBM" + b"\x01\x00" + b"\x05\x00" + (1500).to_bytes(4, "little") + bytes(16)


def test_codes_and_labels_match_protocol() -> None:
    assert [(b.value, b.label) for b in Behaviour] == [
        (0, "healthy"), (1, "crash_on_boot"), (2, "selftest_fail"),
        (3, "hang"), (4, "never_confirm"), (5, "confirm_then_crash"),
    ]


def test_find_marker_returns_offset() -> None:
    data = b"\xaa" * 100 + marker_bytes(Behaviour.HANG, 3) + b"\xbb" * 10
    assert find_marker(data) == (100, BehaviourMarker(Behaviour.HANG, 3))


def test_none_or_two_markers_are_refused() -> None:
    with pytest.raises(FormatError, match="no behaviour marker"):
        find_marker(b"\x00" * 64)
    with pytest.raises(FormatError, match="more than one"):
        find_marker(marker_bytes(Behaviour.HEALTHY) * 2)


def test_unknown_code_and_layout_are_refused() -> None:
    with pytest.raises(FormatError, match="unknown behaviour code 9"):
        BehaviourMarker.decode(MARKER_MAGIC + b"\x01\x00\x09\x00" + bytes(20))
    with pytest.raises(FormatError, match="layout version 2"):
        BehaviourMarker.decode(MARKER_MAGIC + b"\x02\x00\x00\x00" + bytes(20))
