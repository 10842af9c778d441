"""Write a run's report folder: index.html, junit.xml and summary.md side by side."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rig.errors import InfraError
from rig.report.data import DEFAULT_WINDOW, collect
from rig.report.html import render_html
from rig.report.junit import render_junit
from rig.report.summary import render_summary
from rig.results.store import ResultsStore


@dataclass(frozen=True)
class ReportFiles:
    """Where the three files of one run's report were written."""

    html: Path
    junit: Path
    summary: Path


def _write_atomically(path: Path, content: bytes) -> None:
    """Replace the file in one step so a browser or CI never reads half a report."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def write_report(
    store: ResultsStore, run_id: str, out_dir: Path, window: int = DEFAULT_WINDOW
) -> ReportFiles:
    """Render the report of `run_id` into `out_dir/<run_id>/` (the run folder with its artifacts)."""
    data = collect(store, run_id, window)
    folder = out_dir / run_id
    files = ReportFiles(folder / "index.html", folder / "junit.xml", folder / "summary.md")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(files.html, render_html(data).encode("utf-8"))
        _write_atomically(files.junit, render_junit(data.run, data.outcomes))
        _write_atomically(files.summary, render_summary(data).encode("utf-8"))
    except OSError as error:
        raise InfraError(f"cannot write the report into {folder}: {error.strerror or error}") from error
    return files
