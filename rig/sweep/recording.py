"""The start both kinds of sweep share: one board of a farm, its OTA session, the run's image
set, and the update run once without a cut (judged and stored like any OTA) — the trace a
replay cuts into on the lab, the timeline a time sweep calibrates on a real board."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rig.board import Board
from rig.builder import Services
from rig.farm import BoardSpec, Farm
from rig.imageset import ImageSet, prepare_image_set
from rig.keyfiles import private_folder
from rig.outcome import OtaResult
from rig.results.from_pytest import OutcomeRecorder
from rig.session import OtaSession
from rig.sweep.spec import SweepSpec, must_land


@dataclass(frozen=True)
class Recorded:
    board: Board
    session: OtaSession
    images: ImageSet
    accepted: bool  # the image set says the update must land (else: be refused)
    recording: OtaResult


@dataclass(frozen=True)
class SweepRun:
    """Where one `rig sweep` writes, records and reports."""

    out: Path  # the run's folder
    reports: Path
    run_id: str
    recorder: OutcomeRecorder
    progress: Callable[[int, int], None]
    status: Callable[[str], None]


@dataclass(frozen=True)
class Build:
    """A farm's own ESP-IDF build and its signing key (None: the lab's test app)."""

    base_image: Path | None = None
    signing_key: Path | None = None


def record_update(
    stack: ExitStack, farm: Farm, board_spec: BoardSpec, spec: SweepSpec, build: Build, seed: int,
    run: SweepRun,
) -> Recorded:  # fmt: skip
    """Open the board's session on `stack`, flash the known state, run the update once."""
    private = private_folder(run.reports, run.run_id)
    images = prepare_image_set(
        run.out / "images", base=build.base_image, key=build.signing_key,
        signing={board_spec.firmware.signing}, private=private, seed=seed, lab_image_size=spec.image_size,
    )  # fmt: skip
    accepted = must_land(images.entry(spec.update).expect, spec.update)
    artifacts = run.out / board_spec.name
    services = stack.enter_context(
        Services.open(farm, private, images, seed=seed, server_log=artifacts / "server.log")
    )
    proxy = stack.enter_context(services.proxy())
    board = stack.enter_context(Board(farm, board_spec, artifacts))
    session = stack.enter_context(
        services.session(board, proxy, recorder=functools.partial(run.recorder, board_spec.name))
    )
    run.status(f"{board_spec.name}: flashing the base image, then the update to {spec.update} once, uncut")
    session.prepare("base", **spec.agent)
    return Recorded(board, session, images, accepted, session.run(spec.update))
