"""A labgrid place's power: its `NetworkPowerPort` switched by labgrid's own
`NetworkPowerDriver` and power backends (PDUs, smart plugs, REST relays).

This is how a board on another exporter host is powered without the rig owning a
driver for every PDU labgrid knows. The resource's three fields come from the
coordinator when the place is acquired (rig/labgrid), or from a farm file by hand.
A PDU that does not answer is the bench's fault: InfraError, never a firmware verdict.
"""

from __future__ import annotations

from typing import Any

from rig.errors import InfraError, InputError
from rig.power import register
from rig.power.base import DEFAULT_OFF_SECONDS, PowerDriver, Seconds, Text


@register("labgrid-power")
class LabgridPowerDriver(PowerDriver):
    """`model` is a labgrid power backend (labgrid/driver/power/<model>.py), `host` and
    `index` its NetworkPowerPort fields."""

    def __init__(
        self, *, model: Text, host: Text, index: int = 0, off_seconds: Seconds = DEFAULT_OFF_SECONDS
    ) -> None:
        super().__init__(off_seconds)
        from labgrid import Target
        from labgrid.driver import NetworkPowerDriver
        from labgrid.resource import NetworkPowerPort

        self._where = f"labgrid {model} power port {index} at {host}"
        self._target = Target(f"rig-power-{model}-{index}")
        try:
            NetworkPowerPort(self._target, name=None, model=model, host=host, index=str(index))
            self._driver: Any = NetworkPowerDriver(self._target, name=None, delay=float(off_seconds))
            self._target.activate(self._driver)
        except ModuleNotFoundError:
            raise InputError(f"{model!r} is not a labgrid power backend") from None

    def on(self) -> None:
        self._call("switch on", self._driver.on)

    def off(self) -> None:
        self._call("switch off", self._driver.off)

    def is_on(self) -> bool | None:
        return bool(self._call("read back", self._driver.get))

    def describe(self) -> str:
        return f"{self._where} (cuts power)"

    def close(self) -> None:
        self._target.deactivate_all_drivers()

    def _call(self, what: str, action: Any) -> Any:
        try:
            return action()
        except Exception as error:  # the backends raise requests', pexpect's or their own errors
            raise InfraError(f"{self._where}: could not {what}: {type(error).__name__}: {error}") from None
