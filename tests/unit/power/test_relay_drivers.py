"""Relay drivers on serial ports: LCUS against the virtual board, Numato against a small pty peer,
and the DTR/RTS reset fallback."""

from __future__ import annotations

import os
import pty
import select
import threading
import tty
from collections.abc import Iterator

import pytest

from rig.errors import InfraError, InputError
from rig.power import Capability, create_driver
from tests.support.devices import RecordingDevice
from twin.instruments import VirtualRelay
from twin.power import USB_RAIL_VOLTS


@pytest.fixture
def relay() -> Iterator[VirtualRelay]:
    with VirtualRelay(channels=2) as board:
        yield board


def test_lcus_driver_powers_the_board_behind_its_channel(relay: VirtualRelay) -> None:
    board, other = RecordingDevice(), RecordingDevice()
    relay.attach(2, board)
    relay.attach(1, other)
    spec: dict[str, object] = {"driver": "lcus-relay", "port": relay.port, "channel": 2, "status_query": True}
    with create_driver(spec) as driver:
        driver.on()
        assert board.wait_for(2) == [0.0, USB_RAIL_VOLTS]
        assert driver.is_on() is True
        driver.cycle(off_seconds=0.0)
        assert board.wait_for(4) == [0.0, USB_RAIL_VOLTS, 0.0, USB_RAIL_VOLTS]
        driver.off()
        assert driver.is_on() is False
    assert other.volts == [0.0]


def test_lcus_without_status_query_cannot_tell_and_cannot_sag(relay: VirtualRelay) -> None:
    with create_driver({"driver": "lcus-relay", "port": relay.port}) as driver:
        assert driver.is_on() is None
        assert driver.measure_current() is None
        with pytest.raises(InputError, match="driver lcus-relay cannot sag the voltage"):
            driver.ramp(2.0, 0.1, 4)


def test_lcus_board_without_status_support_is_reported(relay: VirtualRelay) -> None:
    with (
        VirtualRelay(channels=1, status_query=False) as mute,
        create_driver(
            {"driver": "lcus-relay", "port": mute.port, "status_query": True, "timeout_s": 0.2}
        ) as driver,
        pytest.raises(InfraError, match="FF status query"),
    ):
        driver.is_on()


def test_lcus_missing_port_is_an_infrastructure_failure(tmp_path: object) -> None:
    with pytest.raises(InfraError, match="cannot be opened"):
        create_driver({"driver": "lcus-relay", "port": f"{tmp_path}/ttyUSB9"})


class NumatoPeer:
    """Plays a Numato module on a pty: echoes each command, answers reads, ends with '>'."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.states: dict[str, str] = {}
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self._master, self._stop_read], [], [])
            if self._stop_read in ready:
                return
            pending += os.read(self._master, 256)
            while b"\r" in pending and not self.silent:
                line, pending = pending.split(b"\r", 1)
                os.write(self._master, self._answer(line.decode()))

    def _answer(self, command: str) -> bytes:
        reply = command + "\n\r"
        match command.split():
            case ["relay", "on" | "off" as verb, index]:
                self.states[index] = verb
            case ["relay", "read", index]:
                reply += self.states.get(index, "off") + "\n\r"
        return (reply + ">").encode()

    def close(self) -> None:
        os.write(self._stop_write, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._stop_read, self._stop_write):
            os.close(fd)


def test_numato_driver_switches_and_reads_back_its_relay() -> None:
    peer = NumatoPeer()
    try:
        with create_driver({"driver": "numato-relay", "port": peer.port, "relay": 11}) as driver:
            assert driver.is_on() is False
            driver.on()
            assert peer.states == {"B": "on"}  # relays above 9 are lettered
            assert driver.is_on() is True
            driver.off()
            assert driver.is_on() is False
    finally:
        peer.close()


def test_numato_silence_is_an_infrastructure_failure() -> None:
    peer = NumatoPeer(silent=True)
    try:
        with (
            create_driver({"driver": "numato-relay", "port": peer.port, "timeout_s": 0.2}) as driver,
            pytest.raises(InfraError, match="did not answer 'relay on 0'"),
        ):
            driver.on()
    finally:
        peer.close()


def test_dtr_rts_is_a_reset_and_says_so() -> None:
    with create_driver({"driver": "dtr-rts", "port": "loop://"}) as driver:
        assert driver.cuts_power is False
        assert driver.capabilities == Capability.RESET_ONLY
        assert "does NOT cut power" in driver.describe()
        driver.off()
        assert driver.is_on() is False
        driver.on()
        assert driver.is_on() is True
        with pytest.raises(InputError, match="cannot sag"):
            driver.set_voltage(2.0)


def test_dtr_rts_on_a_port_without_modem_lines_is_an_infrastructure_failure(relay: VirtualRelay) -> None:
    with (
        create_driver({"driver": "dtr-rts", "port": relay.port}) as driver,
        pytest.raises(InfraError, match="cannot drive RTS/DTR"),
    ):
        driver.off()
