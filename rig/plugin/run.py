"""What every process of one run agrees on, decided once on the controller: run id, seed,
the keys a resume must not run again, and where reports and the results store live."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rig.errors import RigError
from rig.farm import BoardSpec, Farm
from rig.results.model import check_run_id
from rig.results.store import ResultsStore

FARM_KEY = pytest.StashKey[Farm | None]()
DEFAULT_REPORT_DIR = "reports"
WIRE_KEY = "ota_rig_run"


@dataclass(frozen=True)
class RunSettings:
    """What every process of one run must agree on: decided once, on the controller."""

    run_id: str
    seed: int
    done: frozenset[tuple[str, str]]  # (scenario, board) keys a resume must not run again
    quarantined: Mapping[str, str] = field(default_factory=dict)  # board → why it is skipped

    def to_wire(self) -> dict[str, Any]:
        """Plain values for xdist's `workerinput` (execnet only carries builtins)."""
        return {
            "run_id": self.run_id,
            "seed": self.seed,
            "done": [list(key) for key in sorted(self.done)],
            "quarantined": dict(self.quarantined),
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RunSettings:
        done = frozenset((str(scenario), str(board)) for scenario, board in wire["done"])
        quarantined = {str(k): str(v) for k, v in wire["quarantined"].items()}
        return cls(str(wire["run_id"]), int(wire["seed"]), done, quarantined)


RUN_KEY = pytest.StashKey[RunSettings]()


def report_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("--report-dir") or DEFAULT_REPORT_DIR)


def results_db(config: pytest.Config) -> Path:
    given = config.getoption("--results-db")
    return Path(given) if given else report_dir(config) / "results.db"


def is_rig_run(config: pytest.Config) -> bool:
    """Only rig runs keep results: the rig's own test suite loads this plugin too."""
    options = ("--farm", "--report-dir", "--results-db", "--run-id", "--resume")
    return any(config.getoption(name) for name in options)


def decide(config: pytest.Config, store: ResultsStore | None) -> RunSettings:
    """Run id and seed from the options, the environment, the resumed run, or fresh."""
    resume = config.getoption("--resume")
    run_id = config.getoption("--run-id")
    if resume and run_id and resume != run_id:
        raise pytest.UsageError(f"--resume {resume} continues that run; it cannot be given --run-id {run_id}")
    seed = config.getoption("--seed")
    if seed is None and "RIG_SEED" in os.environ:
        seed = int(os.environ["RIG_SEED"])
    done: frozenset[tuple[str, str]] = frozenset()
    if resume:
        assert store is not None  # --resume makes this a rig run
        try:
            done = frozenset(store.done_keys(resume))
            resumed_seed = store.run(resume).seed
        except RigError as error:
            raise pytest.UsageError(str(error)) from None
        seed = resumed_seed if seed is None else seed
    fresh_id = os.environ.get("RIG_RUN_ID") or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_id = resume or run_id or fresh_id
    try:
        check_run_id(run_id)
    except RigError as error:
        raise pytest.UsageError(str(error)) from None
    quarantined: dict[str, str] = {}
    if store is not None:
        try:
            quarantined = {name: q.skip_reason() for name, q in store.quarantined().items()}
        except RigError as error:
            raise pytest.UsageError(str(error)) from None
    return RunSettings(run_id, secrets.randbelow(2**31) if seed is None else seed, done, quarantined)


def selected(config: pytest.Config) -> tuple[BoardSpec, ...]:
    farm = config.stash[FARM_KEY]
    if farm is None:
        return ()
    names = [n for n in str(config.getoption("--boards")).split(",") if n]
    tags = [t for t in str(config.getoption("--board-tags")).split(",") if t]
    return farm.select(names, tags)
