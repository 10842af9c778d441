"""Every power-cut point of one recorded update, rebuilt from the trace and run to steady state.

For operation k of the trace the flash is the snapshot with operations 0..k-1 applied
(a cut just before k), and, for each torn fraction, with k itself cut that far in — torn
by `NorFlash`'s own physics (`cut_at`), as a real cut would tear it. Each such state is
powered on and run to steady state (`twin.sweep.device`). Nothing is downloaded again
except by a retried update.

Fast because most points need no run at all: a run remembers the sectors and NVS values it
depended on; the next point whose state differs from that run's only in other sectors (the
download writing the passive slot while the old app boots from its own) would run
identically, so it is that run's point too. Memos die once an operation touches what they
read. `rerun=True` instead re-runs the whole recorded update per point with the cut armed
(`NorFlash.cut_before`/`cut_at`): the slow way, for the benchmark and for `rig repro`.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rig.errors import FormatError, InfraError, InputError
from rig.esp.image import parse
from rig.esp.otadata import SECTOR_SIZE as OTADATA_SECTOR
from rig.esp.otadata import OtaData
from rig.esp.partitions import Partition, PartitionTable, verify_table_bytes
from rig.sweep.records import (
    Done,
    EntryHealth,
    Image,
    OpInfo,
    PointFacts,
    Progress,
    Record,
    RunFacts,
    Stage,
    TraceFacts,
)
from twin.bootloader import TABLE_SIZE
from twin.config import BoardConfig
from twin.cpu import ResetReason
from twin.efuse import Efuse
from twin.flash import SECTOR_SIZE, PowerLost
from twin.nvs import Nvs, find_nvs_partition
from twin.sweep.device import (
    ImageIds,
    ReplayDevice,
    RunResult,
    Script,
    TrackingFlash,
    TrackingNvs,
    otadata_health,
    sectors_of,
)
from twin.trace import Trace, TraceEvent, read_trace

OPS = ("erase", "program", "efuse")
# Boots the rig causes (power, the EN pin); every other reset cause is the firmware's own.
EXTERNAL_RESETS = (ResetReason.POWERON_RESET, ResetReason.EXT_CPU_RESET, ResetReason.RTCWDT_BROWN_OUT_RESET)
MAX_MEMOS = 16
PROGRESS_EVERY_S = 0.1
# Lines the rig types that only ask, never change anything: not part of a retry.
QUERIES = ("status",)

Point = tuple[int, float | None]


@dataclass(frozen=True)
class SweepInputs:
    trace_dir: Path
    config: BoardConfig
    old_image: bytes
    new_image: bytes
    retry: bool
    fractions: tuple[float, ...] = (0.5,)
    url: str | None = None  # the update's URL now (its server may have moved since the recording)
    only: tuple[Point, ...] | None = None
    rerun: bool = False


@dataclass
class _Memo:
    run: int
    depends: set[int]
    nvs: dict[str, object]
    efuse_bits: int
    dirty: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Plan:
    """The trace read and understood: operations, script, regions."""

    trace: Trace
    ops: tuple[TraceEvent, ...]
    table: PartitionTable
    facts: TraceFacts
    script: tuple[bytes | ResetReason, ...]  # the recording's console lines and the rig's resets
    retry: tuple[bytes, ...]  # what the rig typed for the update, once more


class Sweep:
    """One sweep over a trace; `emit` gets every record as it is made."""

    def __init__(self, inputs: SweepInputs, workdir: Path, emit: Callable[[Record], None]) -> None:
        self.inputs = inputs
        self.emit = emit
        self.workdir = workdir
        self.plan = _understand(inputs)
        self.ids = ImageIds(inputs.old_image, inputs.new_image)
        table = self.plan.table
        self.otadata = table.otadata
        self.slot_count = len(table.ota_slots)
        nvs = find_nvs_partition(table)
        self.nvs = nvs
        untracked = sectors_of(nvs.offset, nvs.size) if nvs is not None else range(0)
        self.work = TrackingFlash(workdir / "work.flash", inputs.config.flash_size, untracked)
        self.work.load(0, self.plan.trace.base_flash)
        self.shadow = bytearray(self.plan.trace.base_flash)
        self.efuse_json = json.loads(self.plan.trace.base_efuse)
        self.base_efuse_bits = int(self.efuse_json["secure_version_bits"])
        self.efuse_bits = self.base_efuse_bits
        self.memos: list[_Memo] = []
        self.runs = 0
        self.points = 0
        self._last_progress = 0.0

    # -- the sweep ----------------------------------------------------------------------

    def points_all(self) -> list[Point]:
        points: list[Point] = []
        for k, op in enumerate(self.plan.ops):
            points.append((k, None))
            if op.kind != "efuse":
                points.extend((k, f) for f in self.inputs.fractions)
        points.append((len(self.plan.ops), None))
        if self.inputs.only is None:
            return points
        wanted = set(self.inputs.only)
        return [p for p in points if p in wanted]

    def run(self) -> Done:
        started = time.monotonic()
        self.emit(self.plan.facts)
        points = self.points_all()
        self.emit(Progress(0, len(points)))
        if self.inputs.rerun:
            for point in points:
                self._rerun(point)
                self._progress(len(points))
        else:
            self._replay(set(points), len(points))
        done = Done(points=self.points, runs=self.runs, seconds=round(time.monotonic() - started, 3))
        self.emit(Progress(self.points, len(points)))
        self.emit(done)
        self.work.close()
        return done

    def _replay(self, wanted: set[Point], total: int) -> None:
        ops = self.plan.ops
        for k in range(len(ops) + 1):
            if (k, None) in wanted:
                self._point(k, None)
                self._progress(total)
            if k == len(ops):
                break
            op = ops[k]
            for fraction in self.inputs.fractions:
                if op.kind == "efuse" or (k, fraction) not in wanted:
                    continue
                self._apply(op, fraction)
                self._point(k, fraction)
                self._restore(sectors_of(op.address, op.length))
                self._progress(total)
            self._apply(op, None)
            if op.kind != "efuse":
                span = sectors_of(op.address, op.length)
                start, end = span.start * SECTOR_SIZE, span.stop * SECTOR_SIZE
                self.shadow[start:end] = self.work.read(start, end - start)

    def _progress(self, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.emit(Progress(self.points, total))

    # -- state ----------------------------------------------------------------------------

    def _apply(self, op: TraceEvent, fraction: float | None) -> None:
        """Operation `op` on the working flash, whole or cut `fraction` of the way in."""
        if op.kind == "efuse":
            self.efuse_bits = op.bits
            return
        if fraction is not None:
            self.work.cut_at(self.work.op_count, fraction)
        try:
            if op.kind == "erase":
                self.work.erase(op.address, op.length)
            else:
                self.work.program(op.address, op.data)
        except PowerLost:
            pass
        self._touch(sectors_of(op.address, op.length))

    def _restore(self, sectors: Iterable[int]) -> None:
        """Sectors back to the state before the point (no memo sees a difference)."""
        for sector in sorted(set(sectors)):
            start = sector * SECTOR_SIZE
            self.work.load(start, bytes(self.shadow[start : start + SECTOR_SIZE]))

    def _touch(self, sectors: range) -> None:
        changed = set(sectors)
        alive = []
        for memo in self.memos:
            memo.dirty |= changed
            if not memo.dirty & memo.depends:
                alive.append(memo)
        self.memos = alive

    def _efuse(self, bits: int) -> Efuse:
        path = self.workdir / "efuse.json"
        path.write_text(json.dumps({**self.efuse_json, "secure_version_bits": bits}))
        return Efuse(path)

    # -- one point ------------------------------------------------------------------------

    def _point(self, k: int, fraction: float | None) -> None:
        at_cut = self._otadata_now()
        memo = self._lookup()
        if memo is None:
            efuse = self._efuse(self.efuse_bits)
            self.work.start_run()
            result = self._device(efuse, [], TrackingNvs).power_on()
            run = self._report_run(result, efuse)
            memo = _Memo(run.run, set(self.work.depends), dict(self.work.nvs_read), self.efuse_bits)
            self._restore(self.work.written)
            self.memos = [memo, *self.memos][:MAX_MEMOS]
        self.points += 1
        self.emit(PointFacts(k, fraction, memo.run, at_cut))

    def _lookup(self) -> _Memo | None:
        values: dict[str, object] | None = None
        for memo in self.memos:
            if memo.efuse_bits != self.efuse_bits:
                continue
            if memo.nvs:
                if values is None:
                    values = self._nvs_values()
                if any(values.get(key) != value for key, value in memo.nvs.items()):
                    continue
            return memo
        return None

    def _nvs_values(self) -> dict[str, object]:
        if self.nvs is None:
            return {}
        store = Nvs(self.work, self.nvs)
        return {key: store.get(key) for memo in self.memos for key in memo.nvs}

    def _otadata_now(self) -> tuple[EntryHealth, EntryHealth]:
        if self.otadata is None:
            return EntryHealth.ERASED, EntryHealth.ERASED
        return otadata_health(self.work, self.otadata)

    def _device(self, efuse: Efuse, script: Script, nvs_type: type[Nvs]) -> ReplayDevice:
        return ReplayDevice(
            self.work, efuse, self.inputs.config, self.ids, self.otadata, self.slot_count,
            script=script, retry=self.plan.retry if self.inputs.retry else (), nvs_type=nvs_type,
        )  # fmt: skip

    def _report_run(self, result: RunResult, efuse: Efuse) -> RunFacts:
        run = RunFacts(
            run=self.runs, boots=tuple(result.boots), end=result.end, retried=result.retried,
            boots_before_retry=result.boots_before_retry, state_end=result.state_end,
            efuse_end=efuse.secure_version, otadata_end=self._otadata_now(),
            log=result.log.decode("utf-8", "replace"),
        )  # fmt: skip
        self.runs += 1
        self.emit(run)
        return run

    # -- the slow way: the whole update again, cut on the way -------------------------------

    def _rerun(self, point: Point) -> None:
        k, fraction = point
        self.work.load(0, self.plan.trace.base_flash)
        self.work.disarm()
        flash_index = self.work.op_count + sum(1 for op in self.plan.ops[:k] if op.kind != "efuse")
        at_cut: list[tuple[EntryHealth, EntryHealth]] = []
        self.work.on_cut = lambda: at_cut.append(self._otadata_now())
        if k < len(self.plan.ops):
            if fraction is None:
                self.work.cut_before(flash_index)
            else:
                self.work.cut_at(flash_index, fraction)
        efuse = self._efuse(self.base_efuse_bits)
        device = self._device(efuse, list(self.plan.script), Nvs)
        seen: list[tuple[str, int, int]] = []
        self.work.observer = lambda op, _data: seen.append((op.kind.value, op.address, op.length))
        try:
            result = device.power_on()
        finally:
            self.work.observer = None
            self.work.disarm()
        self._check_reproduced(k, seen, fired=bool(at_cut))
        run = self._report_run(result, efuse)
        self.points += 1
        self.emit(PointFacts(k, fraction, run.run, at_cut[0] if at_cut else self._otadata_now()))

    def _check_reproduced(self, k: int, seen: list[tuple[str, int, int]], *, fired: bool) -> None:
        """A re-run proves something only if it did what the recording did up to the cut."""
        wanted = [(op.kind, op.address, op.length) for op in self.plan.ops[:k] if op.kind != "efuse"]
        for index, (want, got) in enumerate(zip(wanted, seen, strict=False)):
            # Kind and place, not length: an NVS record holding the URL grows with a new server's.
            if want[:2] != got[:2]:
                raise InfraError(
                    f"the re-run of op {k} left the recording at flash operation {index}: "
                    f"{want[0]} {want[1]:#x}+{want[2]:#x} recorded, {got[0]} {got[1]:#x}+{got[2]:#x} now "
                    "(is the update's server up?)"
                )
        if k < len(self.plan.ops) and not fired:
            raise InfraError(
                f"the re-run of op {k} never reached it ({len(seen)} flash operations of {len(wanted)}; "
                "is the update's server up?)"
            )


# -- reading the trace -------------------------------------------------------------------------


def _understand(inputs: SweepInputs) -> _Plan:
    try:
        trace = read_trace(inputs.trace_dir)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{inputs.trace_dir}: not a readable flash trace ({error})") from None
    config = inputs.config
    raw_table = trace.base_flash[config.table_offset : config.table_offset + TABLE_SIZE]
    try:
        table = verify_table_bytes(raw_table, config.flash_size)
    except FormatError as error:
        where = inputs.trace_dir
        raise InputError(f"{where}: the traced flash holds no valid partition table ({error})") from None
    ops = tuple(e for e in trace.events if e.kind in OPS)
    if any(op.torn for op in ops):
        raise InputError(f"{inputs.trace_dir}: the recorded update was itself cut; record it without faults")
    console = [(i, e) for i, e in enumerate(trace.events) if e.kind == "console"]
    commands = [(i, e) for i, e in console if e.line.startswith("ota ")]
    if not commands:
        raise InputError(f"{inputs.trace_dir}: the trace holds no `ota <url>` command: nothing was updated")
    command_at, command = commands[-1]
    url_line = _with_url(command.line, inputs.url)
    boot_of = _boot_numbers(trace.events)
    script = _script(trace.events, inputs.url)
    retry = tuple(
        _with_url(e.line, inputs.url).encode()
        for i, e in console
        if boot_of[i] == boot_of[command_at] and i <= command_at and not e.line.startswith(QUERIES)
    )
    facts = _facts(inputs, trace, table, ops, command_at, boot_of, url_line)
    return _Plan(trace, ops, table, facts, script, retry)


def _script(events: tuple[TraceEvent, ...], url: str | None) -> tuple[bytes | ResetReason, ...]:
    """What the rig did in the recording, in order: its console lines, and a reset wherever
    a flash boot started that the firmware did not cause (the rig's power cycle or EN reset)."""
    script: list[bytes | ResetReason] = []
    first = True
    for event in events:
        if event.kind == "console":
            script.append(_with_url(event.line, url).encode())
        elif event.kind == "boot" and not event.download:
            reason = ResetReason[event.reason]
            if not first and reason in EXTERNAL_RESETS:
                script.append(reason)
            first = False
    return tuple(script)


def _with_url(line: str, url: str | None) -> str:
    return f"ota {url}" if url and line.startswith("ota ") else line


def _boot_numbers(events: tuple[TraceEvent, ...]) -> list[int]:
    numbers, boot = [], 0
    for event in events:
        if event.kind == "boot" and not event.download:
            boot += 1
        numbers.append(boot)
    return numbers


def _facts(
    inputs: SweepInputs, trace: Trace, table: PartitionTable, ops: tuple[TraceEvent, ...], command_at: int,
    boot_of: list[int], command: str,
) -> TraceFacts:  # fmt: skip
    order = {id(e): i for i, e in enumerate(trace.events)}
    slots = table.ota_slots
    old_slot = _slot_holding(trace.base_flash, slots, inputs.old_image)
    line_ends = [i + 1 for i, byte in enumerate(trace.uart) if byte == 0x0A]
    otadata = table.otadata
    scratch = None
    if otadata is not None:
        scratch = bytearray(trace.base_flash[otadata.offset : otadata.offset + 2 * OTADATA_SECTOR])
    new_slot: int | None = None
    secure_version = int(json.loads(trace.base_efuse)["secure_version_bits"]).bit_count()
    base_selects, base_state = _selection(scratch, old_slot, None, len(slots))
    infos = []
    for index, op in enumerate(ops):
        at = order[id(op)]
        stage = Stage.PREPARE if at < command_at else Stage.UPDATE
        if boot_of[at] > boot_of[command_at]:
            stage = Stage.LATER
        region = "efuse" if op.kind == "efuse" else _region(table.partitions, op.address)
        if stage is Stage.UPDATE and new_slot is None and op.kind == "program":
            for part in slots:
                if part.name == region and part.ota_index != old_slot:
                    new_slot = part.ota_index
        if scratch is not None and otadata is not None:
            _apply_small(scratch, otadata.offset, op)
        if op.kind == "efuse":
            secure_version = op.bits.bit_count()
        selects, state = _selection(scratch, old_slot, new_slot, len(slots))
        infos.append(
            OpInfo(
                index=index, kind=op.kind, address=op.address, length=op.length, region=region, stage=stage,
                log_line=_line_before(trace.uart, line_ends, op.tx), selects=selects, selected_state=state,
                secure_version=secure_version,
            )
        )  # fmt: skip
    return TraceFacts(
        ops=tuple(infos), base_selects=base_selects, base_state=base_state,
        old_version=_version(inputs.old_image)[0], new_version=_version(inputs.new_image)[0],
        old_secure_version=_version(inputs.old_image)[1], new_secure_version=_version(inputs.new_image)[1],
        rollback=inputs.config.rollback, anti_rollback=inputs.config.anti_rollback,
        efuse_base=int(json.loads(trace.base_efuse)["secure_version_bits"]).bit_count(),
        update_command=command, fractions=inputs.fractions,
    )  # fmt: skip


def _selection(
    otadata: bytearray | None, old_slot: int | None, new_slot: int | None, slot_count: int
) -> tuple[Image | None, str]:
    """The image and state otadata's active entry selects (bootloader_common_get_active_otadata)."""
    if otadata is None:
        return None, ""
    data = OtaData.from_bytes(bytes(otadata))
    entry = data.active_entry
    chosen = data.boot_slot(slot_count)
    if entry is None or chosen is None:
        return None, ""
    image = Image.OLD if chosen == old_slot else Image.NEW if chosen == new_slot else Image.OTHER
    return image, entry.state_name


def _slot_holding(flash: bytes, slots: tuple[Partition, ...], image: bytes) -> int | None:
    for slot in slots:
        if flash[slot.offset : slot.offset + len(image)] == image:
            return slot.ota_index
    return slots[0].ota_index if slots else None


def _region(partitions: tuple[Partition, ...] | list[Partition], address: int) -> str:
    for part in partitions:
        if part.offset <= address < part.offset + part.size:
            return part.name
    return ""


def _apply_small(buffer: bytearray, base: int, op: TraceEvent) -> None:
    """NOR semantics on a copy of otadata, to tell what it selects after each operation."""
    start, end = op.address - base, op.address - base + op.length
    if op.kind == "efuse" or end <= 0 or start >= len(buffer):
        return
    lo, hi = max(0, start), min(len(buffer), end)
    if op.kind == "erase":
        buffer[lo:hi] = b"\xff" * (hi - lo)
    else:
        data = op.data[lo - start : hi - start]
        buffer[lo:hi] = bytes(a & b for a, b in zip(buffer[lo:hi], data, strict=True))


def _line_before(uart: bytes, line_ends: list[int], tx: int) -> str:
    end = bisect.bisect_right(line_ends, tx)
    if end == 0:
        return ""
    stop = line_ends[end - 1]
    start = line_ends[end - 2] if end >= 2 else 0
    return uart[start:stop].decode("utf-8", "replace").strip()


def _version(image: bytes) -> tuple[str, int]:
    """Version and secure version from the image's app descriptor ("?", 0 when it has none)."""
    try:
        desc = parse(image).desc
    except (FormatError, ValueError):
        return "?", 0
    return (desc.version, desc.secure_version) if desc else ("?", 0)
