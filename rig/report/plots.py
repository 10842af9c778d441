"""The report's plots as PNG bytes.

Figures are built with matplotlib's object API and rendered by its Agg rasteriser: no
pyplot global state, no display, no GUI toolkit, so reports render on a headless CI box.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec

import matplotlib
import matplotlib.colors
import matplotlib.patches
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rig.report.analysis import CLASS_ORDER
from rig.rollout.model import BoardState, RolloutResult
from rig.sweep.judge import Band
from rig.sweep.model import PointVerdict, SweepMode, SweepResult
from rig.sweep.records import Image

P = ParamSpec("P")

COLOURS = {
    "BRICK": "#5b1a6e",
    "FAIL": "#d62728",
    "INFRA": "#ff9f1c",
    "PASS": "#2ca02c",
    "INCONCLUSIVE": "#4c78a8",
    "SKIP": "#b0b0b0",
}


# The rollout timeline: a board waiting for its offer, updating, then its end state.
WAITING = "#d9d9d9"
UPDATING = "#4c78a8"
STATE_COLOURS = {
    BoardState.SUCCEEDED: "#2ca02c",
    BoardState.FAILED: "#d62728",
    BoardState.ROLLED_BACK: "#ff7f0e",
    BoardState.REJECTED: "#9467bd",
    BoardState.TIMED_OUT: "#8c564b",
    BoardState.BRICKED: "#5b1a6e",
    BoardState.INFRA: "#ff9f1c",
    BoardState.NEVER_REACHED: "#f2f2f2",
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


@_plain_text
def rollout_timeline(rollout: RolloutResult) -> bytes:
    """Board (y) over rollout time (x): grey while waiting for the offer, blue while updating
    (one bar per offer), then the end state's colour; hatched where it was never reached; the
    abort as a red line."""
    boards = list(rollout.boards)
    figure = Figure(figsize=(10, 1.4 + 0.32 * len(boards)), layout="constrained")
    axes = figure.subplots()
    end = max([rollout.wall_s, *(b.finished_s or 0.0 for b in boards)])
    for row, board in enumerate(reversed(boards)):
        start = board.joined_s if board.joined_s is not None else 0.0
        if board.state is BoardState.NEVER_REACHED and board.dispatched_s is None:
            axes.broken_barh([(start, end - start)], (row - 0.35, 0.7), facecolors=STATE_COLOURS[board.state],
                             edgecolor="#999999", hatch="//")  # fmt: skip
            continue
        offered = board.dispatched_s if board.dispatched_s is not None else end
        axes.broken_barh([(start, offered - start)], (row - 0.35, 0.7), facecolors=WAITING)
        offers = [(a.start_s, max(a.end_s - a.start_s, 0.01)) for a in board.attempts]
        axes.broken_barh(offers or [(offered, (board.finished_s or end) - offered)], (row - 0.35, 0.7),
                         facecolors=UPDATING, edgecolor="white")  # fmt: skip
        if board.finished_s is not None:
            axes.broken_barh([(board.finished_s, end - board.finished_s)], (row - 0.35, 0.7),
                             facecolors=STATE_COLOURS[board.state])  # fmt: skip
    labels = [f"{b.board} (late)" if b.late else b.board for b in reversed(boards)]
    axes.set_yticks(range(len(boards)), labels, fontsize=8)
    if rollout.abort is not None:
        axes.axvline(rollout.abort.t_s, color="#d62728", linestyle="--", linewidth=1.5)
        axes.annotate(f"abort: {rollout.abort.criterion}", (rollout.abort.t_s, len(boards) - 0.5),
                      color="#d62728", fontsize=8, ha="left", va="bottom")  # fmt: skip
    handles = [matplotlib.patches.Patch(color=WAITING, label="waiting"),
               matplotlib.patches.Patch(color=UPDATING, label="updating")]  # fmt: skip
    handles += [
        matplotlib.patches.Patch(
            facecolor=STATE_COLOURS[state], label=state.value.lower().replace("_", " "), edgecolor="#999999",
            hatch="//" if state is BoardState.NEVER_REACHED else None,
        )
        for state in BoardState
        if rollout.count(state)
    ]  # fmt: skip
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    axes.set_xlim(0.0, end * 1.02)
    axes.set_ylim(-0.6, len(boards) - 0.1 + (0.6 if rollout.abort else 0.0))
    axes.set_xlabel("seconds since the rollout began")
    axes.set_title(f"Rollout {rollout.name}: {rollout.count(BoardState.SUCCEEDED)} of {len(boards)} updated")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


SWEEP_COLOURS = {"old": "#9ecae1", "new": "#2ca02c", "unsafe": "#d62728", "infra": "#ff9f1c"}
BAND_COLOURS = {
    Band.PREPARE: "#f0f0f0", Band.ERASE: "#fde0c5", Band.DOWNLOAD: "#deebf7", Band.OTADATA: "#e5d8f0",
    Band.FIRST_BOOT: "#fff2b2", Band.CONFIRM: "#d9f0d3", Band.END: "#f0f0f0",
}  # fmt: skip


@_plain_text
def sweep_strip(sweep: SweepResult) -> bytes:
    """Outcome along the operation index: one row per cut kind (before the operation, torn at
    each fraction), a cell per cut point coloured by what the board settled on (red where
    unsafe), under a strip of the update's bands (download, erase, otadata, first boot, confirm)."""
    kinds = sorted({p.judged.torn for p in sweep.points}, key=lambda t: -1.0 if t is None else t)
    last = max((p.judged.op for p in sweep.points), default=0)
    order = ["old", "new", "unsafe", "infra"]
    grid = [[float("nan")] * (last + 1) for _ in kinds]
    spans: dict[Band, tuple[int, int]] = {}
    for point in sweep.points:
        judged = point.judged
        key = point.verdict.value
        if point.verdict is PointVerdict.SAFE:
            key = "new" if judged.settled is Image.NEW else "old"
        grid[kinds.index(judged.torn)][judged.op] = order.index(key)
        low, high = spans.get(judged.band, (judged.op, judged.op))
        spans[judged.band] = (min(low, judged.op), max(high, judged.op))
    figure = Figure(figsize=(11, 2.0 + 0.35 * len(kinds)), layout="constrained")
    strip, axes = figure.subplots(2, 1, sharex=True, height_ratios=[1, 2 * len(kinds)])
    for band, (low, high) in spans.items():
        strip.axvspan(low - 0.5, high + 0.5, color=BAND_COLOURS[band])
        if high - low >= 0.08 * (last + 1):
            strip.annotate(band.value, ((low + high) / 2, 0.5), ha="center", va="center", fontsize=8)
    strip.set_yticks([])
    cmap = matplotlib.colors.ListedColormap([SWEEP_COLOURS[k] for k in order])
    axes.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5,
                extent=(-0.5, last + 0.5, len(kinds) - 0.5, -0.5))  # fmt: skip
    labels = ["before op" if t is None else f"torn {t:g}" for t in kinds]
    axes.set_yticks(range(len(kinds)), labels, fontsize=8)
    axes.set_xlabel("flash operation index" if sweep.mode is SweepMode.REPLAY else "timed cut")
    counts = {k: sum(1 for row in grid for cell in row if cell == order.index(k)) for k in order}
    patch = matplotlib.patches.Patch
    handles = [patch(color=SWEEP_COLOURS[k], label=f"{k} ({n})") for k, n in counts.items() if n]
    handles += [patch(color=BAND_COLOURS[b], label=b.value) for b in Band if b in spans]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    strip.set_title(f"Sweep {sweep.name}: {len(sweep.unsafe)} unsafe of {len(sweep.points)} cut points")
    return _png(figure)


@_plain_text
def infra_by_board(infra: Mapping[str, Sequence[tuple[str, int]]]) -> bytes:
    """INFRA outcomes per board in each run of the window: a board whose cable, hub or host
    is going bad climbs while the others stay at zero."""
    figure = Figure(figsize=(11, 3.2), layout="constrained")
    axes = figure.subplots()
    runs = [run for run, _ in next(iter(infra.values()), [])]
    for board, counts in sorted(infra.items()):
        if any(n for _, n in counts):
            axes.plot(range(len(counts)), [n for _, n in counts], marker="o", label=board)
    axes.set_xticks(range(len(runs)), [run[-7:] for run in runs], rotation=45, fontsize=7)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("INFRA outcomes")
    axes.set_title("Infrastructure failures per board and run (boards with none left out)")
    axes.legend(loc="upper left", fontsize=8)
    return _png(figure)
