"""Who gets which fault, and who joins late: drawn once from the seed, so a rollout that went
wrong can be run again with the very same boards hit the very same way."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rig.cutspec import CutSpec
from rig.rollout.policy import RolloutPolicy


@dataclass(frozen=True)
class Assignment:
    """One board's part in the rollout."""

    board: str
    cut: CutSpec | None = None
    firmware: str | None = None  # the twin's firmware model, when the policy swaps it
    late: bool = False  # added to the group mid-rollout (re-provisioned first)
    seed: int = 0  # where a random cut point lands on this board

    @property
    def fault(self) -> str:
        if self.cut is not None:
            return self.cut.text
        if self.firmware is not None:
            return f"firmware {self.firmware}"
        return "none"


@dataclass(frozen=True)
class RolloutPlan:
    """The group in dispatch order, late joiners last."""

    assignments: tuple[Assignment, ...]
    seed: int

    @property
    def initial(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if not a.late)

    @property
    def joiners(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if a.late)

    def of(self, board: str) -> Assignment:
        return next(a for a in self.assignments if a.board == board)

    @property
    def firmware_swaps(self) -> dict[str, str]:
        return {a.board: a.firmware for a in self.assignments if a.firmware is not None}


def draw_plan(policy: RolloutPolicy, boards: Sequence[str], seed: int) -> RolloutPlan:
    """Spread the policy's faults over `boards` by `seed` (the policy's own fault seed wins),
    then pick the late joiners among boards with a healthy firmware: a joiner is there to
    prove it still gets the update."""
    seed = policy.fault_seed if policy.fault_seed is not None else seed
    rng = random.Random(seed)
    shuffled = list(boards)
    rng.shuffle(shuffled)
    faults: dict[str, tuple[CutSpec | None, str | None]] = {}
    for share in policy.faults:
        for _ in range(share.boards):
            faults[shuffled.pop()] = (share.cut, share.firmware)
    healthy = [b for b in boards if faults.get(b, (None, None))[1] is None]
    unhit = [b for b in healthy if b not in faults]
    rng.shuffle(unhit)
    candidates = unhit + [b for b in healthy if b in faults]
    candidates += [b for b in boards if b not in candidates]
    late = set(sorted(candidates[: policy.late_joiners], key=list(boards).index))
    assignments = [
        Assignment(b, *faults.get(b, (None, None)), late=b in late, seed=seed * 1000 + index)
        for index, b in enumerate(boards)
    ]
    ordered = [a for a in assignments if not a.late] + [a for a in assignments if a.late]
    return RolloutPlan(tuple(ordered), seed)
