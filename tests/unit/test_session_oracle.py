"""The one place that decides what a correct device does after a fault (bootloader_utility.c,
esp_ota_ops.c)."""

from __future__ import annotations

import pytest

from rig.cutspec import parse_cut
from rig.net.fault_proxy import Position, Unit
from rig.phase import Final, Phase, acceptable_outcomes
from rig.session import _confirm_order_problems, _proxy_position

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
    assert _proxy_position(parse_cut("net@bytes=300000:rst")) == Position(Unit.IMAGE, 300000)
    assert _proxy_position(parse_cut("net@fraction=0.4:stall=5s")) == Position(Unit.FRACTION, 0.4)
    assert _proxy_position(parse_cut("net@wire=1000:fin")) == Position(Unit.WIRE, 1000)
    assert _proxy_position(parse_cut('net@log="Writing to":rst')) is None


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
    assert bool(_confirm_order_problems(texts)) is flagged
