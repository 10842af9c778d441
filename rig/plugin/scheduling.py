"""One xdist worker per board: the scheduler `--dist loadgroup` gets on a farm.

xdist's own loadgroup groups by an `xdist_group` mark it appends to each node id on the
worker, an assignment pytest 9.2 no longer honours (a node id is now derived from the
node's structured id), so every board's scenarios were spread over all workers and only
the board lock kept them apart, while other boards sat idle. This scheduler groups by the
board in each item's parameter id instead (`test_x[b1]`, `test_y[0.5-b1]`): xdist's scope
scheduling then hands each board's scenarios to one worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling


def board_in(nodeid: str, boards: Sequence[str]) -> str | None:
    """The board a node id's parameters name (the longest name that fits), if any."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.rindex("[") + 1 : -1]
    fitting = [
        board
        for board in boards
        if params == board or params.startswith(f"{board}-") or params.endswith(f"-{board}")
    ]
    return max(fitting, key=len) if fitting else None


class BoardScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduling with the board as the scope."""

    def __init__(self, config: pytest.Config, log: Producer | None, boards: Sequence[str]) -> None:
        super().__init__(config, log)
        self._boards = tuple(boards)

    def _split_scope(self, nodeid: str) -> str:
        return board_in(nodeid, self._boards) or nodeid
