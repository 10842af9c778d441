"""A board's UART as the rig sees it: a raw log file, a line stream, and a DUT.

pytest-embedded's own serial service polls the port every 50 ms through a
multiprocessing queue and a log file; that is too slow for "cut power when this
line appears" (target p99 <= 5 ms) and it cannot survive the port vanishing when a
relay cuts a USB-powered board. So the rig reads the port itself on one thread,
hands each complete line to listeners (parser, triggers) the moment it arrives,
and still gives scenario authors pytest-embedded's familiar `dut.expect()` API by
feeding a `pytest_embedded.dut.Dut` through a pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial
from pytest_embedded.app import App
from pytest_embedded.dut import Dut
from pytest_embedded.log import PexpectProcess

from rig.errors import InfraError
from rig.logs import events as ev
from rig.logs.parser import LogParser
from rig.serialio import enable_fast_rfc2217

# Reopen attempts after the port vanished (USB-UART re-enumerating after a power cut).
REOPEN_INTERVAL_S = 0.2


@dataclass(frozen=True)
class ConsoleLine:
    """One line received from the board, with the host time it completed and its typed
    event (PROTOCOL.md and ESP-IDF vocabulary, `OtherLine` for anything else)."""

    index: int
    text: str
    t: float
    event: ev.Event


LineListener = Callable[[ConsoleLine], None]
EventMatch = type[ev.Event] | tuple[type[ev.Event], ...] | Callable[[ev.Event], bool]


def _matcher(match: EventMatch) -> Callable[[ev.Event], bool]:
    if isinstance(match, type | tuple):
        classes = match
        return lambda event: isinstance(event, classes)
    return match


class _QueueWriter:
    """What pytest-embedded's Dut.write() calls `msg_queue.put()` on: the port itself.

    Ends each write with a newline, as pytest-embedded's SerialDut.write() does, so
    `dut.write("status")` sends a command line there and here alike.
    """

    def __init__(self, console: Console) -> None:
        self._console = console

    def put(self, data: bytes | str, **_: Any) -> None:
        self._console.write((data if isinstance(data, bytes) else data.encode()) + b"\n")


class Console:
    """One serial console; open it, read lines, write commands, pause for esptool."""

    def __init__(
        self,
        url: str,
        baud: int,
        log_path: Path,
        name: str = "dut",
        partitions: Mapping[int, str] | None = None,
    ) -> None:
        self.url = url
        self.baud = baud
        self.name = name
        self.log_path = log_path
        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()
        self._lines: list[ConsoleLine] = []
        self._partial = bytearray()
        # Parsed live, line by line, so waits and triggers see typed events as lines arrive.
        self._parser = LogParser(partitions)
        self._changed = threading.Condition()
        self._listeners: list[LineListener] = []
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._reader: threading.Thread | None = None
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the console
        self._pipe_r, self._pipe_w = os.pipe()
        self._to_pipe: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pump = threading.Thread(target=self._pump_pipe, name=f"{name}-pexpect", daemon=True)
        self._pump.start()
        self.dut = Dut(
            # The raw fd: pexpect keeps only the number, so a file object would be
            # garbage-collected at once and close it under the DUT.
            pexpect_proc=PexpectProcess(self._pipe_r),
            msg_queue=_QueueWriter(self),
            app=App(app_path=str(log_path.parent), build_dir=None),
            pexpect_logfile=str(log_path),
            test_case_name=name,
        )

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Open the port and start reading; InfraError if the port cannot be opened."""
        enable_fast_rfc2217()
        with self._port_lock:
            self._port = self._open_port()
        self._stop.clear()
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.name}-uart", daemon=True)
        self._reader.start()

    def close(self) -> None:
        """Stop reading and release the port (the log and line history stay)."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None
        with self._port_lock:
            if self._port is not None:
                with contextlib.suppress(Exception):
                    self._port.close()
                self._port = None
            self._lost.clear()

    def shutdown(self) -> None:
        """Close everything, including the log file and the DUT's pipe."""
        self.close()
        with contextlib.suppress(Exception):
            self.dut.pexpect_proc.close()  # a pump blocked on a full pipe now gets EPIPE
        self._to_pipe.put(None)
        self._pump.join(timeout=2.0)
        self._log.close()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Give the port to another user (esptool) and take it back afterwards."""
        self.close()
        try:
            yield
        finally:
            self.open()

    # -- I/O ---------------------------------------------------------------------------

    @property
    def lost(self) -> bool:
        """The port vanished and the reader is trying to reopen it (until it is back or closed)."""
        return self._lost.is_set()

    def write(self, data: bytes) -> None:
        with self._port_lock:
            port = self._live_port()
            try:
                port.write(data)
            except (serial.SerialException, OSError) as error:
                raise InfraError(f"{self.name}: cannot write to {self.url}: {error}") from None

    def send_line(self, text: str) -> int:
        """Send one command line; returns the line index replies will come after."""
        mark = self.mark()
        self.write(text.encode() + b"\n")
        return mark

    def pulse_reset(self, hold_s: float = 0.1) -> None:
        """EN low through RTS, as a DevKitC auto-reset circuit does: a reset, not a power cut."""
        try:
            with self._port_lock:
                port = self._live_port()
                port.dtr = False
                port.rts = True
            time.sleep(hold_s)
            with self._port_lock:
                self._live_port().rts = False
        except (serial.SerialException, OSError) as error:
            raise InfraError(f"{self.name}: cannot reset through {self.url}: {error}") from None

    def add_listener(self, listener: LineListener) -> None:
        """Call `listener(line)` on the reader thread for every completed line."""
        self._listeners.append(listener)

    def remove_listener(self, listener: LineListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- line history -------------------------------------------------------------------

    def mark(self) -> int:
        """Index of the next line to arrive, for waits that must not see older lines."""
        with self._changed:
            return len(self._lines)

    def lines(self, since: int = 0) -> list[ConsoleLine]:
        with self._changed:
            return self._lines[since:]

    def text(self, since: int = 0) -> str:
        return "\n".join(line.text for line in self.lines(since))

    def events(self, since: int = 0) -> list[ev.Event]:
        return [line.event for line in self.lines(since)]

    def wait_event(self, match: EventMatch, timeout: float, since: int = 0) -> ConsoleLine | None:
        """First line at or after `since` whose event matches (an event class, a tuple of
        them, or a predicate), waiting up to `timeout` s."""
        test = _matcher(match)
        deadline = time.monotonic() + timeout
        position = since
        with self._changed:
            while True:
                while position < len(self._lines):
                    line = self._lines[position]
                    position += 1
                    if test(line.event):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float, since: int = 0
    ) -> re.Match[str] | None:
        """First line at or after `since` matching `pattern`, waiting up to `timeout` s."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        position = since
        with self._changed:
            while True:
                while position < len(self._lines):
                    found = regex.search(self._lines[position].text)
                    position += 1
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    # -- internals ----------------------------------------------------------------------

    def _live_port(self) -> serial.SerialBase:
        """The open port, or InfraError saying why there is none (call with _port_lock held)."""
        if self._port is None:
            raise InfraError(f"{self.name}: console {self.url} is not open")
        if self._lost.is_set():
            raise InfraError(f"{self.name}: console {self.url} vanished and has not come back yet")
        return self._port

    def _open_port(self) -> serial.SerialBase:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05, do_not_open=True)
            port.dtr = False
            port.rts = False
            port.open()
            return port
        except (serial.SerialException, OSError, ValueError) as error:
            raise InfraError(f"{self.name}: cannot open serial port {self.url}: {error}") from None

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            port = self._port
            if port is None:
                return
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, AttributeError, TypeError):
                if self._stop.is_set():
                    return
                self._reopen_after_loss()
                continue
            if chunk:
                self._ingest(chunk, time.monotonic())

    def _reopen_after_loss(self) -> None:
        """The port vanished (USB re-enumeration); keep trying until it is back or we stop.

        No give-up deadline here: a relay may keep a board off for as long as a scenario
        wants, and every wait on the console already has its own timeout.
        """
        self._lost.set()
        self._note("console lost; reopening")
        while not self._stop.wait(REOPEN_INTERVAL_S):
            try:
                port = self._open_port()
            except InfraError:
                continue
            with self._port_lock:
                if self._port is not None:
                    with contextlib.suppress(Exception):
                        self._port.close()
                self._port = port
                self._lost.clear()
            self._note("console reopened")
            return

    def _note(self, text: str) -> None:
        self._log.write(f"\n[rig] {text}\n".encode())
        self._log.flush()

    def _ingest(self, chunk: bytes, t: float) -> None:
        self._log.write(chunk)
        self._log.flush()
        self._to_pipe.put(chunk)
        self._partial.extend(chunk)
        while True:
            newline = self._partial.find(b"\n")
            if newline < 0:
                break
            raw = bytes(self._partial[:newline])
            del self._partial[: newline + 1]
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            event = self._parser.line(text, t)
            with self._changed:
                line = ConsoleLine(len(self._lines), text, t, event)
                self._lines.append(line)
                self._changed.notify_all()
            for listener in list(self._listeners):
                listener(line)

    def _pump_pipe(self) -> None:
        """Feed the DUT's pexpect pipe on its own thread so a full pipe never stalls reading."""
        while True:
            data = self._to_pipe.get()
            if data is None:
                os.close(self._pipe_w)
                return
            with contextlib.suppress(OSError):
                os.write(self._pipe_w, data)
