"""One board's OTA experiment: start an update, fire a fault at the cut point, let
the board recover, and judge what it did against what ESP-IDF says it must do.

`rig repro` and every scenario go through here. The session observes (console events,
fault firings, proxy and server records, the flash read-back); what is correct is
decided in `rig/verdicts.py`; the outcome is classed in `rig/outcome.py` and handed to
the session's recorder (the `ota` fixture records it on the test item).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from rig import verdicts
from rig.agents.base import UNKNOWN_STATE, Sayings
from rig.board import Board, Ready
from rig.console import ConsoleLine
from rig.cutspec import (
    AtFraction,
    Brownout,
    CutSpec,
    PowerCut,
    parse_cut,
)
from rig.cutter import Cutter
from rig.errors import InfraError, InputError, WindowMissed
from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.farm import NetworkSpec
from rig.images.mutants import Expect
from rig.imageset import ImageSet
from rig.logs import events as ev
from rig.logs.boots import fold_boots
from rig.net.bus import BodyProgress, Direction, Event, WireProgress
from rig.net.certs import CertBundle
from rig.net.netns import FaultPath
from rig.net.ota_server import OtaServer
from rig.net.proxy import FaultProxy
from rig.outcome import OtaRecord, OtaResult, ProblemKind
from rig.phase import FaultSeen, Final, Phase, before_supply_loss, phase_of
from rig.triggers import Trigger, TriggerEngine

# How long an app must stay up after `ready` to count as settled (no crash, no reset).
QUIET_S = 1.0
CUT_SWITCH_INTERVAL_S = 0.0005
# An OTA whose fault missed the targeted phase is retried from the known state this often.
WINDOW_TRIES = 3


@dataclass(frozen=True)
class Tuning:
    """How patient the session is with this farm's boards (a twin boots in ~60 ms)."""

    quiet_s: float = QUIET_S  # an app must stay up this long after `ready` to count as settled
    agent: Mapping[str, str] = field(default_factory=dict)  # `ota-config` defaults of every prepare


Recorder = Callable[[OtaRecord], None]


class OtaSession:
    """An OTA-capable board with the rig's server, proxy and trigger engine wired to it."""

    def __init__(
        self,
        board: Board,
        server: OtaServer,
        proxy: FaultProxy,
        certs: CertBundle,
        images: ImageSet,
        network: NetworkSpec,
        *,
        seed: int = 0,
        path: FaultPath | None = None,
        tuning: Tuning | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.board = board
        self.server = server
        self.proxy = proxy
        self.certs = certs
        self.images = images
        self.network = network
        self.seed = seed
        # Where the proxy listens when the rig owns the path to the board (dead-path faults).
        self.path = path
        self.tuning = tuning or Tuning()
        self._recorder = recorder
        self.engine = TriggerEngine()
        # What the board's firmware prints at the OTA's milestones (rig/agents/).
        self.milestones = board.agent.milestones
        self.cutter = Cutter(lambda: board.power, proxy, self.engine, path, seed=seed)
        # The rig process runs the TLS server, proxy pumps and console readers at once; with
        # CPython's default 5 ms GIL slice a log-triggered power cut waits behind them.
        sys.setswitchinterval(min(sys.getswitchinterval(), CUT_SWITCH_INTERVAL_S))
        self._image_size: int | None = None
        # The known state the scenario last prepared (what a retry restores), what the rig
        # knows each OTA slot holds (None: unknown, e.g. half written), the highest otadata
        # sequence number seen, and the resume point the device may use next.
        self._known: tuple[str, dict[str, str]] | None = None
        self._slots: dict[str, bytes | None] = {}
        self._top_seq = 0
        self._resume_limit = 0
        board.console.add_listener(self._on_line)
        server.bus.subscribe(self._on_bus_event)
        # A worker's server serves the set of the board in hand (a stock example's has its own).
        server.set_images(images.source())

    @property
    def says(self) -> Sayings:
        """What this board's firmware prints at an OTA's milestones (scenarios' log checks)."""
        return self.board.agent.says

    def close(self) -> None:
        self.cutter.close()
        self.engine.close()
        self.proxy.disarm()
        if self.path is not None and self.path.namespace is not None:
            self.path.namespace.heal()
        self.server.bus.unsubscribe(self._on_bus_event)
        self.board.console.remove_listener(self._on_line)

    # -- wiring ------------------------------------------------------------------------

    def _on_line(self, line: ConsoleLine) -> None:
        self.engine.on_log_line(self.board.name, line.text, line.t)
        if self.board.agent.reports_progress and isinstance(line.event, ev.RigOtaProgress | ev.RigOtaSaved):
            # "Power died at 40 % of the download" means 40 % written by the device: the
            # server's count runs ahead by whatever the sockets hold.
            self.engine.on_progress("device", None, line.event.bytes, self._image_size, line.t)

    def _on_bus_event(self, event: Event) -> None:
        if isinstance(event, WireProgress) and event.direction is Direction.DOWN:
            self.engine.on_wire(event.connection_id, event.total_bytes)
        elif isinstance(event, BodyProgress) and not self.board.agent.reports_progress:
            # Firmware that prints no progress (the stock examples): the server's count is the
            # nearest there is; it runs ahead of the device by what the sockets hold.
            self.engine.on_progress("device", None, event.body_bytes_sent, event.total)

    # -- set-up ------------------------------------------------------------------------

    def prepare(self, image: str = "base", **settings: str) -> Ready:
        """Flash `image` into a known state, pin the rig CA, apply the farm's agent settings
        and then `settings`; remembered, so a retried experiment restores the same state.

        Every other slot is erased as far as the largest image of the set reaches, so
        nothing an earlier test wrote can stand in for bytes an agent failed to write.
        """
        merged = {**self.tuning.agent, **settings}
        self._known = (image, merged)
        data = self.images.data(image)
        blank = max(self.images.largest_size(), len(data))
        ready = self.board.prepare(data, blank_bytes=blank)
        slots = self.board.table.ota_slots
        self._slots = {slots[0].name: data}
        self._slots |= {
            slot.name: b"\xff" * min(slot.size, -(-blank // 0x1000) * 0x1000) for slot in slots[1:]
        }
        # Erased otadata; the first boot of ota_0 writes seq 1 (bootloader_utility.c:
        # bootloader_utility_get_selected_boot_partition), any switch then raises it.
        self._top_seq = 1
        self._resume_limit = 0
        self.board.agent.setup(self.board, self.certs, merged)
        return ready

    def restore(self) -> Ready:
        """Back to the known state the scenario last prepared."""
        if self._known is None:
            raise InputError(f"board {self.board.name}: nothing prepared yet, so nothing to restore")
        image, settings = self._known
        return self.prepare(image, **settings)

    def pin(self, certs: CertBundle) -> None:
        """Make the board trust `certs` (PROTOCOL.md `cert`)."""
        self.board.command("cert " + base64.b64encode(certs.ca_der()).decode())

    def configure(self, **settings: str) -> None:
        self.board.command("ota-config " + " ".join(f"{k}={v}" for k, v in settings.items()))

    def add_image(
        self,
        name: str,
        data: bytes,
        *,
        like: str,
        change: str,
        expect: Expect | None = None,
        logs: tuple[str, ...] | None = None,
    ) -> str:
        """Serve `data` as image `name`, judged like the manifest's `like` entry unless `expect`
        / `logs` say otherwise: images that depend on the board (its slot size, a self-test
        window) are derived from the run's build by the scenario. The file goes to the
        board's artifacts."""
        path = (self.board.artifacts / f"{name}.bin").resolve()
        path.write_bytes(data)
        entry = replace(
            self.images.manifest.entry(like), name=name, file=str(path), size=len(data), change=change,
            sha256=hashlib.sha256(data).hexdigest(),
        )  # fmt: skip
        entry = replace(entry, expect=expect or entry.expect, logs=entry.logs if logs is None else logs)
        manifest = replace(self.images.manifest, entries=(*self.images.manifest.entries, entry))
        self.images = ImageSet(self.images.directory, manifest, self.images.key)
        self.server.set_images(self.images.source())
        return name

    def add_behaviour(self, name: str, like: str, behaviour: Behaviour, param: int, change: str) -> str:
        """`like` re-stamped with another first-boot behaviour (and re-signed): e.g. a healthy
        self-test that takes long enough to cut power inside it."""
        data = patch_image(
            self.images.data(like), behaviour=behaviour, behaviour_param=param, key=self.images.key
        )
        return self.add_image(name, data, like=like, change=change)

    def url(self, image: str, *, via_proxy: bool = True, redirects: int = 0) -> str:
        host = self.network.board_facing_address
        if via_proxy and self.path is not None and self.path.namespace is not None:
            host = self.path.namespace.address
        port = self.proxy.port if via_proxy else self.server.port
        return self.server.url_for(image, redirects=redirects, host=host, port=port)

    def arm(self, cut: CutSpec) -> Trigger | None:
        """Arm `cut` for the next OTA (see `Cutter.arm`)."""
        return self.cutter.arm(cut)

    # -- the experiment ------------------------------------------------------------------

    def start_ota(self, image: str, *, via_proxy: bool = True, redirects: int = 0) -> int:
        """Hand the board the image's URL its firmware's way; returns the console mark the
        OTA's lines come after."""
        url = self.url(image, via_proxy=via_proxy, redirects=redirects)
        mark = self.board.agent.start_ota(self.board, url)
        self.engine.on_event("ota_started")  # `After`/`OnEvent` cuts can count from here
        return mark

    def settle(self, since: int, timeout: float, quiet_s: float | None = None) -> Ready | None:
        """The board's `ready` once it stays up: no reset for `quiet_s` (default the farm's
        tuning) after it and no power action still pending. Reboots (rollbacks, crash loops)
        are waited through; None if no app comes up within `timeout`."""
        quiet = self.tuning.quiet_s if quiet_s is None else quiet_s
        console = self.board.console
        deadline = time.monotonic() + timeout
        position = since
        while True:
            ready = self.board.wait_ready(max(0.0, deadline - time.monotonic()), position)
            if ready is None:
                return None
            position = ready.line_index + 1
            quiet_until = time.monotonic() + quiet
            rebooted = None
            while (
                rebooted is None
                and time.monotonic() < deadline
                and (time.monotonic() < quiet_until or self.cutter.pending())
            ):
                rebooted = console.wait_event(ev.RomReset, 0.1, position)
            if rebooted is None:
                return ready

    def run(
        self,
        image: str,
        cut: str | CutSpec | None = None,
        *,
        expect: Final | None = None,
        window: Phase | frozenset[Phase] | None = None,
        timeout: float = 60.0,
        via_proxy: bool = True,
        redirects: int = 0,
    ) -> OtaResult:
        """One judged OTA of `image` (optionally with the fault `cut`), handed to the recorder.

        `expect` names the correct end state where the scenario changed the device's
        starting point (a wrong pinned certificate, an eFuse already burnt) instead of the
        manifest; every other check still applies.

        `window` names the phase(s) the fault targets. A fault that lands outside it is
        still judged for where it did land (a wrong end state there is a FAIL), but it is no
        verdict on the window: the known state is restored and the OTA tried again, up to
        WINDOW_TRIES times, with a byte or fraction trigger moved earlier when the fault
        landed late. Still outside: the result is recorded INCONCLUSIVE and `WindowMissed`
        raised.
        """
        spec = parse_cut(cut) if isinstance(cut, str) else cut
        targets = frozenset({window}) if isinstance(window, Phase) else window
        for attempt in range(1, WINDOW_TRIES + 1):
            result = self._experiment(image, spec, expect, timeout, via_proxy, redirects)
            if targets is None or result.phase in targets or not result.passed:
                self._record(result)
                return result
            if attempt == WINDOW_TRIES:
                wanted = " or ".join(sorted(p.value for p in targets))
                reason = (
                    f"{image} with cut {cut if isinstance(cut, str) else result.cut}: the fault landed "
                    f"{result.phase.value} on {WINDOW_TRIES} tries (last cut {result.cut}); "
                    f"this scenario targets {wanted}"
                )
                result.add(ProblemKind.WINDOW_MISSED, reason)
                self._record(result)
                raise WindowMissed(reason)
            self.restore()
            if spec is not None and result.phase.order > max(p.order for p in targets):
                spec = spec.earlier(0.1 * attempt)
        raise AssertionError("unreachable")

    def ok(
        self,
        image: str,
        cut: str | CutSpec | None = None,
        *,
        expect: Final | None = None,
        window: Phase | frozenset[Phase] | None = None,
        timeout: float = 60.0,
    ) -> OtaResult:
        """`run` that raises `AssertionError` (a firmware failure) unless the device did the
        correct thing."""
        result = self.run(image, cut, expect=expect, window=window, timeout=timeout)
        assert result.passed, result.summary()
        return result

    def _record(self, result: OtaResult) -> None:
        if self._recorder is not None:
            self._recorder(result.record())

    def _experiment(
        self, image: str, cut: CutSpec | None, expect: Final | None, timeout: float, via_proxy: bool,
        redirects: int,
    ) -> OtaResult:  # fmt: skip
        """One OTA with its fault, recovery, read-back and judgement."""
        entry = self.images.entry(image)
        rollback = self.board.spec.firmware.rollback
        started = time.monotonic()
        start_status = self.board.status()
        old_version = start_status.get("version", "?")
        running = start_status.get("running", "?")
        target = self._next_slot(running)
        self._image_size = entry.path.stat().st_size
        firings_before = len(self.engine.firings)
        records_before = {record.id for record in self.proxy.records}
        served_before = len(self.server.records)
        trigger = self.arm(cut) if cut is not None else None
        try:
            mark = self.start_ota(image, via_proxy=via_proxy, redirects=redirects)
            console = self.board.console
            ended = console.wait_event(self.milestones.ended, timeout, mark)
            if ended is None:
                raise InfraError(
                    f"board {self.board.name}: OTA of {image} neither ended nor reset within {timeout:.0f} s"
                )
            if self.path is not None and self.path.namespace is not None:
                self.path.namespace.heal()  # a dead path lasts until the OTA ended
            ready = self._gave_up(mark) if self.milestones.gave_up(ended.event) else None
            if ready is None:
                ready = self.settle(mark, timeout)
            unconfirmed = ready is not None and (
                ready.state == "PENDING_VERIFY" or (ready.state == UNKNOWN_STATE and rollback)
            )  # a firmware that does not say (a stock example) may be running unconfirmed
            if unconfirmed:
                # A new image that never confirms keeps running until the next reset; ESP-IDF
                # then rolls it back. Give it that reset, as the field eventually will.
                ready = self.settle(self.board.reset(), timeout)
            self.engine.wait_idle(timeout=5.0)
            keep = self._expected_contents(running, target, entry.expect)
            state = self.board.read_state([(offset, len(data)) for offset, data in keep.values()])
            after_read = self.board.reset()
            final_ready = self.settle(after_read, timeout) or ready
            events = console.events(mark)
            firings = self.engine.firings[firings_before:]
            t_fault = min((f.t_action_start for f in firings), default=None)
            proxy_hit = any(r.faults for r in self.proxy.records if r.id not in records_before)
            supply = bool(firings) and _cuts_supply(cut)
            # A log-triggered network fault fires through the engine, then acts in the proxy.
            network = proxy_hit or (bool(firings) and not supply)
            fault = FaultSeen(power=supply, network=network, t_fired=t_fault)
            top_seq = state.top_seq
            phase = phase_of(events, fault, self.milestones, switched_in_otadata=top_seq > self._top_seq)
            served = self.server.records[served_before:]
            result = OtaResult(
                board=self.board.name,
                image=image,
                expect=entry.expect,
                old_version=old_version,
                new_version=entry.version,
                cut=cut.text if cut else None,
                fault=cut.kind.value if cut else "none",
                cut_point=_fraction_of(cut),
                firings=list(firings),
                phase=phase,
                acceptable=(
                    frozenset({expect}) if expect is not None
                    else verdicts.acceptable_outcomes(entry.expect, phase, rollback)
                ),
                final=None,
                final_ready=final_ready,
                otadata=state.otadata,
                timeline=fold_boots(events, final=True),
                bytes_served=sum(r.body_bytes for r in served),
                duration_s=time.monotonic() - started,
                started=started,
                time_to_recover_s=self._recovery_time(ready, t_fault),
                mark=mark,
                readback_mark=after_read,
            )  # fmt: skip
            verdicts.judge_end_state(result, scenario_end=expect is not None)
            if final_ready is not None:
                last_boot = fold_boots(console.events(after_read), final=True)
                verdicts.judge_sources(result, last_boot, state.otadata, self.board.table, final_ready)
            if phase is Phase.NO_FAULT and expect is None:
                proof = entry.proof_patterns(rollback=rollback, firmware=self.board.agent.proof_lines)
                verdicts.judge_proof(result, [line.text for line in console.lines(mark)], proof)
            device_events = before_supply_loss(events, t_fault) if supply and t_fault is not None else events
            gets = [r for r in served if r.method == "GET"]
            ranged = gets and all(r.status == 206 for r in gets)
            verdicts.judge_confirm_order(result, events, self.milestones)
            verdicts.judge_untouched(result, state.md5, keep)
            verdicts.judge_resume(
                result, device_events, resume_limit=self._resume_limit, undisturbed=not (supply or network),
                ranged_body_bytes=sum(r.body_bytes for r in gets) if ranged else None, size=self._image_size,
            )  # fmt: skip
            self._remember(result, target, device_events, top_seq)
            return result
        finally:
            # A retried experiment arms the same cut again: this one is spent either way.
            if trigger is not None:
                self.engine.remove(trigger)
            self.proxy.disarm()  # a proxy fault that never fired must not hit the next OTA

    def _next_slot(self, running: str) -> str | None:
        """esp_ota_get_next_update_partition(): the OTA slot after the running one, wrapping."""
        names = [slot.name for slot in self.board.table.ota_slots]
        if running not in names:
            return names[0] if names else None
        return names[(names.index(running) + 1) % len(names)]

    def _expected_contents(
        self, running: str, target: str | None, expect: str
    ) -> dict[str, tuple[int, bytes]]:
        """Slots this OTA must leave as they are: the running slot always (nothing writes the
        app that runs), the target too when the image must be refused before
        `esp_ota_write()`. Only slots whose contents the rig knows are checked."""
        refused_early = expect in verdicts.REFUSED_BEFORE_WRITE
        keep = [running] + ([target] if target is not None and refused_early else [])
        offsets = {slot.name: slot.offset for slot in self.board.table.ota_slots}
        known: dict[str, tuple[int, bytes]] = {}
        for name in keep:
            data = self._slots.get(name)
            if data is not None and name in offsets:
                known[name] = (offsets[name], data)
        return known

    def _remember(
        self, result: OtaResult, target: str | None, device_events: list[ev.Event], top_seq: int
    ) -> None:
        """Carry what this OTA left behind into the next one's checks."""
        self._top_seq = max(self._top_seq, top_seq)
        if target is not None:
            if any(self.milestones.complete(e) for e in device_events):
                self._slots[target] = self.images.data(result.image)
            elif not (result.expect in verdicts.REFUSED_BEFORE_WRITE and result.passed):
                self._slots[target] = None  # partly written, or refused somewhere the rig cannot see
        self._resume_limit = verdicts.resume_limit_after(device_events)

    def _recovery_time(self, ready: Ready | None, t_fault: float | None) -> float | None:
        """Fault fired → the app's `ready` again (None without a fault or a `ready` line)."""
        if ready is None or t_fault is None:
            return None
        lines = self.board.console.lines(ready.line_index)
        if not lines or not self.board.agent.is_ready(lines[0].event):
            return None
        return max(0.0, lines[0].t - t_fault)

    def _gave_up(self, mark: int) -> Ready | None:
        """The agent ended the OTA without a switch: the old app is still up, unless a
        power action is still pending or a reset follows within the quiet window."""
        reset_follows = self.board.console.wait_event(ev.RomReset, self.tuning.quiet_s, mark)
        if self.cutter.pending() or reset_follows is not None:
            return None
        status = self.board.status()
        return Ready(
            status.get("version", "?"),
            status.get("running", "?"),
            status.get("state", "?"),
            self.board.console.mark() - 1,
        )


def _fraction_of(cut: CutSpec | None) -> float | None:
    """The cut point as a fraction of the image, for cuts given as one."""
    return cut.point.fraction if cut is not None and isinstance(cut.point, AtFraction) else None


def _cuts_supply(cut: CutSpec | None) -> bool:
    return isinstance(cut, PowerCut | Brownout)
