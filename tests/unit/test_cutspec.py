"""`--cut` spec parsing: every documented form, its trigger condition, and one-line errors."""

from __future__ import annotations

import pytest

from rig.cutspec import (
    AtBlock,
    AtBytes,
    AtFraction,
    AtLog,
    AtRandom,
    AtWire,
    Brownout,
    Close,
    CutKind,
    MqttAction,
    MqttFault,
    NetClose,
    NetStall,
    NetThrottle,
    PowerCut,
    parse_cut,
)
from rig.errors import InputError
from rig.triggers import BytesAtLeast, FractionAtLeast, LogMatches, RandomPointInWindow, TriggerEngine


def test_power_forms() -> None:
    spec = parse_cut("power@bytes=400000")
    assert spec == PowerCut("power@bytes=400000", AtBytes(400000), 0.0, off_s=None)
    assert spec.kind is CutKind.POWER and isinstance(spec.condition(), BytesAtLeast)
    spec = parse_cut("power@fraction=0.4:off=2s")
    assert isinstance(spec, PowerCut) and (spec.point, spec.off_s) == (AtFraction(0.4), 2.0)
    assert isinstance(spec.condition(), FractionAtLeast)
    spec = parse_cut('power@log="esp_image: Verifying":delay=200ms')
    assert isinstance(spec.point, AtLog)
    assert spec.point.pattern.search("I (1) esp_image: Verifying image signature...")
    assert spec.delay_s == pytest.approx(0.2)
    spec = parse_cut("power@log=/Loaded app .* 0x1d0000/:delay=0.2s:off=1.5s")
    assert isinstance(spec, PowerCut) and isinstance(spec.condition(), LogMatches)
    assert (spec.delay_s, spec.off_s) == (0.2, 1.5)
    spec = parse_cut('power@log="a \\"quoted\\" b: c"')
    assert isinstance(spec.point, AtLog) and spec.point.pattern.search('a "quoted" b: c')


def test_literal_log_text_is_not_a_regex() -> None:
    point = parse_cut('power@log="offset 0x1d0000 (x)"').point
    assert isinstance(point, AtLog)
    assert point.pattern.search("Loaded app from partition at offset 0x1d0000 (x)")
    assert not point.pattern.search("offset 0x1d0000 x")


def test_random_is_seeded_by_the_spec_or_else_by_the_run() -> None:
    spec = parse_cut("power@random=0.1..0.9:seed=7")
    assert spec.point == AtRandom(0.1, 0.9, 7)
    first, second = spec.condition(seed=1), parse_cut("power@random=0.1..0.9:seed=7").condition(seed=2)
    assert isinstance(first, RandomPointInWindow) and isinstance(second, RandomPointInWindow)
    assert first.point == second.point and 0.1 <= first.point <= 0.9  # the spec's seed wins
    by_bytes = parse_cut("power@random=1000..9000").condition(seed=1)
    assert isinstance(by_bytes, RandomPointInWindow) and 1000 <= by_bytes.point <= 9000
    again = parse_cut("power@random=1000..9000").condition(seed=1)
    assert isinstance(again, RandomPointInWindow) and again.point == by_bytes.point


def test_net_and_brownout_forms() -> None:
    stall = parse_cut("net@fraction=0.4:stall=20s")
    assert isinstance(stall, NetStall) and (stall.kind, stall.seconds) == (CutKind.NET, 20.0)
    for close in Close:
        spec = parse_cut(f"net@bytes=300000:{close.value}")
        assert isinstance(spec, NetClose) and spec.close is close
    throttle = parse_cut("net@fraction=0.5:throttle=20000")
    assert isinstance(throttle, NetThrottle) and throttle.bytes_per_second == 20000
    wire = parse_cut("net@wire=5000:rst")
    assert wire.point == AtWire(5000) and wire.condition().describe() == "wire bytes >= 5000"
    brown = parse_cut("brownout@fraction=0.3:volts=2.2:hold=0.5s")
    assert isinstance(brown, Brownout)
    assert (brown.kind, brown.volts, brown.hold_s) == (CutKind.BROWNOUT, 2.2, 0.5)


def test_mqtt_forms() -> None:
    kick = parse_cut("mqtt@block=40:kick")
    assert isinstance(kick, MqttFault) and (kick.kind, kick.action, kick.point) == (
        CutKind.MQTT,
        MqttAction.KICK,
        AtBlock(40),
    )
    stall = parse_cut("mqtt@fraction=0.5:stall=3s")
    assert isinstance(stall, MqttFault) and (stall.action, stall.seconds) == (MqttAction.STALL, 3.0)
    forever = parse_cut("mqtt@block=2:stall=forever")
    assert isinstance(forever, MqttFault) and forever.seconds is None
    outage = parse_cut('mqtt@log="OtaJobEventActivate":outage=8s')
    assert isinstance(outage, MqttFault) and outage.seconds == 8.0
    power = parse_cut("power@block=10")
    assert isinstance(power, PowerCut) and power.condition().describe() == "stream blocks >= 10"
    assert parse_cut("net@block=10:rst").point == AtBlock(10)


def test_a_retry_moves_byte_and_fraction_points_earlier_and_keeps_the_rest() -> None:
    moved = parse_cut("power@fraction=0.5:off=1s").earlier(0.2)
    assert moved == PowerCut("power@fraction=0.4:off=1s", AtFraction(0.4), 0.0, off_s=1.0)
    assert parse_cut("net@bytes=1000:rst").earlier(0.1).text == "net@bytes=900:rst"
    log = parse_cut('power@log="ota complete"')
    assert log.earlier(0.1) is log


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
            "--cut power@bites=1: unknown condition 'bites' (use bytes, fraction, log, random, wire, block)",
        ),
        ("zap@bytes=1", "--cut zap@bytes=1: unknown kind 'zap' (use power, net, brownout, mqtt)"),
        ("power", "--cut power: expected <kind>@<condition>=<value> (e.g. power@fraction=0.4)"),
        ("power@bytes", "--cut power@bytes: condition 'bytes' needs =<value>"),
        ("power@bytes=lots", "--cut power@bytes=lots: bytes='lots' is not an integer"),
        ("power@fraction=1.5", "--cut power@fraction=1.5: fraction=1.5 must be above 0 and at most 1"),
        ("net@fraction=0:rst", "--cut net@fraction=0:rst: fraction=0 must be above 0 and at most 1"),
        ("power@random=nan..nan", "--cut power@random=nan..nan: random='nan' must be a finite number"),
        ("power@random=0.1..inf", "--cut power@random=0.1..inf: random='inf' must be a finite number"),
        ("net@bytes=1:stall=0s", "--cut net@bytes=1:stall=0s: stall='0s' is not a duration above zero"),
        ("net@bytes=1:throttle=0", "--cut net@bytes=1:throttle=0: throttle=0 would stop the link"),
        ('power@log=""', '--cut power@log="": log= needs text to wait for'),
        ("brownout@bytes=1:volts=22", "--cut brownout@bytes=1:volts=22: volts=22 is above any ESP32 board"),
        ("power@random=0.5", "--cut power@random=0.5: random='0.5' must be a window lo..hi (e.g. 0.1..0.9)"),
        (
            "power@bytes=1:off=soon",
            "--cut power@bytes=1:off=soon: off='soon' is not a duration above zero (e.g. 2s, 0.5s, 200ms)",
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
        (
            "mqtt@block=3",
            "--cut mqtt@block=3: mqtt cuts need one of drop, duplicate, reorder, corrupt, stall,",
        ),
        ("mqtt@block=3:kick:drop", "--cut mqtt@block=3:kick:drop: drop conflicts with kick"),
        (
            'mqtt@log="x":drop',
            '--cut mqtt@log="x":drop: drop acts on one block: use block=, bytes= or fraction=',
        ),
        ("mqtt@block=x:kick", "--cut mqtt@block=x:kick: block='x' is not an integer"),
        ("mqtt@block=1:outage", "--cut mqtt@block=1:outage: outage needs =<value>"),
        (
            "mqtt@block=1:stall=soon",
            "--cut mqtt@block=1:stall=soon: stall='soon' is not a duration above zero",
        ),
    ],
)
def test_errors_are_one_line_and_point_at_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_cut(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
