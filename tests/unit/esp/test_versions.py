"""Version ordering (PROTOCOL.md §6): examples and ordering properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.esp.versions import compare_versions, parse_version


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0.0", "1.0.1", -1),
        ("1.10.0", "1.9.9", 1),
        ("v2.3", "2.3.0", 0),
        ("2.3.0-rc1", "2.3.0", -1),
        ("2.3.0", "2.3.0-rc1", 1),
        ("2.3.0-rc1", "2.3.1", -1),
        ("2.3.0-rc1", "2.3.0-rc2", -1),  # PROTOCOL §6: suffixes compare as ASCII (C strcmp)
        ("1.0.10", "1.0.9", 1),  # numbers, not strings: a digit more is newer
        ("1.0.1-rc.1", "1.0.1", -1),  # a pre-release sorts below its release
        ("nightly", "1.0", None),
        ("nightly", "nightly", 0),
        ("1", "1.0.0.0", 0),
    ],
)
def test_examples(a: str, b: str, expected: int | None) -> None:
    assert compare_versions(a, b) == expected


numbers = st.lists(st.integers(0, 30), min_size=1, max_size=4)
versions = st.builds(
    lambda nums, prefix, suffix: prefix + ".".join(map(str, nums)) + (f"-{suffix}" if suffix else ""),
    numbers,
    st.sampled_from(["", "v"]),
    st.sampled_from(["", "rc1", "beta"]),
) | st.text(max_size=6)


@given(versions, versions)
def test_antisymmetric(a: str, b: str) -> None:
    ab, ba = compare_versions(a, b), compare_versions(b, a)
    assert (ab is None) == (ba is None)
    if ab is not None and ba is not None:
        assert ab == -ba


@given(versions)
def test_reflexive(a: str) -> None:
    assert compare_versions(a, a) == 0


@given(versions, versions, versions)
def test_transitive(a: str, b: str, c: str) -> None:
    if compare_versions(a, b) == -1 and compare_versions(b, c) == -1:
        assert compare_versions(a, c) == -1


@given(numbers)
def test_bumping_orders_as_expected(nums: list[int]) -> None:
    parsed = parse_version(".".join(map(str, nums)))
    assert parsed is not None
    base = str(parsed)
    assert compare_versions(str(parsed.bumped(1)), base) == 1
    assert compare_versions(str(parsed.bumped(2)), str(parsed.bumped(1))) == 1
    if any(nums):
        assert compare_versions(str(parsed.bumped(-1)), base) == -1


def test_older_borrows() -> None:
    parsed = parse_version("1.0.0")
    assert parsed is not None and str(parsed.bumped(-1)) == "0.9.9"
