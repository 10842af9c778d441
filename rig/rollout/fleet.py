"""The boards of a rollout over each transport: every board gets its own session (its own
OTA server or broker, fault proxy and trigger engine, so no board's traffic can stand in for
another's in a verdict), and each offer of the update is one judged OTA.

HTTPS: the rig is the fleet's update server. A device whose download was cut (power or
network) comes back on its old firmware without having judged the image, so the update is
offered again, as a server does to a device that checks in still on the old version.
MQTT: the job stays IN_PROGRESS across a cut and the AWS OTA agent resumes it by itself;
the device's own final job status is the execution's state.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

from rig.board import Board
from rig.builder import Services, mqtt_session
from rig.errors import InfraError, InputError
from rig.farm import Farm
from rig.imageset import ImageSet
from rig.logs import events as ev
from rig.mqtt import protocol as p
from rig.mqtt.images import AwsImages
from rig.mqtt.session import MqttSession
from rig.outcome import OtaRecord, OtaResult
from rig.phase import Final, Phase
from rig.results.model import OutcomeClass
from rig.rollout.engine import Execution
from rig.rollout.model import Attempt, BoardState
from rig.rollout.plan import Assignment
from rig.session import OtaSession

# How often a cut download is offered again before the board counts as FAILED.
MAX_OFFERS = 3
# An OTA is never given less than this to end, even close to the board's deadline: a wait
# that runs out there is the deadline's doing (TIMED_OUT), not a lost board.
MIN_WAIT_S = 5.0

Recorder = Callable[[str, OtaRecord], None]  # board, one judged OTA


def _attempt(result: OtaResult, t0: float) -> Attempt:
    return Attempt(
        start_s=result.started - t0, end_s=result.started + result.duration_s - t0, cut=result.cut or "none",
        verdict=result.outcome, summary=result.summary(),
    )  # fmt: skip


def _rolled_back(result: OtaResult) -> bool:
    """The new version booted at some point, yet the old one runs at the end."""
    return result.final is Final.OLD and result.new_version in result.timeline.versions()


def _timed_out(deadline: float, error: InfraError) -> Execution:
    """A wait that ran past the board's deadline is the policy's timeout; before it, a lost board."""
    if time.monotonic() < deadline:
        raise error
    return Execution(BoardState.TIMED_OUT, detail=str(error))


class HttpsFleet:
    """Boards whose rig agent takes `ota <url>` from the rig's HTTPS server."""

    def __init__(
        self, stack: ExitStack, farm: Farm, boards: Mapping[str, Board], images: ImageSet, release: str,
        private: Path, seeds: Mapping[str, int], recorder: Recorder,
    ) -> None:  # fmt: skip
        images.entry(release)  # an unknown release is bad input before any board is touched
        self.release = release
        self.sessions: dict[str, OtaSession] = {}
        for name, board in boards.items():
            services = stack.enter_context(
                Services.open(
                    farm, private, images, seed=seeds[name], server_log=board.artifacts / "server.log"
                )
            )
            proxy = stack.enter_context(services.proxy())
            self.sessions[name] = stack.enter_context(
                services.session(board, proxy, recorder=functools.partial(recorder, name))
            )

    def provision(self, assignment: Assignment) -> None:
        self.sessions[assignment.board].prepare("base")

    def update(self, assignment: Assignment, t0: float, deadline: float) -> Execution:
        session = self.sessions[assignment.board]
        cut = assignment.cut
        attempts: list[Attempt] = []
        while True:
            try:
                result = session.run(self.release, cut, timeout=max(MIN_WAIT_S, deadline - time.monotonic()))
            except InfraError as error:
                return _timed_out(deadline, error)
            attempts.append(_attempt(result, t0))
            state = self._state(session, result)
            version = result.final_ready.version if result.final_ready else ""
            if time.monotonic() > deadline and state is not BoardState.BRICKED:
                return Execution(BoardState.TIMED_OUT, version, tuple(attempts), "past the timeout per board")
            if state is not None:
                return Execution(state, version, tuple(attempts), result.summary())
            if len(attempts) == MAX_OFFERS:
                return Execution(
                    BoardState.FAILED, version, tuple(attempts), f"cut on all {MAX_OFFERS} offers"
                )
            cut = None  # offered again: the fault was this board's one mishap

    @staticmethod
    def _state(session: OtaSession, result: OtaResult) -> BoardState | None:
        """The execution's state after this offer; None when the download was cut before the
        device judged the image (offer it again)."""
        if result.outcome is OutcomeClass.BRICK or result.final_ready is None:
            return BoardState.BRICKED
        if result.final is Final.NEW:
            return BoardState.SUCCEEDED
        if any(isinstance(e, ev.RigOtaRejected) for e in session.board.console.events(result.mark)):
            return BoardState.REJECTED
        if _rolled_back(result):
            return BoardState.ROLLED_BACK
        if result.phase is Phase.DOWNLOAD:
            return None
        return BoardState.FAILED


class MqttFleet:
    """Boards running the AWS IoT OTA agent: each offer is a job on the board's thing."""

    def __init__(
        self, stack: ExitStack, farm: Farm, boards: Mapping[str, Board], images: AwsImages, release: str,
        seeds: Mapping[str, int], recorder: Recorder,
    ) -> None:  # fmt: skip
        try:
            self.file, accepted = images.case(release)
        except InputError as error:
            raise InputError(f"release {release!r}: {error}") from None
        self.expect = Final.NEW if accepted else Final.OLD
        self.sessions: dict[str, MqttSession] = {}
        for name, board in boards.items():
            self.sessions[name] = stack.enter_context(
                mqtt_session(
                    farm, board, images, board.artifacts, seed=seeds[name],
                    recorder=functools.partial(recorder, name),
                )
            )  # fmt: skip

    def provision(self, assignment: Assignment) -> None:
        self.sessions[assignment.board].prepare()

    def update(self, assignment: Assignment, t0: float, deadline: float) -> Execution:
        session = self.sessions[assignment.board]
        remaining = max(0.0, deadline - time.monotonic())
        try:
            result = session.run(
                self.file, assignment.cut, expect=self.expect, job_timeout=remaining,
                timeout=remaining + MIN_WAIT_S,
            )  # fmt: skip
        except InfraError as error:
            return _timed_out(deadline, error)
        job = session.jobs[-1]
        version = result.final_ready.version if result.final_ready else ""
        attempt = (_attempt(result, t0),)
        if result.outcome is OutcomeClass.BRICK or result.final_ready is None:
            return Execution(BoardState.BRICKED, version, attempt, result.summary())
        states = {
            p.JobStatus.SUCCEEDED: BoardState.SUCCEEDED,
            p.JobStatus.REJECTED: BoardState.REJECTED,
            p.JobStatus.TIMED_OUT: BoardState.TIMED_OUT,
            p.JobStatus.FAILED: BoardState.ROLLED_BACK if _rolled_back(result) else BoardState.FAILED,
        }
        return Execution(states.get(job.status, BoardState.FAILED), version, attempt,
                         f"job {job.status.value}; {result.summary()}")  # fmt: skip
