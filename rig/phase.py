"""Where in an OTA a fault landed, read on the device's own timeline, and which end states
ESP-IDF allows after it.

The host receives serial lines late, and later still on a busy machine, so "which lines
arrived before the trigger fired" is not "what the device did before the fault". What is
certain is the order of the lines themselves: everything the device printed before its
supply dropped comes before the ROM banner of the power-on (or brownout) reset that the
fault caused. The phase is read from that prefix of the log, never from arrival times.
A line can also be lost in the chip's UART FIFO when power dies; the phases that border
such a line (the switch, the confirm) accept both end states or are refined with the
otadata read-back.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

COMPLETE = "rig_agent: ota complete"
SELFTEST_PASSED = "rig_agent: selftest passed"
CONFIRMED = "rig_agent: app confirmed valid"
LOADED_APP = "boot: Loaded app from partition"
# ROM banners of a reset the supply caused (esp_rom: POWERON_RESET, RTCWDT_BROWN_OUT_RESET).
SUPPLY_RESET = re.compile(r"^rst:0x(?:1|f) \((?:POWERON_RESET|RTCWDT_BROWN_OUT_RESET)\)")
ALL_WRITTEN = re.compile(r"rig_agent: ota progress bytes=(\d+) total=(\d+)")


class Phase(enum.Enum):
    """Where in the OTA the fault landed, in the order an OTA passes through them."""

    NO_FAULT = "no fault fired"
    DOWNLOAD = "before the boot partition switch"
    SWITCHED = "after the switch, before the new image booted"
    FIRST_BOOT = "during the new image's first boot, before confirm"
    CONFIRMING = "while the new image confirmed itself (self-test passed, confirm not yet reported)"
    CONFIRMED = "after the new image confirmed itself"
    RECOVERED = "a network fault the download survived"

    @property
    def order(self) -> int:
        return _ORDER.index(self)


_ORDER = list(Phase)


class Final(enum.Enum):
    """Which firmware a correct device runs once it has recovered."""

    OLD = "old"
    NEW = "new"


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


@dataclass(frozen=True)
class FaultSeen:
    """What the rig knows about the faults of one OTA, independent of line arrival times."""

    power: bool  # a power cut or brownout fired: the device lost its supply
    network: bool  # the proxy acted on one of this OTA's connections
    t_fired: float | None = None  # host time the first power action started


def lines_before_supply_loss(lines: Sequence[tuple[str, float]], t_fired: float) -> list[str]:
    """The lines the device printed before its supply dropped: those before the first
    supply-reset ROM banner received after the fault fired (a banner the host received
    earlier cannot be this fault's, whose power-on comes after it)."""
    texts = []
    for text, t in lines:
        if t >= t_fired and SUPPLY_RESET.search(text):
            break
        texts.append(text)
    return texts


def phase_of(lines: Sequence[tuple[str, float]], fault: FaultSeen, *, switched_in_otadata: bool) -> Phase:
    """Where this OTA's first fault landed.

    `lines` are the OTA's console lines (text, host receive time) in order;
    `switched_in_otadata` says whether the read-back shows a boot-partition switch this OTA
    made (its top otadata sequence number rose). That fills the one gap the log leaves: a
    cut after the last byte was written and the switch made, but before `ota complete`
    left the chip.
    """
    if not fault.power:
        if not fault.network:
            return Phase.NO_FAULT
        # Proxy faults act on the download only: did the download survive it?
        return Phase.RECOVERED if any(COMPLETE in text for text, _ in lines) else Phase.DOWNLOAD
    before = lines_before_supply_loss(lines, fault.t_fired if fault.t_fired is not None else float("-inf"))
    if any(CONFIRMED in text for text in before):
        return Phase.CONFIRMED
    completed = [i for i, text in enumerate(before) if COMPLETE in text]
    if not completed:
        return Phase.SWITCHED if switched_in_otadata and _all_written(before) else Phase.DOWNLOAD
    after_complete = before[completed[-1] :]
    if not any(LOADED_APP in text for text in after_complete):
        return Phase.SWITCHED
    if any(SELFTEST_PASSED in text for text in after_complete):
        return Phase.CONFIRMING
    return Phase.FIRST_BOOT


def _all_written(texts: Sequence[str]) -> bool:
    """The device reported every byte of the image written (`ota progress bytes=N total=N`)."""
    for text in reversed(texts):
        found = ALL_WRITTEN.search(text)
        if found is not None:
            return int(found[2]) > 0 and int(found[1]) >= int(found[2])
    return False
