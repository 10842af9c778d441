"""index.html: one self-contained page per run (inline CSS, plots as base64 PNG, no external fetch).

Links to artifacts are relative to index.html, so a run folder can be zipped, moved or
served as-is and still open the right serial.log.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from html import escape
from urllib.parse import quote

import pandas as pd

from rig.health.records import Step
from rig.report import analysis, plots
from rig.report.data import ReportData
from rig.results.model import Outcome
from rig.sweep.model import SweepResult

ARTIFACT_FILES = ("serial.log", "server.log", "otadata.bin")
FLAKE_ROWS = 20
MAX_POINTS_LISTED = 500
HEADLINE = (("BRICK", "bricks"), ("PASS", "passes"), ("FAIL", "fails"), ("INFRA", "infra"),
            ("INCONCLUSIVE", "inconclusive"), ("SKIP", "skips"))

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
th { background: #f3f3f3; }
table.info th { width: 9em; }
.headline span { display: inline-block; padding: .4em .9em; margin-right: .5em; border-radius: 4px;
  font-weight: bold; color: white; }
td.BRICK, .headline .BRICK, .badge.BRICK { background: #5b1a6e; color: white; }
td.FAIL, .headline .FAIL, .badge.FAIL { background: #d62728; color: white; }
td.INFRA, .headline .INFRA, .badge.INFRA { background: #ff9f1c; color: black; }
td.PASS, .headline .PASS, .badge.PASS { background: #2ca02c; color: white; }
td.SKIP, .headline .SKIP, .badge.SKIP { background: #b0b0b0; color: black; }
td.INCONCLUSIVE, .headline .INCONCLUSIVE, .badge.INCONCLUSIVE { background: #4c78a8; color: white; }
td.none { background: #fafafa; }
#matrix td { text-align: center; } #matrix td a { color: inherit; text-decoration: none; display: block; }
#matrix th.scenario { text-align: left; font-weight: normal; font-family: monospace; }
.badge { padding: 1px 6px; border-radius: 3px; font-size: 12px; font-weight: bold; }
details { margin: .3em 0; } summary { cursor: pointer; font-family: monospace; }
.empty { color: #777; font-style: italic; }
img.plot { max-width: 100%; display: block; margin: .5em 0; }
"""


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def _href(artifacts: str, name: str = "") -> str:
    return escape(quote(f"{artifacts.rstrip('/')}/{name}"))


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]], css_id: str = "") -> str:
    attribute = f' id="{css_id}"' if css_id else ""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{attribute}><tr>{head}</tr>{body}</table>"


def _run_info(data: ReportData) -> str:
    run = data.run
    rows = [
        ("run", run.run_id),
        ("status", run.status),
        ("started", run.started_at),
        ("finished", run.finished_at or "—"),
        ("farm", run.farm),
        ("boards", ", ".join(run.boards)),
        ("seed", run.seed),
        ("rig version", run.rig_version),
        ("git revision", run.git_revision or "—"),
        ("command", run.command),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="info">{body}</table>'


def _headline(data: ReportData) -> str:
    counts = analysis.headline(data.frame)
    spans = "".join(f'<span class="{name}">{counts[name]} {label}</span>' for name, label in HEADLINE)
    return f'<p class="headline">{spans}</p>'


def _matrix(data: ReportData) -> str:
    cells = analysis.worst_cells(data.frame)
    if cells.empty:
        return '<p class="empty">No outcomes recorded in this run.</p>'
    boards = sorted(cells["board"].unique())
    by_key = {(row.scenario, row.board): row for row in cells.itertuples(index=False)}
    head = "<tr><th>scenario \\ board</th>" + "".join(f"<th>{escape(b)}</th>" for b in boards) + "</tr>"
    rows = []
    for scenario in sorted(cells["scenario"].unique()):
        tds = []
        for board in boards:
            cell = by_key.get((scenario, board))
            if cell is None:
                tds.append('<td class="none">·</td>')
                continue
            title = f"{scenario} on {board}: {cell.outcome} (worst of {cell.repeats})"
            link = f'<a href="{_href(str(cell.artifacts))}" title="{escape(title)}">{cell.outcome}</a>'
            tds.append(f'<td class="{cell.outcome}">{link}</td>')
        rows.append(f'<tr><th class="scenario">{escape(scenario)}</th>{"".join(tds)}</tr>')
    return f'<table id="matrix">{head}{"".join(rows)}</table>'


def _rollouts(data: ReportData) -> str:
    """Each rollout: its headline, the board × time picture, and the board table."""
    parts = []
    for rollout in data.rollouts:
        rows = [
            (b.board + (" (late)" if b.late else ""), b.fault, _seconds(b.joined_s), _seconds(b.dispatched_s),
             _seconds(b.finished_s), b.state.value, b.verdict.value, _seconds(b.time_to_update_s),
             len(b.attempts), b.version or "-", b.detail)
            for b in rollout.boards
        ]  # fmt: skip
        headers = ("board", "fault", "joined", "offered", "finished", "state", "verdict", "time to update",
                   "offers", "runs", "detail")  # fmt: skip
        parts += [
            f"<h2>Rollout {escape(rollout.name)} ({escape(rollout.transport)},"
            f" release {escape(rollout.release)}, seed {rollout.seed})</h2>",
            f"<p>{escape(rollout.headline())}</p>",
            _img(plots.rollout_timeline(rollout), f"rollout {rollout.name} timeline"),
            _table(headers, rows, "rollout"),
        ]
    return "".join(parts)


def _sweeps(data: ReportData) -> str:
    """Each sweep: its headline, the outcome strip, its unsafe windows with their repro lines,
    and the serial log of the first unsafe point's boot."""
    parts = []
    for sweep in data.sweeps:
        rows = [
            (w.band.value, w.count, w.first.judged.label, w.last.judged.label,
             "; ".join(detail for _, detail in w.first.judged.problems), w.first.twin_repro,
             w.first.board_repro or "-")
            for w in sweep.windows()
        ]  # fmt: skip
        headers = ("band", "points", "first", "last", "problem", "replay on a twin", "closest on a board")
        parts += [
            f"<h2>Sweep {escape(sweep.name)} ({escape(sweep.firmware)}, {escape(sweep.update)},"
            f" {sweep.mode.value})</h2>",
            f"<p>{escape(sweep.headline())}</p>",
            _img(plots.sweep_strip(sweep), f"sweep {sweep.name} outcome strip"),
        ]
        if sweep.calibration:
            parts.append(f"<p>Calibrated timeline: {escape(sweep.calibration)}</p>")
        if rows:
            parts.append(_table(headers, rows, "sweep"))
            parts.append(_unsafe_points(sweep))
        if sweep.first_unsafe_log:
            parts.append(
                "<details open><summary>Serial log of the first unsafe point's boot</summary>"
                f"<pre>{escape(sweep.first_unsafe_log)}</pre></details>"
            )
    return "".join(parts)


def _unsafe_points(sweep: SweepResult) -> str:
    """Every unsafe point with its own repro lines (folded away: there may be hundreds)."""
    unsafe = sweep.unsafe
    rows = [
        (p.judged.label, p.judged.band.value, "; ".join(d for _, d in p.judged.problems), p.twin_repro,
         p.board_repro or "-")
        for p in unsafe[:MAX_POINTS_LISTED]
    ]  # fmt: skip
    more = len(unsafe) - len(rows)
    tail = f"<p>… and {more} more in the results store.</p>" if more > 0 else ""
    headers = ("point", "band", "problem", "replay on a twin", "closest on a board")
    table = _table(headers, rows, "sweep-points")
    return f"<details><summary>All {len(unsafe)} unsafe cut points</summary>{table}{tail}</details>"


def _health(data: ReportData) -> str:
    """Boards out of service, this run's health checks with each step's time, and INFRA
    outcomes per board over the history window (a board going bad shows as a rising line)."""
    health = data.health
    if not (health.checks or health.quarantined or any(n for row in health.infra.values() for _, n in row)):
        return ""
    parts = ["<h2>Board health</h2>"]
    if health.quarantined:
        rows = [(q.board, q.since, q.failures, q.reason) for q in health.quarantined.values()]
        parts.append("<h3>Quarantined (skipped until <code>rig farm health --recover</code>)</h3>")
        parts.append(_table(("board", "since", "failed checks in a row", "reason"), rows, "quarantine"))
    if health.checks:
        steps = [step.value for step in Step]
        checks: list[tuple[str, ...]] = []
        for check in health.checks:
            took = {s.step.value: f"{s.seconds:.2f} s" + ("" if s.ok else " ✗") for s in check.steps}
            result = "healthy" if check.passed else "FAILED"
            timings = (took.get(step, "–") for step in steps)
            checks.append((check.board, check.trigger.value, result, *timings, check.reason))
        parts.append("<h3>Health checks of this run</h3>")
        parts.append(_table(("board", "trigger", "result", *steps, "detail"), checks, "health"))
    if any(n for row in health.infra.values() for _, n in row):
        parts.append(_img(plots.infra_by_board(health.infra), "INFRA outcomes per board and run"))
    return "".join(parts)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _plots(data: ReportData) -> str:
    parts = ["<h2>Cut-point map</h2>"]
    cuts = analysis.cut_point_map(data.frame)
    if cuts.empty:
        parts.append('<p class="empty">No fault with a known cut point in this run.</p>')
    else:
        parts.append(_img(plots.cut_point_plot(cuts), "cut-point map"))
    parts.append("<h2>Time to recover</h2>")
    seconds = analysis.recover_times(data.frame)
    if seconds.empty:
        parts.append('<p class="empty">No recovery time measured in this run.</p>')
    else:
        parts.append(_img(plots.recover_histogram(seconds), "time-to-recover histogram"))
    parts.append(f"<h2>Trend (last {len(data.window_runs)} runs)</h2>")
    parts.append(_img(plots.trend_plot(data.trend), "trend over the last runs"))
    return "".join(parts)


def _flake_rows(table: pd.DataFrame, key: str) -> list[tuple[object, ...]]:
    flaky = table[table["flaky"] > 0].head(FLAKE_ROWS)
    return [
        (row[key], row["flaky"], row["combinations"], f"{row['flake_rate']:.1%}")
        for _, row in flaky.iterrows()
    ]


def _flakes(data: ReportData) -> str:
    flakes = data.flakes
    intro = (
        f"<p>Over the last {len(data.window_runs)} runs: {flakes.flaky} of {flakes.eligible} "
        f"(scenario, firmware, board) combinations with two or more decisive results both passed and "
        f"failed — flake rate {flakes.overall:.2%}.</p>"
    )
    if flakes.flaky == 0:
        return intro
    columns = ("flaky", "combinations", "rate")
    by_scenario = _table(("scenario", *columns), _flake_rows(flakes.by_scenario, "scenario"))
    by_board = _table(("board", *columns), _flake_rows(flakes.by_board, "board"))
    return f'{intro}<div id="flakes"><h3>By scenario</h3>{by_scenario}<h3>By board</h3>{by_board}</div>'


def _optional(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _detail(index: int, outcome: Outcome) -> str:
    cls = outcome.outcome.value
    opened = " open" if outcome.outcome.is_firmware_failure else ""
    links = " · ".join(f'<a href="{_href(outcome.artifacts, name)}">{name}</a>' for name in ARTIFACT_FILES)
    facts = [
        ("expected", outcome.expected),
        ("observed", outcome.observed),
        ("message", outcome.message),
        ("group", outcome.scenario_group),
        ("firmware", f"{outcome.firmware_old} → {outcome.firmware_new} ({outcome.image})"),
        ("fault", outcome.fault or "—"),
        ("cut point", _optional(outcome.cut_point, "{:.1%}")),
        ("phase", outcome.phase),
        ("duration", f"{outcome.duration_s:.1f} s"),
        ("time to recover", _optional(outcome.time_to_recover_s, "{:.1f} s")),
        ("bytes served", f"{outcome.bytes_served:,}"),
    ]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    boots = _table(
        ("boot", "reset reason", "slot", "version", "outcome"),
        ((b.index, b.reset_reason, b.slot, b.version, b.outcome) for b in outcome.boots),
    )
    faults = _table(
        ("fault", "condition", "observed", "latency (ms)", "at (s)"),
        (
            (f.name, f.condition, f.observed, _optional(f.latency_ms, "{:.1f}"), f"{f.t_offset_s:.2f}")
            for f in outcome.faults
        ),
    )
    return (
        f'<details id="outcome-{index}"{opened}><summary><span class="badge {cls}">{cls}</span> '
        f"{escape(outcome.scenario)} on {escape(outcome.board)} — {escape(_gist(outcome))}</summary>"
        f'<table class="info">{fact_rows}</table><p>artifacts: {links}</p>'
        f"<h4>Boots</h4>{boots if outcome.boots else '<p class=empty>none recorded</p>'}"
        f"<h4>Faults</h4>{faults if outcome.faults else '<p class=empty>none injected</p>'}</details>"
    )


def render_html(data: ReportData) -> str:
    """The whole index.html of a run."""
    ordered = sorted(enumerate(data.outcomes), key=lambda pair: (-pair[1].outcome.severity, pair[0]))
    details = "".join(_detail(index, outcome) for index, outcome in ordered)
    title = f"ota-rig run {data.run.run_id}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
        f"{_run_info(data)}{_headline(data)}<h2>Matrix (worst outcome per scenario and board)</h2>"
        f"{_matrix(data)}{_health(data)}{_rollouts(data)}{_sweeps(data)}{_plots(data)}<h2>Flakes</h2>{_flakes(data)}"
        f"<h2>Outcomes ({len(data.outcomes)})</h2>{details}</body></html>"
    )


def _gist(outcome: Outcome) -> str:
    """What a collapsed outcome line says: the image and fault, then any problem."""
    fault = "" if outcome.fault == "none" else outcome.fault
    what = ", ".join(part for part in (outcome.image, fault) if part)
    phase = outcome.phase.lower().replace("_", " ")
    return "; ".join(part for part in (what, phase, outcome.message) if part)
