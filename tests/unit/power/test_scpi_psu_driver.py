"""The SCPI PSU driver against the virtual DP832 (Rigol dialect) and a pyvisa-sim E36312A (Keysight)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.errors import InfraError, InputError
from rig.power import Capability, create_driver
from rig.power.dialects import DIALECTS, siglent_status_bits
from rig.power.scpi_psu import ScpiPsuDriver
from tests.support.devices import RecordingDevice
from twin.instruments import VirtualPsu
from twin.power import BROWNOUT_VOLTS

KEYSIGHT_SIM = Path(__file__).parents[3] / "fixtures" / "instruments" / "keysight_e36312a.yaml"


@pytest.fixture
def psu() -> Iterator[VirtualPsu]:
    with VirtualPsu() as instrument:
        yield instrument


def rigol(psu: VirtualPsu, **params: object) -> ScpiPsuDriver:
    driver = create_driver({"driver": "scpi-psu", "resource": psu.resource, "timeout_ms": 5000, **params})
    assert isinstance(driver, ScpiPsuDriver)
    return driver


def test_switches_a_rigol_channel_and_reads_the_board_current(psu: VirtualPsu) -> None:
    board = RecordingDevice(amps=0.15)
    psu.attach(2, board)
    with rigol(psu, channel=2, volts=3.3, current_limit=0.4) as driver:
        assert driver.cuts_power
        assert Capability.CURRENT_READBACK in driver.capabilities
        assert "DP832" in driver.identity
        assert driver.is_on() is False
        driver.on()
        assert driver.is_on() is True
        assert driver.measure_current() == pytest.approx(0.15)
        driver.off()
        assert driver.is_on() is False
    assert board.volts == [0.0, 3.3, 0.0]
    assert psu.channel(2).amps == pytest.approx(0.4)
    assert psu.channel(1).output is False


def test_ramp_sags_the_board_below_brownout_and_on_restores_nominal(psu: VirtualPsu) -> None:
    board = RecordingDevice(amps=0.15)
    psu.attach(1, board)
    with rigol(psu, volts=3.3) as driver:
        driver.on()
        driver.ramp(to_volts=2.0, seconds=0.0, steps=6)
        assert driver.voltage_setpoint() == pytest.approx(2.0)
        driver.cycle(off_seconds=0.0)
        assert driver.is_on() is True
    sag = board.volts[2:8]
    assert len(sag) == 6 and sag == sorted(sag, reverse=True)
    assert min(sag) < BROWNOUT_VOLTS
    assert board.volts[8:] == [0.0, 3.3]


def test_a_value_the_psu_refuses_is_bad_input(psu: VirtualPsu) -> None:
    with pytest.raises(InputError, match=r"refused ':SOUR3:VOLT 5.500'.*-222"):
        rigol(psu, channel=3, volts=5.5)  # CH3 of a DP832 is a 5 V output


def test_a_supply_above_what_an_esp32_board_takes_is_refused_when_the_farm_loads(psu: VirtualPsu) -> None:
    with pytest.raises(
        InputError, match=r"parameter 'volts': input should be less than or equal to 5.5, got 22"
    ):
        rigol(psu, volts=22.0)
    with pytest.raises(
        InputError, match=r"parameter 'current_limit': input should be less than or equal to 5"
    ):
        rigol(psu, current_limit=50.0)


def test_no_sag_goes_above_the_farms_nominal_voltage_or_below_zero(psu: VirtualPsu) -> None:
    """`volts=22` typed for 2.2 must never reach a 3V3 rail: the driver refuses, the PSU never sees it."""
    board = RecordingDevice(amps=0.1)
    psu.attach(1, board)
    with rigol(psu, volts=3.3) as driver:
        driver.on()
        for wrong in (22.0, 3.4, -1.0):
            with pytest.raises(InputError, match=r"refusing .* V on channel 1: outside 0..3.3 V"):
                driver.set_voltage(wrong)
        with pytest.raises(InputError):
            driver.ramp(to_volts=5.0, seconds=0.0, steps=2)
        driver.set_voltage(2.2)
    assert max(board.volts) == pytest.approx(3.3)
    assert psu.channel(1).volts == pytest.approx(2.2)


def test_a_silent_instrument_is_an_infrastructure_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody ever replies
        resource = f"TCPIP::127.0.0.1::{silent.getsockname()[1]}::SOCKET"
        with pytest.raises(InfraError) as caught:
            create_driver({"driver": "scpi-psu", "resource": resource, "timeout_ms": 200})
    assert str(caught.value) == f"PSU at {resource} did not answer *IDN? within 200 ms"


def test_an_unreachable_instrument_is_an_infrastructure_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
    with pytest.raises(InfraError, match=f"PSU at {resource}.*refused"):
        create_driver({"driver": "scpi-psu", "resource": resource})


def test_an_instrument_that_goes_away_mid_run_is_an_infrastructure_failure() -> None:
    psu = VirtualPsu()
    driver = rigol(psu)
    psu.close()
    with pytest.raises(InfraError, match=psu.resource.replace(".", r"\.")):
        driver.on()
    driver.close()


def test_keysight_dialect_against_pyvisa_sim() -> None:
    driver = create_driver(
        {
            "driver": "scpi-psu",
            "resource": "TCPIP::192.0.2.10::5025::SOCKET",
            "visa_library": f"{KEYSIGHT_SIM}@sim",
            "dialect": "keysight-e36xx",
            "channel": 2,
            "volts": 5.0,
        }
    )
    assert isinstance(driver, ScpiPsuDriver)
    with driver:
        assert "E36312A" in driver.identity
        assert "keysight-e36xx channel 2" in driver.describe()
        assert driver.voltage_setpoint() == pytest.approx(5.0)
        driver.on()
        assert driver.is_on() is True
        assert driver.measure_current() == pytest.approx(0.12)  # pyvisa-sim answers a fixed value
        driver.off()
        assert driver.is_on() is False


def test_every_dialect_spells_each_operation_for_its_channel() -> None:
    for dialect in DIALECTS.values():
        commands = [
            dialect.set_volts.format(channel=3, volts=3.3),
            dialect.output_on.format(channel=3),
            dialect.output_off.format(channel=3),
        ]
        addressed = " ".join(commands + dialect.prefix(3))
        assert "3.300" in commands[0]
        assert "3" in addressed.replace("3.300", "")


def test_siglent_output_state_comes_from_the_status_word() -> None:
    assert siglent_status_bits("0x0010", 1) is True
    assert siglent_status_bits("0x0010", 2) is False
    assert siglent_status_bits("20", 2) is True
