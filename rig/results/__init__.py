"""Outcome rows of a run and the SQLite store every pytest worker writes them into."""

from rig.results.model import BootRow, FaultRow, Outcome, OutcomeClass, RunInfo, RunStatus
from rig.results.store import DEFAULT_DB, ResultsStore

__all__ = [
    "DEFAULT_DB",
    "BootRow",
    "FaultRow",
    "Outcome",
    "OutcomeClass",
    "ResultsStore",
    "RunInfo",
    "RunStatus",
]
