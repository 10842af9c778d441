"""The exhaustive sweep on the virtual lab: record one update, then replay every cut point.

A throwaway one-board lab comes up with flash tracing on (`trace_flash`) and the firmware
model asked for. The rig provisions it and runs the update once, judged like any OTA and
stored as the run's outcome; the board's trace then goes to the twin's replay with the
update's images, while the rig's HTTPS server stays up for retried updates.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import yaml

from rig.errors import InputError
from rig.farm import load_farm
from rig.outcome import OtaResult
from rig.sweep.judge import Judge, infra_reason
from rig.sweep.model import (
    PointVerdict,
    SweepMode,
    SweepResult,
    SweptPoint,
    board_repro,
    first_unsafe_log,
    twin_repro,
)
from rig.sweep.recording import Build, SweepRun, record_update
from rig.sweep.replay_client import Replayed, replay
from rig.sweep.repro import LAB_CONFIG, NEW_IMAGE, OLD_IMAGE, TRACE, SweepMeta, replay_args
from rig.sweep.spec import SweepSpec

SWEEP_DIR = "sweep"
# Sweeps cover the rig agent's HTTPS updates; the AWS OTA models take their update over MQTT.
HTTPS_ONLY = ("aws-ota",)


def lab_config(spec: SweepSpec, firmware: str) -> str:
    """One board, traced, built as the scenario says, running `firmware`."""
    if firmware.startswith(HTTPS_ONLY):
        raise InputError(f"--firmware {firmware}: a sweep replays the rig agent's HTTPS update, not AWS jobs")
    defaults = {**spec.board, "firmware": firmware}
    return yaml.safe_dump({"count": 1, "throwaway": True, "trace_flash": True, "defaults": defaults})


def sweep_on_lab(spec: SweepSpec, firmware: str, run: SweepRun) -> tuple[SweepResult, OtaResult]:
    """Record the update on a fresh twin, replay every cut point, judge each one."""
    from rig.lab_cli import running_lab

    folder = run.out / SWEEP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LAB_CONFIG).write_text(lab_config(spec, firmware), encoding="utf-8")
    with ExitStack() as stack:
        run.status("bringing up a traced one-board lab")
        farm = load_farm(stack.enter_context(running_lab(run.out / "lab", 1, folder / LAB_CONFIG)))
        board_spec = farm.boards[0]
        recorded = record_update(stack, farm, board_spec, spec, Build(), 0, run)
        accepted = recorded.accepted
        meta = SweepMeta(spec.update, accepted, spec.retry)
        meta.write(folder)
        (folder / OLD_IMAGE).write_bytes(recorded.images.data("base"))
        (folder / NEW_IMAGE).write_bytes(recorded.images.data(spec.update))
        run.status("replaying every cut point")
        started = time.monotonic()
        replayed = replay(
            [
                "--lab", str(run.out / "lab"), "--board", board_spec.name,
                "--save-trace", str(folder / TRACE), *replay_args(folder, meta),
                "--fractions", ",".join(f"{f:g}" for f in spec.fractions),
            ],
            run.progress,
        )  # fmt: skip
        seconds = time.monotonic() - started
    result = judge_replay(spec, firmware, board_spec.name, accepted, replayed, seconds, str(folder))
    return result, recorded.recording


def judge_replay(
    spec: SweepSpec, firmware: str, board: str, accepted: bool, replayed: Replayed, seconds: float,
    folder: str,
) -> SweepResult:  # fmt: skip
    facts = replayed.facts
    assert facts is not None, "replay() returns only complete replays"
    judge = Judge(facts, accepted=accepted, retry=spec.retry)
    points = []
    for facts_point in replayed.points:
        run = replayed.runs[facts_point.run]
        judged = judge.judge(facts_point, run)
        infra = infra_reason(run)
        verdict = PointVerdict.INFRA if infra else PointVerdict.SAFE if judged.safe else PointVerdict.UNSAFE
        repro = verdict is PointVerdict.UNSAFE
        points.append(
            SweptPoint(
                judged, verdict, infra,
                twin_repro(folder, judged) if repro else "",
                board_repro(facts, spec.update, judged) if repro else "",
            )
        )  # fmt: skip
    swept = tuple(points)
    return SweepResult(
        name=spec.name, mode=SweepMode.REPLAY, board=board, firmware=firmware, update=spec.update,
        accepted=accepted, seconds=seconds, runs=len(replayed.runs), folder=folder, points=swept,
        first_unsafe_log=first_unsafe_log(swept, replayed.runs),
    )  # fmt: skip
