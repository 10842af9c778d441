"""`--cut` spec parsing: every documented form, its trigger condition, and one-line errors."""

from __future__ import annotations

import re

import pytest

from rig.cutspec import CutKind, NetFault, On, parse_cut
from rig.errors import InputError
from rig.triggers import BytesAtLeast, FractionAtLeast, LogMatches, RandomPointInWindow, TriggerEngine


def test_power_forms() -> None:
    spec = parse_cut("power@bytes=400000")
    assert (spec.kind, spec.on, spec.at, spec.off_s) == (CutKind.POWER, On.BYTES, 400000, None)
    assert isinstance(spec.condition(), BytesAtLeast)
    spec = parse_cut("power@fraction=0.4:off=2s")
    assert (spec.at, spec.off_s) == (0.4, 2.0)
    assert isinstance(spec.condition(), FractionAtLeast)
    spec = parse_cut('power@log="esp_image: Verifying":delay=200ms')
    assert isinstance(spec.at, re.Pattern) and spec.at.search("I (1) esp_image: Verifying image signature...")
    assert spec.delay_s == pytest.approx(0.2)
    spec = parse_cut("power@log=/Loaded app .* 0x1d0000/:delay=0.2s:off=1.5s")
    assert isinstance(spec.condition(), LogMatches)
    assert (spec.delay_s, spec.off_s) == (0.2, 1.5)
    spec = parse_cut('power@log="a \\"quoted\\" b: c"')
    assert isinstance(spec.at, re.Pattern) and spec.at.search('a "quoted" b: c')


def test_literal_log_text_is_not_a_regex() -> None:
    spec = parse_cut('power@log="offset 0x1d0000 (x)"')
    assert isinstance(spec.at, re.Pattern)
    assert spec.at.search("Loaded app from partition at offset 0x1d0000 (x)")
    assert not spec.at.search("offset 0x1d0000 x")


def test_random_is_seeded() -> None:
    spec = parse_cut("power@random=0.1..0.9:seed=7")
    assert (spec.at, spec.seed) == ((0.1, 0.9), 7)
    first, second = spec.condition(), parse_cut("power@random=0.1..0.9:seed=7").condition()
    assert isinstance(first, RandomPointInWindow) and isinstance(second, RandomPointInWindow)
    assert first.point == second.point and 0.1 <= first.point <= 0.9
    by_bytes = parse_cut("power@random=1000..9000:seed=1").condition()
    assert isinstance(by_bytes, RandomPointInWindow) and 1000 <= by_bytes.point <= 9000


def test_net_and_brownout_forms() -> None:
    stall = parse_cut("net@fraction=0.4:stall=20s")
    assert (stall.kind, stall.net_fault, stall.stall_s) == (CutKind.NET, NetFault.STALL, 20.0)
    assert parse_cut("net@bytes=300000:rst").net_fault is NetFault.RST
    assert parse_cut("net@bytes=300000:fin").net_fault is NetFault.FIN
    throttle = parse_cut("net@fraction=0.5:throttle=20000")
    assert (throttle.net_fault, throttle.throttle_bps) == (NetFault.THROTTLE, 20000)
    wire = parse_cut("net@wire=5000:rst")
    assert wire.on is On.WIRE and wire.condition().describe() == "wire bytes >= 5000"
    assert parse_cut("net@fraction=0.4:dead").net_fault is NetFault.DEAD
    brown = parse_cut("brownout@fraction=0.3:volts=2.2:hold=0.5s")
    assert (brown.kind, brown.volts, brown.hold_s) == (CutKind.BROWNOUT, 2.2, 0.5)


def test_spec_trigger_fires_with_delay_and_name() -> None:
    engine = TriggerEngine()
    fired: list[int] = []
    engine.add(parse_cut("power@bytes=10").trigger(lambda: fired.append(1)))
    (firing,) = engine.on_progress("ota", 1, 10, 100)
    assert firing.trigger == "power@bytes=10" and fired == [1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "power@bites=1",
            "--cut power@bites=1: unknown condition 'bites' (use bytes, fraction, log, random, wire)",
        ),
        ("zap@bytes=1", "--cut zap@bytes=1: unknown kind 'zap' (use power, net, brownout)"),
        ("power", "--cut power: expected <kind>@<condition>=<value> (e.g. power@fraction=0.4)"),
        ("power@bytes", "--cut power@bytes: condition 'bytes' needs =<value>"),
        ("power@bytes=lots", "--cut power@bytes=lots: bytes='lots' is not an integer"),
        ("power@fraction=1.5", "--cut power@fraction=1.5: fraction=1.5 must be between 0 and 1"),
        ("power@random=0.5", "--cut power@random=0.5: random='0.5' must be a window lo..hi (e.g. 0.1..0.9)"),
        (
            "power@bytes=1:off=soon",
            "--cut power@bytes=1:off=soon: off='soon' is not a duration (e.g. 2s, 0.5s, 200ms)",
        ),
        (
            "power@bytes=1:rst",
            "--cut power@bytes=1:rst: unknown parameter 'rst' for power (use delay, off, seed)",
        ),
        ("power@bytes=1:seed=3", "--cut power@bytes=1:seed=3: seed= only applies to random="),
        (
            "net@bytes=1",
            "--cut net@bytes=1: net cuts need one of stall=<duration>, rst, fin, throttle=<bytes/s>, dead",
        ),
        ("net@bytes=1:rst:fin", "--cut net@bytes=1:rst:fin: fin conflicts with rst"),
        ("net@bytes=1:rst=2", "--cut net@bytes=1:rst=2: rst takes no value"),
        ("net@bytes=1:stall", "--cut net@bytes=1:stall: stall needs =<value>"),
        ("brownout@bytes=1", "--cut brownout@bytes=1: brownout cuts need volts=<V>"),
        ('power@log="abc', '--cut power@log="abc: unterminated " in \'"abc\''),
        ("power@log=/a(/", "--cut power@log=/a(/: log=/a(/ is not a valid regex"),
    ],
)
def test_errors_are_one_line_and_point_at_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_cut(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
