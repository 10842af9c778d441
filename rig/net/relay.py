"""Moving a proxied connection's bytes: kernel pipes filled and emptied by splice(), and the
one relay thread that forwards every connection while no fault needs it.

Bytes never pass through Python: they are splice()d socket -> kernel pipe -> socket, and
the pipe is the buffer in which faults apply by count, so cuts stay exact. The relay
checks with its owner (the fault proxy) before every send; the first chunk a fault acts
on hands its connection, pipes and unsent bytes included, back to the owner for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import select
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from rig.net.bus import Direction

_BUFFER = 256 * 1024  # pipe capacity asked for; the most one splice moves
_RST_DRAIN_S = 2.0


class RelayOwner(Protocol):
    """What the relay asks of whoever owns the connections (rig/net/proxy.py)."""

    @property
    def stopping(self) -> threading.Event: ...

    def needs_pumps(self, flow: Flow) -> bool: ...

    def hand_off(self, conn: Connection) -> None: ...

    def count(self, conn: Connection, direction: Direction, size: int) -> None: ...

    def pump_done(self, conn: Connection) -> None: ...


class ConnectionEnd(Enum):
    """How a proxied connection ended."""

    OPEN = "open"
    CLOSED = "closed"  # both sides finished on their own
    CUT_FIN = "cut (fin)"
    CUT_RST = "cut (rst)"
    REFUSED = "refused"
    CLIENT_RESET = "client reset"
    UPSTREAM_RESET = "upstream reset"
    UPSTREAM_UNREACHABLE = "upstream unreachable"
    STOPPED = "proxy stopped"


@dataclass(frozen=True)
class ConnectionRecord:
    """What one client connection went through; bytes are exact per direction."""

    id: int
    peer: str
    upstream_port: int  # the proxy's local port towards the server (= the server's peer port)
    bytes_down: int  # server -> client, forwarded
    bytes_up: int  # client -> server, forwarded
    faults: tuple[str, ...]  # specs of the faults that acted on it
    fault_at: int | None  # down wire byte where a cut/stall fired
    ending: ConnectionEnd
    opened_at: float
    closed_at: float | None


@dataclass
class Connection:
    id: int
    client: socket.socket
    peer: str
    opened_at: float
    upstream: socket.socket | None = None
    upstream_port: int = 0
    down: int = 0
    up: int = 0
    applied: list[str] = field(default_factory=list)
    fired: set[int] = field(default_factory=set)  # ids of _Armed already acted on this connection
    fault_at: int | None = None
    ending: ConnectionEnd = ConnectionEnd.OPEN
    closed_at: float | None = None
    closing: bool = False
    gate: threading.Event = field(default_factory=threading.Event)  # set = forwarding allowed
    wake: threading.Event = field(default_factory=threading.Event)  # ends a stall early
    next_send: dict[Direction, float] = field(default_factory=dict)  # throttle pacing
    pumps_left: int = 2
    flows: tuple[Flow, ...] = ()

    def snapshot(self) -> ConnectionRecord:
        return ConnectionRecord(
            self.id, self.peer, self.upstream_port, self.down, self.up, tuple(self.applied),
            self.fault_at, self.ending, self.opened_at, self.closed_at,
        )

    def end(self, ending: ConnectionEnd) -> None:
        """First reason wins: a cut stays a cut even if the other pump then sees EOF."""
        if self.ending is ConnectionEnd.OPEN:
            self.ending = ending


class Closed(Exception):
    """The connection is being torn down; the pump stops."""


class Pipe:
    """One flow's buffer: a kernel pipe that splice() fills from one socket and empties into another."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        with contextlib.suppress(OSError):  # over the user's pipe quota the default size still works
            fcntl.fcntl(self._write, fcntl.F_SETPIPE_SZ, _BUFFER)
        self._capacity = fcntl.fcntl(self._write, fcntl.F_GETPIPE_SZ)

    def fill(self, source: int, flags: int = 0) -> int:
        """Move what socket `source` has into the empty pipe; 0 at EOF (blocks unless SPLICE_F_NONBLOCK)."""
        return os.splice(source, self._write, self._capacity, flags=flags)

    def send(self, sink: int, size: int, flags: int = 0) -> int:
        """Move up to `size` bytes from the front of the pipe to socket `sink`; how many moved."""
        return os.splice(self._read, sink, size, flags=flags)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class Flow:
    """One direction of a connection: its sockets, its pipe and the bytes in the pipe not yet sent."""

    def __init__(self, conn: Connection, direction: Direction) -> None:
        assert conn.upstream is not None
        self.conn = conn
        self.direction = direction
        down = direction is Direction.DOWN
        self.source, self.sink = (conn.upstream, conn.client) if down else (conn.client, conn.upstream)
        self.source_fd, self.sink_fd = self.source.fileno(), self.sink.fileno()
        self.source_reset = ConnectionEnd.UPSTREAM_RESET if down else ConnectionEnd.CLIENT_RESET
        self.sink_reset = ConnectionEnd.CLIENT_RESET if down else ConnectionEnd.UPSTREAM_RESET
        self.pipe = Pipe()
        self.pending = 0
        self.done = False


class Relay:
    """Forwards its connections with non-blocking splices in one thread until a fault needs pumps.

    Its state is touched only by its thread; new connections arrive by queue.
    """

    def __init__(self, owner: RelayOwner) -> None:
        self._owner = owner
        self._poller = select.epoll()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK)
        self._poller.register(self._wake, select.EPOLLIN)
        self._joining: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._flows: dict[int, tuple[Flow, Flow]] = {}  # socket fd -> (flow reading it, flow writing it)
        self._masks: dict[int, int] = {}  # socket fd -> events registered with the poller
        self._thread = threading.Thread(target=self._loop, name="fault-proxy-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, conn: Connection) -> None:
        self._joining.put(conn)
        os.eventfd_write(self._wake, 1)

    def stop(self) -> None:
        """End the loop (the proxy is stopping) and with it every connection still relayed."""
        if self._thread.is_alive():
            os.eventfd_write(self._wake, 1)
            self._thread.join(timeout=5)
        self._poller.close()
        os.close(self._wake)

    def _loop(self) -> None:
        """Forward with non-blocking splices until stopped, then end what is still relayed."""
        while not self._owner.stopping.is_set():
            for fd, _ in self._poller.poll():
                if fd == self._wake:
                    os.eventfd_read(self._wake)
                    self._adopt()
                elif fd in self._flows:
                    self._service(fd)
        self._adopt()
        for conn in {reader.conn.id: reader.conn for reader, _ in self._flows.values()}.values():
            self._release(conn, ConnectionEnd.STOPPED)

    def _adopt(self) -> None:
        while True:
            try:
                conn = self._joining.get_nowait()
            except queue.Empty:
                return
            down, up = conn.flows
            self._flows[down.source_fd] = (down, up)
            self._flows[up.source_fd] = (up, down)
            self._watch(conn)

    def _service(self, fd: int) -> None:
        """`fd` is ready: send what waits for it, then read from it if its flow's pipe is empty."""
        reader, writer = self._flows[fd]
        if writer.pending:
            self._push(writer)
        if fd in self._flows and not reader.done and not reader.pending:
            self._pull(reader)
        if fd in self._flows:
            self._watch(reader.conn)

    def _pull(self, flow: Flow) -> None:
        try:
            size = flow.pipe.fill(flow.source_fd, os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return
        except OSError:
            self._release(flow.conn, flow.source_reset)
            return
        if size == 0:
            with contextlib.suppress(OSError):
                flow.sink.shutdown(socket.SHUT_WR)
            self._finish(flow)
            return
        flow.pending = size
        self._push(flow)

    def _push(self, flow: Flow) -> None:
        """Send what the pipe holds; each send is counted and published, and a subscriber may arm a
        fault that lands in the rest, so faults are checked before every send."""
        while flow.pending:
            if self._owner.needs_pumps(flow):
                self._forget(flow.conn)
                self._owner.hand_off(flow.conn)
                return
            try:
                sent = flow.pipe.send(flow.sink_fd, flow.pending, os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return
            except OSError:
                self._release(flow.conn, flow.sink_reset)
                return
            flow.pending -= sent
            self._owner.count(flow.conn, flow.direction, sent)

    def _watch(self, conn: Connection) -> None:
        """Poll each socket for what its flows wait on: reading into an empty pipe, or sending a full one."""
        down, up = conn.flows
        self._register(down.source_fd, _waits(down, reading=True) | _waits(up, reading=False))
        self._register(up.source_fd, _waits(up, reading=True) | _waits(down, reading=False))

    def _register(self, fd: int, mask: int) -> None:
        old = self._masks.get(fd, 0)
        if mask == old:
            return
        if mask:
            self._masks[fd] = mask
        else:
            del self._masks[fd]
        if not old:
            self._poller.register(fd, mask)
        elif not mask:
            self._poller.unregister(fd)
        else:
            self._poller.modify(fd, mask)

    def _forget(self, conn: Connection) -> None:
        """Take the connection's sockets out of the relay loop."""
        for flow in conn.flows:
            self._flows.pop(flow.source_fd, None)
            self._register(flow.source_fd, 0)

    def _finish(self, flow: Flow) -> None:
        flow.done = True
        flow.pipe.close()
        if all(f.done for f in flow.conn.flows):
            self._forget(flow.conn)
        self._owner.pump_done(flow.conn)

    def _release(self, conn: Connection, ending: ConnectionEnd) -> None:
        conn.end(ending)
        for flow in conn.flows:
            if not flow.done:
                self._finish(flow)


def _waits(flow: Flow, *, reading: bool) -> int:
    """The poll events `flow` waits for on its source (reading) or on its sink."""
    if flow.done or bool(flow.pending) == reading:
        return 0
    return select.EPOLLIN if reading else select.EPOLLOUT


def drain(sock: socket.socket) -> None:
    """Wait until the client's kernel has acknowledged all we sent, so an RST drops nothing."""
    deadline = time.monotonic() + _RST_DRAIN_S
    while time.monotonic() < deadline:
        unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        if unacked == 0:
            return
        time.sleep(0.001)
