"""The one place that decides what a correct device does after a fault (bootloader_utility.c,
esp_ota_ops.c)."""

from __future__ import annotations

import pytest

from rig.agents.rig_agent import MILESTONES as RIG
from rig.cutspec import CutPoint, parse_cut
from rig.cutter import _proxy_position
from rig.logs.boots import BootTimeline
from rig.logs.parser import parse_text
from rig.net.faults import Counting, Position
from rig.outcome import OtaResult, ProblemKind
from rig.phase import Final, Phase
from rig.verdicts import acceptable_outcomes, judge_confirm_order

OLD, NEW = frozenset({Final.OLD}), frozenset({Final.NEW})


@pytest.mark.parametrize(
    "phase, rollback, expected",
    [
        (Phase.NO_FAULT, True, NEW),
        (Phase.DOWNLOAD, True, OLD),  # otadata untouched before the switch
        (Phase.SWITCHED, True, OLD | NEW),  # the cut may land in the bootloader's NEW→PENDING rewrite
        (Phase.FIRST_BOOT, True, OLD),  # PENDING_VERIFY → ABORTED at the next boot
        (Phase.FIRST_BOOT, False, NEW),  # without rollback the new image simply stays
        (Phase.CONFIRMED, True, NEW),
        (Phase.RECOVERED, True, NEW),
    ],
)
def test_an_accepted_image_ends_where_esp_idf_puts_it(
    phase: Phase, rollback: bool, expected: frozenset[Final]
) -> None:
    assert acceptable_outcomes("accept", phase, rollback) == expected


@pytest.mark.parametrize(
    "expect", ["reject_at_verify", "reject_before_write", "reject_by_version_check", "roll_back"]
)
@pytest.mark.parametrize("phase", list(Phase))
def test_an_image_that_must_not_stay_always_ends_on_the_old_firmware(expect: str, phase: Phase) -> None:
    assert acceptable_outcomes(expect, phase, rollback=True) == OLD


def test_network_cuts_at_image_positions_are_left_to_the_proxy() -> None:
    assert _proxy_position(point_of("net@bytes=300000:rst")) == Position(Counting.IMAGE, 300000)
    assert _proxy_position(point_of("net@fraction=0.4:stall=5s")) == Position(Counting.FRACTION, 0.4)
    assert _proxy_position(point_of("net@wire=1000:fin")) == Position(Counting.WIRE, 1000)
    assert _proxy_position(point_of('net@log="Writing to":rst')) is None


def point_of(text: str) -> CutPoint:
    return parse_cut(text).point


BOOT = "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"


@pytest.mark.parametrize(
    ("markers", "flagged"),
    [
        (["selftest begin behaviour=healthy", "selftest passed", "app confirmed valid"], False),
        (["app confirmed valid", "selftest begin behaviour=healthy", "selftest passed"], True),
        (["selftest begin behaviour=crash_on_boot", "app confirmed valid"], True),
        (["app confirmed valid"], True),  # confirmed without running its self-test at all
    ],
)
def test_a_confirm_before_the_selftest_passed_is_a_protocol_violation(
    markers: list[str], flagged: bool
) -> None:
    texts = [BOOT, "I (30) boot: Loaded app from partition at offset 0x1d0000"]
    texts += [f"I (90) rig_agent: {m}" for m in markers]
    result = blank_result()
    judge_confirm_order(result, parse_text("\n".join(texts)), RIG)
    assert [p.kind for p in result.problems] == ([ProblemKind.CONFIRM_ORDER] if flagged else [])


def blank_result() -> OtaResult:
    return OtaResult(
        board="b", image="next", expect="accept", old_version="1.0.0", new_version="1.0.1", cut=None,
        fault="none", cut_point=None, firings=[], phase=Phase.NO_FAULT, acceptable=frozenset({Final.NEW}),
        final=None, final_ready=None, otadata=None, timeline=BootTimeline([]), bytes_served=0, duration_s=0.0,
        mark=0, readback_mark=0, started=0.0, time_to_recover_s=None,
    )  # fmt: skip
