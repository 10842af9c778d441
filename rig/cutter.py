"""Carrying out a cut: the power driver, the fault proxy or the network namespace does the
damage when the cut's condition is met, timed by the trigger engine.

A cut the proxy can place by itself (a close or stall at an image or wire byte) is armed in
the proxy, exact to the byte; everything else fires through a trigger. Power comes back
after the cut's outage on a timer the experiment waits for before it judges.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rig.cutspec import (
    AtBytes,
    AtFraction,
    AtWire,
    Brownout,
    Close,
    CutPoint,
    CutSpec,
    MqttFault,
    NetClose,
    NetStall,
    NetThrottle,
    PowerCut,
)
from rig.errors import InputError
from rig.net.faults import Counting, Cut, Position, Stall, Teardown, Throttle
from rig.net.netns import FaultPath, NetNamespace
from rig.net.proxy import FaultProxy
from rig.power.base import PowerDriver
from rig.triggers import Trigger, TriggerEngine


class Cutter:
    """One board's means of doing damage, and the timers that undo it."""

    def __init__(
        self,
        power: Callable[[], PowerDriver],
        proxy: FaultProxy | None,
        engine: TriggerEngine,
        path: FaultPath | None,
        *,
        seed: int,
    ) -> None:
        self._power = power  # opened on first use: a board that is never cut never opens its supply
        self.proxy = proxy
        self.engine = engine
        self.path = path
        self.seed = seed
        self._timers: list[threading.Timer] = []

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()

    @property
    def power(self) -> PowerDriver:
        return self._power()

    def pending(self) -> bool:
        """A power action (power back on, voltage back up) is still to come."""
        return any(timer.is_alive() for timer in self._timers)

    def arm(self, cut: CutSpec) -> Trigger | None:
        """Bind a parsed cut to what carries it out when its condition is met; the trigger
        it registered, if the cut goes through the engine (the proxy acts by itself otherwise).
        Random cut points without their own seed draw from the run's `--seed`."""
        if isinstance(cut, MqttFault):
            raise InputError(f"--cut {cut.text}: mqtt cuts apply to AWS IoT OTA jobs (--transport mqtt)")
        if isinstance(cut, NetClose | NetStall | NetThrottle) and self.proxy is None:
            raise InputError(f"--cut {cut.text}: this board's link has no fault proxy in it")
        position = _proxy_position(cut.point)
        by_proxy = isinstance(cut, NetStall) or (isinstance(cut, NetClose) and cut.close is not Close.DEAD)
        if by_proxy and position is not None and isinstance(cut, NetClose | NetStall) and self.proxy:
            # Exact to the byte: the proxy counts and acts itself, no trigger round trip.
            self.proxy.arm(self._proxy_fault(cut, position))
            return None
        return self.engine.add(cut.trigger(self._action_for(cut), seed=self.seed))

    def _proxy_fault(
        self, cut: NetClose | NetStall | NetThrottle, at: Position | None
    ) -> Cut | Stall | Throttle:
        assert self.proxy is not None, "checked when the cut was armed"
        if isinstance(cut, NetStall):
            return Stall(seconds=cut.seconds, at=at)
        if isinstance(cut, NetThrottle):
            return Throttle(bytes_per_second=cut.bytes_per_second)
        if at is None:  # "now": the next byte of the connection that is sending
            sent = max((r.bytes_down for r in self.proxy.records if r.closed_at is None), default=0)
            at = Position(Counting.WIRE, sent + 1)
        return Cut(at=at, teardown=Teardown.RST if cut.close is Close.RST else Teardown.FIN)

    def _action_for(self, cut: CutSpec) -> Callable[[], None]:
        power = self.power
        if isinstance(cut, PowerCut):
            off_s = power.off_seconds if cut.off_s is None else cut.off_s

            def power_cut() -> None:
                power.off()
                self.engine.on_event("power_off")
                self._later(off_s, self._power_on)

            return power_cut
        if isinstance(cut, Brownout):
            nominal = power.nominal_volts
            if nominal is not None and not 0.0 <= cut.volts <= nominal:
                supply = f"0..{nominal:g} V, the board's supply"
                raise InputError(f"--cut {cut.text}: {cut.volts:g} V is outside {supply}")

            def brownout() -> None:
                nominal = power.voltage_setpoint()
                power.set_voltage(cut.volts)
                self._later(cut.hold_s, lambda: power.set_voltage(nominal))

            return brownout
        if isinstance(cut, NetClose) and cut.close is Close.DEAD:
            namespace = self._dead_path(cut)
            proxy = self.proxy
            assert proxy is not None, "checked when the cut was armed"
            return lambda: namespace.kill_port(proxy.port)
        assert not isinstance(cut, MqttFault), "checked when the cut was armed"
        net = cut

        def arm_proxy_now() -> None:
            assert self.proxy is not None, "checked when the cut was armed"
            self.proxy.arm(self._proxy_fault(net, None))

        return arm_proxy_now

    def _dead_path(self, cut: CutSpec) -> NetNamespace:
        """The namespace a dead path is made in; a farm without one cannot have the fault."""
        if self.path is None or self.path.namespace is None:
            why = self.path.unavailable if self.path is not None else "the farm sets no network.fault_path"
            raise InputError(f"--cut {cut.text}: no dead path on this farm: {why}")
        return self.path.namespace

    def _power_on(self) -> None:
        self.power.on()
        self.engine.on_event("power_on")

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(delay, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()


def _proxy_position(point: CutPoint) -> Position | None:
    """A cut point the proxy can hit exactly by itself, or None if it needs a trigger."""
    if isinstance(point, AtWire):
        return Position(Counting.WIRE, point.count)
    if isinstance(point, AtBytes):
        return Position(Counting.IMAGE, point.count)
    if isinstance(point, AtFraction):
        return Position(Counting.FRACTION, point.fraction)
    return None
