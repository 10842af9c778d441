"""The console against a pty peer standing in for a USB-UART (and loop://), no lab needed.

The pty sits behind a symlink, as a real board sits behind /dev/serial/by-path/...:
unplugging removes both, plugging back creates a new pty under the same name.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from rig.console import Console, ConsoleLine
from rig.errors import InfraError
from rig.logs import events as ev

WAIT_S = 10.0


class PtyBoard:
    """The board's end of a serial link: a pty master behind a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        target = os.ttyname(slave)
        os.close(slave)
        staging = self.link.with_suffix(".new")
        staging.symlink_to(target)
        os.replace(staging, self.link)

    def unplug(self) -> None:
        self.link.unlink()
        os.close(self.master)
        self.master = -1

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def receive(self, until: bytes) -> bytes:
        """What the rig wrote, up to and including `until`."""
        got = b""
        deadline = time.monotonic() + WAIT_S
        while until not in got:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the rig wrote only {got!r}"
            got += os.read(self.master, 4096)
        return got


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyBoard]:
    board = PtyBoard(tmp_path / "ttyUSB0")
    yield board
    if board.master >= 0:
        os.close(board.master)


@pytest.fixture
def console(pty: PtyBoard, tmp_path: Path) -> Iterator[Console]:
    opened = Console(str(pty.link), 115200, tmp_path / "serial.log", name="b1")
    opened.open()
    yield opened
    opened.shutdown()


def texts(console: Console) -> list[str]:
    return [line.text for line in console.lines()]


def test_a_line_split_across_chunks_is_one_line(console: Console, pty: PtyBoard) -> None:
    pty.send(b"I (31) boot: ESP-IDF v5.")
    eventually(lambda: b"ESP-IDF v5." in console.log_path.read_bytes(), "the first chunk to be read")
    assert console.lines() == []
    pty.send(b"5 2nd stage bootloader\r\nI (32) boot: compile time\r\n")
    assert console.wait_for("compile time", WAIT_S)
    assert texts(console) == ["I (31) boot: ESP-IDF v5.5 2nd stage bootloader", "I (32) boot: compile time"]
    assert [line.index for line in console.lines()] == [0, 1]


def test_garbage_and_invalid_utf8_never_stop_the_reader(console: Console, pty: PtyBoard) -> None:
    pty.send(b"\x00\xff\xfe ets Jun  8 2016 \xc3\x28\x80\r\n\x1b[0;32mI (5) app: fine\x1b[0m\n")
    assert console.wait_for("app: fine", WAIT_S)
    first = console.lines()[0].text
    assert "ets Jun  8 2016" in first and "\ufffd" in first
    assert console.log_path.read_bytes().startswith(b"\x00\xff\xfe ets")  # the raw log keeps the bytes


def test_listeners_see_every_line_once_in_order(console: Console, pty: PtyBoard) -> None:
    seen: list[str] = []
    done = threading.Event()

    def listener(line: ConsoleLine) -> None:
        seen.append(line.text)
        if line.text == "line 299":
            done.set()

    console.add_listener(listener)
    payload = b"".join(f"line {i}\n".encode() for i in range(300))
    for start in range(0, len(payload), 37):  # chunks that cut lines anywhere
        pty.send(payload[start : start + 37])
    assert done.wait(WAIT_S)
    assert seen == [f"line {i}" for i in range(300)]
    console.remove_listener(listener)
    pty.send(b"after\n")
    assert console.wait_for("after", WAIT_S)
    assert seen[-1] == "line 299"


def test_lines_arrive_parsed_so_waits_match_typed_events(console: Console, pty: PtyBoard) -> None:
    """Board and session wait on the PROTOCOL.md vocabulary, not on their own regexes."""
    mark = console.mark()
    pty.send(b"I (5) rig_agent: ok ota-config timeout_ms=1200\n")
    pty.send(b"I (6) rig_agent: ready version=1.0.0 running=ota_0 state=VALID\n")
    found = console.wait_event(ev.RigReady, WAIT_S, mark)
    assert found is not None and isinstance(found.event, ev.RigReady)
    assert (found.index, found.event.running, found.event.state) == (mark + 1, "ota_0", "VALID")
    is_reply = lambda e: isinstance(e, ev.RigReply) and e.command == "ota-config"  # noqa: E731
    reply = console.wait_event(is_reply, WAIT_S, mark)
    assert reply is not None and reply.index == mark
    assert console.wait_event(ev.RigOtaComplete, 0.2, mark) is None


def test_wait_for_since_a_mark_ignores_older_lines(console: Console, pty: PtyBoard) -> None:
    pty.send(b"rig_agent: ready version=1.0.0\n")
    assert console.wait_for("ready", WAIT_S)
    mark = console.mark()
    assert console.wait_for("ready", 0.2, since=mark) is None
    pty.send(b"rig_agent: ready version=2.0.0\n")
    found = console.wait_for(r"ready version=(\S+)", WAIT_S, since=mark)
    assert found is not None and found[1] == "2.0.0"
    assert console.text(since=mark) == "rig_agent: ready version=2.0.0"


def test_send_line_goes_to_the_board(console: Console, pty: PtyBoard) -> None:
    mark = console.send_line("status")
    assert pty.receive(b"\n") == b"status\n"
    assert mark == console.mark() == 0


def test_pytest_embedded_dut_expect_sees_the_output(console: Console, pty: PtyBoard) -> None:
    pty.send(b"I (400) rig_agent: ready version=1.2.3 running=ota_0 state=VALID\n")
    found = console.dut.expect(r"ready version=(\S+) running=(\S+)", timeout=WAIT_S)
    assert (found[1], found[2]) == (b"1.2.3", b"ota_0")
    console.dut.write("mark-valid")
    assert pty.receive(b"\n") == b"mark-valid\n"


def test_released_gives_the_port_away_and_takes_it_back(console: Console, pty: PtyBoard) -> None:
    with console.released():
        with pytest.raises(InfraError, match=r"b1: console .* is not open"):
            console.write(b"x")
        with serial.Serial(str(pty.link), 115200, timeout=WAIT_S) as esptool_like:
            pty.send(b"\xc0sync\xc0")
            assert esptool_like.read(6) == b"\xc0sync\xc0"
    pty.send(b"I (1) boot: back in the app\n")
    assert console.wait_for("back in the app", WAIT_S)
    assert texts(console) == ["I (1) boot: back in the app"]  # the other user's bytes were not lines


def test_a_vanished_port_is_reopened_when_it_comes_back(console: Console, pty: PtyBoard) -> None:
    pty.send(b"before the cut\n")
    assert console.wait_for("before the cut", WAIT_S)
    pty.unplug()
    eventually(lambda: console.lost, "the console to notice the port is gone")
    with pytest.raises(InfraError, match=r"b1: console .*ttyUSB0 vanished"):
        console.send_line("status")
    mark = console.mark()
    assert console.wait_for("anything", 0.3, since=mark) is None
    pty.plug()
    eventually(lambda: not console.lost, "the console to reopen the port")
    pty.send(b"after the cut\n")
    assert console.wait_for("after the cut", WAIT_S, since=mark)
    console.send_line("status")
    assert pty.receive(b"\n") == b"status\n"
    log = console.log_path.read_text(errors="replace")
    assert "[rig] console lost; reopening" in log and "[rig] console reopened" in log


def test_close_stops_reopening_a_port_that_never_comes_back(console: Console, pty: PtyBoard) -> None:
    pty.unplug()
    eventually(lambda: console.lost, "the console to notice the port is gone")
    console.close()
    assert not console.lost
    with pytest.raises(InfraError, match="is not open"):
        console.write(b"status\n")


def test_writing_to_a_console_that_is_not_open_is_infrastructure(tmp_path: Path) -> None:
    console = Console("loop://", 115200, tmp_path / "serial.log", name="b2")
    try:
        with pytest.raises(InfraError, match=r"^b2: console loop:// is not open$"):
            console.write(b"status\n")
        console.open()
        mark = console.send_line("echoed by loop://")
        assert console.wait_for("echoed", WAIT_S, since=mark)
        console.close()
        with pytest.raises(InfraError, match="is not open"):
            console.send_line("status")
        with pytest.raises(InfraError, match="is not open"):
            console.pulse_reset()
    finally:
        console.shutdown()


def test_a_port_that_does_not_exist_cannot_be_opened(tmp_path: Path) -> None:
    console = Console(str(tmp_path / "ttyNONE"), 115200, tmp_path / "serial.log", name="b3")
    try:
        with pytest.raises(InfraError, match=r"^b3: cannot open serial port .*ttyNONE"):
            console.open()
    finally:
        console.shutdown()


def test_shutdown_releases_every_file_descriptor(pty: PtyBoard, tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for index in range(5):
        console = Console(str(pty.link), 115200, tmp_path / f"serial{index}.log", name="b1")
        console.open()
        pty.send(b"I (1) boot: hello\n")
        assert console.dut.expect("boot: hello", timeout=WAIT_S)
        console.shutdown()
    assert open_fds() == before
