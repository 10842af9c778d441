"""An `rfc2217://` pyserial handler without the client's fixed 50 ms sleeps.

pyserial's RFC2217 client re-sends baud/size/parity/stop bits and then sleeps at
least 50 ms on *every* settings change, including read-timeout changes, which are
purely local; it also sleeps 50 ms before looking for each DTR/RTS/purge answer.
esptool changes its timeout around nearly every command, so a 500 KB write takes
~26 s (pyserial 3.5 serial/rfc2217.py sleeps 50 ms per settings change). This subclass renegotiates only
a real line-setting change and
wakes the moment the server's acknowledgement arrives. On the wire it is the
standard protocol, so it works against ser2net as well as the twin.

Closing does not sleep either: pyserial waits a fixed 300 ms after every close "in case of
quick reconnects", and the rig hands the port to esptool and back twice per judged OTA.
Instead, an open that finds the server not yet accepting retries for up to a second.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from serial import SerialException, rfc2217

# How long an open keeps retrying a server that is still letting go of the last connection.
REOPEN_WINDOW_S = 1.0
REOPEN_STEP_S = 0.02

_LineSettings = tuple[int, int, str, float]
_FlowSettings = tuple[bool, bool]


class _AckedSubnegotiation(rfc2217.TelnetSubnegotiation):  # type: ignore[misc]
    """A subnegotiation that signals an event when the server answers."""

    def __init__(self, original: Any) -> None:
        super().__init__(original.connection, original.name, original.option, original.ack_option)
        self.answered = threading.Event()

    def set(self, value: bytes) -> None:
        """Always send, and expect the answer: pyserial-labgrid's `set` (the `serial` package
        labgrid installs) skips a value equal to the last one, which would leave `wait`
        waiting for an answer to a request never sent."""
        self.answered.clear()
        self.value = value
        self.state = rfc2217.REQUESTED
        self.connection.rfc2217_send_subnegotiation(self.option, self.value)

    def check_answer(self, suboption: bytes) -> None:
        super().check_answer(suboption)
        self.answered.set()

    def wait(self, timeout: float = 3) -> None:
        if not self.answered.wait(timeout):
            raise SerialException(f"timeout while waiting for option {self.name!r}")
        self.is_ready()  # raises ValueError if the server rejected the value


class Serial(rfc2217.Serial):  # type: ignore[misc]
    """`serial.rfc2217.Serial` that waits on events instead of sleeping."""

    _negotiated: _LineSettings | None = None
    _flow: _FlowSettings | None = None
    _socket: socket.socket | None
    _thread: threading.Thread | None

    def open(self) -> None:
        self._negotiated = None
        self._flow = None
        deadline = time.monotonic() + REOPEN_WINDOW_S
        while True:
            try:
                super().open()
                return
            except SerialException:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(REOPEN_STEP_S)

    def close(self) -> None:
        """pyserial's close without its fixed 300 ms sleep (see the module docstring)."""
        self.is_open = False
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
                self._socket.close()
        if self._thread is not None:
            self._thread.join(7)  # pyserial's own bound: more than its socket timeout
            self._thread = None
        self._socket = None

    def _install_acked_options(self) -> None:
        options: dict[str, Any] = self._rfc2217_options
        settings: dict[str, Any] = self._rfc2217_port_settings
        for name, option in list(options.items()):
            if not isinstance(option, _AckedSubnegotiation):
                acked = _AckedSubnegotiation(option)
                options[name] = acked
                if name in settings:
                    settings[name] = acked

    def _reconfigure_port(self) -> None:
        """Send line settings only when they differ from what the server acknowledged."""
        if self._socket is None:
            raise SerialException("Can only operate on open ports")
        if self._write_timeout is not None:
            raise NotImplementedError("write_timeout is currently not supported")
        if not 0 < self._baudrate < 2**32:
            raise ValueError(f"invalid baudrate: {self._baudrate!r}")
        self._install_acked_options()
        wanted: _LineSettings = (self._baudrate, self._bytesize, self._parity, self._stopbits)
        if wanted != self._negotiated:
            self._negotiate_line(wanted)
        flow: _FlowSettings = (self._rtscts, self._xonxoff)
        if flow != self._flow:
            self._set_flow_control()
            self._flow = flow

    def _negotiate_line(self, wanted: _LineSettings) -> None:
        settings: dict[str, _AckedSubnegotiation] = self._rfc2217_port_settings
        values = {
            "baudrate": self._baudrate.to_bytes(4, "big"),
            "datasize": bytes([self._bytesize]),
            "parity": bytes([rfc2217.RFC2217_PARITY_MAP[self._parity]]),
            "stopsize": bytes([rfc2217.RFC2217_STOPBIT_MAP[self._stopbits]]),
        }
        for name, value in values.items():
            settings[name].set(value)
        for name in values:
            try:
                settings[name].wait(self._network_timeout)
            except (SerialException, ValueError) as error:
                message = f"Remote does not accept parameter change (RFC2217): {error}"
                raise SerialException(message) from error
        self._negotiated = wanted

    def _set_flow_control(self) -> None:
        if self._rtscts and self._xonxoff:
            raise ValueError("xonxoff and rtscts together are not supported")
        if self._rtscts:
            self.rfc2217_set_control(rfc2217.SET_CONTROL_USE_HW_FLOW_CONTROL)
        elif self._xonxoff:
            self.rfc2217_set_control(rfc2217.SET_CONTROL_USE_SW_FLOW_CONTROL)
        else:
            self.rfc2217_set_control(rfc2217.SET_CONTROL_USE_NO_FLOW_CONTROL)
