"""A TCP proxy in front of the OTA server that cuts, stalls, throttles and refuses on cue.

TLS passes through untouched: the proxy never decrypts. Wire positions count the
server->client bytes of one TCP connection from its first byte (the TLS handshake
included) and are exact: a cut at wire byte N forwards exactly N bytes, then closes.

Image positions (`image=N`, `fraction=F`) need the rig's own OtaServer on the same
EventBus. The server announces each body write (one TLS record) before sending it, so
the proxy knows where every record ends on the wire. A cut at image byte N lands at the
end of the record that carries image byte N-1: the client has then received every image
byte below N and the rest of that record, no more (at most `record_size` - 1 extra
bytes; pick a smaller ServeMode.record_size for finer steps). `fraction=F` means image
byte N = max(1, floor(F × image size)). Image offsets are absolute, so a Range response
starting past N never matches. Against a foreign server only wire positions work.

Bytes never pass through Python: they are splice()d socket -> kernel pipe -> socket, and
the pipe is the buffer in which faults apply by count, so cuts stay exact. One relay
thread forwards every connection with non-blocking splices while nothing needs to wait
on it; it checks the armed faults before every send, and the first chunk that meets a
cut, a stall, latency or a throttle hands its connection (pipes and unsent bytes
included) to two blocking pump threads for good. Two threads per connection cost the
rig process, whose server does the TLS work under the same GIL, a context switch and a
GIL hand-off per chunk and direction; one relay thread costs far fewer. WireProgress is
still published after every send, from the relay or pump thread that made it.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import queue
import re
import select
import socket
import struct
import termios
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Self

from rig.errors import InfraError, InputError
from rig.net.events import BodyCheckpoint, Direction, Event, EventBus, WireProgress
from rig.net.listener import Service, close_listener, listen, peer_name

_BUFFER = 256 * 1024  # pipe capacity asked for; the most one splice moves
_RST_DRAIN_S = 2.0


class Close(Enum):
    """How a cut closes towards the client."""

    FIN = "fin"  # graceful shutdown: the client reads EOF
    RST = "rst"  # SO_LINGER 0: the client gets ECONNRESET


class AfterStall(Enum):
    RESUME = "resume"
    FIN = "fin"
    RST = "rst"


class Apply(Enum):
    ONCE = "once"  # the first connection that matches, then never again
    EVERY = "every"  # every connection (each at most once)


class Unit(Enum):
    WIRE = "bytes"
    IMAGE = "image"
    FRACTION = "fraction"


class RefuseMode(Enum):
    RST = "rst"  # accept, then reset at once
    CLOSED = "closed"  # stop listening: connect() gets ECONNREFUSED


@dataclass(frozen=True)
class Position:
    """A point in the server->client stream (see the module docstring for the units)."""

    unit: Unit
    value: float

    def __post_init__(self) -> None:
        if self.unit is Unit.FRACTION and not 0 < self.value <= 1:
            raise InputError(f"fraction must be in (0, 1], got {self.value:g}")
        if self.unit is not Unit.FRACTION and (self.value < 0 or self.value != int(self.value)):
            raise InputError(f"{self.unit.value} must be a whole number ≥ 0, got {self.value:g}")
        if self.unit is Unit.IMAGE and self.value < 1:
            raise InputError("image position must be ≥ 1")

    def spec(self) -> str:
        value = f"{self.value:g}" if self.unit is Unit.FRACTION else str(int(self.value))
        return f"{self.unit.value}={value}"

    def image_byte(self, image_size: int) -> int:
        if self.unit is Unit.FRACTION:
            return max(1, math.floor(self.value * image_size))
        return int(self.value)


@dataclass(frozen=True, kw_only=True)
class Fault(ABC):
    """One armed misbehaviour; `spec()` round-trips through parse_fault()."""

    apply: Apply = Apply.ONCE

    @abstractmethod
    def spec(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Cut(Fault):
    at: Position
    close: Close = Close.FIN

    def spec(self) -> str:
        return f"cut@{self.at.spec()}:{self.close.value}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Stall(Fault):
    """Stop forwarding both ways, connection left open; at=None: at the next server byte."""

    seconds: float
    at: Position | None = None
    then: AfterStall = AfterStall.RESUME

    def spec(self) -> str:
        where = f"@{self.at.spec()}" if self.at else ""
        return f"stall{where}:{_duration(self.seconds)}:{self.then.value}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class _Continuous(Fault):
    """A fault on every forwarded chunk rather than at one position, so it defaults to every connection."""

    apply: Apply = Apply.EVERY


@dataclass(frozen=True, kw_only=True)
class Throttle(_Continuous):
    bytes_per_second: int

    def spec(self) -> str:
        return f"throttle={self.bytes_per_second}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Latency(_Continuous):
    """Delay every forwarded chunk, both directions."""

    seconds: float

    def spec(self) -> str:
        return f"latency={_duration(self.seconds)}:{self.apply.value}"


@dataclass(frozen=True, kw_only=True)
class Refuse(Fault):
    """Refuse new connections for `seconds` from arming (time-based: `apply` is ignored)."""

    seconds: float
    mode: RefuseMode = RefuseMode.RST

    def spec(self) -> str:
        return f"refuse={_duration(self.seconds)}:{self.mode.value}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s)")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _parse_duration(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InputError(f"bad duration {text!r} (want e.g. 50ms or 20s)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def _parse_int(text: str, what: str) -> int:
    if not text.isdigit():
        raise InputError(f"bad {what} {text!r} (want a whole number)")
    return int(text)


def parse_fault(spec: str) -> Fault:
    """Parse `cut@bytes=400000:rst`, `cut@fraction=0.4:fin`, `stall@bytes=100000:20s[:resume|fin|rst]`,
    `stall:5s`, `throttle=200000`, `latency=50ms`, `refuse=5s[:rst|closed]`; any may end `:once|:every`."""
    head, *params = spec.strip().split(":")
    flags = set(params)
    apply = Apply.EVERY if "every" in flags else Apply.ONCE if "once" in flags else None
    try:
        if head.partition("@")[0] in ("cut", "stall"):
            return _parse_positional(head, params, apply)
        kind, _, value = head.partition("=")
        if kind == "throttle":
            return Throttle(bytes_per_second=_parse_int(value, "rate"), apply=apply or Apply.EVERY)
        if kind == "latency":
            return Latency(seconds=_parse_duration(value), apply=apply or Apply.EVERY)
        if kind == "refuse":
            mode = RefuseMode.CLOSED if "closed" in flags else RefuseMode.RST
            return Refuse(seconds=_parse_duration(value), mode=mode)
    except ValueError as error:
        raise InputError(f"bad fault {spec!r}: {error}") from None
    raise InputError(f"unknown fault {spec!r} (want cut@, stall, throttle=, latency= or refuse=)")


def _parse_positional(head: str, params: list[str], apply: Apply | None) -> Fault:
    kind, _, where = head.partition("@")
    at: Position | None = None
    if where:
        unit_name, _, value = where.partition("=")
        units = {unit.value: unit for unit in Unit}
        if unit_name not in units:
            raise InputError(f"bad position {where!r} (want bytes=, image= or fraction=)")
        at = Position(units[unit_name], float(value))
    durations = [p for p in params if _DURATION.fullmatch(p)]
    if kind == "cut":
        if at is None:
            raise InputError("cut needs a position, e.g. cut@bytes=400000")
        return Cut(at=at, close=Close.RST if "rst" in params else Close.FIN, apply=apply or Apply.ONCE)
    if kind != "stall" or len(durations) != 1:
        raise InputError(f"bad fault {head!r} (stall needs one duration, e.g. stall@bytes=100000:20s)")
    then = next((AfterStall(p) for p in params if p in ("resume", "fin", "rst")), AfterStall.RESUME)
    return Stall(seconds=_parse_duration(durations[0]), at=at, then=then, apply=apply or Apply.ONCE)


class Ending(Enum):
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
    ending: Ending
    opened_at: float
    closed_at: float | None


class _Armed:
    """An armed fault plus who has claimed a `once` fault."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self._owner: int | None = None
        self._lock = threading.Lock()

    def claim(self, connection_id: int) -> bool:
        if self.fault.apply is Apply.EVERY:
            return True
        with self._lock:
            if self._owner is None:
                self._owner = connection_id
            return self._owner == connection_id

    def available_to(self, connection_id: int) -> bool:
        return self.fault.apply is Apply.EVERY or self._owner in (None, connection_id)


@dataclass
class _Conn:
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
    ending: Ending = Ending.OPEN
    closed_at: float | None = None
    closing: bool = False
    gate: threading.Event = field(default_factory=threading.Event)  # set = forwarding allowed
    wake: threading.Event = field(default_factory=threading.Event)  # ends a stall early
    next_send: dict[Direction, float] = field(default_factory=dict)  # throttle pacing
    pumps_left: int = 2
    flows: tuple[_Flow, ...] = ()

    def snapshot(self) -> ConnectionRecord:
        return ConnectionRecord(
            self.id, self.peer, self.upstream_port, self.down, self.up, tuple(self.applied),
            self.fault_at, self.ending, self.opened_at, self.closed_at,
        )

    def end(self, ending: Ending) -> None:
        """First reason wins: a cut stays a cut even if the other pump then sees EOF."""
        if self.ending is Ending.OPEN:
            self.ending = ending


class _Closed(Exception):
    """The connection is being torn down; the pump stops."""


class _Pipe:
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


class _Flow:
    """One direction of a connection: its sockets, its pipe and the bytes in the pipe not yet sent."""

    def __init__(self, conn: _Conn, direction: Direction) -> None:
        assert conn.upstream is not None
        self.conn = conn
        self.direction = direction
        down = direction is Direction.DOWN
        self.source, self.sink = (conn.upstream, conn.client) if down else (conn.client, conn.upstream)
        self.source_fd, self.sink_fd = self.source.fileno(), self.sink.fileno()
        self.source_reset = Ending.UPSTREAM_RESET if down else Ending.CLIENT_RESET
        self.sink_reset = Ending.CLIENT_RESET if down else Ending.UPSTREAM_RESET
        self.pipe = _Pipe()
        self.pending = 0
        self.done = False


class _Relay:
    """Forwards its connections with non-blocking splices in one thread until a fault needs pumps.

    Its state is touched only by its thread; new connections arrive by queue.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._poller = select.epoll()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK)
        self._poller.register(self._wake, select.EPOLLIN)
        self._joining: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._flows: dict[int, tuple[_Flow, _Flow]] = {}  # socket fd -> (flow reading it, flow writing it)
        self._masks: dict[int, int] = {}  # socket fd -> events registered with the poller
        self._thread = threading.Thread(target=self._loop, name="fault-proxy-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, conn: _Conn) -> None:
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
        while not self._proxy._stopping.is_set():
            for fd, _ in self._poller.poll():
                if fd == self._wake:
                    os.eventfd_read(self._wake)
                    self._adopt()
                elif fd in self._flows:
                    self._service(fd)
        self._adopt()
        for conn in {reader.conn.id: reader.conn for reader, _ in self._flows.values()}.values():
            self._release(conn, Ending.STOPPED)

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

    def _pull(self, flow: _Flow) -> None:
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

    def _push(self, flow: _Flow) -> None:
        """Send what the pipe holds; each send is counted and published, and a subscriber may arm a
        fault that lands in the rest, so faults are checked before every send."""
        while flow.pending:
            if self._proxy._needs_pumps(flow):
                self._forget(flow.conn)
                self._proxy._hand_off(flow.conn)
                return
            try:
                sent = flow.pipe.send(flow.sink_fd, flow.pending, os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return
            except OSError:
                self._release(flow.conn, flow.sink_reset)
                return
            flow.pending -= sent
            self._proxy._count(flow.conn, flow.direction, sent)

    def _watch(self, conn: _Conn) -> None:
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

    def _forget(self, conn: _Conn) -> None:
        """Take the connection's sockets out of the relay loop."""
        for flow in conn.flows:
            self._flows.pop(flow.source_fd, None)
            self._register(flow.source_fd, 0)

    def _finish(self, flow: _Flow) -> None:
        flow.done = True
        flow.pipe.close()
        if all(f.done for f in flow.conn.flows):
            self._forget(flow.conn)
        self._proxy._pump_done(flow.conn)

    def _release(self, conn: _Conn, ending: Ending) -> None:
        conn.end(ending)
        for flow in conn.flows:
            if not flow.done:
                self._finish(flow)


def _waits(flow: _Flow, *, reading: bool) -> int:
    """The poll events `flow` waits for on its source (reading) or on its sink."""
    if flow.done or bool(flow.pending) == reading:
        return 0
    return select.EPOLLIN if reading else select.EPOLLOUT


class FaultProxy(Service):
    """TCP proxy 127.0.0.1:port -> upstream: a relay thread, pump threads once a fault needs them."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bus: EventBus | None = None,
        listener: Callable[[str, int, str], socket.socket] = listen,
    ) -> None:
        self.bus = bus if bus is not None else EventBus()
        self._make_listener = listener
        self._upstream = upstream
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._armed: list[_Armed] = []
        self._refuse: Refuse | None = None
        self._refuse_until = 0.0
        self._refuse_changed = threading.Event()
        self._conns: dict[int, _Conn] = {}
        self._closed: list[ConnectionRecord] = []
        self._checkpoints: dict[tuple[int, int], list[BodyCheckpoint]] = {}
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._next_id = 0
        self._relay = _Relay(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._acceptor is not None:
            return self
        self._listener = self._listen()
        self._port = self._listener.getsockname()[1]
        self.bus.subscribe(self._on_event)
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._acceptor.start()
        self._relay.start()
        return self

    def stop(self) -> None:
        if self._acceptor is None:
            return
        self._stopping.set()
        self._refuse_changed.set()
        self._close_listener()
        self._acceptor.join(timeout=5)
        self._acceptor = None
        self._relay.stop()  # it ends the connections it relays
        self.bus.unsubscribe(self._on_event)
        with self._lock:
            conns, threads = list(self._conns.values()), list(self._threads)
        for conn in conns:
            self._abort(conn, Ending.STOPPED)
        for thread in threads:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self._port

    # -- faults ------------------------------------------------------------------------------

    def arm(self, fault: Fault | str) -> Fault:
        """Arm a fault (object or spec string) on top of those already armed."""
        armed = parse_fault(fault) if isinstance(fault, str) else fault
        if isinstance(armed, Refuse):
            with self._lock:
                self._refuse = armed
                self._refuse_until = time.monotonic() + armed.seconds
            if armed.mode is RefuseMode.CLOSED:
                self._close_listener()
            return armed
        with self._lock:
            self._armed = [*self._armed, _Armed(armed)]
        return armed

    def disarm(self) -> None:
        """Drop every armed fault, end running stalls (they resume) and refusals."""
        with self._lock:
            self._armed = []
            self._refuse = None
            self._refuse_until = 0.0
            conns = list(self._conns.values())
        self._refuse_changed.set()
        for conn in conns:
            conn.wake.set()

    @property
    def armed(self) -> list[Fault]:
        with self._lock:
            faults = [a.fault for a in self._armed]
            return [*faults, self._refuse] if self._refuse is not None else faults

    @property
    def records(self) -> list[ConnectionRecord]:
        """Closed connections in closing order, then those still open."""
        with self._lock:
            return [*self._closed, *(c.snapshot() for c in self._conns.values())]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is open; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._conns, timeout)

    # -- accepting ---------------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        listener = self._make_listener(self._host, self._port, "fault proxy")
        self._host = listener.getsockname()[0]
        return listener

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            close_listener(listener)

    def _refusing(self) -> Refuse | None:
        with self._lock:
            if self._refuse is not None and time.monotonic() >= self._refuse_until:
                self._refuse = None
            return self._refuse

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._wait_out_refusal()
                continue
            try:
                sock, peer = listener.accept()
            except OSError:
                continue
            if self._refusing() is not None:
                self._refuse_one(sock, peer)
            else:
                self._open(sock, peer)

    def _wait_out_refusal(self) -> None:
        """Listener closed by `refuse=…:closed`: listen again once the refusal is over."""
        self._refuse_changed.clear()
        remaining = self._refuse_until - time.monotonic()
        if remaining > 0 and self._refusing() is not None:
            self._refuse_changed.wait(remaining)
            return
        if self._stopping.is_set():
            return
        try:
            listener = self._listen()
        except InfraError:
            self._stopping.wait(0.05)  # the port is briefly busy; try again
            return
        with self._lock:
            self._listener = listener

    def _refuse_one(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        now = time.time()
        with self._lock:
            self._next_id += 1
            record = ConnectionRecord(
                self._next_id, peer_name(peer), 0, 0, 0, ("refuse",), None, Ending.REFUSED, now, now
            )
            self._closed.append(record)

    def _open(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            self._next_id += 1
            conn = _Conn(self._next_id, sock, peer_name(peer), time.time())
            self._conns[conn.id] = conn
        conn.gate.set()
        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            conn.pumps_left = 1
            conn.end(Ending.UPSTREAM_UNREACHABLE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._pump_done(conn)
            return
        for side in (sock, upstream):
            side.setblocking(False)  # the relay loop's splices must not block
            side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.upstream = upstream
        conn.upstream_port = upstream.getsockname()[1]
        conn.flows = (_Flow(conn, Direction.DOWN), _Flow(conn, Direction.UP))
        with self._lock:
            self._checkpoints[(conn.upstream_port, self._upstream[1])] = []
        self._relay.add(conn)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, BodyCheckpoint) and event.server_port == self._upstream[1]:
            with self._lock:
                checkpoints = self._checkpoints.get((event.peer_port, event.server_port))
                if checkpoints is not None:
                    checkpoints.append(event)

    # -- pumps -------------------------------------------------------------------------------

    def _needs_pumps(self, flow: _Flow) -> bool:
        """Whether a fault acts on the chunk in `flow`'s pipe (then it must be able to wait)."""
        if not self._armed:
            return False
        conn = flow.conn
        for armed in self._armed:
            if isinstance(armed.fault, _Continuous) and armed.available_to(conn.id):
                return True
        return flow.direction is Direction.DOWN and self._next_positional(conn, flow.pending) is not None

    def _hand_off(self, conn: _Conn) -> None:
        """From now on two blocking pump threads carry `conn`, starting with what its pipes hold."""
        for side in (conn.client, conn.upstream):
            assert side is not None
            side.setblocking(True)
        for flow in conn.flows:
            if flow.done:
                continue
            name = f"fault-proxy-{conn.id}-{flow.direction.name.lower()}"
            thread = threading.Thread(target=self._pump, args=(flow,), name=name, daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()

    # -- pumps -------------------------------------------------------------------------------

    def _pump(self, flow: _Flow) -> None:
        """Copy one direction until EOF, a reset or a cut; the last pump to end closes the sockets."""
        conn = flow.conn
        size, flow.pending = flow.pending, 0
        try:
            while True:
                if flow.direction is Direction.UP:
                    self._forward(conn, flow.direction, flow.pipe, size)
                elif size and not self._deliver(conn, flow.pipe, size):
                    return
                try:
                    size = flow.pipe.fill(flow.source_fd)
                except OSError:
                    self._abort(conn, flow.source_reset)
                    return
                if size == 0:
                    with contextlib.suppress(OSError):
                        flow.sink.shutdown(socket.SHUT_WR)
                    return
        except _Closed:
            return
        finally:
            flow.pipe.close()
            self._pump_done(conn)

    def _deliver(self, conn: _Conn, pipe: _Pipe, size: int) -> bool:
        """Forward the `size` upstream bytes in `pipe`, firing positional faults in them; False once cut."""
        while True:
            due = self._next_positional(conn, size)
            if due is None:
                self._forward(conn, Direction.DOWN, pipe, size)
                return True
            armed, wire = due
            head = wire - conn.down
            self._forward(conn, Direction.DOWN, pipe, head)
            size -= head
            conn.fired.add(id(armed))
            if not armed.claim(conn.id):
                continue
            conn.applied.append(armed.fault.spec())
            conn.fault_at = wire
            fault = armed.fault
            if isinstance(fault, Cut):
                self._cut(conn, fault.close)
                return False
            assert isinstance(fault, Stall)
            if not self._stall(conn, fault):
                return False

    def _next_positional(self, conn: _Conn, size: int) -> tuple[_Armed, int] | None:
        """The earliest cut/stall due within the next `size` down bytes, as (fault, wire byte)."""
        best: tuple[_Armed, int] | None = None
        for armed in self._armed:
            fault = armed.fault
            if not isinstance(fault, Cut | Stall) or id(armed) in conn.fired:
                continue
            if not armed.available_to(conn.id):
                continue
            wire = self._wire_position(conn, fault.at)
            if wire is None or not conn.down <= wire <= conn.down + size:
                continue
            if best is None or wire < best[1]:
                best = (armed, wire)
        return best

    def _wire_position(self, conn: _Conn, at: Position | None) -> int | None:
        if at is None:
            return conn.down
        if at.unit is Unit.WIRE:
            return int(at.value)
        with self._lock:
            checkpoints = list(self._checkpoints.get((conn.upstream_port, self._upstream[1]), ()))
        for checkpoint in checkpoints:
            target = at.image_byte(checkpoint.image_size)
            if checkpoint.image_start < target <= checkpoint.image_end:
                return checkpoint.wire_end
        return None

    def _forward(self, conn: _Conn, direction: Direction, pipe: _Pipe, size: int) -> None:
        """Send the first `size` bytes of `pipe` on, honouring stalls, latency and throttling; counts them."""
        if not size:
            return
        conn.gate.wait()
        if conn.closing:
            raise _Closed
        latency, rate = self._continuous(conn)
        if latency:
            self._stopping.wait(latency)
        target = conn.client if direction is Direction.DOWN else conn.upstream
        assert target is not None
        step = size if rate is None else max(1024, rate // 20)
        for offset in range(0, size, step):
            piece = min(step, size - offset)
            if rate is not None:
                self._pace(conn, direction, piece, rate)
            sent = 0
            try:
                while sent < piece:
                    sent += pipe.send(target.fileno(), piece - sent)
            except OSError:
                gone = Ending.CLIENT_RESET if direction is Direction.DOWN else Ending.UPSTREAM_RESET
                self._abort(conn, gone)
                raise _Closed from None
            finally:
                if sent:  # once per piece, as faults are checked per piece; what a reset cut short too
                    self._count(conn, direction, sent)

    def _count(self, conn: _Conn, direction: Direction, size: int) -> None:
        """`size` more bytes went on: count them and tell the bus."""
        if direction is Direction.DOWN:
            conn.down += size
            total = conn.down
        else:
            conn.up += size
            total = conn.up
        self.bus.publish(WireProgress(conn.id, direction, total))

    def _continuous(self, conn: _Conn) -> tuple[float, int | None]:
        """Total added latency and the tightest rate limit that apply to this connection."""
        latency, rate = 0.0, None
        for armed in self._armed:
            fault = armed.fault
            if not isinstance(fault, _Continuous) or not armed.claim(conn.id):
                continue
            spec = fault.spec()
            if spec not in conn.applied:
                conn.applied.append(spec)
            if isinstance(fault, Latency):
                latency += fault.seconds
            elif isinstance(fault, Throttle):
                rate = fault.bytes_per_second if rate is None else min(rate, fault.bytes_per_second)
        return latency, rate

    def _pace(self, conn: _Conn, direction: Direction, size: int, rate: int) -> None:
        now = time.monotonic()
        due = max(now, conn.next_send.get(direction, now))
        if due > now:
            self._stopping.wait(due - now)
        conn.next_send[direction] = due + size / rate

    # -- stalls, cuts, teardown ----------------------------------------------------------------

    def _stall(self, conn: _Conn, fault: Stall) -> bool:
        """Blackhole both directions; True when forwarding resumes, False when it closed instead."""
        conn.gate.clear()
        ended_early = conn.wake.wait(fault.seconds)
        conn.wake.clear()
        if conn.closing:
            conn.gate.set()
            raise _Closed
        if fault.then is AfterStall.RESUME or ended_early:
            conn.gate.set()
            return True
        self._cut(conn, Close(fault.then.value))
        return False

    def _cut(self, conn: _Conn, close: Close) -> None:
        conn.end(Ending.CUT_FIN if close is Close.FIN else Ending.CUT_RST)
        conn.closing = True
        with contextlib.suppress(OSError):
            if close is Close.FIN:
                conn.client.shutdown(socket.SHUT_WR)
            else:
                _drain(conn.client)
                conn.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._shut(conn)

    def _abort(self, conn: _Conn, ending: Ending) -> None:
        conn.end(ending)
        conn.closing = True
        self._shut(conn)

    def _shut(self, conn: _Conn) -> None:
        """Wake both pumps; sockets are closed by the last pump (no fd reuse races)."""
        with contextlib.suppress(OSError):
            conn.client.shutdown(socket.SHUT_RD)
        if conn.upstream is not None:
            with contextlib.suppress(OSError):
                conn.upstream.shutdown(socket.SHUT_RDWR)
        conn.gate.set()
        conn.wake.set()

    def _pump_done(self, conn: _Conn) -> None:
        with self._lock:
            conn.pumps_left -= 1
            if conn.pumps_left > 0:
                self._threads.discard(threading.current_thread())
                return
        conn.client.close()
        if conn.upstream is not None:
            conn.upstream.close()
        conn.end(Ending.CLOSED)
        conn.closed_at = time.time()
        with self._idle:
            self._threads.discard(threading.current_thread())
            self._conns.pop(conn.id, None)
            self._checkpoints.pop((conn.upstream_port, self._upstream[1]), None)
            self._closed.append(conn.snapshot())
            self._idle.notify_all()


def _drain(sock: socket.socket) -> None:
    """Wait until the client's kernel has acknowledged all we sent, so an RST drops nothing."""
    deadline = time.monotonic() + _RST_DRAIN_S
    while time.monotonic() < deadline:
        unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        if unacked == 0:
            return
        time.sleep(0.001)
