"""The replay's records survive the trip through a JSON line, and garbage is refused."""

from __future__ import annotations

import pytest

from rig.sweep.records import Done, Progress, Record, TraceFacts, decode, encode
from tests.unit.sweep.conftest import point, run


def test_every_record_comes_back_as_it_went(trace: TraceFacts) -> None:
    records: list[Record] = [trace, run(), point(3, 0.5), Progress(3, 9), Done(9, 2, 0.5)]
    for record in records:
        assert decode(encode(record)) == record


@pytest.mark.parametrize("line", ["", "not json", '{"type": "nope"}', "[1, 2]", '{"type": "progress"}'])
def test_a_line_that_is_not_a_record_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="not a sweep record"):
        decode(line)
