"""How a pytest report becomes stored outcomes: the classing rules in one place.

The plugin attaches the facts it knows about a test item (`TEST_KEY`) and scenarios attach
one row per OTA (`ROW_KEY`); this module turns a finished report into `Outcome` records
without touching pytest's collection or fixtures, so the rules are testable on their own.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from rig.results.model import BootRow, FaultRow, Outcome, OutcomeClass
from rig.results.store import ResultsStore

ROW_KEY = "ota_result"  # a scenario's outcome row (scenarios/_support.py)
TEST_KEY = "ota_rig_test"  # what the controller needs to know about the test item
INFRA_TAG = ("outcome_class", "infrastructure")
INFRA_PREFIX = "INFRASTRUCTURE: "
INCONCLUSIVE_PREFIX = "INCONCLUSIVE: "  # a skip with this reason: the fault missed its window
GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Verdict:
    """How a test ended, as the results store classes it, and the one line saying why."""

    outcome: OutcomeClass
    message: str


def verdict_of(report: pytest.TestReport) -> Verdict:
    """Skip → SKIP (INCONCLUSIVE when its reason says so), InfraError or a failed set-up →
    INFRA, failed test → FAIL, else PASS.

    A set-up that failed never reached the firmware, so it cannot be a firmware failure.
    """
    if report.skipped:
        longrepr = report.longrepr
        reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
        if reason.startswith(INCONCLUSIVE_PREFIX):
            return Verdict(OutcomeClass.INCONCLUSIVE, reason.removeprefix(INCONCLUSIVE_PREFIX))
        return Verdict(OutcomeClass.SKIP, reason)
    if not report.failed:
        return Verdict(OutcomeClass.PASS, "")
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr)
    line = next((part for part in text.splitlines() if part.strip()), "failed")
    if INFRA_TAG in report.user_properties:
        return Verdict(OutcomeClass.INFRA, line.removeprefix(INFRA_PREFIX))
    if report.when == "setup":
        return Verdict(OutcomeClass.INFRA, f"set-up failed: {line}")
    return Verdict(OutcomeClass.FAIL, line)


def outcomes_of(report: pytest.TestReport, run_id: str) -> list[Outcome]:
    """The outcomes one test report records: one per attached row, or one for the test.

    The rows' own classes stand, except: an infrastructure error turns rows that are not
    firmware failures into INFRA (the scenario never completed), and a failed test whose
    rows all passed fails its last row with the test's message (a later check failed).
    """
    facts = next(cast("dict[str, str]", value) for key, value in report.user_properties if key == TEST_KEY)
    rows = [cast("dict[str, Any]", value) for key, value in report.user_properties if key == ROW_KEY]
    verdict = verdict_of(report)
    times = (_stamp(report.start), _stamp(report.stop))
    if not rows:
        return [_bare_outcome(run_id, facts, verdict, report.duration, times)]
    outcomes = [_row_outcome(run_id, facts, row, times) for row in rows]
    if verdict.outcome is OutcomeClass.INFRA:
        message = f"infrastructure: {verdict.message}"
        return [
            o if o.outcome.is_firmware_failure else _replace(o, OutcomeClass.INFRA, message) for o in outcomes
        ]
    if verdict.outcome is OutcomeClass.FAIL and not any(o.outcome.is_firmware_failure for o in outcomes):
        outcomes[-1] = _replace(outcomes[-1], OutcomeClass.FAIL, verdict.message)
    return outcomes


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _replace(outcome: Outcome, cls: OutcomeClass, message: str) -> Outcome:
    joined = "; ".join(part for part in (message, outcome.message) if part)
    return Outcome(**{**outcome.__dict__, "outcome": cls, "message": joined})


def _bare_outcome(
    run_id: str, facts: Mapping[str, str], verdict: Verdict, duration: float, times: tuple[str, str]
) -> Outcome:
    return Outcome(
        run_id=run_id, scenario=facts["scenario"], scenario_group=facts["group"], board=facts["board"],
        firmware_old="", firmware_new="", image="", fault="none", cut_point=None, phase="",
        outcome=verdict.outcome, expected="", observed="", message=verdict.message,
        duration_s=round(duration, 3), time_to_recover_s=None, bytes_sent=0, boots=(), faults=(),
        artifacts=facts["artifacts"], started_at=times[0], finished_at=times[1],
    )  # fmt: skip


def _row_outcome(
    run_id: str, facts: Mapping[str, str], row: Mapping[str, Any], times: tuple[str, str]
) -> Outcome:
    """One OTA's row (scenarios/_support.py `outcome_row`) as a stored outcome."""
    acceptable: Sequence[str] = row.get("acceptable", ())
    final = row.get("final")
    cut_point = row.get("cut_point")
    recover = row.get("time_to_recover_s")
    return Outcome(
        run_id=run_id,
        scenario=facts["scenario"],
        scenario_group=facts["group"],
        board=facts["board"],
        firmware_old=str(row.get("firmware_old", "")),
        firmware_new=str(row.get("firmware_new", "")),
        image=str(row.get("image", "")),
        fault=str(row.get("fault", "none")),
        cut_point=None if cut_point is None else float(cut_point),
        phase=str(row.get("phase", "")),
        outcome=OutcomeClass(str(row["outcome"])),
        expected=f"ends on {' or '.join(acceptable)} firmware" if acceptable else "",
        observed=f"ends on {final} firmware" if final else "no app running",
        message="; ".join(str(p) for p in row.get("problems", ())),
        duration_s=float(row.get("duration_s", 0.0)),
        time_to_recover_s=None if recover is None else float(recover),
        bytes_sent=int(row.get("bytes_sent", 0)),
        boots=tuple(
            BootRow(int(b["index"]), str(b["reset_reason"]), str(b["slot"]), str(b["version"]), b["outcome"])
            for b in row.get("boots", ())
        ),
        faults=tuple(
            FaultRow(
                str(f["name"]),
                str(f["condition"]),
                str(f["observed"]),
                f.get("latency_ms"),
                float(f.get("t_offset_s", 0.0)),
            )
            for f in row.get("faults", ())
        ),
        artifacts=facts["artifacts"],
        started_at=times[0],
        finished_at=times[1],
    )


def summary_line(store: ResultsStore, run_id: str, index_html: Path) -> str:
    """`<index.html> — run <id> <status>: N PASS, N FAIL, …`, worst classes first."""
    counts = Counter(o.outcome for o in store.outcomes(run_id))
    classes = sorted(OutcomeClass, key=lambda c: -c.severity)
    listed = ", ".join(f"{counts[c]} {c.value}" for c in classes)
    return f"ota-rig report: {index_html} — run {run_id} {store.run(run_id).status}: {listed}"


def git_revision(where: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=GIT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
