"""Board health inside a run: each worker checks a board before its first scenario there
and again after any INFRA outcome on it; a board that fails is skipped for the rest of the
run with the check's reason, and the results store decides on quarantine (rig/health).
Boards already quarantined never reach a worker: their items are skipped at collection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.farm import BoardSpec, Farm
from rig.health.check import check_board
from rig.health.policy import apply_check
from rig.health.records import HealthCheck, Trigger
from rig.results.store import ResultsStore

# Set on an item whose call ended in InfraError (rig/plugin/hooks.py).
INFRA_SEEN = pytest.StashKey[bool]()


@dataclass
class HealthKeeper:
    """A worker's door to its boards' health during a run. The results store is the
    memory: xdist may hand one board's scenarios to several workers (the board lock keeps
    them apart), and every worker must see the same checks."""

    farm: Farm
    base_app: Callable[[BoardSpec], bytes]  # the known-good app of each board's firmware
    folder: Path
    run_id: str
    store: ResultsStore | None

    def admit(self, spec: BoardSpec) -> None:
        """Called with the board locked: skip the scenario if the board is out, and check
        it first if no check of this run has."""
        if self.store is None:
            return
        last = self._last_check(spec.name)
        if last is None and self.farm.health.before_run:
            last = self.check(spec, Trigger.BEFORE_RUN)
        quarantine = self.store.quarantined().get(spec.name)
        if quarantine is not None:
            pytest.skip(quarantine.skip_reason())
        if last is not None and not last.passed:
            pytest.skip(f"board {spec.name} failed its health check ({last.trigger.value}): {last.reason}")

    def check(self, spec: BoardSpec, trigger: Trigger) -> HealthCheck | None:
        """Run a check now and record it; a failure takes the board out for the rest of the
        run (and into quarantine after `health.quarantine_after` in a row)."""
        if self.store is None:
            return None
        result = check_board(
            self.farm, spec, self.base_app(spec), self.folder / f"{spec.name}-{trigger.value}", trigger,
            run_id=self.run_id,
        )  # fmt: skip
        apply_check(self.store, result, self.farm.health.quarantine_after, may_return=False)
        return result

    def _last_check(self, board: str) -> HealthCheck | None:
        assert self.store is not None
        checks = [c for c in self.store.health_checks(board) if c.run_id == self.run_id]
        return checks[-1] if checks else None
