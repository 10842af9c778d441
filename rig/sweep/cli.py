"""`rig sweep [SCENARIO]`: every power-cut point of one update, proven safe or the first unsafe
one ready to replay.

Without --farm a throwaway traced twin records the update once and the twin's replay cuts
before and inside every flash operation (`rig.sweep.lab`). With --farm the boards are what
they are: the update's timeline is measured from the log once, then K cuts per window
are made for real (`rig.sweep.timed`). Either way the points are judged against ESP-IDF's
rules (`rig.sweep.judge`), stored in the results store and drawn in the run's report.

Exit codes: 0 no unsafe point, 1 unsafe points (or the recorded update itself failed),
2 bad input, 3 points the rig could not judge (infrastructure).
"""

from __future__ import annotations

import shlex
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rig import __version__
from rig.errors import InfraError
from rig.outcome import OtaResult
from rig.results.from_pytest import OutcomeRecorder, git_revision, summary_line
from rig.results.model import RunInfo, RunStatus
from rig.results.store import ResultsStore, utc_now
from rig.sweep.model import SweepResult
from rig.sweep.recording import Build, SweepRun
from rig.sweep.spec import find_sweep, load_sweep_spec

GROUP = "sweep"
MAX_WINDOWS_SHOWN = 12


@click.command()
@click.argument("scenario", required=False)
@click.option(
    "--firmware", default="reference", show_default=True, help="firmware model of the lab's twin (no --farm)"
)
@click.option("--farm", help="farm file: a calibrated time sweep on its boards instead of the lab")
@click.option("--board", "board_name", help="the farm's board (default: its first)")
@click.option("--points", type=click.IntRange(1, 100), help="cuts per window of a time sweep")
@click.option("--seed", type=int, default=0, show_default=True, help="places a time sweep's cuts")
@click.option("--base-image", default=None, help="with --farm: the farm's ESP-IDF app build (images from it)")
@click.option("--signing-key", default=None, help="the PEM key that signed --base-image")
@click.option("--report-dir", default="reports", show_default=True)
def sweep(
    scenario: str | None, firmware: str, farm: str | None, board_name: str | None, points: int | None,
    seed: int, base_image: str | None, signing_key: str | None, report_dir: str,
) -> None:  # fmt: skip
    """Cut power at every point of one update (scenarios/sweeps/SCENARIO.yaml, default https)
    and judge each: an app always boots, the right one, otadata stays sane, a retry lands."""
    spec = load_sweep_spec(find_sweep(scenario))
    if farm is None and (board_name or points or base_image or signing_key):
        raise click.UsageError("--board, --points, --base-image and --signing-key need a --farm")
    if farm is not None and firmware != "reference":
        raise click.UsageError("--firmware builds the lab's twin; a farm's boards run what was flashed")
    reports = Path(report_dir)
    run_id = f"sweep-{spec.name}-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = reports / run_id
    recorder = OutcomeRecorder(reports / "results.db", run_id, f"sweep[{spec.name}]", GROUP, out)
    console = RichConsole(stderr=True, markup=False)
    with ExitStack() as stack:
        store = stack.enter_context(ResultsStore(reports / "results.db"))
        store.start_run(
            RunInfo(
                run_id=run_id, started_at=utc_now(), farm=farm or "virtual lab", boards=(board_name or "b1",),
                seed=seed, rig_version=__version__, git_revision=git_revision(Path.cwd()),
                command=shlex.join(["rig", *sys.argv[1:]]), finished_at=None, status="running",
            )
        )  # fmt: skip
        status: RunStatus = "interrupted"
        progress = stack.enter_context(_progress_bar(console))
        task = progress.add_task("sweep", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def say(text: str) -> None:
            progress.update(task, description=text)

        try:
            run = SweepRun(out, reports, run_id, recorder, advance, say)
            if farm is None:
                from rig.sweep.lab import sweep_on_lab

                result, recording = sweep_on_lab(spec, firmware, run)
            else:
                from rig.sweep.timed import sweep_on_farm

                build = Build(*(Path(p) if p else None for p in (base_image, signing_key)))
                per_window = points or spec.points_per_window
                from rig.labgrid.acquire import farm_in_hand

                with farm_in_hand(Path(farm), out) as held:
                    result, recording = sweep_on_farm(spec, held, board_name, build, per_window, seed, run)
            store.record_sweep(run_id, result)
            status = "finished"
        finally:
            store.finish_run(run_id, status)
    files = _report(reports, run_id)
    _print(result, recording, files)
    sys.exit(_exit_code(result, recording))


def _progress_bar(console: RichConsole) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip


def _report(reports: Path, run_id: str) -> str:
    from rig.report.build import write_report

    with ResultsStore(reports / "results.db") as store:
        files = write_report(store, run_id, reports)
        return summary_line(store, run_id, files.html)


def _print(result: SweepResult, recording: OtaResult, summary: str) -> None:
    console = RichConsole(markup=False, width=max(120, RichConsole().width))
    console.print(f"recorded update: {recording.summary()}")
    windows = result.windows()
    if windows:
        table = Table(title=f"unsafe windows of sweep {result.name}")
        for column in ("#", "band", "points", "from", "to", "problem"):
            table.add_column(column)
        for number, window in enumerate(windows[:MAX_WINDOWS_SHOWN], 1):
            first = window.first.judged
            table.add_row(
                str(number), window.band.value, str(window.count), first.label, window.last.judged.label,
                first.problems[0][1],
            )  # fmt: skip
        console.print(table)
        if len(windows) > MAX_WINDOWS_SHOWN:
            console.print(f"… and {len(windows) - MAX_WINDOWS_SHOWN} more windows in the report")
        for number, window in enumerate(windows[:MAX_WINDOWS_SHOWN], 1):
            console.print(f"#{number} on a twin: {window.first.twin_repro}", soft_wrap=True)
            if window.first.board_repro:
                console.print(f"#{number} on a board: {window.first.board_repro}", soft_wrap=True)
    console.print(result.headline())
    console.print(summary)


def _exit_code(result: SweepResult, recording: OtaResult) -> int:
    if result.unsafe or not recording.passed:
        return 1
    if result.infra:
        raise InfraError(
            f"{len(result.infra)} cut points could not be judged ({result.infra[0].infra}); see the report"
        )
    return 0

