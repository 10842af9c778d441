"""A finished sweep: every cut point judged, grouped into windows, with the command lines
that replay an unsafe point on a twin (by operation index) or come closest on a real board.

This is what the results store keeps and the report shows."""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass

from rig.sweep.judge import NOT_SLOTS, Band, Judged, Problem
from rig.sweep.records import OpInfo, RunFacts, Stage, TraceFacts


class SweepMode(enum.Enum):
    REPLAY = "replay"  # every operation of the update, on the virtual lab
    TIMED = "timed"  # K calibrated time points per window, on real boards


class PointVerdict(enum.Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    INFRA = "infra"  # the rig could not judge the point (e.g. a retry found no server)


@dataclass(frozen=True)
class SweptPoint:
    judged: Judged
    verdict: PointVerdict
    infra: str = ""  # why the point could not be judged
    twin_repro: str = ""  # `rig repro --sweep … --op N`: exactly this cut on a twin
    board_repro: str = ""  # the closest `rig repro --cut …` a real board allows


@dataclass(frozen=True)
class Window:
    """Consecutive unsafe points of one band with the same problems."""

    band: Band
    first: SweptPoint
    last: SweptPoint
    count: int
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class SweepResult:
    name: str
    mode: SweepMode
    board: str
    firmware: str
    update: str
    accepted: bool
    seconds: float
    runs: int  # distinct device runs the points needed
    folder: str  # the sweep's artefacts (trace, images) for `rig repro --sweep`
    points: tuple[SweptPoint, ...]
    first_unsafe_log: str  # the serial log of the first unsafe point's boot
    calibration: str = ""  # a timed sweep's measured update timeline

    @property
    def unsafe(self) -> tuple[SweptPoint, ...]:
        return tuple(p for p in self.points if p.verdict is PointVerdict.UNSAFE)

    @property
    def infra(self) -> tuple[SweptPoint, ...]:
        return tuple(p for p in self.points if p.verdict is PointVerdict.INFRA)

    @property
    def rate(self) -> float:
        return len(self.points) / self.seconds if self.seconds > 0 else 0.0

    def windows(self) -> list[Window]:
        """Unsafe points merged into runs of neighbouring operations with the same band and problems."""
        windows: list[Window] = []
        for point in self.unsafe:
            judged = point.judged
            kinds = tuple(sorted({problem for problem, _ in judged.problems}, key=lambda p: p.value))
            last = windows[-1] if windows else None
            if (
                last is not None
                and last.band is judged.band
                and last.problems == kinds
                and judged.op - last.last.judged.op <= 1
            ):
                windows[-1] = Window(last.band, last.first, point, last.count + 1, kinds)
            else:
                windows.append(Window(judged.band, point, point, 1, kinds))
        return windows

    def headline(self) -> str:
        kind = "cut points" if self.mode is SweepMode.REPLAY else "timed cuts"
        text = f"Sweep {self.name} ({self.firmware}, {self.update}): {len(self.points)} {kind}"
        if self.mode is SweepMode.REPLAY:
            text += f" in {self.seconds:.1f} s ({self.rate:.0f}/s)"
        unsafe = self.unsafe
        if not unsafe:
            text += ", none unsafe"
        else:
            first = unsafe[0].judged
            text += (
                f", {len(unsafe)} unsafe in {len(self.windows())} window(s); "
                f"first: {first.label} ({first.band.value}: {first.problems[0][1]})"
            )
        if self.infra:
            text += f"; {len(self.infra)} not judged (infrastructure)"
        return text


def twin_repro(folder: str, judged: Judged) -> str:
    """Replays exactly this cut on a twin, by operation index."""
    args = ["rig", "repro", "--sweep", folder, "--op", str(judged.op)]
    if judged.torn is not None:
        args += ["--torn", f"{judged.torn:g}"]
    return shlex.join(args)


def board_repro(facts: TraceFacts, update: str, judged: Judged) -> str:
    """The closest a real board allows: a byte count inside the download, else the log line before."""
    if judged.op >= len(facts.ops):
        return ""
    op = facts.ops[judged.op]
    cut = _byte_cut(facts, op) or _log_cut(op)
    return shlex.join(["rig", "repro", "--image", update, "--cut", cut]) if cut else ""


def _byte_cut(facts: TraceFacts, op: OpInfo) -> str:
    """Inside the download into the new slot: the image bytes written before this operation."""
    writes = (o for o in facts.ops if o.stage is Stage.UPDATE and o.kind == "program")
    first = next((o for o in writes if o.region not in NOT_SLOTS), None)
    if first is None or op.stage is not Stage.UPDATE or op.region != first.region:
        return ""
    if op.address < first.address:
        return ""
    return f"power@bytes={op.address - first.address}"


_LOG_PREFIX = re.compile(r"^[EWIDV] \(\d+\) ")


def _log_cut(op: OpInfo) -> str:
    line = _LOG_PREFIX.sub("", op.log_line)
    if not line or '"' in line:
        return ""
    return f'power@log="{line}"'


def first_unsafe_log(points: tuple[SweptPoint, ...], runs: dict[int, RunFacts]) -> str:
    for point in points:
        if point.verdict is PointVerdict.UNSAFE:
            run = runs.get(point.judged.run)
            return run.log if run is not None else ""
    return ""
