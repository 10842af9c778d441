"""Pure pandas views of outcome rows: the matrix, cut points, recovery times, flakes and trends.

Definitions the reports and the release gate share:

* decisive outcome: PASS, FAIL or BRICK. INFRA (the rig failed), INCONCLUSIVE (the fault
  missed its window) and SKIP (not applicable)
  say nothing about the firmware and never count for or against it.
* matrix cell: the worst outcome of (scenario, board) within one run, worst first
  BRICK > FAIL > INFRA > INCONCLUSIVE > PASS > SKIP, so one bad repeat cannot hide behind good ones.
* pass rate of a run: PASS / decisive outcomes.
* flake: a combination (scenario, firmware_new, board) is *eligible* when it has at least
  two decisive outcomes within the window of runs (repeats within one run count), and
  *flaky* when those include at least one PASS and at least one FAIL/BRICK: the same
  firmware on the same board did both. Flake rate = flaky / eligible combinations, per
  scenario, per board and overall. Fixed firmware across versions is not a flake, because
  firmware_new is part of the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from rig.results.model import Outcome, OutcomeClass, RunInfo

DECISIVE = (OutcomeClass.PASS.value, OutcomeClass.FAIL.value, OutcomeClass.BRICK.value)
FAILED = (OutcomeClass.FAIL.value, OutcomeClass.BRICK.value)
CLASS_ORDER = tuple(cls.value for cls in sorted(OutcomeClass, key=lambda c: -c.severity))
FRAME_COLUMNS = (
    "run_id", "scenario", "scenario_group", "board", "firmware_new", "cut_point", "outcome",
    "severity", "time_to_recover_s", "duration_s", "artifacts", "started_at",
)  # fmt: skip


def outcome_frame(outcomes: Iterable[Outcome]) -> pd.DataFrame:
    """The flat columns analysis needs, one row per recorded outcome, in recording order."""
    rows = [
        (
            o.run_id, o.scenario, o.scenario_group, o.board, o.firmware_new, o.cut_point, o.outcome.value,
            o.outcome.severity, o.time_to_recover_s, o.duration_s, o.artifacts, o.started_at,
        )
        for o in outcomes
    ]
    frame = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMNS))
    return frame.astype({"cut_point": "float64", "time_to_recover_s": "float64", "severity": "int64"})


def headline(frame: pd.DataFrame) -> dict[str, int]:
    """Count of each outcome class, worst first, zeros included."""
    counts = frame["outcome"].value_counts()
    return {name: int(counts.get(name, 0)) for name in CLASS_ORDER}


def worst_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, board): the worst outcome within the run and its artifacts.

    Among equally bad repeats the last one recorded is kept (its artifacts are the freshest).
    """
    if frame.empty:
        return pd.DataFrame(columns=["scenario", "board", "outcome", "artifacts", "repeats"])
    ordered = frame.reset_index(drop=True).reset_index(names="order")
    ranked = ordered.sort_values(["severity", "order"], kind="stable")
    worst = ranked.groupby(["scenario", "board"], sort=False).tail(1)
    repeats = frame.groupby(["scenario", "board"]).size().rename("repeats")
    cells = worst.set_index(["scenario", "board"])[["outcome", "artifacts"]].join(repeats)
    return cells.reset_index().sort_values(["scenario", "board"]).reset_index(drop=True)


def matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Scenario × board table of worst outcomes; NaN where the pair did not run."""
    cells = worst_cells(frame)
    return cells.pivot(index="scenario", columns="board", values="outcome")


def cut_point_map(frame: pd.DataFrame) -> pd.DataFrame:
    """Outcomes whose fault landed at a known fraction of the image, per scenario."""
    cuts = frame.loc[frame["cut_point"].notna(), ["scenario", "board", "cut_point", "outcome"]]
    return cuts.sort_values(["scenario", "cut_point"]).reset_index(drop=True)


def recover_times(frame: pd.DataFrame) -> pd.Series:
    """Seconds from the fault to a working app again, for outcomes that measured it."""
    return frame["time_to_recover_s"].dropna().reset_index(drop=True)


@dataclass(frozen=True)
class FlakeRates:
    """Flake tables per scenario and per board, plus the overall rate the gate checks."""

    by_scenario: pd.DataFrame
    by_board: pd.DataFrame
    eligible: int
    flaky: int

    @property
    def overall(self) -> float:
        return self.flaky / self.eligible if self.eligible else 0.0


def flake_rates(frame: pd.DataFrame) -> FlakeRates:
    """Flakiness over every run in `frame` (pass the window's runs); see the module docstring."""
    decisive = frame[frame["outcome"].isin(DECISIVE)]
    per_key = decisive.groupby(["scenario", "firmware_new", "board"]).agg(
        observations=("outcome", "size"),
        passes=("outcome", lambda s: int((s == OutcomeClass.PASS.value).sum())),
        failures=("outcome", lambda s: int(s.isin(FAILED).sum())),
    )
    eligible = per_key[per_key["observations"] >= 2].copy()
    eligible["flaky"] = (eligible["passes"] > 0) & (eligible["failures"] > 0)
    return FlakeRates(
        by_scenario=_flake_table(eligible, "scenario"),
        by_board=_flake_table(eligible, "board"),
        eligible=len(eligible),
        flaky=int(eligible["flaky"].sum()),
    )


def _flake_table(eligible: pd.DataFrame, level: str) -> pd.DataFrame:
    grouped = eligible.groupby(level=level).agg(combinations=("flaky", "size"), flaky=("flaky", "sum"))
    grouped["flaky"] = grouped["flaky"].astype("int64")
    grouped["flake_rate"] = grouped["flaky"] / grouped["combinations"]
    ordered = grouped.sort_values(["flake_rate", "flaky"], ascending=False, kind="stable")
    return ordered.reset_index()


def trend(frame: pd.DataFrame, runs: Sequence[RunInfo]) -> pd.DataFrame:
    """Per run, oldest first: counts of each class and the pass rate over decisive outcomes."""
    counts = frame.groupby(["run_id", "outcome"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=[r.run_id for r in runs], columns=list(CLASS_ORDER), fill_value=0)
    counts.columns.name = None
    table = counts.rename(columns=str.lower).reset_index(names="run_id")
    table.insert(1, "started_at", [r.started_at for r in runs])
    decisive = table["pass"] + table["fail"] + table["brick"]
    table["pass_rate"] = (table["pass"] / decisive.where(decisive > 0)).astype("float64")
    return table
