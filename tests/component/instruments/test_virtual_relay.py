"""The virtual LCUS relay as the rig sees it: pyserial on the pty the board's CH340 would be."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import serial

from tests.support.devices import RecordingDevice
from twin.instruments import VirtualRelay
from twin.instruments.relay import frame_checksum
from twin.power import USB_RAIL_VOLTS


def frame(channel: int, state: int) -> bytes:
    return bytes((0xA0, channel, state, frame_checksum(channel, state)))


@pytest.fixture
def relay() -> Iterator[VirtualRelay]:
    with VirtualRelay(channels=4) as board:
        yield board


@pytest.fixture
def port(relay: VirtualRelay) -> Iterator[serial.Serial]:
    with serial.serial_for_url(relay.port, baudrate=9600, timeout=5) as opened:
        yield opened


def test_documented_frames_switch_the_contact(relay: VirtualRelay, port: serial.Serial) -> None:
    board = RecordingDevice()
    relay.attach(1, board)
    port.write(bytes.fromhex("A0 01 01 A2"))  # the vendor's "turn on" example
    port.write(bytes.fromhex("A0 01 00 A1"))  # and "turn off"
    assert board.wait_for(3) == [0.0, USB_RAIL_VOLTS, 0.0]


def test_each_channel_feeds_only_its_own_board(relay: VirtualRelay, port: serial.Serial) -> None:
    first, third = RecordingDevice(), RecordingDevice()
    relay.attach(1, first)
    relay.attach(3, third, rail_volts=3.3)
    port.write(frame(3, 1))
    assert third.wait_for(2) == [0.0, 3.3]
    assert relay.is_closed(3) and not relay.is_closed(1)
    assert first.volts == [0.0]


def test_frame_with_a_bad_checksum_is_ignored(relay: VirtualRelay, port: serial.Serial) -> None:
    ignored, marker = RecordingDevice(), RecordingDevice()
    relay.attach(2, ignored)
    relay.attach(4, marker)
    port.write(bytes((0xA0, 2, 1, 0x00)) + frame(4, 1))  # the good frame after it shows it was read
    marker.wait_for(2)
    assert ignored.volts == [0.0]
    assert not relay.is_closed(2)
    assert relay.frames_ignored == 1


def test_status_query_reports_every_channel(relay: VirtualRelay, port: serial.Serial) -> None:
    port.write(frame(2, 1) + b"\xff")
    lines = [port.read_until(b"\r\n") for _ in range(4)]
    assert lines == [b"CH1:OFF \r\n", b"CH2:ON \r\n", b"CH3:OFF \r\n", b"CH4:OFF \r\n"]


def relay_threads() -> int:
    return sum(thread.name == "virtual-relay" for thread in threading.enumerate())


def test_close_stops_the_reader_thread() -> None:
    before = relay_threads()
    relay = VirtualRelay(channels=1)
    assert relay_threads() == before + 1
    relay.close()
    relay.close()  # idempotent
    assert relay_threads() == before
