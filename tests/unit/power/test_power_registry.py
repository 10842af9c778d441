"""Farm-file power specs: the registry builds drivers and names the key of any mistake."""

from __future__ import annotations

import pytest

from rig.errors import InputError
from rig.power import create_driver, driver_names, parameters, required_parameters
from rig.power.command import CommandPowerDriver


def test_every_driver_is_registered() -> None:
    assert driver_names() == ["command", "dtr-rts", "labgrid-power", "lcus-relay", "numato-relay", "scpi-psu"]


def test_builds_the_named_driver_with_its_parameters() -> None:
    driver = create_driver(
        {"driver": "command", "on_command": "true", "off_command": "false", "off_seconds": 2}
    )
    assert isinstance(driver, CommandPowerDriver)
    assert driver.off_seconds == 2.0  # an int is a fine float
    assert driver.on_command == ["true"]


def test_parameters_come_from_the_driver_signature() -> None:
    assert required_parameters("scpi-psu") == ["resource"]
    assert set(parameters("scpi-psu")) >= {"resource", "channel", "volts", "current_limit"}
    assert parameters("command")["cycle_command"] == str | None


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({}, "'driver'"),
        ({"driver": 7}, "'driver'"),
        ({"driver": "usb-hub"}, "'usb-hub'"),
        ({"driver": "command", "on_command": "true"}, "'off_command'"),
        ({"driver": "command", "on_command": "true", "off_command": "x", "colour": "red"}, "'colour'"),
        ({"driver": "lcus-relay", "port": "loop://", "channel": "1"}, "'channel'"),
        ({"driver": "lcus-relay", "port": "loop://", "channel": True}, "'channel'"),
        ({"driver": "scpi-psu", "resource": None}, "'resource'"),
        ({"driver": "command", "on_command": "", "off_command": "true"}, "on_command"),
        ({"driver": "scpi-psu", "resource": "TCPIP::127.0.0.1::1::SOCKET", "dialect": "hp66"}, "'hp66'"),
    ],
)
def test_bad_specs_name_the_offending_key(spec: dict[str, object], named: str) -> None:
    with pytest.raises(InputError, match=named) as caught:
        create_driver(spec)
    assert "\n" not in str(caught.value)
