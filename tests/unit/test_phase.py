"""Where a fault landed is read from the order of the device's lines, never from when the
host happened to receive them: the same log delayed by 0-300 ms gives the same phase."""

from __future__ import annotations

import random

import pytest

from rig.agents.rig_agent import MILESTONES as RIG
from rig.logs import events as ev
from rig.logs.parser import LogParser
from rig.phase import FaultSeen, Final, Phase, before_supply_loss
from rig.phase import phase_of as phase_of_events
from rig.verdicts import acceptable_outcomes

BANNER = "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"
SW_RESET = "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"
BROWNOUT = "rst:0xf (RTCWDT_BROWN_OUT_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"
DOWNLOAD = [
    "I (100) rig_agent: ota begin url=https://127.0.0.1:1/next resume_from=0",
    "I (120) esp_https_ota: Writing to <ota_1> partition at offset 0x1d0000",
    "I (300) rig_agent: ota saved bytes=65536",
    "I (400) rig_agent: ota progress bytes=65536 total=131072",
]
ALL_WRITTEN = ["I (500) rig_agent: ota progress bytes=131072 total=131072"]
SWITCH = ["I (600) rig_agent: ota complete bytes=131072", "I (601) rig_agent: ota restarting", SW_RESET]
FIRST_BOOT = ["I (30) boot: Loaded app from partition at offset 0x1d0000",
              "I (90) rig_agent: selftest begin behaviour=healthy"]
CONFIRMING = ["I (900) rig_agent: selftest passed"]
CONFIRMED = ["I (901) rig_agent: app confirmed valid"]
AFTER = [BANNER, "I (30) boot: Loaded app from partition at offset 0x20000",
         "I (90) rig_agent: ready version=1.0.0 running=ota_0 state=VALID"]


Lines = list[tuple[str, float]]


def events(lines: Lines) -> list[ev.Event]:
    """The lines as the console hands them on: parsed live, each with its arrival time."""
    parser = LogParser()
    return [parser.line(text, t) for text, t in lines]


def phase_of(lines: Lines, fault: FaultSeen, *, switched_in_otadata: bool) -> Phase:
    return phase_of_events(events(lines), fault, RIG, switched_in_otadata=switched_in_otadata)


def arrive(printed: list[str], cut_after: int, rng: random.Random, fired_at: float = 10.0) -> Lines:
    """The device prints `printed`; power drops after line `cut_after` (index); the trigger fired
    at `fired_at`. Every line reaches the host 0-300 ms late, so lines printed before the cut
    often arrive after the trigger fired; lines after the power-on come after the outage."""
    out, t = [], fired_at - 0.05 * cut_after
    for index, text in enumerate(printed):
        t = max(t, fired_at + 0.5) if index > cut_after else t + 0.01
        out.append((text, t + rng.uniform(0.0, 0.3)))
    return out  # a serial line keeps its order: only its arrival time moves


CASES = [
    (DOWNLOAD, Phase.DOWNLOAD, False),
    (DOWNLOAD + ALL_WRITTEN, Phase.DOWNLOAD, False),
    (DOWNLOAD + ALL_WRITTEN, Phase.SWITCHED, True),  # switched; `ota complete` died in the UART FIFO
    (DOWNLOAD + ALL_WRITTEN + SWITCH, Phase.SWITCHED, True),
    (DOWNLOAD + ALL_WRITTEN + SWITCH + FIRST_BOOT, Phase.FIRST_BOOT, True),
    (DOWNLOAD + ALL_WRITTEN + SWITCH + FIRST_BOOT + CONFIRMING, Phase.CONFIRMING, True),
    (DOWNLOAD + ALL_WRITTEN + SWITCH + FIRST_BOOT + CONFIRMING + CONFIRMED, Phase.CONFIRMED, True),
]


@pytest.mark.parametrize(("before", "phase", "switched"), CASES)
def test_the_same_log_gives_the_same_phase_however_late_its_lines_arrive(
    before: list[str], phase: Phase, switched: bool
) -> None:
    rng = random.Random(len(before))
    for _ in range(200):
        lines = arrive(before + AFTER, len(before) - 1, rng)
        fault = FaultSeen(power=True, network=False, t_fired=10.0)
        assert phase_of(lines, fault, switched_in_otadata=switched) is phase


def test_host_arrival_order_used_to_misplace_a_cut_that_the_device_timeline_places_right() -> None:
    """The case measured on a busy machine: `ota complete` printed before the cut reaches the
    host after the trigger fired; by arrival time the cut was "before the switch"."""
    printed = DOWNLOAD + ALL_WRITTEN + SWITCH + AFTER
    cut = len(printed) - len(AFTER)
    lines = [(text, 10.2 if index < cut else 11.0) for index, text in enumerate(printed)]
    fault = FaultSeen(power=True, network=False, t_fired=10.0)
    assert [text for text, t in lines if t <= 10.0] == []  # arrival time says: nothing happened yet
    assert phase_of(lines, fault, switched_in_otadata=True) is Phase.SWITCHED


def test_a_brownout_reset_ends_the_device_timeline_too() -> None:
    lines = [(text, 1.0) for text in DOWNLOAD] + [(BROWNOUT, 2.0), *[(text, 2.1) for text in AFTER]]
    assert [e.line.raw for e in before_supply_loss(events(lines), 1.5)] == DOWNLOAD


def test_a_banner_that_arrived_before_the_fault_fired_is_not_the_faults() -> None:
    """A power-on banner from before the trigger fired (an earlier reset) does not end the prefix."""
    lines = [(BANNER, 0.5), *[(text, 1.0) for text in DOWNLOAD + ALL_WRITTEN + SWITCH], (BANNER, 3.0)]
    assert phase_of(lines, FaultSeen(power=True, network=False, t_fired=2.0), switched_in_otadata=True) \
        is Phase.SWITCHED


def test_switched_in_otadata_alone_does_not_place_a_cut_mid_download_after_the_switch() -> None:
    """An otadata switch with bytes still missing is a bug (switch before verify), not a
    reason to accept the new image: the phase stays DOWNLOAD and only OLD is correct."""
    lines = [(text, 1.0) for text in DOWNLOAD] + [(BANNER, 2.0)]
    phase = phase_of(lines, FaultSeen(power=True, network=False, t_fired=1.5), switched_in_otadata=True)
    assert phase is Phase.DOWNLOAD
    assert acceptable_outcomes("accept", phase, rollback=True) == {Final.OLD}


def test_network_faults_are_placed_by_whether_the_download_survived() -> None:
    survived = [(text, 1.0) for text in DOWNLOAD + ALL_WRITTEN + SWITCH]
    net, none = FaultSeen(power=False, network=True), FaultSeen(power=False, network=False)
    assert phase_of(survived, net, switched_in_otadata=True) is Phase.RECOVERED
    assert phase_of(survived[:2], net, switched_in_otadata=False) is Phase.DOWNLOAD
    assert phase_of(survived, none, switched_in_otadata=True) is Phase.NO_FAULT


@pytest.mark.parametrize(("rollback", "expected"), [(True, {Final.OLD, Final.NEW}), (False, {Final.NEW})])
def test_a_cut_right_after_a_passed_selftest_may_land_either_side_of_the_confirm(
    rollback: bool, expected: set[Final]
) -> None:
    assert acceptable_outcomes("accept", Phase.CONFIRMING, rollback) == expected
