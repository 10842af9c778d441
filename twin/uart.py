"""UART0 of the twin and the ways a host reaches it: RFC2217 over TCP, a raw download port,
or a pty.

The rig must not be able to tell a twin from a board on a ser2net port, so the
RFC2217 side reuses pyserial's own server-side protocol engine (`PortManager`)
and hands it a duck-typed "serial port" whose DTR/RTS drive the auto-reset
circuit. One client at a time; a new connection replaces the old one, as ser2net
does.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from serial import rfc2217

from twin.autoreset import DevKitAutoReset
from twin.usb_uart.bridge import ModemLineSocket

# Bytes the chip has not read yet beyond this are lost, like a FIFO overrun.
RX_LIMIT = 1 << 20
_IAC = b"\xff"

Sink = Callable[[bytes], None]


class Uart:
    """Receive buffer plus transmit fan-out; waits share the chip's condition."""

    def __init__(self, condition: threading.Condition) -> None:
        self._cond = condition
        self._rx = bytearray()
        self._sinks: list[Sink] = []
        self._sinks_lock = threading.Lock()
        self.receiving = False
        self.baudrate = 115200

    # -- host side -----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes arriving on RXD; dropped while the chip is unpowered or in reset."""
        with self._cond:
            if self.receiving and len(self._rx) < RX_LIMIT:
                self._rx += data[: RX_LIMIT - len(self._rx)]
                self._cond.notify_all()

    def attach(self, sink: Sink) -> None:
        with self._sinks_lock:
            self._sinks.append(sink)

    def detach(self, sink: Sink) -> None:
        with self._sinks_lock, contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    # -- chip side -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self._sinks_lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink(data)

    def clear_rx(self) -> None:
        """Caller holds the condition (the chip does this on every reset)."""
        self._rx.clear()

    def read(self, size: int, timeout: float | None, interrupted: Callable[[], bool]) -> bytes:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._rx) or interrupted(), timeout)
            if interrupted():
                return b""
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def readline(self, timeout: float | None, interrupted: Callable[[], bool]) -> bytes | None:
        with self._cond:
            self._cond.wait_for(lambda: b"\n" in self._rx or interrupted(), timeout)
            end = self._rx.find(b"\n")
            if interrupted() or end < 0:
                return None
            line = bytes(self._rx[:end])
            del self._rx[: end + 1]
        return line.removesuffix(b"\r")


class _VirtualPort:
    """What `rfc2217.PortManager` believes is the serial port behind the server."""

    def __init__(self, uart: Uart, lines: DevKitAutoReset) -> None:
        self._uart = uart
        self._lines = lines
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self) -> int:
        return self._uart.baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._uart.baudrate = value

    @property
    def dtr(self) -> bool:
        return self._lines.dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._lines.dtr = value

    @property
    def rts(self) -> bool:
        return self._lines.rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._lines.rts = value

    def reset_input_buffer(self) -> None:
        """Nothing to purge: data the chip sends is forwarded at once."""

    def reset_output_buffer(self) -> None:
        """Nothing to purge: data for the chip is delivered at once."""


class _Rfc2217Client:
    """One TCP connection: telnet filtering in, IAC escaping out."""

    def __init__(self, conn: socket.socket, uart: Uart, lines: DevKitAutoReset) -> None:
        self._conn = conn
        self._uart = uart
        self._lines = lines
        self._send_lock = threading.Lock()
        self._manager = rfc2217.PortManager(_VirtualPort(uart, lines), self)
        self._thread = threading.Thread(target=self._run, name="twin-rfc2217-client", daemon=True)

    def start(self) -> None:
        self._uart.attach(self._send_data)
        self._thread.start()

    def write(self, data: bytes) -> None:
        """Raw telnet bytes from the PortManager (negotiation answers)."""
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.sendall(data)

    def _send_data(self, data: bytes) -> None:
        self.write(data.replace(_IAC, _IAC + _IAC))

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = self._conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                self._uart.feed(self._filter(data))
        finally:
            self._uart.detach(self._send_data)
            self._lines.release()
            self._conn.close()

    def _filter(self, data: bytes) -> bytes:
        """PortManager.filter is per byte; only telnet sequences need it."""
        manager = self._manager
        out = bytearray()
        i = 0
        while i < len(data):
            if manager.mode == rfc2217.M_NORMAL and manager.suboption is None:
                j = data.find(_IAC, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j
            out += b"".join(manager.filter(data[i : i + 1]))
            i += 1
        return bytes(out)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


class _TcpPort:
    """A loopback TCP port onto the board's UART; subclasses say what a connection gets."""

    scheme = ""

    def __init__(self, uart: Uart, lines: DevKitAutoReset, port: int = 0) -> None:
        self._uart = uart
        self._lines = lines
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        name = f"twin-{self.scheme}"
        self._thread = threading.Thread(target=self._accept_loop, name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._accepted(conn)

    def _accepted(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)


class Rfc2217Server(_TcpPort):
    """The board's UART as `rfc2217://127.0.0.1:<port>`, with DTR/RTS auto-reset."""

    scheme = "rfc2217"
    _client: _Rfc2217Client | None = None

    def _accepted(self, conn: socket.socket) -> None:
        if self._client is not None:
            self._client.close()
        self._client = _Rfc2217Client(conn, self._uart, self._lines)
        self._client.start()

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()


# esptool's ClassicReset (esptool/reset.py): EN held low 100 ms with IO0 low, then IO0 held
# 50 ms after EN rises so the ROM samples the download strap.
_RESET_HOLD_S = 0.1
_STRAP_HOLD_S = 0.05


class DownloadPort(_TcpPort):
    """The board's UART as raw TCP (`socket://127.0.0.1:<port>`) for stock esptool by hand.

    pyserial's RFC2217 client sleeps 50 ms at least once per settings change, and esptool
    changes its read timeout around most commands, so stock esptool over RFC2217 spends
    most of a flash asleep. A plain socket has no settings to negotiate, but carries no
    DTR/RTS either, so this port does for the person what the DevKitC auto-reset circuit
    does for esptool: a connection resets the chip into the ROM download mode (esptool's
    classic reset sequence on EN/IO0), and closing it resets the chip into its app. Use
    `esptool --port socket://… --before no-reset --after no-reset`.
    """

    scheme = "socket"

    def __init__(self, uart: Uart, lines: DevKitAutoReset, port: int = 0) -> None:
        self._busy = threading.Lock()  # one person at a time
        super().__init__(uart, lines, port)

    def _accepted(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), name="twin-download-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if not self._busy.acquire(blocking=False):
            conn.close()  # someone is flashing this board already
            return

        def send(data: bytes) -> None:
            with contextlib.suppress(OSError):
                conn.sendall(data)

        try:
            self._pulse(download=True)
            self._uart.attach(send)
            while data := _recv(conn):
                self._uart.feed(data)
        finally:
            self._uart.detach(send)
            conn.close()
            self._pulse(download=False)
            self._busy.release()

    def _pulse(self, *, download: bool) -> None:
        """EN low, then high with IO0 low (download) or released (app), as DTR/RTS would."""
        self._lines.set_lines(dtr=False, rts=True)
        time.sleep(_RESET_HOLD_S)
        if download:
            self._lines.set_lines(dtr=True, rts=False)
            time.sleep(_STRAP_HOLD_S)
        self._lines.release()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


class PtyEndpoint:
    """The UART as a pty, like a USB-UART bridge's /dev/ttyUSB0.

    A pty has no DTR/RTS, so esptool on it alone needs `--before no-reset`. With
    `modem_dir`, a program holding the slave with twin/usb_uart's shim preloaded (ser2net
    under labgrid's exporter) drives the auto-reset circuit as it would a real bridge's.
    """

    def __init__(
        self, uart: Uart, lines: DevKitAutoReset | None = None, modem_dir: Path | None = None
    ) -> None:
        self._uart = uart
        self._master, self._slave = pty.openpty()
        # The slave stays open so the master never sees EOF between host sessions.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._modem = (
            ModemLineSocket(modem_dir, self.path, lines)
            if modem_dir is not None and lines is not None
            else None
        )
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="twin-pty", daemon=True)
        uart.attach(self._send)
        self._thread.start()

    def _send(self, data: bytes) -> None:
        # Nobody reading the pty must not stall the chip: drop what does not fit.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._master, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            self._uart.feed(data)

    def close(self) -> None:
        self._uart.detach(self._send)
        if self._modem is not None:
            self._modem.close()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)
