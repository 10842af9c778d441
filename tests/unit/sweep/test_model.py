"""Unsafe points grouped into windows, the headline, and the repro lines people copy."""

from __future__ import annotations

import shlex

from rig.sweep.judge import Band, Judged, Problem
from rig.sweep.model import PointVerdict, SweepMode, SweepResult, SweptPoint, board_repro, twin_repro
from rig.sweep.records import Image, TraceFacts

WRONG = ((Problem.WRONG_IMAGE, "runs the new image"),)
RETRY = ((Problem.RETRY_FAILED, "typed again, it does not land"),)


def judged(
    op: int, band: Band, problems: tuple[tuple[Problem, str], ...] = (), torn: float | None = None
) -> Judged:
    return Judged(op, torn, 0, band, frozenset({Image.OLD}), Image.OLD, Image.OLD, problems)


def result(*points: Judged) -> SweepResult:
    swept = tuple(SweptPoint(p, PointVerdict.SAFE if p.safe else PointVerdict.UNSAFE) for p in points)
    return SweepResult(
        name="https", mode=SweepMode.REPLAY, board="b1", firmware="reference", update="next", accepted=True,
        seconds=0.5, runs=3, folder="reports/run/sweep", points=swept, first_unsafe_log="",
    )  # fmt: skip


def test_neighbouring_unsafe_points_of_one_band_and_problem_make_one_window() -> None:
    sweep = result(
        judged(1, Band.DOWNLOAD), judged(2, Band.DOWNLOAD, RETRY), judged(2, Band.DOWNLOAD, RETRY, 0.5),
        judged(3, Band.DOWNLOAD, RETRY), judged(4, Band.OTADATA, RETRY), judged(6, Band.OTADATA, WRONG),
    )  # fmt: skip
    windows = sweep.windows()
    assert [(w.band, w.count, w.first.judged.op, w.last.judged.op) for w in windows] == [
        (Band.DOWNLOAD, 3, 2, 3), (Band.OTADATA, 1, 4, 4), (Band.OTADATA, 1, 6, 6),
    ]  # fmt: skip
    assert "5 unsafe in 3 window(s); first: op 2 (download: typed again" in sweep.headline()


def test_a_clean_sweep_says_so() -> None:
    assert result(judged(0, Band.DOWNLOAD)).headline().endswith("none unsafe")


def test_the_twin_repro_names_the_operation_and_the_tear() -> None:
    line = twin_repro("reports/run 1/sweep", judged(12, Band.DOWNLOAD, WRONG, torn=0.5))
    assert shlex.split(line) == [
        "rig",
        "repro",
        "--sweep",
        "reports/run 1/sweep",
        "--op",
        "12",
        "--torn",
        "0.5",
    ]


def test_a_board_repro_cuts_by_bytes_inside_the_download_and_by_log_line_elsewhere(trace: TraceFacts) -> None:
    in_download = board_repro(trace, "next", judged(4, Band.DOWNLOAD))
    assert shlex.split(in_download)[-1] == "power@bytes=4096"
    before_log = board_repro(trace, "next", judged(3, Band.DOWNLOAD))
    assert shlex.split(before_log)[-1] == "power@bytes=4096"
    at_switch = board_repro(trace, "next", judged(2, Band.DOWNLOAD))
    assert shlex.split(at_switch)[-1] == "power@bytes=0"
    assert board_repro(trace, "next", judged(12, Band.END)) == ""
