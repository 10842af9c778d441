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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.logs import events as ev

if TYPE_CHECKING:
    from rig.agents.base import Milestones

# ROM reset reasons the supply causes (esp_rom's RESET_REASON: POWERON_RESET, RTCWDT_BROWN_OUT_RESET).
SUPPLY_RESETS = frozenset({"POWERON_RESET", "RTCWDT_BROWN_OUT_RESET"})


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


@dataclass(frozen=True)
class FaultSeen:
    """What the rig knows about the faults of one OTA, independent of line arrival times."""

    power: bool  # a power cut or brownout fired: the device lost its supply
    network: bool  # the proxy acted on one of this OTA's connections
    t_fired: float | None = None  # host time the first power action started


def before_supply_loss(events: Sequence[ev.Event], t_fired: float) -> list[ev.Event]:
    """What the device printed before its supply dropped: the events before the first
    supply-reset ROM banner received after the fault fired (a banner the host received
    earlier cannot be this fault's, whose power-on comes after it)."""
    kept = []
    for event in events:
        supply_reset = isinstance(event, ev.RomReset) and event.reason in SUPPLY_RESETS
        if supply_reset and event.t is not None and event.t >= t_fired:
            break
        kept.append(event)
    return kept


def phase_of(
    events: Sequence[ev.Event], fault: FaultSeen, milestones: Milestones, *, switched_in_otadata: bool
) -> Phase:
    """Where this OTA's first fault landed.

    `events` are the OTA's console events in order, each with its host receive time;
    `switched_in_otadata` says whether the read-back shows a boot-partition switch this OTA
    made (its top otadata sequence number rose). That fills the one gap the log leaves: a
    cut after the last byte was written and the switch made, but before `ota complete`
    left the chip.
    """
    if not fault.power:
        if not fault.network:
            return Phase.NO_FAULT
        # Proxy faults act on the download only: did the download survive it?
        survived = any(milestones.complete(e) for e in events)
        return Phase.RECOVERED if survived else Phase.DOWNLOAD
    before = before_supply_loss(events, fault.t_fired if fault.t_fired is not None else float("-inf"))
    if any(milestones.confirmed(e) for e in before):
        return Phase.CONFIRMED
    completed = [i for i, e in enumerate(before) if milestones.complete(e)]
    if not completed:
        return Phase.SWITCHED if switched_in_otadata and _all_written(before, milestones) else Phase.DOWNLOAD
    after_complete = before[completed[-1] :]
    if not any(isinstance(e, ev.SlotLoaded) for e in after_complete):
        return Phase.SWITCHED
    if any(milestones.selftest_passed(e) for e in after_complete):
        return Phase.CONFIRMING
    return Phase.FIRST_BOOT


def _all_written(events: Sequence[ev.Event], milestones: Milestones) -> bool:
    """The device reported every byte of the image written (`ota progress bytes=N total=N`)."""
    progress = [p for p in map(milestones.progress, events) if p is not None]
    return bool(progress) and progress[-1][1] > 0 and progress[-1][0] >= progress[-1][1]
