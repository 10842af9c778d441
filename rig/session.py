"""One board's OTA experiment: start an update, fire a fault at the cut point, let
the board recover, and judge what it did against what ESP-IDF says it must do.

`rig repro` and every scenario go through here, so "what is the correct outcome of
a power cut at this point" is decided in exactly one place (`acceptable_outcomes`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rig.board import Board, FlashState, Ready
from rig.cutspec import CutKind, CutSpec, NetFault, On
from rig.errors import InfraError, InputError
from rig.esp.otadata import OtaData
from rig.farm import NetworkSpec
from rig.imageset import ImageSet
from rig.logs.boots import BootTimeline, fold_boots
from rig.logs.parser import parse_text
from rig.net.certs import CertBundle
from rig.net.events import Direction, Event, WireProgress
from rig.net.fault_proxy import Close, Cut, FaultProxy, Position, Stall, Throttle, Unit
from rig.net.netns import FaultPath, NetNamespace
from rig.net.ota_server import OtaServer, RequestRecord
from rig.phase import FaultSeen, Final, Phase, acceptable_outcomes, lines_before_supply_loss, phase_of
from rig.triggers import Firing, Trigger, TriggerEngine
from rig.verdicts import expect_boot, otadata_consistent

ENDED = r"rig_agent: ota (failed|rejected|complete)"
ROM_RESET = r"^rst:0x[0-9a-f]+ \("
# How long an app must stay up after `ready` to count as settled (no crash, no reset).
QUIET_S = 1.0
GAVE_UP = re.compile(r"rig_agent: ota (failed|rejected)")
CUT_SWITCH_INTERVAL_S = 0.0005
DEVICE_BYTES = re.compile(r"rig_agent: ota (?:saved|progress) bytes=(\d+)")
SAVED = re.compile(r"rig_agent: ota saved bytes=(\d+)")
BEGIN = re.compile(r"rig_agent: ota begin url=\S+ resume_from=(\d+)")
COMPLETE = "rig_agent: ota complete"
SELFTEST_PASSED = "rig_agent: selftest passed"
CONFIRMED = "rig_agent: app confirmed valid"
# PROTOCOL.md §3: progress is saved each time the written count crosses a 4 KiB boundary. The
# last `ota saved` line may die in the UART FIFO with the supply, so a resume may start one
# save step past the last one the rig saw, never further.
SAVE_STEP = 4096
# Expectations under which the device must refuse the image before `esp_ota_write()`.
REFUSED_BEFORE_WRITE = frozenset(
    {"reject_before_write", "reject_by_version_check", "reject_by_anti_rollback"}
)


@dataclass
class OtaResult:
    """Everything one OTA experiment observed, and whether the device was correct."""

    board: str
    image: str
    expect: str
    old_version: str
    new_version: str
    cut: str | None
    firings: list[Firing]
    phase: Phase
    acceptable: frozenset[Final]
    final: Final | None
    final_ready: Ready | None
    otadata: OtaData | None
    timeline: BootTimeline
    bytes_sent: int
    duration_s: float
    mark: int
    readback_mark: int
    started: float
    time_to_recover_s: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        final = self.final.value if self.final else "nothing"
        allowed = "/".join(sorted(f.value for f in self.acceptable))
        head = (
            f"{verdict} {self.board}: {self.image} ({self.expect}), cut {self.cut or 'none'} "
            f"→ {self.phase.value}; ended on {final} firmware (correct: {allowed})"
        )
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


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
        self.engine = TriggerEngine()
        # The rig process runs the TLS server, proxy pumps and console readers at once; with
        # CPython's default 5 ms GIL slice a log-triggered power cut waits behind them.
        sys.setswitchinterval(min(sys.getswitchinterval(), CUT_SWITCH_INTERVAL_S))
        self._timers: list[threading.Timer] = []
        self._image_size: int | None = None
        # What the rig knows each OTA slot holds (None: unknown, e.g. half written), the
        # highest otadata sequence number seen, and the resume point the device may use next.
        self._slots: dict[str, bytes | None] = {}
        self._top_seq = 0
        self._resume_limit = 0
        # A twin boots in milliseconds: a virtual farm's scenarios may shorten this.
        self.quiet_s = QUIET_S
        board.console.add_listener(self._on_line)
        server.bus.subscribe(self._on_bus_event)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.engine.close()
        self.proxy.disarm()
        if self.path is not None and self.path.namespace is not None:
            self.path.namespace.heal()
        self.server.bus.unsubscribe(self._on_bus_event)
        self.board.console.remove_listener(self._on_line)

    # -- wiring ------------------------------------------------------------------------

    def _on_line(self, line: str, t: float) -> None:
        self.engine.on_log_line(self.board.name, line, t)
        written = DEVICE_BYTES.search(line)
        if written is not None:
            # "Power died at 40 % of the download" means 40 % written by the device: the
            # server's count runs ahead by whatever the sockets hold.
            self.engine.on_progress("device", None, int(written[1]), self._image_size, t)

    def _on_bus_event(self, event: Event) -> None:
        if isinstance(event, WireProgress) and event.direction is Direction.DOWN:
            self.engine.on_wire(event.connection_id, event.total_bytes)

    # -- set-up ------------------------------------------------------------------------

    def prepare(self, image: str = "base", **settings: str) -> Ready:
        """Flash `image` into a known state, pin the rig CA, apply agent settings.

        Every other slot is erased as far as the largest image of the set reaches, so
        nothing an earlier test wrote can stand in for bytes an agent failed to write.
        """
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
        self.pin(self.certs)
        if settings:
            self.configure(**settings)
        return ready

    def pin(self, certs: CertBundle) -> None:
        self.board.command("cert " + base64.b64encode(certs.ca_der()).decode())

    def configure(self, **settings: str) -> None:
        self.board.command("ota-config " + " ".join(f"{k}={v}" for k, v in settings.items()))

    def url(self, image: str, *, via_proxy: bool = True, redirects: int = 0) -> str:
        host = self.network.board_facing_address
        if via_proxy and self.path is not None and self.path.namespace is not None:
            host = self.path.namespace.address
        port = self.proxy.port if via_proxy else self.server.port
        return self.server.url_for(image, redirects=redirects, host=host, port=port)

    # -- faults ------------------------------------------------------------------------

    def arm(self, cut: CutSpec) -> Trigger | None:
        """Bind a parsed --cut to what carries it out when its condition is met; the trigger
        it registered, if the cut goes through the engine (the proxy acts by itself otherwise)."""
        if cut.on is On.RANDOM and "seed=" not in cut.text:
            cut = replace(cut, seed=self.seed)  # the run's --seed makes random cuts reproducible
        position = _proxy_position(cut)
        proxy_acts = cut.net_fault not in (NetFault.THROTTLE, NetFault.DEAD)
        if cut.kind is CutKind.NET and position is not None and proxy_acts:
            # Exact to the byte: the proxy counts and acts itself, no trigger round trip.
            self.proxy.arm(self._net_fault(cut, position))
            return None
        return self.engine.add(cut.trigger(self._action_for(cut)))

    def _net_fault(self, cut: CutSpec, at: Position | None) -> Cut | Stall | Throttle:
        if cut.net_fault is NetFault.STALL:
            return Stall(seconds=cut.stall_s or 30.0, at=at)
        if cut.net_fault is NetFault.THROTTLE:
            return Throttle(bytes_per_second=cut.throttle_bps or 10_000)
        close = Close.RST if cut.net_fault is NetFault.RST else Close.FIN
        if at is None:  # "now": the next byte of the connection that is sending
            sent = max((r.bytes_down for r in self.proxy.records if r.closed_at is None), default=0)
            at = Position(Unit.WIRE, sent + 1)
        return Cut(at=at, close=close)

    def _action_for(self, cut: CutSpec) -> Callable[[], None]:
        power = self.board.power
        if cut.kind is CutKind.POWER:
            off_s = power.off_seconds if cut.off_s is None else cut.off_s

            def power_cut() -> None:
                power.off()
                self.engine.on_event("power_off")
                self._later(off_s, self._power_on)

            return power_cut
        if cut.kind is CutKind.BROWNOUT:
            volts = 2.2 if cut.volts is None else cut.volts
            hold = 0.5 if cut.hold_s is None else cut.hold_s

            def brownout() -> None:
                nominal = power.voltage_setpoint()
                power.set_voltage(volts)
                self._later(hold, lambda: power.set_voltage(nominal))

            return brownout
        if cut.net_fault is NetFault.DEAD:
            namespace = self._dead_path(cut)
            return lambda: namespace.kill_port(self.proxy.port)
        return lambda: self._arm_proxy_now(cut)

    def _dead_path(self, cut: CutSpec) -> NetNamespace:
        """The namespace a dead path is made in; a farm without one cannot have the fault."""
        if self.path is None or self.path.namespace is None:
            why = self.path.unavailable if self.path is not None else "the farm sets no network.fault_path"
            raise InputError(f"--cut {cut.text}: no dead path on this farm: {why}")
        return self.path.namespace

    def _power_on(self) -> None:
        self.board.power.on()
        self.engine.on_event("power_on")

    def _arm_proxy_now(self, cut: CutSpec) -> None:
        self.proxy.arm(self._net_fault(cut, None))

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(delay, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _timers_pending(self) -> bool:
        return any(timer.is_alive() for timer in self._timers)

    # -- the experiment ------------------------------------------------------------------

    def start_ota(self, image: str, *, via_proxy: bool = True, redirects: int = 0) -> int:
        """Send `ota <url>`; returns the console mark the OTA's lines come after."""
        mark = self.board.console.mark()
        self.board.command(f"ota {self.url(image, via_proxy=via_proxy, redirects=redirects)}")
        self.engine.on_event("ota_started")  # `After`/`OnEvent` cuts can count from here
        return mark

    def settle(self, since: int, timeout: float, quiet_s: float | None = None) -> Ready | None:
        """The board's `ready` once it stays up: no reset for `quiet_s` (default
        `self.quiet_s`) after it and no power action still pending. Reboots (rollbacks,
        crash loops) are waited through; None if no app comes up within `timeout`."""
        quiet = self.quiet_s if quiet_s is None else quiet_s
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
                and (time.monotonic() < quiet_until or self._timers_pending())
            ):
                rebooted = console.wait_for(ROM_RESET, 0.1, position)
            if rebooted is None:
                return ready

    def run(
        self,
        image: str,
        cut: CutSpec | None = None,
        *,
        timeout: float = 60.0,
        via_proxy: bool = True,
        redirects: int = 0,
    ) -> OtaResult:
        """One OTA of `image` (optionally with a fault), recovery, read-back and judgement."""
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
            ended = self.board.console.wait_for(rf"{ENDED}|{ROM_RESET}", timeout, mark)
            if ended is None:
                raise InfraError(
                    f"board {self.board.name}: OTA of {image} neither ended nor reset within {timeout:.0f} s"
                )
            if self.path is not None and self.path.namespace is not None:
                self.path.namespace.heal()  # a dead path lasts until the OTA ended
            ready = self._gave_up(mark) if GAVE_UP.search(ended.string) else None
            if ready is None:
                ready = self.settle(mark, timeout)
            if ready is not None and ready.state == "PENDING_VERIFY":
                # A new image that never confirms keeps running until the next reset; ESP-IDF
                # then rolls it back. Give it that reset, as the field eventually will.
                ready = self.settle(self.board.reset(), timeout)
            self.engine.wait_idle(timeout=5.0)
            expected = self._expected_contents(running, target, entry.expect)
            state = self.board.read_state([(offset, len(data)) for offset, data in expected.values()])
            after_read = self.board.reset()
            final_ready = self.settle(after_read, timeout) or ready
            lines = [(line.text, line.t) for line in self.board.console.lines(mark)]
            timeline = fold_boots(parse_text(self.board.console.text(mark)), final=True)
            firings = self.engine.firings[firings_before:]
            t_fault = min((f.t_action_start for f in firings), default=None)
            proxy_hit = any(r.faults for r in self.proxy.records if r.id not in records_before)
            supply = bool(firings) and _cuts_supply(cut)
            # A log-triggered network fault fires through the engine, then acts in the proxy.
            network = proxy_hit or (bool(firings) and not supply)
            fault = FaultSeen(power=supply, network=network, t_fired=t_fault)
            top_seq = _top_seq(state)
            phase = phase_of(lines, fault, switched_in_otadata=top_seq > self._top_seq)
            served = self.server.records[served_before:]
            result = OtaResult(
                board=self.board.name,
                image=image,
                expect=entry.expect,
                old_version=old_version,
                new_version=entry.version,
                cut=cut.text if cut else None,
                firings=list(firings),
                phase=phase,
                acceptable=acceptable_outcomes(entry.expect, phase, rollback),
                final=None,
                final_ready=final_ready,
                otadata=state.otadata,
                timeline=timeline,
                bytes_sent=sum(r.body_bytes for r in served),
                duration_s=time.monotonic() - started,
                started=started,
                time_to_recover_s=self._recovery_time(ready, t_fault),
                mark=mark,
                readback_mark=after_read,
            )
            self._judge(result)
            device_lines = [text for text, _ in lines]
            if supply and t_fault is not None:
                device_lines = lines_before_supply_loss(lines, t_fault)
            result.problems.extend(_confirm_order_problems([text for text, _ in lines]))
            result.problems.extend(self._flash_problems(state, expected))
            result.problems.extend(self._resume_problems(device_lines, fault, served, self._image_size))
            self._remember(result, target, device_lines, top_seq)
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
        keep = [running] + ([target] if target is not None and expect in REFUSED_BEFORE_WRITE else [])
        offsets = {slot.name: slot.offset for slot in self.board.table.ota_slots}
        known: dict[str, tuple[int, bytes]] = {}
        for name in keep:
            data = self._slots.get(name)
            if data is not None and name in offsets:
                known[name] = (offsets[name], data)
        return known

    @staticmethod
    def _flash_problems(state: FlashState, expected: dict[str, tuple[int, bytes]]) -> list[str]:
        problems = []
        for name, (offset, data) in expected.items():
            if state.md5.get((offset, len(data))) != hashlib.md5(data).hexdigest():
                what = "erased before the OTA" if not data.strip(b"\xff") else "holding a known image"
                problems.append(
                    f"flash written where it must not be: slot {name} ({what}) changed during the OTA "
                    f"(on-chip MD5 of its first {len(data)} bytes differs from what the rig left there)"
                )
        return problems

    def _resume_problems(
        self, device_lines: list[str], fault: FaultSeen, served: list[RequestRecord], size: int
    ) -> list[str]:
        """PROTOCOL.md §3 resume invariants: the device resumes from no further than it saved,
        and asks the server for exactly the bytes it has not written."""
        begin = next((found for text in device_lines if (found := BEGIN.search(text))), None)
        if begin is None or int(begin[1]) == 0:
            return []
        resume_from = int(begin[1])
        problems = []
        if resume_from > self._resume_limit:
            last = max(0, self._resume_limit - SAVE_STEP)
            problems.append(
                f"resumed from byte {resume_from}, past what the device saved: the progress it reported "
                f"before the fault was {last} bytes (one unreported save step of {SAVE_STEP} allowed)"
            )
        gets = [r for r in served if r.method == "GET"]
        complete = any(COMPLETE in text for text in device_lines)
        if complete and not fault.power and not fault.network and gets and all(r.status == 206 for r in gets):
            body = sum(r.body_bytes for r in gets)
            if body != size - resume_from:
                problems.append(
                    f"resumed from byte {resume_from} of {size} but downloaded {body} bytes "
                    f"(expected {size - resume_from}): the Range it asked for is not the offset it reported"
                )
        return problems

    def _remember(self, result: OtaResult, target: str | None, device_lines: list[str], top_seq: int) -> None:
        """Carry what this OTA left behind into the next one's checks."""
        self._top_seq = max(self._top_seq, top_seq)
        if target is not None:
            if any(COMPLETE in text for text in device_lines):
                self._slots[target] = self.images.data(result.image)
            elif not (result.expect in REFUSED_BEFORE_WRITE and result.passed):
                self._slots[target] = None  # partly written, or refused somewhere the rig cannot see
        saved = [int(found[1]) for text in device_lines if (found := SAVED.search(text))]
        begin = next((int(found[1]) for text in device_lines if (found := BEGIN.search(text))), 0)
        self._resume_limit = max([begin, *saved]) + SAVE_STEP

    def _recovery_time(self, ready: Ready | None, t_fault: float | None) -> float | None:
        """Fault fired → the app's `ready` again (None without a fault or a `ready` line)."""
        if ready is None or t_fault is None:
            return None
        lines = self.board.console.lines(ready.line_index)
        if not lines or "rig_agent: ready" not in lines[0].text:
            return None
        return max(0.0, lines[0].t - t_fault)

    def _gave_up(self, mark: int) -> Ready | None:
        """The agent ended the OTA without a switch: the old app is still up, unless a
        power action is still pending or a reset follows within the quiet window."""
        if self._timers_pending() or self.board.console.wait_for(ROM_RESET, self.quiet_s, mark) is not None:
            return None
        status = self.board.status()
        return Ready(
            status.get("version", "?"),
            status.get("running", "?"),
            status.get("state", "?"),
            self.board.console.mark() - 1,
        )

    def _judge(self, result: OtaResult) -> None:
        ready = result.final_ready
        if ready is None:
            result.problems.append("BRICK: no app reached 'ready' after recovery")
            return
        versions = {Final.OLD: result.old_version, Final.NEW: result.new_version}
        result.final = next((f for f, v in versions.items() if v == ready.version), None)
        if result.final is None:
            result.problems.append(
                f"running version {ready.version} is neither old {result.old_version} "
                f"nor new {result.new_version}"
            )
        elif result.final not in result.acceptable:
            allowed = " or ".join(sorted(f.value for f in result.acceptable))
            result.problems.append(
                f"ended on {result.final.value} firmware {ready.version}; ESP-IDF-correct is {allowed}"
            )
        if result.otadata is not None:
            # Two sources must agree: the boot after the read-back (log) and the otadata itself.
            last_boot = fold_boots(parse_text(self.board.console.text(result.readback_mark)), final=True)
            for verdict in (
                otadata_consistent(result.otadata),
                expect_boot(
                    last_boot, result.otadata, self.board.table, slot=ready.running, version=ready.version
                ),
            ):
                if not verdict.passed:
                    result.problems.append(verdict.explain())
        if result.phase is Phase.NO_FAULT:
            lines = [line.text for line in self.board.console.lines(result.mark)]
            for pattern in self.images.entry(result.image).proof_patterns():
                if not any(pattern.search(text) for text in lines):
                    result.problems.append(f"expected log line not seen: /{pattern.pattern}/")


def _confirm_order_problems(texts: list[str]) -> list[str]:
    """PROTOCOL.md §4: an image confirms itself only in its first boot, after its self-test
    passed. One that confirms first (or without a self-test at all) can no longer be rolled
    back when the self-test would have failed or hung."""
    boots: list[list[str]] = [[]]
    for text in texts:
        if re.match(ROM_RESET, text):
            boots.append([])
        boots[-1].append(text)
    for boot in boots:
        markers = [m for text in boot for m in (SELFTEST_PASSED, CONFIRMED) if m in text]
        if CONFIRMED in markers and SELFTEST_PASSED not in markers[: markers.index(CONFIRMED)]:
            return ["the new image confirmed itself (`app confirmed valid`) before its self-test passed"]
    return []


def _top_seq(state: FlashState) -> int:
    """The highest CRC-valid otadata sequence number: it rises only when a switch is made."""
    return max((e.seq for e in state.otadata.entries if not e.is_erased and e.crc_ok), default=0)


def _cuts_supply(cut: CutSpec | None) -> bool:
    return cut is not None and cut.kind in (CutKind.POWER, CutKind.BROWNOUT)


def _proxy_position(cut: CutSpec) -> Position | None:
    """A cut point the proxy can hit exactly by itself, or None if it needs a trigger."""
    if cut.on is On.WIRE and isinstance(cut.at, int):
        return Position(Unit.WIRE, cut.at)
    if cut.on is On.BYTES and isinstance(cut.at, int):
        return Position(Unit.IMAGE, cut.at)
    if cut.on is On.FRACTION and isinstance(cut.at, float):
        return Position(Unit.FRACTION, cut.at)
    return None
