"""`rig report`: regenerate the HTML/JUnit/markdown report of runs already in the results store."""

from __future__ import annotations

from pathlib import Path

import click

from rig.errors import InputError
from rig.report.build import write_report
from rig.report.data import DEFAULT_WINDOW
from rig.results.store import DEFAULT_DB, ResultsStore


@click.command()
@click.argument("run_id", required=False)
@click.option("--last", type=click.IntRange(min=1), help="Regenerate the reports of the last N runs.")
@click.option("--db", "db", default=str(DEFAULT_DB), show_default=True, help="Results database.")
@click.option("--out", "out", default=None, help="Folder of run folders [default: the --db folder].")
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Runs the trend plot and the flake rates look back over.",
)
def report(run_id: str | None, last: int | None, db: str, out: str | None, window: int) -> None:
    """Write index.html, junit.xml and summary.md of RUN_ID (default: the latest run)."""
    if run_id is not None and last is not None:
        raise InputError("give either RUN_ID or --last N, not both")
    store = ResultsStore(db)
    if last is not None:
        run_ids = [run.run_id for run in store.runs(last=last)]
    else:
        run_ids = [run_id if run_id is not None else store.latest_run().run_id]
    out_dir = Path(out) if out is not None else Path(db).parent
    for selected in run_ids:
        files = write_report(store, selected, out_dir, window)
        click.echo(f"{selected}: {files.html} {files.junit.name} {files.summary.name}")
