"""Trigger engine: conditions, order, once/every, After delays, seeded random points, firing records."""

from __future__ import annotations

import re
import threading

import pytest

from rig.triggers import (
    After,
    BytesAtLeast,
    FractionAtLeast,
    LogMatches,
    OnEvent,
    RandomPointInWindow,
    Trigger,
    TriggerEngine,
    Unit,
    WireBytesAtLeast,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_byte_fraction_wire_log_and_event_conditions_fire_in_registration_order() -> None:
    engine = TriggerEngine()
    fired: list[str] = []
    engine.add(Trigger(FractionAtLeast(0.5), lambda: fired.append("half")))
    engine.add(Trigger(BytesAtLeast(1000), lambda: fired.append("1000")))
    engine.add(Trigger(WireBytesAtLeast(50, connection_id=2), lambda: fired.append("wire")))
    engine.add(Trigger(LogMatches(r"esp_image: Verifying", board="dut1"), lambda: fired.append("log")))
    engine.add(Trigger(OnEvent("psu_on"), lambda: fired.append("event")))

    engine.on_progress("ota", 1, 999, 4000)
    assert fired == []
    engine.on_progress("ota", 1, 2000, 4000)
    assert fired == ["half", "1000"]
    engine.on_wire(1, 100)
    engine.on_wire(2, 100)
    engine.on_log_line("dut2", "I (1) esp_image: Verifying image signature...")
    engine.on_log_line("dut1", "\x1b[0;32mI (1) esp_image: Verifying image signature...\x1b[0m")
    engine.on_event("psu_off")
    engine.on_event("psu_on")
    assert fired == ["half", "1000", "wire", "log", "event"]
    assert [f.trigger for f in engine.firings][2:] == [
        "wire bytes >= 50",
        "log matches /esp_image: Verifying/",
        "event psu_on",
    ]


def test_once_fires_once_and_every_fires_each_time() -> None:
    engine = TriggerEngine()
    once: list[int] = []
    every: list[int] = []
    engine.add(Trigger(BytesAtLeast(10), lambda: once.append(1), name="once"))
    engine.add(Trigger(BytesAtLeast(10), lambda: every.append(1), once=False, name="every"))
    for n in (5, 10, 20, 30):
        engine.on_progress("ota", 1, n, 100)
    assert (len(once), len(every)) == (1, 3)


def test_firing_record_and_latency() -> None:
    clock = FakeClock()
    engine = TriggerEngine(clock)

    def psu_off() -> None:
        clock.now += 0.002

    engine.add(Trigger(LogMatches("Writing to"), psu_off, name="cut"))
    (firing,) = engine.on_log_line(
        "dut", "I (5) esp_https_ota: Writing to <ota_1> partition at offset 0x1d0000", 99.999
    )
    assert firing.trigger == "cut" and firing.condition == "log matches /Writing to/"
    assert firing.observed.startswith("I (5) esp_https_ota")  # type: ignore[attr-defined]
    assert (firing.t_observed, firing.t_action_start, firing.t_action_done) == (99.999, 100.0, 100.002)
    assert firing.latency_ms == pytest.approx(3.0)
    assert firing.error is None


def test_action_errors_are_recorded_not_raised() -> None:
    engine = TriggerEngine()

    def broken() -> None:
        raise OSError("psu gone")

    engine.add(Trigger(OnEvent("go"), broken))
    (firing,) = engine.on_event("go")
    assert firing.error == "OSError: psu gone"


def test_after_runs_on_a_timer_after_the_other_trigger() -> None:
    engine = TriggerEngine()
    done = threading.Event()
    order: list[str] = []
    engine.add(Trigger(OnEvent("ota_complete"), lambda: order.append("psu_off"), name="cut"))

    def psu_on() -> None:
        order.append("psu_on")
        done.set()

    engine.add(Trigger(After("cut", 0.05), psu_on, name="restore"))
    engine.on_event("ota_complete")
    assert order == ["psu_off"]
    assert done.wait(10)
    assert engine.wait_idle(10)
    assert order == ["psu_off", "psu_on"]
    restore = engine.firings[-1]
    cut = engine.firings[0]
    assert restore.trigger == "restore" and restore.observed == "cut"
    assert restore.t_observed == pytest.approx(cut.t_action_done + 0.05)
    assert restore.t_action_start >= restore.t_observed - 0.001


def test_delay_s_and_close_cancels_pending() -> None:
    engine = TriggerEngine()
    fired: list[int] = []
    engine.add(Trigger(OnEvent("x"), lambda: fired.append(1), delay_s=30.0))
    assert engine.on_event("x") == []
    engine.close()
    assert engine.wait_idle(5)
    assert fired == [] and engine.firings == []
    assert engine.on_event("x") == []


def test_duplicate_names_are_refused() -> None:
    engine = TriggerEngine()
    engine.add(Trigger(OnEvent("a"), lambda: None, name="t"))
    with pytest.raises(ValueError, match="already exists"):
        engine.add(Trigger(OnEvent("b"), lambda: None, name="t"))


def test_random_point_is_reproducible_per_seed_and_inside_the_window() -> None:
    points = {RandomPointInWindow(seed, 0.1, 0.9).point for seed in range(50)}
    assert all(0.1 <= p <= 0.9 for p in points) and len(points) > 40
    assert RandomPointInWindow(7, 0.1, 0.9).point == RandomPointInWindow(7, 0.1, 0.9).point
    byte_point = RandomPointInWindow(3, 1000, 9000, Unit.BYTES)
    assert byte_point.point == RandomPointInWindow.between(3, BytesAtLeast(1000), BytesAtLeast(9000)).point
    assert byte_point.point.is_integer()

    engine = TriggerEngine()
    fired: list[int] = []
    engine.add(Trigger(byte_point, lambda: fired.append(1)))
    engine.on_progress("ota", 1, int(byte_point.point) - 1, 10000)
    assert fired == []
    (firing,) = engine.on_progress("ota", 1, int(byte_point.point), 10000)
    assert firing.observed == int(byte_point.point)


def test_random_time_window_after_a_start_condition() -> None:
    window = RandomPointInWindow(11, 0.01, 0.05, Unit.SECONDS, start=LogMatches("ota complete"))
    assert 0.01 <= window.point <= 0.05
    engine = TriggerEngine()
    done = threading.Event()
    engine.add(Trigger(window, done.set))
    assert engine.on_log_line("dut", "I (1) rig_agent: ota complete bytes=10") == []
    assert done.wait(10) and engine.wait_idle(10)
    assert "after log matches /ota complete/ (seed 11)" in engine.firings[0].condition


def test_bad_random_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        RandomPointInWindow(1, 0.9, 0.1)
    with pytest.raises(ValueError):
        RandomPointInWindow(1, 0.1, 0.2, Unit.SECONDS)
    with pytest.raises(ValueError):
        RandomPointInWindow.between(1, BytesAtLeast(1), FractionAtLeast(0.5))


def test_concurrent_observers_fire_a_once_trigger_exactly_once() -> None:
    engine = TriggerEngine()
    count: list[int] = []
    engine.add(Trigger(BytesAtLeast(1), lambda: count.append(1)))
    barrier = threading.Barrier(4)

    def observe() -> None:
        barrier.wait()
        for n in range(1, 200):
            engine.on_progress("ota", 1, n, 200)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert count == [1]


def test_a_removed_trigger_frees_its_name_for_a_retry() -> None:
    """A scenario that retries a missed window arms the same cut again."""
    engine = TriggerEngine()
    first = engine.add(Trigger(LogMatches(re.compile("x")), lambda: None, once=True, name="cut"))
    with pytest.raises(ValueError):
        engine.add(Trigger(LogMatches(re.compile("x")), lambda: None, once=True, name="cut"))
    engine.remove(first)
    engine.add(Trigger(LogMatches(re.compile("x")), lambda: None, once=True, name="cut"))


def test_a_new_trigger_fires_even_where_a_removed_one_lived() -> None:
    """A retried experiment arms a fresh cut after removing the spent one; CPython may give the
    new trigger the memory, and so the id(), of the old. It must still fire (a storm's cut once
    silently never fired this way)."""
    engine = TriggerEngine()
    fired: list[int] = []
    for attempt in range(50):
        trigger = engine.add(
            Trigger(BytesAtLeast(10), lambda n=attempt: fired.append(n), once=True, name=f"cut{attempt}")
        )
        engine.on_progress("device", None, 10, 100)
        engine.remove(trigger)
        del trigger
    assert fired == list(range(50))
