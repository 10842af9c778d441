"""One size parser and one duration parser for every input that has them."""

from __future__ import annotations

import pytest

from rig.units import parse_duration, parse_size, size_text


@pytest.mark.parametrize(
    ("text", "size"),
    [("4MB", 4 << 20), ("4M", 4 << 20), ("4096K", 4 << 20), ("64KiB", 64 << 10), ("0x400000", 4 << 20),
     ("0x10k", 16 << 10), ("1m", 1 << 20), ("4096", 4096), (8192, 8192)],
)  # fmt: skip
def test_sizes_read_as_esp_idf_writes_them(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["4 GiB", "lots", "", "-4K", "4.5M", True, "0x"])
def test_what_is_not_a_size_is_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_a_partition_csv_may_count_back_from_the_end() -> None:
    assert parse_size("-0x1000", signed=True) == -4096


def test_sizes_print_back_in_their_shortest_exact_form() -> None:
    assert [size_text(n) for n in (4 << 20, 64 << 10, 0x1234, 0)] == ["4M", "64K", "0x1234", "0x0"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("3", 3.0), (0.5, 0.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0s", "0", "-1s", "nan", "inf", float("nan"), float("inf"), "soon", "1h"])
def test_durations_that_mean_nothing_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_zero_is_a_duration_where_the_caller_allows_it() -> None:
    assert parse_duration("0ms", allow_zero=True) == 0.0
