"""The virtual DP832 as the rig sees it: through pyvisa-py on a TCPIP SOCKET resource."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa
from pyvisa.resources import MessageBasedResource

from tests.support.devices import RecordingDevice
from twin.instruments import VirtualPsu
from twin.power import BROWNOUT_VOLTS


@pytest.fixture
def psu() -> Iterator[VirtualPsu]:
    with VirtualPsu() as instrument:
        yield instrument


@pytest.fixture
def visa() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def connect(manager: pyvisa.ResourceManager, psu: VirtualPsu) -> MessageBasedResource:
    session = manager.open_resource(psu.resource, read_termination="\n", write_termination="\n", timeout=5000)
    assert isinstance(session, MessageBasedResource)
    return session


def test_identifies_as_a_rigol_dp832(psu: VirtualPsu, visa: pyvisa.ResourceManager) -> None:
    session = connect(visa, psu)
    maker, model, serial, firmware = session.query("*IDN?").split(",")
    assert (maker, model) == ("RIGOL TECHNOLOGIES", "DP832")
    assert serial.startswith("DP8") and firmware
    assert session.query("*OPC?") == "1"


def test_channel_selection_in_every_spelling(psu: VirtualPsu, visa: pyvisa.ResourceManager) -> None:
    session = connect(visa, psu)
    session.write(":INST CH2")
    assert session.query(":INST?") == "CH2"
    session.write(":instrument:nselect 3")
    assert session.query(":INSTrument:NSELect?") == "3"
    session.write("VOLT 2.5")  # no SOURce node: the selected channel
    assert session.query(":SOUR3:VOLT?") == "2.500"
    assert session.query(":SOURce1:VOLTage:LEVel:IMMediate:AMPLitude?") == "0.000"
    assert session.query("SYST:ERR?") == '0,"No error"'


def test_output_switching_reaches_the_board(psu: VirtualPsu, visa: pyvisa.ResourceManager) -> None:
    board = RecordingDevice(amps=0.08)
    psu.attach(1, board)
    session = connect(visa, psu)
    session.write(":APPL CH1,3.3,0.5")
    session.write(":OUTP CH1,ON")
    assert session.query(":OUTP? CH1") == "ON"
    session.write(":outp:stat ch1,off")
    assert session.query(":OUTPut:STATe? CH1") == "OFF"
    assert board.volts == [0.0, 3.3, 0.0]
    assert psu.channel(2).output is False


def test_voltage_ramp_on_a_live_output_is_a_brownout(psu: VirtualPsu, visa: pyvisa.ResourceManager) -> None:
    board = RecordingDevice(amps=0.08)
    psu.attach(2, board)
    session = connect(visa, psu)
    session.write(":SOUR2:VOLT 3.3;:OUTP CH2,ON")
    for step in range(1, 11):
        session.write(f":SOUR2:VOLT {3.3 - 0.15 * step:.3f}")
    assert session.query(":MEAS:VOLT? CH2") == "1.8000"
    assert board.volts[1] == 3.3
    assert min(board.volts[1:]) < BROWNOUT_VOLTS
    assert board.volts[1:] == sorted(board.volts[1:], reverse=True)


def test_current_readback_follows_the_board_and_the_limit(
    psu: VirtualPsu, visa: pyvisa.ResourceManager
) -> None:
    board = RecordingDevice(amps=0.12)
    psu.attach(1, board)
    session = connect(visa, psu)
    assert session.query(":MEAS:CURR? CH1") == "0.0000"  # output off: nothing flows
    session.write(":APPL CH1,3.3,0.5")
    session.write(":OUTP CH1,ON")
    assert float(session.query(":MEAS:CURR? CH1")) == pytest.approx(0.12)
    assert session.query(":OUTP:MODE? CH1") == "CV"
    board.amps = 0.9  # more than the 0.5 A limit: the supply holds the limit
    assert float(session.query(":MEAS:CURR? CH1")) == pytest.approx(0.5)
    assert session.query(":OUTP:MODE? CH1") == "CC"


def test_malformed_input_queues_errors_and_never_kills_the_instrument(
    psu: VirtualPsu, visa: pyvisa.ResourceManager
) -> None:
    session = connect(visa, psu)
    session.write("FOO:BAR 1")
    session.write(":SOUR1:VOLT 99")
    session.write(":OUTP CH9,ON")
    session.write_raw(b"\xff\xfe:::\n")
    session.write(":OUTP")
    assert [session.query(":SYST:ERR?") for _ in range(6)] == [
        '-113,"Undefined header"',
        '-222,"Data out of range"',
        '-224,"Illegal parameter value"',
        '-102,"Syntax error"',
        '-109,"Missing parameter"',
        '0,"No error"',
    ]
    session.write("FOO")
    session.write("*CLS")
    assert session.query("SYST:ERR?") == '0,"No error"'
    assert session.query("*IDN?").startswith("RIGOL")


def test_serves_clients_one_after_another_with_state_kept(
    psu: VirtualPsu, visa: pyvisa.ResourceManager
) -> None:
    board = RecordingDevice(amps=0.08)
    psu.attach(3, board)
    for volts in ("1.000", "2.000", "3.000"):
        session = connect(visa, psu)
        session.write(f":SOUR3:VOLT {volts}")
        assert session.query(":SOUR3:VOLT?") == volts
        session.close()
    session = connect(visa, psu)
    session.write(":OUTP CH3,ON")
    assert session.query("*OPC?") == "1"  # the write has been executed
    assert board.volts[-1] == 3.0
    session.write("*RST")
    assert session.query("*OPC?") == "1"
    assert board.volts[-1] == 0.0
    assert session.query(":OUTP? CH3") == "OFF"
