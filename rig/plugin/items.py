"""Who a test item is in the results: its scenario (without the board), group and board."""

from __future__ import annotations

import pytest

from rig.catalog import FAMILIES
from rig.farm import BoardSpec

NO_BOARD = "-"  # the board of a test that uses none


def board_spec_of(item: pytest.Item) -> BoardSpec | None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("board_spec") if callspec is not None else None
    return spec if isinstance(spec, BoardSpec) else None


def board_of(item: pytest.Item) -> str:
    spec = board_spec_of(item)
    return spec.name if spec is not None else NO_BOARD


def scenario_of(item: pytest.Item) -> str:
    """The test's name with its parametrisation but without the board: one matrix row per scenario."""
    spec = board_spec_of(item)
    if spec is None or not isinstance(item, pytest.Function):
        return item.name
    params = item.callspec.id
    for board_free in (params.removeprefix(f"{spec.name}-"), params.removesuffix(f"-{spec.name}")):
        if board_free != params:
            return f"{item.originalname}[{board_free}]"
    return item.originalname


def group_of(item: pytest.Item) -> str:
    """The first family marker the test carries, else its module's name without `test_`."""
    for mark in item.iter_markers():
        if mark.name in FAMILIES:
            return mark.name
    return item.path.stem.removeprefix("test_")
