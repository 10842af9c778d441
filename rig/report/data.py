"""Everything one report shows, gathered once from the store so each renderer stays pure."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rig.health.records import HealthCheck, Quarantine
from rig.report import analysis
from rig.results.model import Outcome, RunInfo
from rig.results.store import ResultsStore
from rig.rollout.model import RolloutResult
from rig.sweep.model import SweepResult

DEFAULT_WINDOW = 30


@dataclass(frozen=True)
class ReportData:
    """One run's outcomes plus the history window used for trends and flakes."""

    run: RunInfo
    outcomes: list[Outcome]
    frame: pd.DataFrame
    window_runs: list[RunInfo]
    trend: pd.DataFrame
    flakes: analysis.FlakeRates
    rollouts: list[RolloutResult]
    sweeps: list[SweepResult]
    health: BoardHealth


@dataclass(frozen=True)
class BoardHealth:
    """The farm's health as this run left it: its checks, the boards out of service, and
    INFRA outcomes per board across the history window."""

    checks: list[HealthCheck]
    quarantined: dict[str, Quarantine]
    infra: dict[str, list[tuple[str, int]]]


def window_before(store: ResultsStore, run: RunInfo, window: int) -> list[RunInfo]:
    """The last `window` runs up to and including `run`, oldest first (a later run never leaks in)."""
    runs = store.runs()
    position = next(i for i, candidate in enumerate(runs) if candidate.run_id == run.run_id)
    return runs[max(0, position + 1 - window) : position + 1]


def collect(store: ResultsStore, run_id: str, window: int = DEFAULT_WINDOW) -> ReportData:
    """Load a run and its history window and compute every table the report needs."""
    run = store.run(run_id)
    outcomes = store.outcomes(run_id)
    window_runs = window_before(store, run, window)
    history = [o for r in window_runs for o in (outcomes if r.run_id == run_id else store.outcomes(r.run_id))]
    history_frame = analysis.outcome_frame(history)
    return ReportData(
        run=run,
        outcomes=outcomes,
        frame=analysis.outcome_frame(outcomes),
        window_runs=window_runs,
        trend=analysis.trend(history_frame, window_runs),
        flakes=analysis.flake_rates(history_frame),
        rollouts=store.rollouts(run_id),
        sweeps=store.sweeps(run_id),
        health=BoardHealth(
            checks=[check for check in store.health_checks() if check.run_id == run_id],
            quarantined=store.quarantined(),
            infra=store.infra_by_board([r.run_id for r in window_runs]),
        ),
    )
