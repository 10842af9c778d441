"""Runs the twin's replay (`python -m twin sweep`) as its own process and reads its records.

A separate process keeps `rig/` free of `twin/` imports, and gives the replay its own
interpreter (its own GIL) beside the rig's servers."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from rig.errors import InfraError, InputError
from rig.sweep.records import Done, PointFacts, Progress, RunFacts, TraceFacts, decode


@dataclass
class Replayed:
    facts: TraceFacts | None = None
    runs: dict[int, RunFacts] = field(default_factory=dict)
    points: list[PointFacts] = field(default_factory=list)
    done: Done | None = None


def replay(args: list[str], progress: Callable[[int, int], None]) -> Replayed:
    """Run `python -m twin sweep ARGS`; bad input there is bad input here, anything else infra."""
    out = Replayed()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "twin", "sweep", *args], stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                record = decode(line)
                if isinstance(record, Progress):
                    progress(record.done, record.total)
                elif isinstance(record, TraceFacts):
                    out.facts = record
                elif isinstance(record, RunFacts):
                    out.runs[record.run] = record
                elif isinstance(record, PointFacts):
                    out.points.append(record)
                else:
                    out.done = record
        except ValueError as error:
            process.kill()
            raise InfraError(f"the sweep replay printed garbage: {error}") from None
        finally:
            code = process.wait()
        errors.seek(0)
        message = (errors.read().strip().splitlines() or ["no message"])[-1]
    if code == InputError.exit_code:
        raise InputError(message.removeprefix("twin: error: "))
    if code != 0 or out.facts is None or out.done is None:
        raise InfraError(f"the sweep replay failed (exit {code}): {message}")
    return out
