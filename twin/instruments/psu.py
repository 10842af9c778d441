"""A virtual Rigol DP832 bench supply reached only over SCPI on TCP, like the real one's LAN port.

The rig's SCPI driver must not be able to tell it from the real instrument, so the
twin speaks the DP800 programming-guide dialect (long/short headers, CH<n>
arguments, its readback formats and error queue) and feeds each channel's rail to
whatever twin board is wired to it. Every setpoint change on a live output reaches
the board at once: a ramp sent as VOLT steps becomes a real brownout sag.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

from twin.instruments.scpi import (
    Command,
    ErrorQueue,
    Header,
    ScpiError,
    ScpiErrorCode,
    parse_bool,
    parse_float,
    parse_message,
)
from twin.power import PoweredDevice

_MAX_LINE = 64 * 1024


class OutputMode(Enum):
    """What the front panel shows: constant voltage or current-limited."""

    CV = "CV"
    CC = "CC"


@dataclass
class PsuChannel:
    """One output: its rating, setpoints, state and the board wired to it."""

    number: int
    max_volts: float
    max_amps: float
    volts: float = 0.0
    amps: float = 0.0
    output: bool = False
    device: PoweredDevice | None = field(default=None, repr=False)

    def rail_volts(self) -> float:
        return self.volts if self.output else 0.0

    def demand_amps(self) -> float:
        if not self.output or self.device is None:
            return 0.0
        return max(0.0, self.device.current_draw_amps())

    def mode(self) -> OutputMode:
        return OutputMode.CC if self.demand_amps() > self.amps else OutputMode.CV

    def measured_amps(self) -> float:
        return min(self.demand_amps(), self.amps)


# DP832: CH1 and CH2 30 V / 3 A, CH3 5 V / 3 A.
DP832_RATINGS: tuple[tuple[float, float], ...] = ((30.0, 3.0), (30.0, 3.0), (5.0, 3.0))

_Handler = Callable[[Command, dict[str, int | None]], str | None]


class VirtualPsu:
    """A DP832 twin serving SCPI on 127.0.0.1; `resource` is the VISA string the rig uses."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        serial_number: str = "DP8C000000001",
        ratings: tuple[tuple[float, float], ...] = DP832_RATINGS,
    ) -> None:
        self.idn = f"RIGOL TECHNOLOGIES,DP832,{serial_number},00.01.16"
        self._ratings = ratings
        self._lock = threading.RLock()
        self._errors = ErrorQueue()
        self._channels = self._fresh_channels()
        self._selected = 1
        self._table = self._command_table()
        self._clients: set[socket.socket] = set()
        self._sessions: list[threading.Thread] = []
        self._closed = False
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept_loop, name="virtual-psu", daemon=True)
        self._acceptor.start()

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    def attach(self, channel: int, device: PoweredDevice) -> None:
        """Wire a board to an output; it immediately sees that output's rail."""
        with self._lock:
            state = self._channel(channel)
            state.device = device
            device.supply_changed(state.rail_volts())

    def channel(self, number: int) -> PsuChannel:
        """The live state of one output (for assertions and the lab's status view)."""
        with self._lock:
            return self._channel(number)

    def execute(self, line: str) -> str | None:
        """Run one received line; returns the reply line (without terminator) if it held queries."""
        replies: list[str] = []
        with self._lock:
            try:
                for command in parse_message(line):
                    reply = self._dispatch(command)
                    if reply is not None:
                        replies.append(reply)
            except ScpiError as error:
                self._errors.push(error.code)
        return ";".join(replies) if replies else None

    def close(self) -> None:
        """Stop serving: the listener and every open session end, outputs keep their state."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients)
        for sock in [self._listener, *clients]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
        for session in list(self._sessions):
            session.join(timeout=5)

    def __enter__(self) -> VirtualPsu:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- network ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._clients.add(conn)
                session = threading.Thread(target=self._session, args=(conn,), name="virtual-psu-session")
                session.daemon = True
                self._sessions = [s for s in self._sessions if s.is_alive()] + [session]
            session.start()

    def _session(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        try:
            while chunk := conn.recv(4096):
                # ACK at once, as the instrument's LAN stack does: a client that writes a
                # command and then its error query (Nagle on) would otherwise wait out
                # Linux's 40 ms delayed ACK between the two. Linux clears the flag, so renew it.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end]).decode("ascii", errors="replace").rstrip("\r")
                    del buffer[: end + 1]
                    reply = self.execute(line)
                    if reply is not None:
                        conn.sendall(reply.encode("ascii") + b"\n")
                if len(buffer) > _MAX_LINE:
                    buffer.clear()
                    with self._lock:
                        self._errors.push(ScpiErrorCode.INPUT_BUFFER_OVERRUN)
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)
            conn.close()

    # --- instrument model ------------------------------------------------------------------

    def _fresh_channels(self) -> dict[int, PsuChannel]:
        return {
            number: PsuChannel(number, volts_max, amps_max, amps=amps_max)
            for number, (volts_max, amps_max) in enumerate(self._ratings, start=1)
        }

    def _channel(self, number: int) -> PsuChannel:
        try:
            return self._channels[number]
        except KeyError:
            raise ScpiError(ScpiErrorCode.ILLEGAL_PARAMETER_VALUE) from None

    def _channel_arg(self, text: str) -> PsuChannel:
        word = text.upper()
        if not word.startswith("CH") or not word[2:].isdigit():
            raise ScpiError(ScpiErrorCode.ILLEGAL_PARAMETER_VALUE)
        return self._channel(int(word[2:]))

    def _source(self, suffixes: dict[str, int | None]) -> PsuChannel:
        number = suffixes.get("SOURCE")
        return self._channel(self._selected if number is None else number)

    def _optional_channel(self, command: Command, max_other: int = 0) -> PsuChannel:
        """Queries like MEAS? take `[CH<n>]`; without it the selected channel is meant."""
        _count(command, 0, 1 + max_other)
        return self._channel_arg(command.args[0]) if command.args else self._channel(self._selected)

    def _set_output(self, channel: PsuChannel, on: bool) -> None:
        channel.output = on
        if channel.device is not None:
            channel.device.supply_changed(channel.rail_volts())

    def _set_volts(self, channel: PsuChannel, volts: float) -> None:
        channel.volts = volts
        if channel.output and channel.device is not None:
            channel.device.supply_changed(volts)

    def _dispatch(self, command: Command) -> str | None:
        for header, is_query, handler in self._table:
            if is_query != command.query:
                continue
            suffixes = header.match(command.nodes)
            if suffixes is not None:
                return handler(command, suffixes)
        raise ScpiError(ScpiErrorCode.UNDEFINED_HEADER)

    def _command_table(self) -> list[tuple[Header, bool, _Handler]]:
        entries: list[tuple[str, bool, _Handler]] = [
            ("*IDN", True, lambda c, s: _no_args(c, self.idn)),
            ("*OPC", True, lambda c, s: _no_args(c, "1")),
            ("*RST", False, lambda c, s: self._reset(c)),
            ("*CLS", False, lambda c, s: self._clear(c)),
            (":SYSTem:ERRor[:NEXT]", True, lambda c, s: _no_args(c, self._errors.pop())),
            (":INSTrument:NSELect", False, self._select_number),
            (":INSTrument:NSELect", True, lambda c, s: _no_args(c, str(self._selected))),
            (":INSTrument[:SELEct]", False, self._select_name),
            (":INSTrument[:SELEct]", True, lambda c, s: _no_args(c, f"CH{self._selected}")),
            ("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", False, self._volts),
            ("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", True, self._volts_query),
            ("[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]", False, self._amps),
            ("[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]", True, self._amps_query),
            (":OUTPut[:STATe]", False, self._output),
            (":OUTPut[:STATe]", True, lambda c, s: "ON" if self._optional_channel(c).output else "OFF"),
            (":OUTPut:MODE", True, lambda c, s: self._optional_channel(c).mode().value),
            (":APPLy", False, self._apply),
            (":APPLy", True, self._apply_query),
            (":MEASure[:VOLTage][:DC]", True, lambda c, s: f"{self._optional_channel(c).rail_volts():.4f}"),
            (":MEASure:CURRent[:DC]", True, lambda c, s: f"{self._optional_channel(c).measured_amps():.4f}"),
            (":MEASure:ALL[:DC]", True, self._measure_all),
        ]
        return [(Header(pattern), query, handler) for pattern, query, handler in entries]

    def _reset(self, command: Command) -> None:
        _count(command, 0, 0)
        for number, fresh in self._fresh_channels().items():
            old = self._channels[number]
            fresh.device = old.device
            self._channels[number] = fresh
            if old.output:
                self._set_output(fresh, False)
        self._selected = 1

    def _clear(self, command: Command) -> None:
        _count(command, 0, 0)
        self._errors.clear()

    def _select_number(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 1, 1)
        number = int(parse_float(command.args[0], 1, len(self._channels)))
        self._selected = self._channel(number).number

    def _select_name(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 1, 1)
        self._selected = self._channel_arg(command.args[0]).number

    def _volts(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 1, 1)
        channel = self._source(suffixes)
        self._set_volts(channel, parse_float(command.args[0], 0.0, channel.max_volts))

    def _volts_query(self, command: Command, suffixes: dict[str, int | None]) -> str:
        _count(command, 0, 0)
        return f"{self._source(suffixes).volts:.3f}"

    def _amps(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 1, 1)
        channel = self._source(suffixes)
        channel.amps = parse_float(command.args[0], 0.0, channel.max_amps)

    def _amps_query(self, command: Command, suffixes: dict[str, int | None]) -> str:
        _count(command, 0, 0)
        return f"{self._source(suffixes).amps:.4f}"

    def _output(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 1, 2)
        if len(command.args) == 2:
            channel = self._channel_arg(command.args[0])
        else:
            channel = self._channel(self._selected)
        self._set_output(channel, parse_bool(command.args[-1]))

    def _apply(self, command: Command, suffixes: dict[str, int | None]) -> None:
        _count(command, 2, 3)
        channel = self._channel_arg(command.args[0])
        volts = parse_float(command.args[1], 0.0, channel.max_volts)
        amps = parse_float(command.args[2], 0.0, channel.max_amps) if len(command.args) == 3 else channel.amps
        channel.amps = amps
        self._set_volts(channel, volts)

    def _apply_query(self, command: Command, suffixes: dict[str, int | None]) -> str:
        channel = self._optional_channel(command)
        rating = f"CH{channel.number}:{channel.max_volts:g}V/{channel.max_amps:g}A"
        return f"{rating},{channel.volts:.3f},{channel.amps:.4f}"

    def _measure_all(self, command: Command, suffixes: dict[str, int | None]) -> str:
        channel = self._optional_channel(command)
        volts, amps = channel.rail_volts(), channel.measured_amps()
        return f"{volts:.4f},{amps:.4f},{volts * amps:.4f}"


def _count(command: Command, least: int, most: int) -> None:
    if len(command.args) < least:
        raise ScpiError(ScpiErrorCode.MISSING_PARAMETER)
    if len(command.args) > most:
        raise ScpiError(ScpiErrorCode.PARAMETER_NOT_ALLOWED)


def _no_args(command: Command, reply: str) -> str:
    _count(command, 0, 0)
    return reply
