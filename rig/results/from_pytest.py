"""How a pytest report becomes stored outcomes: the classing rules in one place.

The plugin attaches the facts it knows about a test item (`TEST_KEY`) and the `ota` fixture
one `OtaRecord` per judged OTA (`ROW_KEY`); this module turns a finished report into
`Outcome` records without touching pytest's collection or fixtures, so the rules are
testable on their own.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from rig.outcome import OtaRecord
from rig.results.model import Outcome, OutcomeClass
from rig.results.store import ResultsStore

ROW_KEY = "ota_result"  # one judged OTA's record (rig.outcome.OtaRecord.to_wire)
TEST_KEY = "ota_rig_test"  # what the controller needs to know about the test item
INFRA_TAG = ("outcome_class", "infrastructure")
INFRA_PREFIX = "INFRASTRUCTURE: "
INCONCLUSIVE_PREFIX = "INCONCLUSIVE: "  # a skip with this reason: the fault missed its window
GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TestEnding:
    """How a test ended, as the results store classes it, and the one line saying why."""

    outcome: OutcomeClass
    message: str


def ending_of(report: pytest.TestReport) -> TestEnding:
    """Skip → SKIP (INCONCLUSIVE when its reason says so), InfraError or a failed set-up →
    INFRA, failed test → FAIL, else PASS.

    A set-up that failed never reached the firmware, so it cannot be a firmware failure.
    """
    if report.skipped:
        longrepr = report.longrepr
        reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
        if reason.startswith(INCONCLUSIVE_PREFIX):
            return TestEnding(OutcomeClass.INCONCLUSIVE, reason.removeprefix(INCONCLUSIVE_PREFIX))
        return TestEnding(OutcomeClass.SKIP, reason)
    if not report.failed:
        return TestEnding(OutcomeClass.PASS, "")
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr)
    line = next((part for part in text.splitlines() if part.strip()), "failed")
    if INFRA_TAG in report.user_properties:
        return TestEnding(OutcomeClass.INFRA, line.removeprefix(INFRA_PREFIX))
    if report.when == "setup":
        return TestEnding(OutcomeClass.INFRA, f"set-up failed: {line}")
    return TestEnding(OutcomeClass.FAIL, line)


def outcomes_of(report: pytest.TestReport, run_id: str) -> list[Outcome]:
    """The outcomes one test report records: one per attached row, or one for the test.

    The rows' own classes stand, except: an infrastructure error turns rows that are not
    firmware failures into INFRA (the scenario never completed), and a failed test whose
    rows all passed fails its last row with the test's message (a later check failed).
    """
    facts = next(cast("dict[str, str]", value) for key, value in report.user_properties if key == TEST_KEY)
    rows = [OtaRecord.from_wire(cast("dict[str, Any]", value)) for key, value in report.user_properties
            if key == ROW_KEY]  # fmt: skip
    verdict = ending_of(report)
    times = (stamp(report.start), stamp(report.stop))
    if not rows:
        return [_bare_outcome(run_id, facts, verdict, report.duration, times)]
    outcomes = [record_outcome(run_id, facts, row, times) for row in rows]
    if verdict.outcome is OutcomeClass.INFRA:
        message = f"infrastructure: {verdict.message}"
        return [
            o if o.outcome.is_firmware_failure else _replace(o, OutcomeClass.INFRA, message) for o in outcomes
        ]
    if verdict.outcome is OutcomeClass.FAIL and not any(o.outcome.is_firmware_failure for o in outcomes):
        outcomes[-1] = _replace(outcomes[-1], OutcomeClass.FAIL, verdict.message)
    return outcomes


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def _replace(outcome: Outcome, cls: OutcomeClass, message: str) -> Outcome:
    joined = "; ".join(part for part in (message, outcome.message) if part)
    return Outcome(**{**outcome.__dict__, "outcome": cls, "message": joined})


def _bare_outcome(
    run_id: str, facts: Mapping[str, str], verdict: TestEnding, duration: float, times: tuple[str, str]
) -> Outcome:
    return Outcome(
        run_id=run_id, scenario=facts["scenario"], scenario_group=facts["group"], board=facts["board"],
        firmware_old="", firmware_new="", image="", fault="none", cut_point=None, phase="",
        outcome=verdict.outcome, expected="", observed="", message=verdict.message,
        duration_s=round(duration, 3), time_to_recover_s=None, bytes_served=0, boots=(), faults=(),
        artifacts=facts["artifacts"], started_at=times[0], finished_at=times[1],
    )  # fmt: skip


def record_outcome(run_id: str, facts: Mapping[str, str], row: OtaRecord, times: tuple[str, str]) -> Outcome:
    """One judged OTA as a stored outcome."""
    acceptable = [f.value for f in row.acceptable]
    return Outcome(
        run_id=run_id,
        scenario=facts["scenario"],
        scenario_group=facts["group"],
        board=facts["board"],
        firmware_old=row.firmware_old,
        firmware_new=row.firmware_new,
        image=row.image,
        fault=row.fault,
        cut_point=row.cut_point,
        phase=row.phase.name,
        outcome=row.outcome,
        expected=f"ends on {' or '.join(acceptable)} firmware" if acceptable else "",
        observed=f"ends on {row.final.value} firmware" if row.final else "no app running",
        message=row.message,
        duration_s=row.duration_s,
        time_to_recover_s=row.time_to_recover_s,
        bytes_served=row.bytes_served,
        boots=row.boots,
        faults=row.faults,
        artifacts=facts["artifacts"],
        started_at=times[0],
        finished_at=times[1],
    )


class OutcomeRecorder:
    """Hands every judged OTA of a command (`rig rollout`, `rig sweep`) to the store the moment
    it is judged; board threads share one lock and open their own short connection (sqlite
    connections stay in their thread)."""

    def __init__(self, db: Path, run_id: str, scenario: str, group: str, out: Path) -> None:
        self.db, self.run_id, self.scenario, self.group, self.out = db, run_id, scenario, group, out
        self._lock = threading.Lock()

    def __call__(self, board: str, record: OtaRecord) -> None:
        artifacts = str(self.out / board)
        facts = {"scenario": self.scenario, "group": self.group, "board": board, "artifacts": artifacts}
        now = time.time()
        outcome = record_outcome(self.run_id, facts, record, (stamp(now - record.duration_s), stamp(now)))
        with self._lock, ResultsStore(self.db) as store:
            store.record(outcome)


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
