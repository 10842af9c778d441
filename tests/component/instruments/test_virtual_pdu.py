"""The virtual network PDU driven as a labgrid place's NetworkPowerPort: labgrid's own
`simplerest` backend through the rig's `labgrid-power` driver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rig.errors import InfraError, InputError
from rig.power import create_driver
from tests.support.devices import RecordingDevice
from twin.instruments import VirtualPdu
from twin.power import USB_RAIL_VOLTS


@pytest.fixture
def pdu() -> Iterator[VirtualPdu]:
    unit = VirtualPdu(outlets=2)
    try:
        yield unit
    finally:
        unit.close()


def test_labgrid_switches_one_outlet_and_reads_it_back(pdu: VirtualPdu) -> None:
    boards = RecordingDevice(), RecordingDevice()
    for outlet, board in enumerate(boards):
        pdu.attach(outlet, board)
    with create_driver(
        {
            "driver": "labgrid-power",
            "model": "simplerest",
            "host": pdu.url_template,
            "index": 1,
            "off_seconds": 0.01,
        }
    ) as driver:
        assert driver.is_on() is False  # a PDU's outlets start off
        driver.on()
        assert driver.is_on() is True and pdu.is_on(1) and not pdu.is_on(0)
        driver.cycle()
        assert "simplerest power port 1" in driver.describe() and "cuts power" in driver.describe()
    assert boards[1].volts == [USB_RAIL_VOLTS, 0.0, USB_RAIL_VOLTS]
    assert boards[0].volts == []


def test_an_outlet_the_pdu_does_not_have_is_infra_in_one_line(pdu: VirtualPdu) -> None:
    with create_driver(
        {"driver": "labgrid-power", "model": "simplerest", "host": pdu.url_template, "index": 7}
    ) as driver, pytest.raises(InfraError) as error:
        driver.on()
    assert "could not switch on: HTTPError: 404" in str(error.value)


def test_a_pdu_that_does_not_answer_is_infra() -> None:
    host = "http://127.0.0.1:1/outlet/{index}/{value}"
    spec = {"driver": "labgrid-power", "model": "simplerest", "host": host}
    with create_driver(spec) as driver, pytest.raises(InfraError, match="could not read back: Connection"):
        driver.is_on()


def test_a_backend_labgrid_does_not_have_is_bad_input() -> None:
    with pytest.raises(InputError, match="'acme9000' is not a labgrid power backend"):
        create_driver({"driver": "labgrid-power", "model": "acme9000", "host": "pdu"})
