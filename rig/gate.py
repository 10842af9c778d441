"""`rig gate`: block a release unless a run meets the policy (no bricks, rollback works, …).

Each rule yields PASS, FAIL, INFRA or INCONCLUSIVE. INFRA and INCONCLUSIVE still block the
release (an unproven rule is not a passed rule) but are labelled as what they are, so nobody
files a firmware bug for a dead USB hub or a fault that missed its window. A policy may name
only scenarios and groups the suite has (`rig.catalog`): a typo would otherwise block every
release as "missing". Exit 0 when every rule passes, 1 otherwise, 2 for a bad policy.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import click
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rig.catalog import Catalog, load_catalog
from rig.errors import RigError
from rig.report import analysis
from rig.report.data import window_before
from rig.results.model import RunInfo
from rig.results.store import DEFAULT_DB, ResultsStore
from rig.rollout.model import BoardState, RolloutResult
from rig.sweep.model import SweepResult
from rig.yamlfile import YamlDocument, load_yaml, validate

ALL_PASS = "all_pass"


class GateBlocked(RigError):
    """The run does not meet the policy: exit 1, like any verdict the device failed."""

    exit_code = 1


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INFRA = "INFRA"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class RolloutRule:
    """What every rollout of the run must show: the share of its group that took the update
    (INFRA boards left out), at most `bricks` bricked boards, and no abort unless allowed."""

    min_success_rate: float | None = None
    bricks: int | None = None
    allow_abort: bool = False


@dataclass(frozen=True)
class SweepRule:
    """What every power-cut sweep of the run must show: at most `max_unsafe` unsafe cut points
    (points the rig could not judge are INFRA, never a pass)."""

    max_unsafe: int = 0


@dataclass(frozen=True)
class Policy:
    """A release policy; every rule left out of the file is not checked."""

    bricks: int | None = None
    max_fails: int | None = None
    max_infra: int | None = None
    max_inconclusive: int | None = None
    min_boards: int | None = None
    groups: Mapping[str, str | float] = field(default_factory=dict)
    flake_rate_max: float | None = None
    flake_window: int = 14
    required_scenarios: tuple[str, ...] = ()
    require_finished: bool = True
    rollout: RolloutRule | None = None
    sweep: SweepRule | None = None


@dataclass(frozen=True)
class RuleResult:
    rule: str
    limit: str
    value: str
    verdict: Verdict


Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _a_group_rule(value: object) -> str | float:
    if value == ALL_PASS:
        return ALL_PASS
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise ValueError(f"must be '{ALL_PASS}' or a pass rate between 0 and 1, got {value!r}")


GroupRule = Annotated[str | float, PlainValidator(_a_group_rule)]


class _RolloutRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min_success_rate: Fraction | None = None
    bricks: Count | None = None
    allow_abort: bool = False


class _SweepRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_unsafe: Count = 0


class _PolicyFile(BaseModel):
    """The policy file as written; every key optional, none coerced, none unknown."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bricks: Count | None = None
    max_fails: Count | None = None
    max_infra: Count | None = None
    max_inconclusive: Count | None = None
    min_boards: Count | None = None
    groups: dict[str, GroupRule] = Field(default_factory=dict)
    flake_rate_max: Fraction | None = None
    flake_window: Annotated[int, Field(ge=1)] = 14
    required_scenarios: list[str] = Field(default_factory=list)
    require_finished: bool = True
    rollout: _RolloutRule | None = None
    sweep: _SweepRule | None = None


def load_policy(path: Path, catalog: Catalog | None = None) -> Policy:
    """Parse and validate a policy file; any problem is one InputError line naming line and key.

    Scenario and group names are checked against `catalog` (the suite's own by default).
    """
    document = load_yaml(path, "policy")
    if not isinstance(document.data, dict):
        raise document.error((), "a policy must be a mapping of rule: limit")
    parsed = validate(_PolicyFile, document)
    rollout = RolloutRule(**parsed.rollout.model_dump()) if parsed.rollout is not None else None
    sweep = SweepRule(**parsed.sweep.model_dump()) if parsed.sweep is not None else None
    required = tuple(parsed.required_scenarios)
    values = {**parsed.model_dump(), "required_scenarios": required, "rollout": rollout, "sweep": sweep}
    policy = Policy(**values)
    _known_names(policy, catalog or load_catalog(), document)
    return policy


def _known_names(policy: Policy, catalog: Catalog, document: YamlDocument) -> None:
    for index, name in enumerate(policy.required_scenarios):
        if name not in catalog.scenarios:
            closest = _closest(name, catalog.scenarios)
            raise document.error(
                ("required_scenarios", index), f"{name!r} is not a scenario of the suite{closest}"
            )
    for name in policy.groups:
        if name not in catalog.groups:
            raise document.error(
                ("groups", name), f"{name!r} is not a scenario group{_closest(name, catalog.groups)}"
            )


def _closest(name: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.4)
    return f" (closest: {', '.join(close)})" if close else f" (known: {', '.join(sorted(known))})"


def _at_most(rule: str, limit: int | None, count: int, verdict_if_over: Verdict) -> list[RuleResult]:
    if limit is None:
        return []
    verdict = Verdict.PASS if count <= limit else verdict_if_over
    return [RuleResult(rule, f"<= {limit}", str(count), verdict)]


def _group_rule(name: str, rule: str | float, frame: pd.DataFrame) -> RuleResult:
    rows = frame[frame["scenario_group"] == name]["outcome"]
    passes = int((rows == "PASS").sum())
    failures = int(rows.isin(analysis.FAILED).sum())
    infra = int((rows == "INFRA").sum())
    value = f"{passes} pass, {failures} fail, {infra} infra"
    limit = "all pass" if rule == ALL_PASS else f"pass rate >= {float(rule):.0%}"
    if passes + failures == 0:
        verdict = Verdict.INFRA if infra else Verdict.FAIL
        return RuleResult(f"group {name}", limit, value + " (nothing proven)", verdict)
    ok = failures == 0 if rule == ALL_PASS else passes / (passes + failures) >= float(rule)
    if not ok:
        return RuleResult(f"group {name}", limit, value, Verdict.FAIL)
    if rule == ALL_PASS and infra:
        return RuleResult(f"group {name}", limit, value, Verdict.INFRA)
    return RuleResult(f"group {name}", limit, value, Verdict.PASS)


def _matches(required: str, scenario: str) -> bool:
    """A required name matches itself and every parametrisation of it (`name[...]`)."""
    return scenario == required or scenario.startswith(f"{required}[")


def _required(required: tuple[str, ...], frame: pd.DataFrame) -> list[RuleResult]:
    results = []
    for name in required:
        rows = frame[[_matches(name, s) for s in frame["scenario"]]]["outcome"]
        failures = int(rows.isin(analysis.FAILED).sum())
        passes = int((rows == "PASS").sum())
        if failures:
            verdict, value = Verdict.FAIL, f"{failures} failed"
        elif passes:
            verdict, value = Verdict.PASS, f"{passes} passed"
        elif (rows == "INFRA").any():
            verdict, value = Verdict.INFRA, "only infra failures"
        elif (rows == "INCONCLUSIVE").any():
            verdict, value = Verdict.INCONCLUSIVE, "only inconclusive (the fault missed its window)"
        else:
            verdict, value = Verdict.FAIL, "missing"
        results.append(RuleResult(f"scenario {name}", "passes", value, verdict))
    return results


def evaluate(policy: Policy, store: ResultsStore, run: RunInfo) -> list[RuleResult]:
    """Every rule of `policy` judged against `run` (and its history window for flakes)."""
    frame = analysis.outcome_frame(store.outcomes(run.run_id))
    counts = analysis.headline(frame)
    results: list[RuleResult] = []
    if policy.require_finished:
        verdict = Verdict.PASS if run.status == "finished" else Verdict.FAIL
        results.append(RuleResult("run finished", "finished", run.status, verdict))
    results += _at_most("bricks", policy.bricks, counts["BRICK"], Verdict.FAIL)
    results += _at_most("fails", policy.max_fails, counts["FAIL"], Verdict.FAIL)
    results += _at_most("infra failures", policy.max_infra, counts["INFRA"], Verdict.INFRA)
    results += _at_most("inconclusive", policy.max_inconclusive, counts["INCONCLUSIVE"], Verdict.INCONCLUSIVE)
    if policy.min_boards is not None:
        decisive = frame[frame["outcome"].isin(analysis.DECISIVE)]
        boards = decisive["board"].nunique()
        verdict = Verdict.PASS if boards >= policy.min_boards else Verdict.FAIL
        results.append(RuleResult("boards with results", f">= {policy.min_boards}", str(boards), verdict))
    results += [_group_rule(name, rule, frame) for name, rule in policy.groups.items()]
    if policy.flake_rate_max is not None:
        runs = window_before(store, run, policy.flake_window)
        history = analysis.outcome_frame(o for r in runs for o in store.outcomes(r.run_id))
        flakes = analysis.flake_rates(history)
        verdict = Verdict.PASS if flakes.overall <= policy.flake_rate_max else Verdict.FAIL
        value = f"{flakes.overall:.2%} ({flakes.flaky}/{flakes.eligible} over {len(runs)} runs)"
        results.append(RuleResult("flake rate", f"<= {policy.flake_rate_max:.2%}", value, verdict))
    results += _required(policy.required_scenarios, frame)
    if policy.rollout is not None:
        results += _rollout_rules(policy.rollout, store.rollouts(run.run_id))
    if policy.sweep is not None:
        results += _sweep_rules(policy.sweep, store.sweeps(run.run_id))
    return results


def _sweep_rules(rule: SweepRule, sweeps: list[SweepResult]) -> list[RuleResult]:
    """Every sweep of the run against the rule; a run without one proves nothing."""
    if not sweeps:
        return [RuleResult("sweep", "recorded", "no sweep in this run", Verdict.FAIL)]
    results = []
    for sweep in sweeps:
        name = f"sweep {sweep.name}"
        unsafe = sweep.unsafe
        first = f", first {unsafe[0].judged.label}" if unsafe else ""
        value = f"{len(unsafe)} of {len(sweep.points)}{first}"
        verdict = Verdict.PASS if len(unsafe) <= rule.max_unsafe else Verdict.FAIL
        results.append(RuleResult(f"{name} unsafe cut points", f"<= {rule.max_unsafe}", value, verdict))
        if sweep.infra:
            lost = f"{len(sweep.infra)} INFRA"
            results.append(RuleResult(f"{name} not judged", "none", lost, Verdict.INFRA))
    return results


def _rollout_rules(rule: RolloutRule, rollouts: list[RolloutResult]) -> list[RuleResult]:
    """Every rollout of the run against the rule; a run without one proves nothing."""
    if not rollouts:
        return [RuleResult("rollout", "recorded", "no rollout in this run", Verdict.FAIL)]
    results = []
    for rollout in rollouts:
        name = f"rollout {rollout.name}"
        infra = rollout.count(BoardState.INFRA)
        if rule.min_success_rate is not None:
            done = rollout.count(BoardState.SUCCEEDED)
            value = f"{rollout.success_rate:.0%} ({done} of {len(rollout.boards) - infra})"
            verdict = Verdict.PASS if rollout.success_rate >= rule.min_success_rate else Verdict.FAIL
            limit = f">= {rule.min_success_rate:.0%}"
            results.append(RuleResult(f"{name} success rate", limit, value, verdict))
        results += _at_most(f"{name} bricks", rule.bricks, rollout.count(BoardState.BRICKED), Verdict.FAIL)
        if not rule.allow_abort:
            value = f"aborted ({rollout.abort.criterion})" if rollout.abort else "ran to its end"
            verdict = Verdict.FAIL if rollout.abort else Verdict.PASS
            results.append(RuleResult(f"{name} abort", "none", value, verdict))
        if infra:  # boards the rig lost prove nothing either way
            results.append(RuleResult(f"{name} boards lost", "none", f"{infra} INFRA", Verdict.INFRA))
        timing = rollout.abort_timing()
        if timing is not None:  # the rig's own bookkeeping, not the firmware
            results.append(RuleResult(f"{name} abort timing", "as the policy says", timing, Verdict.INFRA))
    return results


_STYLE = {
    Verdict.PASS: "green",
    Verdict.FAIL: "bold red",
    Verdict.INFRA: "bold yellow",
    Verdict.INCONCLUSIVE: "bold blue",
}


@click.command()
@click.option("--policy", "policy_path", required=True, help="Gate policy (YAML), e.g. fixtures/gate.yaml.")
@click.argument("run_id", required=False)
@click.option("--db", "db", default=str(DEFAULT_DB), show_default=True, help="Results database.")
def gate(policy_path: str, run_id: str | None, db: str) -> None:
    """Judge RUN_ID (default: the latest run) against a release policy; exit 1 if blocked."""
    policy = load_policy(Path(policy_path))
    store = ResultsStore(db)
    run = store.run(run_id) if run_id is not None else store.latest_run()
    results = evaluate(policy, store, run)
    table = Table(title=f"release gate: run {run.run_id}")
    for column in ("rule", "limit", "value", "verdict"):
        table.add_column(column)
    for result in results:
        # Names come from policy files and scenario ids: text, never rich markup.
        verdict = Text(result.verdict.value, style=_STYLE[result.verdict])
        table.add_row(Text(result.rule), Text(result.limit), Text(result.value), verdict)
    console = Console(width=max(120, Console().width), markup=False)
    console.print(table)
    blocked = [r for r in results if r.verdict is not Verdict.PASS]
    if not blocked:
        console.print("gate: PASS")
        return
    kinds = {Verdict.INFRA: "infrastructure", Verdict.INCONCLUSIVE: "inconclusive"}
    note = "".join(
        f", {n} of them {label}"
        for verdict, label in kinds.items()
        if (n := sum(1 for r in blocked if r.verdict is verdict))
    )
    raise GateBlocked(f"release blocked by run {run.run_id}: {len(blocked)} rule(s) failed{note}")
