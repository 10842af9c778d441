"""When a board leaves service and when it comes back.

A board is quarantined after `quarantine_after` failed health checks in a row (the
farm file's `health.quarantine_after`, default 3) and stays out, skipped by every run
with its reason, until a check by `rig farm health` passes again (a re-check, or a full
reflash with `--recover`). One failed check is not enough: a board whose USB hub
browned out once deserves another try, a dead one does not deserve a night of INFRA.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rig.health.records import HealthCheck, Quarantine

if TYPE_CHECKING:
    from rig.results.store import ResultsStore

DEFAULT_QUARANTINE_AFTER = 3


def failures_in_a_row(checks: Sequence[HealthCheck]) -> int:
    count = 0
    for check in reversed(checks):
        if check.passed:
            break
        count += 1
    return count


def apply_check(
    store: ResultsStore, check: HealthCheck, quarantine_after: int, *, may_return: bool
) -> Quarantine | None:
    """Record `check` and update the board's quarantine; returns it if the board is (still)
    out of service. Only `may_return` checks (rig farm health) bring a board back."""
    store.record_health(check)
    current = store.quarantined().get(check.board)
    if check.passed:
        if current is not None and may_return:
            store.set_quarantine(None, check.board)
            return None
        return current
    failures = failures_in_a_row(store.health_checks(check.board))
    if current is None and failures >= quarantine_after:
        current = Quarantine(check.board, check.at, check.reason, failures)
        store.set_quarantine(current, check.board)
    return current
