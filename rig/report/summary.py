"""summary.md: a short markdown table for a CI comment, worst outcomes first."""

from __future__ import annotations

from rig.report.analysis import headline
from rig.report.data import ReportData
from rig.results.model import OutcomeClass

MAX_ROWS = 15


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_summary(data: ReportData) -> str:
    """Headline counts, flake rate, and the first non-passing outcomes."""
    counts = headline(data.frame)
    run = data.run
    lines = [
        f"### ota-rig run `{run.run_id}` ({run.status})",
        "",
        "| bricks | passes | fails | infra | inconclusive | skips | boards | flake rate |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {counts['BRICK']} | {counts['PASS']} | {counts['FAIL']} | {counts['INFRA']}"
        f" | {counts['INCONCLUSIVE']} | {counts['SKIP']}"
        f" | {data.frame['board'].nunique()} | {data.flakes.overall:.1%} |",
    ]
    for rollout in data.rollouts:
        lines += ["", f"**{_cell(rollout.headline())}**"]
    for sweep in data.sweeps:
        lines += ["", f"**{_cell(sweep.headline())}**"]
    for entry in data.health.quarantined.values():
        quarantined = f"board {_cell(entry.board)} quarantined since {entry.since}: {_cell(entry.reason)}"
        lines += ["", f"**{quarantined}**"]
    bad = sorted(
        (o for o in data.outcomes if o.outcome not in (OutcomeClass.PASS, OutcomeClass.SKIP)),
        key=lambda o: -o.outcome.severity,
    )
    if bad:
        lines += ["", "| outcome | scenario | board | message |", "|---|---|---|---|"]
        lines += [
            f"| {o.outcome.value} | {_cell(o.scenario)} | {_cell(o.board)} | {_cell(o.message)} |"
            for o in bad[:MAX_ROWS]
        ]
        if len(bad) > MAX_ROWS:
            lines.append(f"\n…and {len(bad) - MAX_ROWS} more in index.html")
    return "\n".join(lines) + "\n"
