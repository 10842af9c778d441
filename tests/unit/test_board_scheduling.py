"""Which board an item belongs to, as the xdist scheduler reads it from the node id."""

from __future__ import annotations

import pytest

from rig.plugin.scheduling import board_in

BOARDS = ("b1", "host-a-b1", "host-a-b2")


@pytest.mark.parametrize(
    ("nodeid", "board"),
    [
        ("scenarios/test_happy_path.py::test_three_generations[b1]", "b1"),
        ("scenarios/test_happy_path.py::test_three_generations[host-a-b1]", "host-a-b1"),
        ("scenarios/test_power_cut.py::test_cut_during_download[0.5-host-a-b2]", "host-a-b2"),
        ("scenarios/test_power_cut.py::test_cut[host-a-b2-late]", "host-a-b2"),
        ("scenarios/test_power_cut.py::test_cut[0.5-b1]", "b1"),
        ("scenarios/test_x.py::test_no_board", None),
        ("scenarios/test_x.py::test_other[b3]", None),
    ],
)
def test_the_board_is_the_longest_name_the_parameters_start_or_end_with(
    nodeid: str, board: str | None
) -> None:
    assert board_in(nodeid, BOARDS) == board
