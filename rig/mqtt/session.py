"""One board's AWS IoT OTA experiment: queue a job, fault the stream, the link, the broker or
the supply at the cut point, let the device finish on its own, and judge it from three
sources — the job status it reported, its serial log (ESP-IDF's and the AWS OTA library's
own lines; no rig agent) and the otadata read back with esptool.

The device drives the update itself, so "done" is the job reaching a terminal status and
the device being back online (asking for its next job) with no reset pending.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rig import verdicts
from rig.board import Board, Ready
from rig.console import ConsoleLine
from rig.cutspec import AtBlock, AtBytes, AtFraction, CutSpec, MqttAction, MqttFault, parse_cut
from rig.cutter import Cutter
from rig.errors import InfraError, InputError, RigError
from rig.logs import events as ev
from rig.logs.boots import fold_boots
from rig.mqtt import protocol as p
from rig.mqtt.broker import Mosquitto
from rig.mqtt.images import AwsImages, OtaFile
from rig.mqtt.pki import Identity
from rig.mqtt.service import Job, JobsService, Progress, StreamFault, kick
from rig.net.faults import Refuse, RefuseMode
from rig.net.proxy import FaultProxy
from rig.outcome import OtaRecord, OtaResult
from rig.phase import Final, Phase
from rig.triggers import BLOCKS, Trigger, TriggerEngine

# After its last status a device may still reset (otaPal_ResetDevice() waits 0.5 s first);
# it has settled once it asked for its next job after its last boot and stayed up this long
# (a twin boots and connects in ~0.1 s; a real board takes seconds).
SETTLE_QUIET_S = 2.0
LAB_SETTLE_QUIET_S = 0.7
ONLINE_TIMEOUT_S = 30.0
SIGNATURE_CHECKED = "Received entire update and validated the signature."
SUCCEEDED = p.JobStatus.SUCCEEDED.value
FAILED = p.JobStatus.FAILED.value
REJECTED = p.JobStatus.REJECTED.value
CANCELED = p.JobStatus.CANCELED.value
REFUSED = frozenset({FAILED, REJECTED})

Recorder = Callable[[OtaRecord], None]


@dataclass
class BrokerLink:
    """How the rig reaches the broker a board's firmware talks to: the service client, the
    broker process it may own (embedded), and the fault proxy between board and broker."""

    service: JobsService
    ca: str
    identity: Identity  # the rig's own client identity (kicks use it)
    host: str
    port: int  # the broker itself (not the proxy)
    broker: Mosquitto | None = None
    proxy: FaultProxy | None = None


@dataclass
class _Run:
    jobs: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a fault the rig could not carry out


class MqttSession:
    """An AWS IoT board with the rig's Jobs/Streams service, broker and cutter wired to it."""

    def __init__(
        self, board: Board, link: BrokerLink, images: AwsImages, *, seed: int = 0,
        recorder: Recorder | None = None, block_size: int = p.BLOCK_SIZE, quiet_s: float = SETTLE_QUIET_S,
    ) -> None:  # fmt: skip
        self.board = board
        self.link = link
        self.service = link.service
        self.images = images
        self.block_size = block_size
        self.quiet_s = quiet_s
        self._recorder = recorder
        self.engine = TriggerEngine()
        self.cutter = Cutter(lambda: board.power, link.proxy, self.engine, None, seed=seed)
        self.service.on_progress = self._on_progress
        self.service.on_fault = self._on_stream_fault
        self._run = _Run()
        self._version = images.base_version
        self._running_slot = board.table.ota_slots[0].name
        self._slot_data: dict[str, bytes] = {}
        self._actions: list[threading.Thread] = []
        board.console.add_listener(self._on_line)

    def _on_line(self, line: ConsoleLine) -> None:
        self.engine.on_log_line(self.board.name, line.text, line.t)

    def close(self) -> None:
        self.board.console.remove_listener(self._on_line)
        for action in self._actions:
            action.join(timeout=10)
        self.engine.close()
        self.cutter.close()

    @property
    def jobs(self) -> list[Job]:
        """The jobs of the last experiment, in the order they were queued."""
        return list(self._run.jobs)

    # -- set-up ---------------------------------------------------------------------------

    def prepare(self, data: bytes | None = None, version: str | None = None) -> None:
        """Flash the base image (or `data` of `version`) into a known state and wait until
        the device is online: connected and asking for its next job."""
        app = self.images.base if data is None else data
        blank = max(len(app), 512 * 1024)
        self.board.flash_known_state(app, blank_bytes=blank)
        mark = self.board.reset()
        if not self.settle(mark, ONLINE_TIMEOUT_S, reset=True):
            raise InfraError(
                f"board {self.board.name}: its firmware did not come online on the MQTT broker "
                f"({self.link.host}:{self.link.port}) within {ONLINE_TIMEOUT_S:.0f} s of a reset"
            )
        self._version = self.images.base_version if version is None else version
        self._running_slot = self.board.table.ota_slots[0].name
        self._slot_data = {self._running_slot: app}

    def settle(self, since: int, timeout: float, *, reset: bool = False) -> bool:
        """The device rebooted as often as it wanted after console mark `since` (at least
        once when the rig `reset` it), asked for its next job after the last of those boots
        (it was online before the mark), and it stayed quiet (no reset, request, job status
        or console line) for `quiet_s`, with no power action pending."""
        console = self.board.console
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = console.lines(since)
            resets = [line.t for line in lines if isinstance(line.event, ev.RomReset)]
            asked = [t for t in self.service.request_times if not resets or t > resets[-1]]
            # Quiet means no reset, request, job status or console line: a device still printing
            # (an agent shutting down after its last status) is not done, and the lines it
            # printed before a status may reach the host after the status (UART vs TCP).
            statuses = [t for job in self._run.jobs for t, _ in job.updates[-1:]]
            events = [*resets[-1:], *asked[-1:], *statuses, *(line.t for line in lines[-1:])]
            calm_since = max(events, default=0.0)
            quiet = time.monotonic() - calm_since >= self.quiet_s
            if (asked if resets else not reset) and quiet and not self.cutter.pending():
                return True
            time.sleep(0.05)
        return False

    # -- the experiment ---------------------------------------------------------------------

    def run(
        self,
        file: OtaFile,
        cut: str | CutSpec | Sequence[str | CutSpec] | None = None,
        *,
        then: OtaFile | None = None,
        expect: Final = Final.NEW,
        statuses: Sequence[frozenset[str]] | None = None,
        timeout: float = 90.0,
        job_timeout: float | None = None,
    ) -> OtaResult:
        """One judged AWS IoT OTA of `file` (with `then` queued behind it as a second job).

        `expect` is the correct end firmware (NEW: the last job's file), `statuses` the
        correct final status of each job (default: SUCCEEDED when NEW, FAILED or REJECTED
        when OLD, and CANCELED for a job a `cancel` cut cancels).

        `job_timeout` is the jobs' in-progress timer (AWS IoT `timeoutConfig`): a job still
        running that long after it was queued ends TIMED_OUT, and the device, told of no job,
        must then be back on its old firmware (the correct end whatever `expect` said)."""
        cuts: list[str | CutSpec] = []
        if isinstance(cut, str) or (cut is not None and not isinstance(cut, Sequence)):
            cuts = [cut]
        elif cut is not None:
            cuts = list(cut)
        specs = [parse_cut(c) if isinstance(c, str) else c for c in cuts]
        files = [file] if then is None else [file, then]
        result = self._experiment(files, specs, expect, statuses, timeout, job_timeout)
        if self._recorder is not None:
            self._recorder(result.record())
        return result

    def ok(
        self,
        file: OtaFile,
        cut: str | CutSpec | Sequence[str | CutSpec] | None = None,
        *,
        then: OtaFile | None = None,
        expect: Final = Final.NEW,
        statuses: Sequence[frozenset[str]] | None = None,
        timeout: float = 90.0,
    ) -> OtaResult:
        """`run` that raises `AssertionError` (a firmware failure) unless the device did the
        correct thing."""
        result = self.run(file, cut, then=then, expect=expect, statuses=statuses, timeout=timeout)
        assert result.passed, result.summary()
        return result

    def _experiment(
        self, files: list[OtaFile], specs: list[CutSpec], expect: Final,
        statuses: Sequence[frozenset[str]] | None, timeout: float, job_timeout: float | None,
    ) -> OtaResult:  # fmt: skip
        board, service = self.board, self.service
        started = time.monotonic()
        old_version, old_slot = self._version, self._running_slot
        new_file = files[-1]
        console = board.console
        mark = console.mark()
        self._run = _Run()
        firings_before = len(self.engine.firings)
        fired_before = len(service.fired)
        triggers: list[Trigger] = []
        timers: list[threading.Timer] = []
        try:
            first = service.create_job(files[0].data, [files[0].entry], block_size=self.block_size)
            self._run.jobs.append(first)
            for spec in specs:
                trigger = self._arm(spec, first)
                if trigger is not None:
                    triggers.append(trigger)
            for extra in files[1:]:
                self._run.jobs.append(
                    service.create_job(extra.data, [extra.entry], block_size=self.block_size)
                )
            if job_timeout is not None:
                timers = [threading.Timer(job_timeout, service.time_out, (job,)) for job in self._run.jobs]
                for timer in timers:
                    timer.daemon = True
                    timer.start()
            for job in self._run.jobs:
                service.wait_status(
                    job, lambda j: j.status.terminal, max(0.0, started + timeout - time.monotonic())
                )
            self.engine.wait_idle(timeout=5.0)
            for action in self._actions:
                action.join(timeout=30)
            if self._run.errors:
                raise InfraError(
                    f"board {board.name}: the rig could not carry out the fault: {self._run.errors[0]}"
                )
            if self.link.proxy is not None:
                self.link.proxy.disarm()
            settled = self.settle(mark, timeout)
            slots = {s.name: s for s in board.table.ota_slots}
            regions = [(s.offset, min(s.size, 512 * 1024)) for s in slots.values()]
            state = board.read_state(regions)
            after_read = board.reset()
            self.settle(after_read, timeout, reset=True)
            last_boot = fold_boots(console.events(after_read), final=True)
            final_boot = last_boot[-1] if len(last_boot) else None
            ready = None
            if final_boot is not None and final_boot.app_version and final_boot.slot_name and settled:
                ready = Ready(final_boot.app_version, final_boot.slot_name, "", after_read)
            firings = self.engine.firings[firings_before:]
            stream_faults = service.fired[fired_before:]
            t_fault = min([f.t_action_start for f in firings] + [t for t, _ in stream_faults], default=None)
            events = console.events(mark)
            timed_out = any(job.status is p.JobStatus.TIMED_OUT for job in self._run.jobs)
            correct = Final.OLD if timed_out else expect  # a withdrawn job leaves the old firmware
            result = OtaResult(
                board=board.name, image=new_file.name, expect="accept" if expect is Final.NEW else "reject",
                old_version=old_version, new_version=new_file.version,
                cut=" + ".join(s.text for s in specs) or None,
                fault=specs[0].kind.value if specs else "none", cut_point=None, firings=list(firings),
                phase=self._phase(t_fault, mark), acceptable=frozenset({correct}), final=None,
                final_ready=ready, otadata=state.otadata, timeline=fold_boots(events, final=True),
                bytes_served=sum(j.bytes_sent for j in self._run.jobs), duration_s=time.monotonic() - started,
                mark=mark, readback_mark=after_read, started=started, time_to_recover_s=None,
            )  # fmt: skip
            verdicts.judge_end_state(result, scenario_end=True)
            if ready is not None:
                verdicts.judge_sources(result, last_boot, state.otadata, board.table, ready)
            verdicts.judge_job(result, [
                (job.job_id, job.status.value if job.status.terminal else None, allowed)
                for job, allowed in zip(self._run.jobs, self._allowed(specs, correct, statuses), strict=True)
                if job.status is not p.JobStatus.TIMED_OUT
            ])  # fmt: skip
            self._check_flash(result, state.md5, old_slot, correct)
            self._remember(result, new_file)
            return result
        finally:
            for timer in timers:
                timer.cancel()
            for trigger in triggers:
                self.engine.remove(trigger)
            service.faults.clear()
            service.unstall()

    def _check_infrastructure(self) -> None:
        """A broker that died or a service client that lost it is the rig's failure: the
        device's unfinished job must not be judged."""
        broker = self.link.broker
        if broker is not None and not broker.running and not any(t.is_alive() for t in self._actions):
            raise InfraError(f"the MQTT broker on {self.link.host}:{self.link.port} stopped during the OTA "
                             f"(log: {broker.log_path})")  # fmt: skip
        if not self.service.wait_connected(10.0):
            raise InfraError(
                f"the rig's Jobs/Streams client lost the broker {self.link.host}:{self.link.port}"
            )

    def _allowed(
        self, specs: list[CutSpec], expect: Final, statuses: Sequence[frozenset[str]] | None
    ) -> list[frozenset[str]]:
        if statuses is not None:
            if len(statuses) != len(self._run.jobs):
                raise InputError(f"{len(statuses)} job statuses given for {len(self._run.jobs)} jobs")
            return list(statuses)
        cancels = any(isinstance(s, MqttFault) and s.action is MqttAction.CANCEL for s in specs)
        last = frozenset({SUCCEEDED}) if expect is Final.NEW else REFUSED
        if len(self._run.jobs) == 1:
            return [frozenset({CANCELED}) if cancels else last]
        return [frozenset({CANCELED}) if cancels else frozenset({SUCCEEDED}), last]

    def _check_flash(
        self, result: OtaResult, md5: dict[tuple[int, int], str], old_slot: str, expect: Final
    ) -> None:
        """The old image erased after an accepted update; untouched after a refused one."""
        table = {s.name: s for s in self.board.table.ota_slots}
        part = table[old_slot]
        region = (part.offset, min(part.size, 512 * 1024))
        digest = md5.get(region)
        if result.final is Final.NEW and expect is Final.NEW:
            erased = hashlib.md5(b"\xff" * region[1]).hexdigest()
            verdicts.judge_old_image_erased(result, old_slot, digest, erased)
        elif result.final is Final.OLD and old_slot in self._slot_data and digest is not None:
            data = self._slot_data[old_slot]
            keep = {old_slot: (part.offset, data + b"\xff" * (region[1] - len(data)))}
            verdicts.judge_untouched(result, {region: digest}, keep)

    def _remember(self, result: OtaResult, new_file: OtaFile) -> None:
        if result.final_ready is not None:
            self._version = result.final_ready.version
            self._running_slot = result.final_ready.running
            if result.final is Final.NEW:
                self._slot_data = {self._running_slot: new_file.data}

    def _phase(self, t_fault: float | None, mark: int) -> Phase:
        """Where the first fault landed on the device's own timeline: before the signature
        check closed the file (download), before the job SUCCEEDED (first boot), after."""
        if t_fault is None:
            return Phase.NO_FAULT
        lines = self.board.console.lines(mark)
        closed = next((line.t for line in lines if SIGNATURE_CHECKED in line.text), None)
        if closed is None or t_fault < closed:
            return Phase.DOWNLOAD
        succeeded = [t for job in self._run.jobs for t, u in job.updates if u.status is p.JobStatus.SUCCEEDED]
        return Phase.FIRST_BOOT if not succeeded or t_fault < min(succeeded) else Phase.CONFIRMED

    # -- faults ---------------------------------------------------------------------------------

    def _arm(self, spec: CutSpec, job: Job) -> Trigger | None:
        """Stream faults go to the service at their block; everything else fires through
        the engine (power, brownout and proxy cuts via the cutter)."""
        if not isinstance(spec, MqttFault):
            return self.cutter.arm(spec)
        if spec.action is MqttAction.RESTART and self.link.broker is None:
            raise InputError(
                f"--cut {spec.text}: the rig does not run this farm's broker (mqtt.broker: external)"
            )
        if spec.action is MqttAction.OUTAGE and self.link.proxy is None:
            raise InputError(f"--cut {spec.text}: no fault proxy between this board and its broker")
        point = spec.point
        if isinstance(point, AtBlock):
            if point.index >= p.block_count(len(job.data), p.MIN_BLOCK_SIZE):
                raise InputError(f"--cut {spec.text}: the {len(job.data)}-byte file has fewer blocks")
            self.service.faults.append(StreamFault(spec.action, point.index, seconds=spec.seconds))
            return None
        if isinstance(point, AtBytes | AtFraction):
            share = point.fraction if isinstance(point, AtFraction) else point.count / max(len(job.data), 1)
            self.service.faults.append(StreamFault(spec.action, None, min(share, 1.0), spec.seconds))
            return None
        return self.engine.add(
            spec.trigger(lambda: self._on_stream_fault(StreamFault(spec.action, None, None, spec.seconds)))
        )

    def _on_progress(self, progress: Progress) -> None:
        self.engine.on_progress("device", None, progress.bytes_done, progress.size)
        self.engine.on_progress(BLOCKS, None, progress.blocks_done, progress.total_blocks)

    def _on_stream_fault(self, fault: StreamFault) -> None:
        """Faults that act beyond the stream run on their own thread: the service's MQTT
        thread must keep serving while the broker kicks, cancels or restarts."""
        actions: dict[MqttAction, Callable[[], None]] = {
            MqttAction.KICK: self._kick,
            MqttAction.CANCEL: self._cancel,
            MqttAction.RESTART: self._restart,
            MqttAction.OUTAGE: lambda: self._outage(fault.seconds or 1.0),
        }
        action = actions.get(fault.kind)
        if action is None:
            return

        def carry_out() -> None:
            try:
                action()
            except RigError as error:  # a kick the broker refused, a restart that failed
                self._run.errors.append(f"{fault.kind.value}: {error}")

        thread = threading.Thread(target=carry_out, name=f"mqtt-{fault.kind.value}", daemon=True)
        self._actions.append(thread)
        thread.start()

    def _kick(self) -> None:
        thing = self.board.spec.mqtt.thing if self.board.spec.mqtt else self.board.name
        kick(self.link.host, self.link.port, self.link.ca, self.link.identity, thing)

    def _cancel(self) -> None:
        job = next((j for j in self._run.jobs if not j.status.terminal), None)
        if job is not None:
            self.service.cancel(job)

    def _restart(self) -> None:
        assert self.link.broker is not None, "checked when the cut was armed"
        self.link.broker.restart()
        self.service.wait_connected(10.0)

    def _outage(self, seconds: float) -> None:
        assert self.link.proxy is not None, "checked when the cut was armed"
        self.link.proxy.arm(Refuse(seconds=seconds, mode=RefuseMode.RST))
