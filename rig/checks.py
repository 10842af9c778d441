"""Checks of one expectation against both sources: pure functions over boot records and
an otadata read-back.

The log says which slot booted (`Loaded app from partition at offset …`); the
otadata says which slot the bootloader will pick. A check passes only when the
expectation holds AND both sources agree: when they disagree the check fails
and says so, since that is exactly the kind of bug the rig exists to find.
Checks never raise on a failed expectation. (What end state is correct after a fault
is `rig/verdicts.py`'s business.)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rig.esp.otadata import OtaData, OtaState, slot_for_seq
from rig.esp.partitions import PartitionTable
from rig.logs import events as ev
from rig.logs.boots import BootRecord, BootTimeline


class Agreement(enum.Enum):
    """How the log and the otadata read-back relate for this check."""

    AGREE = "agree"
    DISAGREE = "disagree"
    LOG_ONLY = "log_only"
    OTADATA_ONLY = "otadata_only"


@dataclass(frozen=True)
class Check:
    """One judged expectation with the lines that prove it."""

    name: str
    passed: bool
    expected: str
    observed: str
    evidence: list[ev.LogLine] = field(default_factory=list)
    agreement: Agreement = Agreement.LOG_ONLY
    disagreement: str | None = None

    def explain(self) -> str:
        """One line for reports and the CLI."""
        status = "PASS" if self.passed else "FAIL"
        text = f"{status} {self.name}: expected {self.expected}; observed {self.observed}"
        return f"{text}; {self.disagreement}" if self.disagreement else text


class RejectReason(enum.Enum):
    """Why an image should have been refused, each with the ESP-IDF lines that prove it."""

    INVALID_MAGIC = "invalid_magic"
    CHECKSUM = "checksum"
    HASH = "hash"
    LENGTH = "length"
    CHIP_ID = "chip_id"
    CHIP_REVISION = "chip_revision"
    SEGMENT = "segment"
    DESCRIPTOR = "descriptor"
    TRUNCATED = "truncated"
    SIGNATURE = "signature"
    SECURE_VERSION = "secure_version"
    SAME_VERSION = "same_version"
    VERIFICATION = "verification"


def _image_error(*reasons: ev.ImageErrorReason) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, ev.ImageError) and e.reason in reasons


def _step(cls: type[ev.Event], *steps: enum.Enum) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, cls) and getattr(e, "step", None) in steps


def _example(*messages: ev.ExampleMessage) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, ev.ExampleEvent) and e.message in messages


def _rig_rejected(reason: str) -> Callable[[ev.Event], bool]:
    return lambda e: isinstance(e, ev.RigOtaRejected) and e.reason == reason


def _any(*preds: Callable[[ev.Event], bool]) -> Callable[[ev.Event], bool]:
    return lambda e: any(p(e) for p in preds)


_IE, _H, _O, _X = ev.ImageErrorReason, ev.HttpsOtaStep, ev.OtaOpsStep, ev.ExampleMessage
_REJECTION_LINES: dict[RejectReason, Callable[[ev.Event], bool]] = {
    RejectReason.INVALID_MAGIC: _any(
        _image_error(_IE.INVALID_MAGIC), _step(ev.OtaOpsEvent, _O.INVALID_MAGIC)
    ),
    RejectReason.CHECKSUM: _image_error(_IE.CHECKSUM),
    RejectReason.HASH: _image_error(_IE.HASH),
    RejectReason.LENGTH: _image_error(_IE.LENGTH),
    RejectReason.CHIP_ID: _any(_image_error(_IE.CHIP_ID), _step(ev.HttpsOtaEvent, _H.CHIP_ID_MISMATCH)),
    RejectReason.CHIP_REVISION: _image_error(_IE.CHIP_REVISION),
    RejectReason.SEGMENT: _image_error(
        _IE.SEGMENT_COUNT, _IE.SEGMENT_LENGTH, _IE.SEGMENT_INVALID, _IE.SEGMENT_ADDRESS
    ),
    RejectReason.DESCRIPTOR: _step(ev.HttpsOtaEvent, _H.BAD_DESCRIPTOR_MAGIC),
    RejectReason.TRUNCATED: _any(
        _step(ev.HttpsOtaEvent, _H.HEADERS_INCOMPLETE),
        _example(_X.IMAGE_CORRUPTED, _X.GET_IMG_DESC_FAILED, _X.NATIVE_LENGTH),
    ),
    RejectReason.SIGNATURE: lambda e: isinstance(e, ev.SignatureEvent) and e.failed,
    RejectReason.SECURE_VERSION: _any(
        _step(ev.OtaOpsEvent, _O.SECURE_VERSION_LOWER),
        _example(_X.SECURE_VERSION_LOWER),
        _rig_rejected("lower_secure_version"),
    ),
    RejectReason.SAME_VERSION: _any(_example(_X.SAME_VERSION), _rig_rejected("same_version")),
    RejectReason.VERIFICATION: _step(ev.OtaOpsEvent, _O.VERIFY_FAILED),
}


# --- slot naming -------------------------------------------------------------------


def _booted_slot(boot: BootRecord, table: PartitionTable | None) -> str | None:
    if boot.slot_name:
        return boot.slot_name
    if boot.slot_offset is None:
        return None
    partition = table.slot_for_offset(boot.slot_offset) if table else None
    return partition.name if partition else f"0x{boot.slot_offset:x}"


def _otadata_slot(otadata: OtaData, table: PartitionTable) -> str:
    """The slot the bootloader would pick from this otadata
    (bootloader_common.c:bootloader_common_get_active_otadata(),
    bootloader_utility.c:bootloader_utility_get_selected_boot_partition())."""
    slots = table.ota_slots
    index = otadata.boot_slot(len(slots))
    if index is not None and index < len(slots):
        return slots[index].name
    fallback = table.factory or (slots[0] if slots else None)
    return fallback.name if fallback else "none"


def _otadata_words(otadata: OtaData, table: PartitionTable) -> str:
    index = otadata.active_index()
    if index is None:
        return f"otadata has no valid entry (bootloader falls back to {_otadata_slot(otadata, table)})"
    return f"otadata's active entry points to {_otadata_slot(otadata, table)}"


def _loaded(boots: Sequence[BootRecord]) -> list[BootRecord]:
    return [b for b in boots if b.slot_offset is not None]


def _lines(events: Sequence[ev.Event]) -> list[ev.LogLine]:
    return [e.line for e in events]


def _slot_lines(boots: Sequence[BootRecord]) -> list[ev.LogLine]:
    return [
        e.line for b in boots for e in b.events if isinstance(e, (ev.SlotLoaded, ev.AppInfo, ev.RigReady))
    ]


def _agreement(
    log_slot: str | None, otadata: OtaData | None, table: PartitionTable | None
) -> tuple[Agreement, str | None]:
    if otadata is None or table is None:
        return Agreement.LOG_ONLY, None
    ota_slot = _otadata_slot(otadata, table)
    if log_slot is None:
        return Agreement.OTADATA_ONLY, None
    if log_slot == ota_slot:
        return Agreement.AGREE, None
    return Agreement.DISAGREE, f"log says {log_slot} booted, {_otadata_words(otadata, table)}"


# --- checks -----------------------------------------------------------------------


def expect_boot(
    timeline: BootTimeline,
    otadata: OtaData | None,
    table: PartitionTable | None,
    *,
    slot: str,
    version: str | None = None,
    within_boots: int = 1,
) -> Check:
    """Within the first `within_boots` boots, `slot` (running `version`, if given) reached the app."""
    window = list(timeline)[: max(within_boots, 1)]
    want = f"{slot}" + (f" running {version}" if version else "") + f" within {within_boots} boot(s)"
    hit = next(
        (
            b
            for b in window
            if b.app_reached is not None
            and _booted_slot(b, table) == slot
            and (version is None or b.app_version == version)
        ),
        None,
    )
    seen = (
        ", ".join(
            f"boot {b.index}: {_booted_slot(b, table) or 'no slot'} {b.app_version or '-'} {b.outcome.value}"
            for b in window
        )
        or "no boot in the log"
    )
    shown = hit or (_loaded(window)[-1] if _loaded(window) else None)
    agreement, disagreement = _agreement(_booted_slot(shown, table) if shown else None, otadata, table)
    if otadata is not None and table is not None and hit is None and agreement is Agreement.OTADATA_ONLY:
        disagreement = f"no boot loaded a slot; {_otadata_words(otadata, table)}"
    passed = hit is not None and agreement in (Agreement.AGREE, Agreement.LOG_ONLY)
    return Check("expect_boot", passed, want, seen, _slot_lines(window), agreement, disagreement)


def rolled_back(
    timeline: BootTimeline,
    otadata: OtaData | None,
    table: PartitionTable,
    *,
    from_slot: str,
    to_slot: str,
) -> Check:
    """`from_slot` was tried and given up (ABORTED/INVALID in otadata) and `to_slot` runs again."""
    loaded = _loaded(list(timeline))
    names = [_booted_slot(b, table) for b in loaded]
    tried = from_slot in names
    last = loaded[-1] if loaded else None
    back = (
        tried
        and last is not None
        and names[-1] == to_slot
        and names.index(from_slot) < len(names) - 1
        and last.app_reached is not None
    )
    observed = f"slots booted: {' -> '.join(n or '?' for n in names) or 'none'}"
    want = f"{from_slot} tried, then {to_slot} running; otadata entry of {from_slot} ABORTED or INVALID"
    agreement, disagreement = _agreement(names[-1] if names else None, otadata, table)
    entry_ok = True
    if otadata is not None:
        states = _slot_states(otadata, table, from_slot)
        entry_ok = any(s in (OtaState.ABORTED, OtaState.INVALID) for s in states)
        observed += f"; otadata {from_slot} entry: {', '.join(_state_name(s) for s in states) or 'none'}"
        if not entry_ok and disagreement is None and back:
            agreement = Agreement.DISAGREE
            disagreement = (
                f"log shows a rollback to {to_slot}, but otadata does not mark {from_slot} ABORTED/INVALID"
            )
    passed = back and entry_ok and agreement in (Agreement.AGREE, Agreement.LOG_ONLY)
    return Check("rolled_back", passed, want, observed, _slot_lines(loaded), agreement, disagreement)


def _slot_states(otadata: OtaData, table: PartitionTable, slot: str) -> list[int]:
    labels = [p.name for p in table.ota_slots]
    if slot not in labels:
        return []
    index = labels.index(slot)
    return [
        e.state
        for e in otadata.entries
        if not e.is_erased and e.crc_ok and slot_for_seq(e.seq, len(labels)) == index
    ]


def _state_name(state: int) -> str:
    try:
        return OtaState(state).name
    except ValueError:
        return f"0x{state:08x}"


def image_rejected(
    timeline: BootTimeline,
    otadata: OtaData | None,
    table: PartitionTable | None,
    *,
    reason: RejectReason | str,
) -> Check:
    """The device printed ESP-IDF's refusal line for `reason` and kept booting the slot it ran before."""
    why = RejectReason(reason)
    match = _REJECTION_LINES[why]
    hits = [(b, e) for b in timeline for e in b.events if match(e)]
    name = "signature_rejected" if why is RejectReason.SIGNATURE else "image_rejected"
    want = f"a {why.value} rejection line and no switch of the boot slot"
    if not hits:
        seen = "no matching rejection line"
        errors = [e for b in timeline for e in b.errors]
        if errors:
            seen += f"; errors seen: {errors[0].line.message!r}" + (
                f" (+{len(errors) - 1})" if len(errors) > 1 else ""
            )
        return Check(name, False, want, seen, _lines(errors[:5]))
    boot = hits[0][0]
    running = _booted_slot(boot, table) or next(
        (s for s in (_booted_slot(b, table) for b in reversed(list(timeline))) if s), None
    )
    later = [b for b in timeline if b.index > boot.index and b.slot_offset is not None]
    switched = [b for b in later if _booted_slot(b, table) != running]
    seen = f"{hits[0][1].line.message!r} while running {running or 'unknown slot'}"
    if switched:
        seen += f"; later boot {switched[0].index} loaded {_booted_slot(switched[0], table)}"
    agreement, disagreement = _agreement(running, otadata, table)
    if agreement is Agreement.DISAGREE and otadata is not None and table is not None:
        disagreement = f"log says {running} kept running, {_otadata_words(otadata, table)}"
    passed = not switched and agreement in (Agreement.AGREE, Agreement.LOG_ONLY, Agreement.OTADATA_ONLY)
    evidence = _lines([e for _, e in hits]) + _slot_lines(later)
    return Check(name, passed, want, seen, evidence, agreement, disagreement)


def signature_rejected(
    timeline: BootTimeline, otadata: OtaData | None, table: PartitionTable | None
) -> Check:
    """A signature-failure line was printed and the boot slot did not switch."""
    return image_rejected(timeline, otadata, table, reason=RejectReason.SIGNATURE)


def never_bricked(timeline: BootTimeline, *, within_s: float) -> Check:
    """After the last power-on an app came up, within `within_s` seconds of that power-on."""
    want = f"an app running within {within_s:g}s of the last power-on"
    start = timeline.last_power_on() or (timeline[0] if len(timeline) else None)
    if start is None:
        return Check("never_bricked", False, want, "no boot in the log")
    after = [b for b in timeline if b.index >= start.index]
    bricked = [e for b in after for e in b.events if isinstance(e, ev.NoBootableApp)]
    running = next((b for b in after if b.app_reached is not None), None)
    if running is None or running.app_reached is None:
        outcomes = ", ".join(f"boot {b.index}: {b.outcome.value}" for b in after)
        return Check("never_bricked", False, want, f"no app reached ({outcomes})", _lines(bricked))
    elapsed = _elapsed(start, running, running.app_reached)
    seen = f"app reached in boot {running.index}" + (f" after {elapsed:.2f}s" if elapsed is not None else "")
    if bricked:
        seen += f"; but {bricked[0].line.message!r} was printed"
    passed = not bricked and (elapsed is None or elapsed <= within_s)
    return Check("never_bricked", passed, want, seen, _lines([*bricked, running.app_reached]))


def _elapsed(start: BootRecord, running: BootRecord, reached: ev.Event) -> float | None:
    """Host-time seconds when the capture has times; else the line's ms-since-boot (same boot only)."""
    if start.t_start is not None and reached.t is not None:
        return reached.t - start.t_start
    if running is start and reached.line.ms is not None:
        return reached.line.ms / 1000.0
    return None


def otadata_consistent(otadata: OtaData) -> Check:
    """Both otadata records are either unused (erased) or carry a CRC that matches their seq (never torn)."""
    bad = [(i, e) for i, e in enumerate(otadata.entries) if not (e.is_unused or e.crc_ok)]
    observed = "; ".join(f"entry {i}: {e.describe()}" for i, e in enumerate(otadata.entries))
    return Check(
        "otadata_consistent",
        not bad,
        "each otadata entry erased or CRC-valid",
        observed,
        agreement=Agreement.OTADATA_ONLY,
    )
