"""The report's plots as PNG bytes.

Figures are built with matplotlib's object API and rendered by its Agg rasteriser: no
pyplot global state, no display, no GUI toolkit, so reports render on a headless CI box.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import ParamSpec

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rig.report.analysis import CLASS_ORDER

P = ParamSpec("P")

COLOURS = {
    "BRICK": "#5b1a6e",
    "FAIL": "#d62728",
    "INFRA": "#ff9f1c",
    "PASS": "#2ca02c",
    "INCONCLUSIVE": "#4c78a8",
    "SKIP": "#b0b0b0",
}


def _plain_text(plot: Callable[P, bytes]) -> Callable[P, bytes]:
    """Scenario and board names are text: a `$` in one must not start matplotlib's mathtext."""

    @functools.wraps(plot)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with matplotlib.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return drawn


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


@_plain_text
def cut_point_plot(cuts: pd.DataFrame) -> bytes:
    """Where in the image each fault landed (x) per scenario (y), coloured by outcome."""
    scenarios = sorted(cuts["scenario"].unique())
    row_of = {name: index for index, name in enumerate(scenarios)}
    figure = Figure(figsize=(10, 1.2 + 0.45 * len(scenarios)), layout="constrained")
    axes = figure.subplots()
    for name in CLASS_ORDER:
        points = cuts[cuts["outcome"] == name]
        if points.empty:
            continue
        axes.scatter(
            points["cut_point"],
            points["scenario"].map(row_of),
            c=COLOURS[name],
            label=name,
            s=28,
            alpha=0.8,
            edgecolors="none",
        )
    axes.set_yticks(range(len(scenarios)), scenarios, fontsize=8)
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("fault position (fraction of the image sent)")
    axes.set_title("Cut-point map")
    figure.legend(loc="outside right upper", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


@_plain_text
def recover_histogram(seconds: pd.Series) -> bytes:
    """Distribution of fault-to-working-app times."""
    figure = Figure(figsize=(7, 3.2), layout="constrained")
    axes = figure.subplots()
    axes.hist(seconds, bins=min(30, max(5, len(seconds) // 3)), color="#1f77b4", edgecolor="white")
    median = float(seconds.median())
    axes.axvline(median, color="#333333", linestyle="--", label=f"median {median:.1f} s")
    axes.set_xlabel("time to recover (s)")
    axes.set_ylabel("outcomes")
    axes.set_title("Time to recover")
    axes.legend(fontsize=8)
    return _png(figure)


@_plain_text
def trend_plot(trend: pd.DataFrame) -> bytes:
    """Pass rate (line, left axis) and bricks/fails/infra counts (bars, right axis) per run."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    rate_axes = figure.subplots()
    positions = range(len(trend))
    count_axes = rate_axes.twinx()
    width = 0.27
    for offset, column in ((-width, "brick"), (0.0, "fail"), (width, "infra")):
        count_axes.bar(
            [p + offset for p in positions],
            trend[column],
            width=width,
            color=COLOURS[column.upper()],
            alpha=0.55,
            label=column,
        )
    rate = trend["pass_rate"] * 100.0
    rate_axes.plot(positions, rate, color=COLOURS["PASS"], marker="o", label="pass rate")
    rate_axes.set_zorder(count_axes.get_zorder() + 1)
    rate_axes.patch.set_visible(False)
    rate_axes.set_ylim(0, 105)
    rate_axes.set_ylabel("pass rate (%)")
    count_axes.set_ylabel("outcomes per run")
    # Counts are whole and never negative; a clean run (all zero) must not draw -0.04 ticks.
    count_axes.set_ylim(0, max(1, int(trend[["brick", "fail", "infra"]].to_numpy().max())) * 1.1)
    count_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, len(trend) // 12)
    ticks = list(positions)[::step]
    labels = [str(trend["run_id"].iloc[i]) for i in ticks]
    rate_axes.set_xticks(ticks, labels, rotation=30, fontsize=7, ha="right")
    rate_axes.set_title(f"Trend over the last {len(trend)} runs")
    handles = rate_axes.get_legend_handles_labels()
    bars = count_axes.get_legend_handles_labels()
    figure.legend(handles[0] + bars[0], handles[1] + bars[1], loc="outside right upper", fontsize=8)
    return _png(figure)
