"""SQLite results store: every outcome is committed the moment it is recorded.

A run that is killed half-way keeps every outcome recorded before the kill, so
`rig run --resume` and `rig report` work on what really happened. Several pytest-xdist
workers write at once: WAL mode, one short IMMEDIATE transaction per outcome, a busy
timeout plus a retry loop. Readers open the file read-only (`mode=ro`) so a corrupt or
foreign file is reported, never "repaired".
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

from rig.errors import InfraError, InputError
from rig.health.records import HealthCheck, Quarantine, Step, StepResult, Trigger
from rig.results.model import (
    RUN_STATUSES,
    BootRow,
    FaultRow,
    Outcome,
    OutcomeClass,
    RunInfo,
    RunStatus,
    check_run_id,
)
from rig.rollout.model import AbortEvent, Attempt, BoardRun, BoardState, RolloutResult
from rig.rollout.policy import AbortCriterion, FailureType
from rig.sweep.judge import Band, Judged, Problem
from rig.sweep.model import PointVerdict, SweepMode, SweepResult, SweptPoint
from rig.sweep.records import Image

DEFAULT_DB = Path("reports") / "results.db"
SCHEMA_VERSION = 5
_ROLLOUT_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rollouts (
    run_id TEXT NOT NULL REFERENCES runs (run_id), name TEXT NOT NULL, transport TEXT NOT NULL,
    release TEXT NOT NULL, seed INTEGER NOT NULL, wall_s REAL NOT NULL, criteria TEXT NOT NULL,
    abort_t_s REAL, abort_criterion TEXT, abort_executed INTEGER, abort_failures INTEGER,
    PRIMARY KEY (run_id, name)
)""",
    """CREATE TABLE IF NOT EXISTS rollout_boards (
    run_id TEXT NOT NULL, rollout TEXT NOT NULL, seq INTEGER NOT NULL, board TEXT NOT NULL,
    fault TEXT NOT NULL, late INTEGER NOT NULL, state TEXT NOT NULL, joined_s REAL, dispatched_s REAL,
    finished_s REAL, version TEXT NOT NULL, attempts TEXT NOT NULL, detail TEXT NOT NULL,
    FOREIGN KEY (run_id, rollout) REFERENCES rollouts (run_id, name)
)""",
)
_SWEEP_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sweeps (
    run_id TEXT NOT NULL REFERENCES runs (run_id), name TEXT NOT NULL, mode TEXT NOT NULL,
    board TEXT NOT NULL, firmware TEXT NOT NULL, image TEXT NOT NULL, accepted INTEGER NOT NULL,
    seconds REAL NOT NULL, runs INTEGER NOT NULL, folder TEXT NOT NULL, first_unsafe_log TEXT NOT NULL,
    calibration TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
)""",
    """CREATE TABLE IF NOT EXISTS sweep_points (
    run_id TEXT NOT NULL, sweep TEXT NOT NULL, seq INTEGER NOT NULL, op INTEGER NOT NULL, torn REAL,
    run INTEGER NOT NULL, band TEXT NOT NULL, verdict TEXT NOT NULL, expected TEXT NOT NULL, settled TEXT,
    final TEXT, problems TEXT NOT NULL, infra TEXT NOT NULL, twin_repro TEXT NOT NULL,
    board_repro TEXT NOT NULL,
    FOREIGN KEY (run_id, sweep) REFERENCES sweeps (run_id, name)
)""",
)
_HEALTH_SCHEMA = (
    # run_id is the run that triggered a check, or NULL for `rig farm health`.
    """CREATE TABLE IF NOT EXISTS health_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, board TEXT NOT NULL, run_id TEXT, at TEXT NOT NULL,
    trigger TEXT NOT NULL, passed INTEGER NOT NULL, reason TEXT NOT NULL, steps TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS health_board ON health_checks (board, id)",
    """CREATE TABLE IF NOT EXISTS quarantine (
    board TEXT PRIMARY KEY, since TEXT NOT NULL, reason TEXT NOT NULL, failures INTEGER NOT NULL
)""",
)
# How a database of an older schema becomes the current one, step by step.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # v2: the body bytes the server served are `bytes_served` (not the device's, not the wire's).
    1: ("ALTER TABLE outcomes RENAME COLUMN bytes_sent TO bytes_served",),
    # v3: fleet rollouts (`rig rollout`).
    2: _ROLLOUT_SCHEMA,
    # v4: power-cut sweeps (`rig sweep`).
    3: _SWEEP_SCHEMA,
    # v5: board health checks and quarantine (rig/health).
    4: _HEALTH_SCHEMA,
}
LOCK_TIMEOUT_S = 60.0
_T = TypeVar("_T")

_OUTCOME_COLUMNS = (
    "run_id", "scenario", "scenario_group", "board", "firmware_old", "firmware_new", "image", "fault",
    "cut_point", "phase", "outcome", "expected", "observed", "message", "duration_s",
    "time_to_recover_s", "bytes_served", "artifacts", "started_at", "finished_at",
)  # fmt: skip

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, farm TEXT NOT NULL, boards TEXT NOT NULL,
    seed INTEGER NOT NULL, rig_version TEXT NOT NULL, git_revision TEXT, command TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(_OUTCOME_COLUMNS)},
    FOREIGN KEY (run_id) REFERENCES runs (run_id)
);
CREATE TABLE IF NOT EXISTS boots (
    outcome_id INTEGER NOT NULL REFERENCES outcomes (id), idx INTEGER NOT NULL,
    reset_reason TEXT, slot TEXT, version TEXT, outcome TEXT
);
CREATE TABLE IF NOT EXISTS faults (
    outcome_id INTEGER NOT NULL REFERENCES outcomes (id), seq INTEGER NOT NULL,
    name TEXT, condition TEXT, observed TEXT, latency_ms REAL, t_offset_s REAL
);
CREATE INDEX IF NOT EXISTS outcomes_run ON outcomes (run_id);
CREATE INDEX IF NOT EXISTS outcomes_key ON outcomes (scenario, board);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE INDEX IF NOT EXISTS boots_outcome ON boots (outcome_id);
CREATE INDEX IF NOT EXISTS faults_outcome ON faults (outcome_id);
"""


def utc_now() -> str:
    """ISO-8601 UTC timestamp, the format every time column uses."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class ResultsStore:
    """The results database of a report folder (default `reports/results.db`).

    Writers connect lazily and keep one connection; readers open a short read-only
    connection per call. Safe to share between processes, not between threads.
    """

    def __init__(self, path: str | Path = DEFAULT_DB, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._writer: sqlite3.Connection | None = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- writing ---------------------------------------------------------------------------

    def start_run(self, info: RunInfo) -> None:
        """Register a run; starting an existing run id again (a resume) marks it running."""
        _check_status(info.status)
        row = (
            info.run_id, info.started_at, info.farm, json.dumps(list(info.boards)), info.seed,
            info.rig_version, info.git_revision, info.command, info.finished_at, info.status,
        )  # fmt: skip

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO UPDATE SET"
                " status = excluded.status, finished_at = excluded.finished_at, command = excluded.command",
                row,
            )

        self._transaction(insert)

    def record(self, outcome: Outcome) -> None:
        """Commit one outcome with its boots and faults in a single transaction."""
        values = tuple(
            outcome.outcome.value if name == "outcome" else getattr(outcome, name)
            for name in _OUTCOME_COLUMNS
        )

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (outcome.run_id,)).fetchone() is None:
                raise InputError(f"cannot record an outcome of run '{outcome.run_id}': run not started")
            placeholders = ",".join("?" * len(_OUTCOME_COLUMNS))
            cursor = db.execute(
                f"INSERT INTO outcomes ({', '.join(_OUTCOME_COLUMNS)}) VALUES ({placeholders})", values
            )
            outcome_id = cursor.lastrowid
            db.executemany(
                "INSERT INTO boots VALUES (?,?,?,?,?,?)",
                [(outcome_id, b.index, b.reset_reason, b.slot, b.version, b.outcome) for b in outcome.boots],
            )
            db.executemany(
                "INSERT INTO faults VALUES (?,?,?,?,?,?,?)",
                [
                    (outcome_id, seq, f.name, f.condition, f.observed, f.latency_ms, f.t_offset_s)
                    for seq, f in enumerate(outcome.faults)
                ],
            )

        self._transaction(insert)

    def record_rollout(self, run_id: str, rollout: RolloutResult) -> None:
        """Commit one rollout: its course and every board's execution, in one transaction."""
        abort = rollout.abort
        criteria = [
            {"failure_type": c.failure_type.value, "min_executed": c.min_executed,
             "threshold_percent": c.threshold_percent}
            for c in rollout.criteria
        ]  # fmt: skip

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise InputError(f"cannot record a rollout of run '{run_id}': run not started")
            db.execute(
                "INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, rollout.name, rollout.transport, rollout.release, rollout.seed, rollout.wall_s,
                 json.dumps(criteria), abort.t_s if abort else None, abort.criterion if abort else None,
                 abort.executed if abort else None, abort.failures if abort else None),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO rollout_boards VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (run_id, rollout.name, seq, b.board, b.fault, int(b.late), b.state.value, b.joined_s,
                     b.dispatched_s, b.finished_s, b.version,
                     json.dumps([_attempt_json(a) for a in b.attempts]), b.detail)
                    for seq, b in enumerate(rollout.boards)
                ],
            )  # fmt: skip

        self._transaction(insert)

    def record_sweep(self, run_id: str, sweep: SweepResult) -> None:
        """Commit one sweep and every judged cut point of it, in one transaction."""

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise InputError(f"cannot record a sweep of run '{run_id}': run not started")
            db.execute(
                "INSERT INTO sweeps VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, sweep.name, sweep.mode.value, sweep.board, sweep.firmware, sweep.update,
                 int(sweep.accepted), sweep.seconds, sweep.runs, sweep.folder, sweep.first_unsafe_log,
                 sweep.calibration),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO sweep_points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_sweep_point_row(run_id, sweep.name, seq, p) for seq, p in enumerate(sweep.points)],
            )

        self._transaction(insert)

    def sweeps(self, run_id: str) -> list[SweepResult]:
        """A run's sweeps in the order they were recorded."""
        self.run(run_id)
        with self._reader() as db:
            heads = db.execute("SELECT * FROM sweeps WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            rows = db.execute(
                "SELECT * FROM sweep_points WHERE run_id = ? ORDER BY sweep, seq", (run_id,)
            ).fetchall()
        return [
            self._decoded(functools.partial(_sweep, head, rows), f"sweep {head['name']}") for head in heads
        ]

    def record_health(self, check: HealthCheck) -> None:
        """Commit one board health check."""
        steps = [
            {"step": s.step.value, "seconds": round(s.seconds, 3), "ok": s.ok, "detail": s.detail}
            for s in check.steps
        ]
        row = (check.board, check.run_id, check.at, check.trigger.value, int(check.passed), check.reason,
               json.dumps(steps))  # fmt: skip

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO health_checks (board, run_id, at, trigger, passed, reason, steps)"
                " VALUES (?,?,?,?,?,?,?)",
                row,
            )

        self._transaction(insert)

    def set_quarantine(self, entry: Quarantine | None, board: str) -> None:
        """Quarantine `board` (entry given) or return it to service (None)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM quarantine WHERE board = ?", (board,))
            if entry is not None:
                db.execute(
                    "INSERT INTO quarantine VALUES (?,?,?,?)",
                    (entry.board, entry.since, entry.reason, entry.failures),
                )

        self._transaction(write)

    def health_checks(self, board: str | None = None) -> list[HealthCheck]:
        """Health checks oldest first, of one board or all; none before any was recorded."""
        if not self.path.is_file():
            return []
        with self._reader() as db:
            where, args = ("WHERE board = ?", (board,)) if board is not None else ("", ())
            rows = db.execute(f"SELECT * FROM health_checks {where} ORDER BY id", args).fetchall()
        return [
            self._decoded(functools.partial(_health_check, row), f"health check {row['id']}") for row in rows
        ]

    def quarantined(self) -> dict[str, Quarantine]:
        """Boards out of service, by name."""
        if not self.path.is_file():
            return {}
        with self._reader() as db:
            rows = db.execute("SELECT * FROM quarantine ORDER BY board").fetchall()
        return {
            row["board"]: Quarantine(row["board"], row["since"], row["reason"], int(row["failures"]))
            for row in rows
        }

    def infra_by_board(self, runs: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """INFRA outcomes per board in each of `runs`: {board: [(run_id, count)]} in the order
        given (a run where a board had none counts 0)."""
        if not runs:
            return {}
        with self._reader() as db:
            marks = ",".join("?" * len(runs))
            rows = db.execute(
                f"SELECT board, run_id, SUM(outcome = ?) AS infra FROM outcomes WHERE run_id IN ({marks})"
                " GROUP BY board, run_id",
                (OutcomeClass.INFRA.value, *runs),
            ).fetchall()
        counts = {(row["board"], row["run_id"]): int(row["infra"]) for row in rows}
        boards = sorted({board for board, _ in counts})
        return {board: [(run, counts.get((board, run), 0)) for run in runs] for board in boards}

    def finish_run(self, run_id: str, status: RunStatus = "finished") -> None:
        """Close a run as finished or interrupted (stamps finished_at)."""
        _check_status(status)

        def update(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                (status, None if status == "running" else utc_now(), run_id),
            )
            if cursor.rowcount == 0:
                raise self._unknown_run(db, run_id)

        self._transaction(update)

    # -- reading ---------------------------------------------------------------------------

    def run(self, run_id: str) -> RunInfo:
        """One run's info; an unknown id is an InputError listing the latest runs."""
        check_run_id(run_id)
        with self._reader() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown_run(db, run_id)
            return self._decoded(lambda: _run_info(row), f"run {run_id}")

    def runs(self, last: int | None = None) -> list[RunInfo]:
        """Runs oldest first; with `last`, only the most recent `last` of them."""
        with self._reader() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started_at, rowid").fetchall()
        infos = [self._decoded(functools.partial(_run_info, row), f"run {row['run_id']}") for row in rows]
        if last is None:
            return infos
        return infos[-last:] if last > 0 else []

    def latest_run(self) -> RunInfo:
        """The most recently started run (what `rig report` and `rig gate` default to)."""
        runs = self.runs(last=1)
        if not runs:
            raise InputError(f"no runs in {self.path} yet")
        return runs[0]

    def outcomes(self, run_id: str) -> list[Outcome]:
        """Every outcome of a run in the order it was recorded."""
        self.run(run_id)
        with self._reader() as db:
            rows = db.execute("SELECT * FROM outcomes WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
            boots = _by_outcome(db, "boots", "idx", run_id, _boot_row)
            faults = _by_outcome(db, "faults", "seq", run_id, _fault_row)
        return [
            self._decoded(functools.partial(_outcome, row, boots, faults), f"outcome {row['id']}")
            for row in rows
        ]

    def rollouts(self, run_id: str) -> list[RolloutResult]:
        """A run's rollouts in the order they were recorded."""
        self.run(run_id)
        with self._reader() as db:
            heads = db.execute("SELECT * FROM rollouts WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            rows = db.execute(
                "SELECT * FROM rollout_boards WHERE run_id = ? ORDER BY rollout, seq", (run_id,)
            ).fetchall()
        return [
            self._decoded(functools.partial(_rollout, head, rows), f"rollout {head['name']}")
            for head in heads
        ]

    def _decoded(self, decode: Callable[[], _T], what: str) -> _T:
        """A stored record as Python values; a record this rig cannot read is bad input, one line."""
        try:
            return decode()
        except (ValueError, TypeError, KeyError) as error:  # json.JSONDecodeError is a ValueError
            raise InputError(f"{self.path}: {what} cannot be read ({error})") from None

    def done_keys(self, run_id: str) -> set[tuple[str, str]]:
        """(scenario, board) pairs a resume must not run again: everything but INFRA and
        INCONCLUSIVE, which proved nothing about the firmware."""
        self.run(run_id)
        with self._reader() as db:
            rows = db.execute(
                "SELECT DISTINCT scenario, board FROM outcomes WHERE run_id = ? AND outcome NOT IN (?, ?)",
                (run_id, OutcomeClass.INFRA.value, OutcomeClass.INCONCLUSIVE.value),
            ).fetchall()
        return {(row["scenario"], row["board"]) for row in rows}

    # -- plumbing --------------------------------------------------------------------------

    def _unknown_run(self, db: sqlite3.Connection, run_id: str) -> InputError:
        query = "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 5"
        latest = [row[0] for row in db.execute(query)]
        listed = ", ".join(latest) if latest else "none"
        return InputError(f"no run '{run_id}' in {self.path} (last runs: {listed})")

    def _transaction(self, body: Callable[[sqlite3.Connection], None]) -> None:
        db = self._connect_writer()

        def attempt() -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                body(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        self._retry(attempt)

    def _connect_writer(self) -> sqlite3.Connection:
        if self._writer is not None:
            return self._writer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        timeout = self.lock_timeout_s
        db = self._guard(lambda: sqlite3.connect(self.path, timeout=timeout, isolation_level=None))
        db.row_factory = sqlite3.Row
        try:
            self._retry(lambda: self._prepare(db))
        except BaseException:
            db.close()
            raise
        self._writer = db
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Switch to WAL and create (or check) the schema, racing other workers safely."""
        db.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout_s * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        # FULL: a host power loss must not take the last committed outcomes with it (WAL + NORMAL may).
        db.execute("PRAGMA synchronous = FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version, db)
            if version == 0:
                for statement in (*_SCHEMA.split(";"), *_ROLLOUT_SCHEMA, *_SWEEP_SCHEMA, *_HEALTH_SCHEMA):
                    if statement.strip():
                        db.execute(statement)
            else:
                for step in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _check_version(self, version: int, db: sqlite3.Connection) -> None:
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.path} has results schema version {version}; this ota-rig reads up to"
                f" {SCHEMA_VERSION}: upgrade ota-rig"
            )
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise InputError(f"{self.path} is an SQLite database but not an ota-rig results database")

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            raise InputError(f"no results database at {self.path} (run the suite first, or pass --db)")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        db = self._guard(lambda: sqlite3.connect(uri, uri=True, timeout=self.lock_timeout_s))
        db.row_factory = sqlite3.Row
        try:
            version = self._guard(lambda: db.execute("PRAGMA user_version").fetchone()[0])
            self._check_version(version, db)
            if version == 0:
                raise InputError(f"{self.path} holds no ota-rig results")
            if version < SCHEMA_VERSION:
                self._connect_writer()  # upgrades the schema in place; this reader sees it next
            yield db
        except sqlite3.Error as error:
            raise self._translate(error) from error
        finally:
            db.close()

    def _retry(self, attempt: Callable[[], _T]) -> _T:
        """Run `attempt`, retrying while another process holds the write lock."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.01
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise self._translate(error) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error as error:
                raise self._translate(error) from error

    def _guard(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except sqlite3.Error as error:
            raise self._translate(error) from error

    def _translate(self, error: sqlite3.Error) -> InputError | InfraError:
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
            return InfraError(
                f"{self.path} is locked by another process ({text}) after {self.lock_timeout_s:g} s"
            )
        if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
            return InputError(f"{self.path} is not a readable results database ({text}); left untouched")
        return InfraError(f"{self.path}: {text}")


def _by_outcome(
    db: sqlite3.Connection, table: str, order: str, run_id: str, make: Callable[[sqlite3.Row], _T]
) -> dict[int, list[_T]]:
    """A run's rows of a per-outcome child table (boots, faults), grouped by outcome id, in `order`."""
    grouped: dict[int, list[_T]] = {}
    for row in db.execute(
        f"SELECT c.* FROM {table} c JOIN outcomes o ON o.id = c.outcome_id WHERE o.run_id = ?"
        f" ORDER BY c.outcome_id, c.{order}",
        (run_id,),
    ):
        grouped.setdefault(row["outcome_id"], []).append(make(row))
    return grouped


def _boot_row(row: sqlite3.Row) -> BootRow:
    return BootRow(row["idx"], row["reset_reason"], row["slot"], row["version"], row["outcome"])


def _fault_row(row: sqlite3.Row) -> FaultRow:
    return FaultRow(row["name"], row["condition"], row["observed"], row["latency_ms"], row["t_offset_s"])


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise InputError(f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")


def _outcome(
    row: sqlite3.Row, boots: Mapping[int, list[BootRow]], faults: Mapping[int, list[FaultRow]]
) -> Outcome:
    return Outcome(
        **{name: row[name] for name in _OUTCOME_COLUMNS if name != "outcome"},
        outcome=OutcomeClass(row["outcome"]),
        boots=tuple(boots.get(row["id"], ())),
        faults=tuple(faults.get(row["id"], ())),
    )


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {**attempt.__dict__, "verdict": attempt.verdict.value}


def _rollout(head: sqlite3.Row, rows: list[sqlite3.Row]) -> RolloutResult:
    abort = None
    if head["abort_t_s"] is not None:
        abort = AbortEvent(
            head["abort_t_s"], head["abort_criterion"], head["abort_executed"], head["abort_failures"]
        )
    boards = tuple(
        BoardRun(
            board=row["board"], fault=row["fault"], late=bool(row["late"]), state=BoardState(row["state"]),
            joined_s=row["joined_s"], dispatched_s=row["dispatched_s"], finished_s=row["finished_s"],
            version=row["version"], detail=row["detail"],
            attempts=tuple(
                Attempt(**{**a, "verdict": OutcomeClass(a["verdict"])}) for a in json.loads(row["attempts"])
            ),
        )
        for row in rows
        if row["rollout"] == head["name"]
    )  # fmt: skip
    criteria = tuple(
        AbortCriterion(FailureType(c["failure_type"]), int(c["min_executed"]), float(c["threshold_percent"]))
        for c in json.loads(head["criteria"])
    )
    return RolloutResult(
        name=head["name"], transport=head["transport"], release=head["release"], seed=head["seed"],
        wall_s=head["wall_s"], boards=boards, criteria=criteria, abort=abort,
    )  # fmt: skip


def _sweep_point_row(run_id: str, sweep: str, seq: int, point: SweptPoint) -> tuple[Any, ...]:
    judged = point.judged
    return (
        run_id, sweep, seq, judged.op, judged.torn, judged.run, judged.band.value, point.verdict.value,
        json.dumps(sorted(i.value for i in judged.expected)),
        judged.settled.value if judged.settled else None, judged.final.value if judged.final else None,
        json.dumps([[problem.value, detail] for problem, detail in judged.problems]), point.infra,
        point.twin_repro, point.board_repro,
    )  # fmt: skip


def _sweep(head: sqlite3.Row, rows: list[sqlite3.Row]) -> SweepResult:
    points = tuple(
        SweptPoint(
            judged=Judged(
                op=row["op"], torn=row["torn"], run=row["run"], band=Band(row["band"]),
                expected=frozenset(Image(i) for i in json.loads(row["expected"])),
                settled=Image(row["settled"]) if row["settled"] else None,
                final=Image(row["final"]) if row["final"] else None,
                problems=tuple((Problem(p), str(d)) for p, d in json.loads(row["problems"])),
            ),
            verdict=PointVerdict(row["verdict"]), infra=row["infra"], twin_repro=row["twin_repro"],
            board_repro=row["board_repro"],
        )
        for row in rows
        if row["sweep"] == head["name"]
    )  # fmt: skip
    return SweepResult(
        name=head["name"], mode=SweepMode(head["mode"]), board=head["board"], firmware=head["firmware"],
        update=head["image"], accepted=bool(head["accepted"]), seconds=head["seconds"], runs=head["runs"],
        folder=head["folder"], points=points, first_unsafe_log=head["first_unsafe_log"],
        calibration=head["calibration"],
    )  # fmt: skip


def _run_info(row: sqlite3.Row) -> RunInfo:
    boards = cast(list[Any], json.loads(row["boards"]))
    _check_status(row["status"])
    return RunInfo(
        run_id=row["run_id"],
        started_at=row["started_at"],
        farm=row["farm"],
        boards=tuple(str(b) for b in boards),
        seed=row["seed"],
        rig_version=row["rig_version"],
        git_revision=row["git_revision"],
        command=row["command"],
        finished_at=row["finished_at"],
        status=row["status"],
    )


def _health_check(row: sqlite3.Row) -> HealthCheck:
    steps = tuple(
        StepResult(Step(s["step"]), float(s["seconds"]), bool(s["ok"]), str(s["detail"]))
        for s in json.loads(row["steps"])
    )
    return HealthCheck(row["board"], row["at"], Trigger(row["trigger"]), steps, row["run_id"])
