"""Board health inside a run: each worker checks a board before its first scenario there
and again after any INFRA outcome on it; a board that fails is skipped for the rest of the
run with the check's reason, and the results store decides on quarantine (rig/health).
Boards already quarantined never reach a worker: their items are skipped at collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.farm import BoardSpec, Farm
from rig.health.check import check_board
from rig.health.policy import apply_check
from rig.health.records import Quarantine, Trigger
from rig.results.store import ResultsStore

# Set on an item whose call ended in InfraError (rig/plugin/hooks.py).
INFRA_SEEN = pytest.StashKey[bool]()


def quarantine_reason(entry: Quarantine) -> str:
    return (
        f"board {entry.board} quarantined since {entry.since} after {entry.failures} failed health "
        f"checks: {entry.reason} (rig farm health --recover)"
    )


@dataclass
class HealthKeeper:
    """One worker's view of its boards' health during a run."""

    farm: Farm
    base_app: bytes
    folder: Path
    run_id: str
    store: ResultsStore | None
    _checked: set[str] = field(default_factory=set)
    _failed: dict[str, str] = field(default_factory=dict)

    def admit(self, spec: BoardSpec) -> None:
        """Skip the scenario if the board is out; check it first if nobody has this run."""
        if spec.name not in self._checked and self.farm.health.before_run:
            self.check(spec, Trigger.BEFORE_RUN)
        self._checked.add(spec.name)
        if spec.name in self._failed:
            pytest.skip(self._failed[spec.name])

    def check(self, spec: BoardSpec, trigger: Trigger) -> None:
        """Run a check now; a failure takes the board out for the rest of this run."""
        if self.store is None:
            return
        result = check_board(
            self.farm, spec, self.base_app, self.folder / f"{spec.name}-{trigger.value}", trigger,
            run_id=self.run_id,
        )  # fmt: skip
        self._checked.add(spec.name)
        quarantine = apply_check(self.store, result, self.farm.health.quarantine_after, may_return=False)
        if quarantine is not None:
            self._failed[spec.name] = quarantine_reason(quarantine)
        elif not result.passed:
            self._failed[spec.name] = (
                f"board {spec.name} failed its health check ({trigger.value}): {result.reason}"
            )
        else:
            self._failed.pop(spec.name, None)
