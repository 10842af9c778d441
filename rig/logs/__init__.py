"""Serial-log reading: lines -> typed events -> one record per boot.

`LogParser` turns ESP-IDF console output into events; `fold_boots` groups them
into `BootRecord`s that verdicts judge.
"""

from rig.logs.boots import BootOutcome, BootRecord, BootTimeline, OtaAttempt, OtaOutcome, fold_boots
from rig.logs.events import Event, LogLine, OtherLine
from rig.logs.parser import LogParser, parse_text, split_line, strip_ansi

__all__ = [
    "BootOutcome",
    "BootRecord",
    "BootTimeline",
    "Event",
    "LogLine",
    "LogParser",
    "OtaAttempt",
    "OtaOutcome",
    "OtherLine",
    "fold_boots",
    "parse_text",
    "split_line",
    "strip_ansi",
]
