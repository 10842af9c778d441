"""Judging one cut point of a sweep against ESP-IDF v5.5.5's rules for what must boot.

What the device must run after a cut follows from what otadata selected when power went
(`bootloader_utility.c:bootloader_utility_get_selected_boot_partition()`):

- nothing valid, or the old slot: the old image;
- the new slot in state VALID (or any state without rollback): the new image;
- the new slot in state NEW (rollback on): the new image, once — the bootloader marks it
  PENDING_VERIFY, its self-test confirms it (`esp_ota_mark_app_valid_cancel_rollback()`);
- the new slot in PENDING_VERIFY: it had its one boot, so the bootloader marks it ABORTED
  and the old image runs (rollback).

Every otadata write erases the entry's sector, then programs it (`esp_ota_ops.c:rewrite_ota_seq()`,
the bootloader's `write_otadata()`): between the two only the other entry is valid, so a cut
there, even in the confirm, boots what that entry selects. A cut inside an otadata write may
leave either side of it. An update whose image must be
refused (the image set's expectation) may never run the new image at all. On top of the
image: an app always boots, otadata holds only erased or CRC-valid entries between
operations, the unconfirmed new image boots at most once, the eFuse secure version never
passes the old image's before the new one is confirmed, and a retried update completes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rig.sweep.records import (
    EntryHealth,
    Image,
    OpInfo,
    PointFacts,
    RunEnd,
    RunFacts,
    Stage,
    TraceFacts,
)

OTADATA = "otadata"
NOT_SLOTS = ("nvs", OTADATA, "efuse", "")


class Band(enum.Enum):
    """Where in the update an operation (and a cut before it) falls."""

    PREPARE = "prepare"
    ERASE = "erase"
    DOWNLOAD = "download"
    OTADATA = "otadata"
    FIRST_BOOT = "first boot"
    CONFIRM = "confirm"
    END = "after the update"


class Problem(enum.Enum):
    """Why a cut point is unsafe."""

    BRICK = "no app boots"
    BOOT_LOOP = "boot loop"
    WRONG_IMAGE = "wrong image"
    REFUSED_BOOTED = "refused image booted"
    UNCONFIRMED_TWICE = "unconfirmed image booted twice"
    OTADATA_TORN = "torn otadata"
    SECURE_VERSION_EARLY = "secure version raised before confirm"
    RETRY_FAILED = "retried update did not complete"


@dataclass(frozen=True)
class Judged:
    """One cut point with its verdict."""

    op: int
    torn: float | None
    run: int
    band: Band
    expected: frozenset[Image]
    settled: Image | None  # what ran once the cut board settled (before any retry)
    final: Image | None  # what runs at the end (after a retry)
    problems: tuple[tuple[Problem, str], ...]

    @property
    def safe(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """`op 123` or `op 123 torn 0.5`."""
        return f"op {self.op}" + ("" if self.torn is None else f" torn {self.torn:g}")


def bands(facts: TraceFacts) -> list[Band]:
    """The band of every operation, plus one for the point after the last (END)."""
    writes = (o for o in facts.ops if o.stage is Stage.UPDATE and o.kind == "program")
    target = next((o.region for o in writes if o.region not in NOT_SLOTS), None)
    written = switching = confirmed = False
    result = []
    for op in facts.ops:
        if op.stage is Stage.PREPARE:
            result.append(Band.PREPARE)
            continue
        if op.stage is Stage.UPDATE:
            switching = switching or op.region == OTADATA
            if switching or op.region == "efuse":
                result.append(Band.OTADATA)
            elif op.region == target and op.kind == "erase" and not written:
                result.append(Band.ERASE)
            else:
                written = written or (op.region == target and op.kind == "program")
                result.append(Band.DOWNLOAD)
            continue
        confirmed = confirmed or (op.selects is Image.NEW and op.selected_state == "VALID")
        result.append(Band.CONFIRM if confirmed else Band.FIRST_BOOT)
    result.append(Band.END)
    return result


def expected_after(selects: Image | None, state: str, rollback: bool) -> frozenset[Image]:
    """What must run once a board powers on with otadata selecting `selects` in `state`."""
    if selects is not Image.NEW:
        return frozenset({Image.OLD})
    if rollback and state == "PENDING_VERIFY":
        return frozenset({Image.OLD})
    return frozenset({Image.NEW})


class Judge:
    """Judges the points of one sweep (`accepted`: the image set says the update must land)."""

    def __init__(self, facts: TraceFacts, *, accepted: bool, retry: bool) -> None:
        self.facts = facts
        self.accepted = accepted
        self.retry = retry
        self.bands = bands(facts)
        # Selection and secure version after ops[:k], for every k.
        self._states: list[tuple[Image | None, str, int]] = [
            (facts.base_selects, facts.base_state, facts.efuse_base)
        ]
        confirmed_at: int | None = None
        for k, op in enumerate(facts.ops):
            self._states.append((op.selects, op.selected_state, op.secure_version))
            if confirmed_at is None and op.selects is Image.NEW and op.selected_state == "VALID":
                confirmed_at = k + 1
        self._confirmed_at = confirmed_at

    def expected(self, point: PointFacts) -> frozenset[Image]:
        if not self.accepted:
            return frozenset({Image.OLD})
        selects, state, _ = self._states[point.op]
        expected = expected_after(selects, state, self.facts.rollback)
        if point.torn is not None and self._op(point).region == OTADATA:
            after, after_state, _ = self._states[point.op + 1]
            expected |= expected_after(after, after_state, self.facts.rollback)
        return expected

    def _op(self, point: PointFacts) -> OpInfo:
        return self.facts.ops[point.op]

    def judge(self, point: PointFacts, run: RunFacts) -> Judged:
        expected = self.expected(point)
        final = run.final.image if run.final is not None else None
        settled = Image.OLD if run.retried else final
        problems: list[tuple[Problem, str]] = []
        if run.end is RunEnd.BOOT_LOOP:
            if run.boots:
                problems.append((Problem.BOOT_LOOP, f"{len(run.boots)} boots without an app settling"))
            else:
                problems.append((Problem.BRICK, "the bootloader finds no bootable app"))
        elif settled not in expected:
            problems.append((Problem.WRONG_IMAGE, self._wrong_image(settled, expected)))
        problems += self._boots(run)
        problems += self._otadata(point, run)
        problems += self._secure_version(point, run)
        if self.accepted and self.retry and run.retried and not self._landed(run):
            problems.append((Problem.RETRY_FAILED, "typed again, the update does not end on the new image"))
        band = self.bands[point.op]
        return Judged(point.op, point.torn, point.run, band, expected, settled, final, tuple(problems))

    def _wrong_image(self, settled: Image | None, expected: frozenset[Image]) -> str:
        ran = settled.value if settled else "no"
        if not self.accepted:
            return f"runs the {ran} image of an update it must refuse"
        want = " or ".join(sorted(i.value for i in expected))
        return f"runs the {ran} image; otadata at the cut selects the {want} one"

    def _boots(self, run: RunFacts) -> list[tuple[Problem, str]]:
        before = run.boots[: run.boots_before_retry]
        if not self.accepted and any(b.image is Image.NEW for b in run.boots):
            return [(Problem.REFUSED_BOOTED, "the image the update must refuse ran")]
        unconfirmed = [b for b in before if b.image is Image.NEW and b.state == "PENDING_VERIFY"]
        if self.facts.rollback and len(unconfirmed) > 1:
            return [(Problem.UNCONFIRMED_TWICE, f"the new image booted {len(unconfirmed)} times unconfirmed")]
        return []

    def _otadata(self, point: PointFacts, run: RunFacts) -> list[tuple[Problem, str]]:
        torn_here = point.torn is not None and self._op(point).region == OTADATA
        if point.torn is None and EntryHealth.TORN in point.otadata_at_cut:
            return [(Problem.OTADATA_TORN, "otadata holds a torn entry between two operations")]
        if run.otadata_end.count(EntryHealth.TORN) > (1 if torn_here else 0):
            return [(Problem.OTADATA_TORN, "otadata ends with a torn entry the cut did not leave")]
        return []

    def _secure_version(self, point: PointFacts, run: RunFacts) -> list[tuple[Problem, str]]:
        limit = self.facts.old_secure_version
        _, _, at_cut = self._states[point.op]
        confirmed = self._confirmed_at is not None and point.op >= self._confirmed_at
        if at_cut > limit and not (self.accepted and confirmed):
            return [(Problem.SECURE_VERSION_EARLY, f"eFuse secure version {at_cut} > {limit} before confirm")]
        if run.efuse_end > limit and not (self.accepted and self._landed(run)):
            return [(Problem.SECURE_VERSION_EARLY, f"eFuse secure version {run.efuse_end} > {limit}, "
                     "yet the new image is not confirmed")]  # fmt: skip
        return []

    def _landed(self, run: RunFacts) -> bool:
        """The run ends on the new image, confirmed where rollback asks for a confirmation."""
        final = run.final
        if final is None or final.image is not Image.NEW:
            return False
        return not self.facts.rollback or run.state_end == "VALID"


# A retried update that cannot even connect proves nothing about the firmware: on the lab's
# loopback that is the rig's server gone, not the device.
_NO_SERVER = "ESP_ERR_HTTP_CONNECT"


def infra_reason(run: RunFacts) -> str:
    """Why the rig cannot judge this run ("" when it can)."""
    if run.retried and _NO_SERVER in run.log:
        return "the retried update found no server (ESP_ERR_HTTP_CONNECT)"
    return ""
