"""What is correct after an OTA experiment, and the invariants every OTA must keep.

Pure functions: the session gathers what happened (lines, firings, read-back) and asks
here which end states ESP-IDF allows and what went wrong. Each finding is a `Problem`
of a kind, so how an experiment is classed (`OtaResult.outcome`) never depends on text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rig.board import Ready
from rig.checks import expect_boot, otadata_consistent
from rig.esp.otadata import OtaData
from rig.esp.partitions import PartitionTable
from rig.logs import events as ev
from rig.logs.boots import BootTimeline
from rig.outcome import OtaResult, ProblemKind
from rig.phase import Final, Phase

if TYPE_CHECKING:
    from rig.agents.base import Milestones

# PROTOCOL.md §3: progress is saved each time the written count crosses a 4 KiB boundary. The
# last `ota saved` line may die in the UART FIFO with the supply, so a resume may start one
# save step past the last one the rig saw, never further.
SAVE_STEP = 4096
# Expectations under which the device must refuse the image before `esp_ota_write()`.
REFUSED_BEFORE_WRITE = frozenset(
    {"reject_before_write", "reject_by_version_check", "reject_by_anti_rollback"}
)


def acceptable_outcomes(expect: str, phase: Phase, rollback: bool) -> frozenset[Final]:
    """The ESP-IDF-correct end states for an image with manifest expectation `expect`.

    Only an image the device should accept can end on NEW. otadata is written only by
    `esp_ota_set_boot_partition()` (components/app_update/esp_ota_ops.c), after the whole
    image verified, so a fault before the switch leaves the old app. After it the new image
    gets its one boot attempt: with rollback,
    `bootloader_utility.c:bootloader_utility_get_selected_boot_partition()` turns NEW into
    PENDING_VERIFY and, at the next boot, an unconfirmed PENDING_VERIFY into ABORTED, so a
    fault before confirm ends on OLD. A cut between the switch and the first boot may land
    inside the bootloader's own NEW -> PENDING_VERIFY rewrite, and a cut right after a passed
    self-test may land on either side of `esp_ota_mark_app_valid_cancel_rollback()`: there
    either end state is correct.
    """
    if expect != "accept":
        return frozenset({Final.OLD})
    either = frozenset({Final.OLD, Final.NEW})
    return {
        Phase.NO_FAULT: frozenset({Final.NEW}),
        Phase.DOWNLOAD: frozenset({Final.OLD}),
        Phase.SWITCHED: either,
        Phase.FIRST_BOOT: frozenset({Final.OLD} if rollback else {Final.NEW}),
        Phase.CONFIRMING: either if rollback else frozenset({Final.NEW}),
        Phase.CONFIRMED: frozenset({Final.NEW}),
        Phase.RECOVERED: frozenset({Final.NEW}),
    }[phase]


def judge_end_state(result: OtaResult, *, scenario_end: bool) -> None:
    """Which firmware the recovered device runs, against `result.acceptable`.

    `scenario_end` says the scenario, not the manifest, named the correct end state.
    """
    ready = result.final_ready
    if ready is None:
        result.add(ProblemKind.BRICK, "BRICK: no app reached 'ready' after recovery")
        return
    versions = {Final.OLD: result.old_version, Final.NEW: result.new_version}
    result.final = next((f for f, v in versions.items() if v == ready.version), None)
    if result.final is None:
        result.add(
            ProblemKind.UNKNOWN_FIRMWARE,
            f"running version {ready.version} is neither old {result.old_version} "
            f"nor new {result.new_version}",
        )
    elif result.final not in result.acceptable:
        allowed = " or ".join(sorted(f.value for f in result.acceptable))
        whose = "this scenario's correct end is" if scenario_end else "ESP-IDF-correct is"
        result.add(
            ProblemKind.WRONG_END_STATE,
            f"ended on {result.final.value} firmware {ready.version}; {whose} {allowed}",
        )


def judge_sources(
    result: OtaResult, last_boot: BootTimeline, otadata: OtaData, table: PartitionTable, ready: Ready
) -> None:
    """The two sources agree: the boot after the read-back (log) and the otadata itself."""
    for check in (
        otadata_consistent(otadata),
        expect_boot(last_boot, otadata, table, slot=ready.running, version=ready.version),
    ):
        if not check.passed:
            result.add(ProblemKind.SOURCES_DISAGREE, check.explain())


def judge_proof(result: OtaResult, texts: Sequence[str], patterns: Sequence[re.Pattern[str]]) -> None:
    """Every ESP-IDF line the image's manifest promises for an undisturbed OTA was printed."""
    for pattern in patterns:
        if not any(pattern.search(text) for text in texts):
            result.add(ProblemKind.PROOF_MISSING, f"expected log line not seen: /{pattern.pattern}/")


def judge_confirm_order(result: OtaResult, events: Sequence[ev.Event], milestones: Milestones) -> None:
    """PROTOCOL.md §4: an image confirms itself only in its first boot, after its self-test
    passed. One that confirms first (or without a self-test at all) can no longer be rolled
    back when the self-test would have failed or hung. (A stock example's confirmation is
    its own checkpoint: connected to the network, or its diagnostic passed.)"""
    passed = False
    for event in events:
        if isinstance(event, ev.RomReset):
            passed = False
        elif milestones.selftest_passed(event):
            passed = True
        if milestones.confirmed(event) and not passed:
            result.add(
                ProblemKind.CONFIRM_ORDER,
                "the new image confirmed itself (`app confirmed valid`) before its self-test passed",
            )
            return


def judge_untouched(
    result: OtaResult, md5: Mapping[tuple[int, int], str], expected: Mapping[str, tuple[int, bytes]]
) -> None:
    """Slots the OTA must not write (on-chip MD5 against what the rig left there)."""
    for name, (offset, data) in expected.items():
        if md5.get((offset, len(data))) != hashlib.md5(data).hexdigest():
            what = "erased before the OTA" if not data.strip(b"\xff") else "holding a known image"
            result.add(
                ProblemKind.FLASH_WRITTEN,
                f"flash written where it must not be: slot {name} ({what}) changed during the OTA "
                f"(on-chip MD5 of its first {len(data)} bytes differs from what the rig left there)",
            )


def judge_resume(
    result: OtaResult,
    device_events: Sequence[ev.Event],
    *,
    resume_limit: int,
    undisturbed: bool,
    ranged_body_bytes: int | None,
    size: int,
) -> None:
    """PROTOCOL.md §3 resume invariants: the device resumes from no further than it saved,
    and asks the server for exactly the bytes it has not written.

    `ranged_body_bytes` is the body the server sent when every GET of the OTA was a 206
    (None otherwise); `undisturbed` says no fault touched the download.
    """
    begin = next((e for e in device_events if isinstance(e, ev.RigOtaBegin)), None)
    if begin is None or begin.resume_from == 0:
        return
    resume_from = begin.resume_from
    if resume_from > resume_limit:
        last = max(0, resume_limit - SAVE_STEP)
        result.add(
            ProblemKind.RESUME,
            f"resumed from byte {resume_from}, past what the device saved: the progress it reported "
            f"before the fault was {last} bytes (one unreported save step of {SAVE_STEP} allowed)",
        )
    complete = any(isinstance(e, ev.RigOtaComplete) for e in device_events)
    if complete and undisturbed and ranged_body_bytes is not None and ranged_body_bytes != size - resume_from:
        result.add(
            ProblemKind.RESUME,
            f"resumed from byte {resume_from} of {size} but downloaded {ranged_body_bytes} bytes "
            f"(expected {size - resume_from}): the Range it asked for is not the offset it reported",
        )


def resume_limit_after(device_events: Sequence[ev.Event]) -> int:
    """The furthest point the next OTA may resume from, given what this one reported."""
    saved = [e.bytes for e in device_events if isinstance(e, ev.RigOtaSaved)]
    begin = next((e.resume_from for e in device_events if isinstance(e, ev.RigOtaBegin)), 0)
    return max([begin, *saved]) + SAVE_STEP


# -- AWS IoT OTA jobs (rig/mqtt) ------------------------------------------------------------


def judge_job(result: OtaResult, jobs: Sequence[tuple[str, str | None, frozenset[str]]]) -> None:
    """The status each job ended on, as the device reported it (AWS IoT Jobs' execution
    status), against the statuses correct for it: `(job id, status, allowed)`. A job the
    device never finished is a problem too: the fleet console would show it IN_PROGRESS."""
    for job_id, status, allowed in jobs:
        if status not in allowed:
            wanted = " or ".join(sorted(allowed))
            result.add(
                ProblemKind.JOB_STATUS,
                f"job {job_id} ended {status or 'without a status'}; correct is {wanted}",
            )


def judge_old_image_erased(result: OtaResult, slot: str, digest: str | None, erased_digest: str) -> None:
    """ota_demo_core_mqtt.c: an accepted image erases the last boot partition
    (otaPal_EraseLastBootPartition), so nothing can force a rollback to the old image."""
    if digest is not None and digest != erased_digest:
        result.add(ProblemKind.OLD_IMAGE_KEPT, f"after SUCCEEDED the old image in {slot} is still in flash")
