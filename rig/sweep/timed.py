"""The sweep on real boards: a calibrated time sweep.

A real board's flash cannot be counted, so the update's timeline is measured from its log
once (an uncut run), split into the same windows as a replayed sweep — download, otadata
switch, first boot, confirm — and K cuts are placed in each: one per equal stratum of the
window, at a seeded random spot within it (`power@bytes=` inside the download, where the
device's own progress counts, `power@log="<window's first line>":delay=` elsewhere). Every
cut is a full judged OTA from the known state; a board that settles on the old image is
sent the update again, which must then land.
"""

from __future__ import annotations

import random
import re
import shlex
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rig.console import ConsoleLine
from rig.errors import InfraError
from rig.farm import load_farm
from rig.outcome import OtaResult
from rig.phase import Final, Phase
from rig.results.model import OutcomeClass
from rig.session import OtaSession
from rig.sweep.judge import Band, Judged, Problem
from rig.sweep.model import PointVerdict, SweepMode, SweepResult, SweptPoint
from rig.sweep.recording import Build, SweepRun, record_update
from rig.sweep.records import Image
from rig.sweep.spec import SweepSpec

_PREFIX = re.compile(r"^[EWIDV] \(\d+\) ")
# Where each window after the download starts and ends, as the rig agent logs it (PROTOCOL.md).
ANCHORS: tuple[tuple[Band, str, str], ...] = (
    (Band.OTADATA, "ota progress bytes=", "ota restarting"),
    (Band.FIRST_BOOT, "ota restarting", "selftest begin"),
    (Band.CONFIRM, "selftest begin", "app confirmed valid"),
)
_IMAGES = {Final.OLD: Image.OLD, Final.NEW: Image.NEW}


@dataclass(frozen=True)
class TimedCut:
    band: Band
    cut: str
    at_s: float  # where in the update (s after `ota begin`) the cut is aimed


@dataclass(frozen=True)
class Calibration:
    """The uncut update's windows: (band, first line, seconds into the update, length)."""

    windows: tuple[tuple[Band, str, float, float], ...]
    image_size: int

    def describe(self) -> str:
        return "; ".join(f"{band.value} {at:.3f}+{length:.3f} s" for band, _, at, length in self.windows)


def calibrate(lines: list[ConsoleLine], image_size: int) -> Calibration:
    """Windows of one uncut update from its console lines (`InfraError` if the log lacks them)."""
    begin = _find(lines, "ota begin", 0)
    if begin is None:
        raise InfraError("calibration: the uncut update never logged `ota begin`")
    t0 = lines[begin].t
    windows: list[tuple[Band, str, float, float]] = []
    complete = _find(lines, "ota complete", begin)
    windows.append((Band.DOWNLOAD, "", 0.0, (lines[complete].t if complete is not None else t0) - t0))
    for band, first, last in ANCHORS:
        # The download's last progress line starts the switch; other windows start at their first line.
        find = _find_last if band is Band.OTADATA else _find
        start = find(lines, first, begin)
        end = _find(lines, last, start or begin)
        if start is None or end is None:
            continue
        text = _PREFIX.sub("", lines[start].text.strip())
        windows.append((band, text, lines[start].t - t0, max(0.0, lines[end].t - lines[start].t)))
    return Calibration(tuple(windows), image_size)


def _find(lines: list[ConsoleLine], text: str, start: int) -> int | None:
    return next((i for i in range(start, len(lines)) if text in lines[i].text), None)


def _find_last(lines: list[ConsoleLine], text: str, start: int) -> int | None:
    found = [i for i in range(start, len(lines)) if text in lines[i].text]
    return found[-1] if found else None


def plan_cuts(calibration: Calibration, per_window: int, seed: int) -> list[TimedCut]:
    """K cuts per window, one in each equal stratum, placed by `seed`."""
    rng = random.Random(seed)
    cuts = []
    for band, first, start, length in calibration.windows:
        for k in range(per_window):
            offset = (k + rng.random()) / per_window
            if band is Band.DOWNLOAD:
                cut = f"power@bytes={int(offset * calibration.image_size)}"
            else:
                cut = f'power@log="{first}":delay={offset * length:.4f}s'
            cuts.append(TimedCut(band, cut, start + offset * length))
    return cuts


def sweep_on_farm(
    spec: SweepSpec, farm_path: Path, board_name: str | None, build: Build, per_window: int, seed: int,
    run: SweepRun,
) -> tuple[SweepResult, OtaResult]:  # fmt: skip
    """Calibrate on one uncut update, then cut K times per window; each cut judged as an OTA."""
    farm = load_farm(farm_path)
    board_spec = farm.board(board_name) if board_name else farm.boards[0]
    with ExitStack() as stack:
        recorded = record_update(stack, farm, board_spec, spec, build, seed, run)
        board, session, recording = recorded.board, recorded.session, recorded.recording
        accepted = recorded.accepted
        size = recorded.images.entry(spec.update).path.stat().st_size
        calibration = calibrate(board.console.lines(recording.mark), size)
        cuts = plan_cuts(calibration, per_window, seed)
        points: list[SweptPoint] = []
        first_log = ""
        started = time.monotonic()
        for index, timed in enumerate(cuts):
            run.status(f"{board_spec.name}: {timed.band.value} cut {timed.cut}")
            run.progress(index, len(cuts))
            mark = board.console.mark()
            point = _cut_once(session, spec, accepted, index, timed)
            if point.verdict is PointVerdict.UNSAFE and not first_log:
                first_log = board.console.text(mark)
            points.append(point)
        run.progress(len(cuts), len(cuts))
        seconds = time.monotonic() - started
    result = SweepResult(
        name=spec.name, mode=SweepMode.TIMED, board=board_spec.name, firmware="as flashed",
        update=spec.update, accepted=accepted, seconds=seconds, runs=len(points), folder=str(run.out),
        points=tuple(points), first_unsafe_log=first_log, calibration=calibration.describe(),
    )  # fmt: skip
    return result, recording


def _cut_once(
    session: OtaSession, spec: SweepSpec, accepted: bool, index: int, timed: TimedCut
) -> SweptPoint:
    session.restore()
    try:
        result = session.run(spec.update, timed.cut)
    except InfraError as error:
        return _infra(index, timed, str(error))
    if result.outcome is OutcomeClass.INFRA:
        return _infra(index, timed, result.summary())
    if result.phase is Phase.NO_FAULT:
        return _infra(index, timed, f"the cut {timed.cut} never fired")
    settled = _IMAGES.get(result.final) if result.final else None
    final = settled
    problems: list[tuple[Problem, str]] = []
    if result.outcome is OutcomeClass.BRICK:
        problems.append((Problem.BRICK, result.summary()))
    elif not result.passed:
        problems.append((Problem.WRONG_IMAGE, result.summary()))
    if accepted and spec.retry and not problems and result.final is Final.OLD:
        retried = session.run(spec.update)
        final = _IMAGES.get(retried.final) if retried.final else None
        if retried.final is not Final.NEW:
            problems.append((Problem.RETRY_FAILED, f"typed again: {retried.summary()}"))
    expected = frozenset(_IMAGES[f] for f in result.acceptable)
    judged = Judged(index, None, index, timed.band, expected, settled, final, tuple(problems))
    if not problems:
        return SweptPoint(judged, PointVerdict.SAFE)
    repro = shlex.join(["rig", "repro", "--image", spec.update, "--cut", timed.cut])
    return SweptPoint(judged, PointVerdict.UNSAFE, board_repro=repro)


def _infra(index: int, timed: TimedCut, reason: str) -> SweptPoint:
    judged = Judged(index, None, index, timed.band, frozenset(), None, None, ())
    return SweptPoint(judged, PointVerdict.INFRA, infra=reason)

