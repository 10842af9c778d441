"""A TCP proxy in front of the OTA server that cuts, stalls, throttles and refuses on cue.

TLS passes through untouched: the proxy never decrypts. Wire positions count the
server->client bytes of one TCP connection from its first byte (the TLS handshake
included) and are exact: a cut at wire byte N forwards exactly N bytes, then closes.

Image positions (`Counting.IMAGE`, `Counting.FRACTION`) need the rig's own OtaServer on
the same EventBus. The server announces each body write (one TLS record) before sending
it, so the proxy knows where every record ends on the wire. A cut at image byte N lands at
the end of the record that carries image byte N-1: the client has then received every
image byte below N and the rest of that record, no more (at most `record_size` - 1 extra
bytes; pick a smaller ServeMode.record_size for finer steps). A fraction F means image
byte N = max(1, floor(F × image size)). Image offsets are absolute, so a Range response
starting past N never matches. Against a foreign server only wire positions work.

One relay thread (rig/net/relay.py) forwards every connection with non-blocking splices
while nothing needs to wait on it; the first chunk that meets a cut, a stall, latency or
a throttle hands its connection to two blocking pump threads here, for good. Two threads
per connection cost the rig process, whose server does the TLS work under the same GIL, a
context switch and a GIL hand-off per chunk and direction; one relay thread costs far
fewer. WireProgress is published after every send, from the thread that made it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Self

from rig.errors import InfraError
from rig.net.bus import BodyCheckpoint, Direction, Event, EventBus, WireProgress
from rig.net.faults import (
    AfterStall,
    Apply,
    Counting,
    Cut,
    Fault,
    Latency,
    Position,
    Refuse,
    RefuseMode,
    Stall,
    Teardown,
    Throttle,
    _Continuous,
)
from rig.net.listener import Service, close_listener, listen, peer_name
from rig.net.relay import Closed, Connection, ConnectionEnd, ConnectionRecord, Flow, Pipe, Relay, drain


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
        self._conns: dict[int, Connection] = {}
        self._closed: list[ConnectionRecord] = []
        self._checkpoints: dict[tuple[int, int], list[BodyCheckpoint]] = {}
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop = threading.Event()
        self._next_id = 0
        self._relay = Relay(self)

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
        self._stop.set()
        self._refuse_changed.set()
        self._close_listener()
        self._acceptor.join(timeout=5)
        self._acceptor = None
        self._relay.stop()  # it ends the connections it relays
        self.bus.unsubscribe(self._on_event)
        with self._lock:
            conns, threads = list(self._conns.values()), list(self._threads)
        for conn in conns:
            self._abort(conn, ConnectionEnd.STOPPED)
        for thread in threads:
            thread.join(timeout=5)

    @property
    def stopping(self) -> threading.Event:
        """Set once the proxy stops: the relay loop and waits in the pumps end."""
        return self._stop

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self._port

    # -- faults ------------------------------------------------------------------------------

    def arm(self, fault: Fault) -> Fault:
        """Arm a fault on top of those already armed."""
        armed = fault
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
        while not self._stop.is_set():
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
        if self._stop.is_set():
            return
        try:
            listener = self._listen()
        except InfraError:
            self._stop.wait(0.05)  # the port is briefly busy; try again
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
                self._next_id, peer_name(peer), 0, 0, 0, ("refuse",), None, ConnectionEnd.REFUSED, now, now
            )
            self._closed.append(record)

    def _open(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            self._next_id += 1
            conn = Connection(self._next_id, sock, peer_name(peer), time.time())
            self._conns[conn.id] = conn
        conn.gate.set()
        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            conn.pumps_left = 1
            conn.end(ConnectionEnd.UPSTREAM_UNREACHABLE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.pump_done(conn)
            return
        for side in (sock, upstream):
            side.setblocking(False)  # the relay loop's splices must not block
            side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.upstream = upstream
        conn.upstream_port = upstream.getsockname()[1]
        conn.flows = (Flow(conn, Direction.DOWN), Flow(conn, Direction.UP))
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

    def needs_pumps(self, flow: Flow) -> bool:
        """Whether a fault acts on the chunk in `flow`'s pipe (then it must be able to wait)."""
        if not self._armed:
            return False
        conn = flow.conn
        for armed in self._armed:
            if isinstance(armed.fault, _Continuous) and armed.available_to(conn.id):
                return True
        return flow.direction is Direction.DOWN and self._next_positional(conn, flow.pending) is not None

    def hand_off(self, conn: Connection) -> None:
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

    def _pump(self, flow: Flow) -> None:
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
        except Closed:
            return
        finally:
            flow.pipe.close()
            self.pump_done(conn)

    def _deliver(self, conn: Connection, pipe: Pipe, size: int) -> bool:
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
            conn.applied.append(armed.fault.describe())
            conn.fault_at = wire
            fault = armed.fault
            if isinstance(fault, Cut):
                self._cut(conn, fault.teardown)
                return False
            assert isinstance(fault, Stall)
            if not self._stall(conn, fault):
                return False

    def _next_positional(self, conn: Connection, size: int) -> tuple[_Armed, int] | None:
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

    def _wire_position(self, conn: Connection, at: Position | None) -> int | None:
        if at is None:
            return conn.down
        if at.counting is Counting.WIRE:
            return int(at.value)
        with self._lock:
            checkpoints = list(self._checkpoints.get((conn.upstream_port, self._upstream[1]), ()))
        for checkpoint in checkpoints:
            target = at.image_byte(checkpoint.image_size)
            if checkpoint.image_start < target <= checkpoint.image_end:
                return checkpoint.wire_end
        return None

    def _forward(self, conn: Connection, direction: Direction, pipe: Pipe, size: int) -> None:
        """Send the first `size` bytes of `pipe` on, honouring stalls, latency and throttling; counts them."""
        if not size:
            return
        conn.gate.wait()
        if conn.closing:
            raise Closed
        latency, rate = self._continuous(conn)
        if latency:
            self._stop.wait(latency)
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
                down = direction is Direction.DOWN
                self._abort(conn, ConnectionEnd.CLIENT_RESET if down else ConnectionEnd.UPSTREAM_RESET)
                raise Closed from None
            finally:
                if sent:  # once per piece, as faults are checked per piece; what a reset cut short too
                    self.count(conn, direction, sent)

    def count(self, conn: Connection, direction: Direction, size: int) -> None:
        """`size` more bytes went on: count them and tell the bus."""
        if direction is Direction.DOWN:
            conn.down += size
            total = conn.down
        else:
            conn.up += size
            total = conn.up
        self.bus.publish(WireProgress(conn.id, direction, total))

    def _continuous(self, conn: Connection) -> tuple[float, int | None]:
        """Total added latency and the tightest rate limit that apply to this connection."""
        latency, rate = 0.0, None
        for armed in self._armed:
            fault = armed.fault
            if not isinstance(fault, _Continuous) or not armed.claim(conn.id):
                continue
            spec = fault.describe()
            if spec not in conn.applied:
                conn.applied.append(spec)
            if isinstance(fault, Latency):
                latency += fault.seconds
            elif isinstance(fault, Throttle):
                rate = fault.bytes_per_second if rate is None else min(rate, fault.bytes_per_second)
        return latency, rate

    def _pace(self, conn: Connection, direction: Direction, size: int, rate: int) -> None:
        now = time.monotonic()
        due = max(now, conn.next_send.get(direction, now))
        if due > now:
            self._stop.wait(due - now)
        conn.next_send[direction] = due + size / rate

    # -- stalls, cuts, teardown ----------------------------------------------------------------

    def _stall(self, conn: Connection, fault: Stall) -> bool:
        """Blackhole both directions; True when forwarding resumes, False when it closed instead."""
        conn.gate.clear()
        ended_early = conn.wake.wait(fault.seconds)
        conn.wake.clear()
        if conn.closing:
            conn.gate.set()
            raise Closed
        if fault.then is AfterStall.RESUME or ended_early:
            conn.gate.set()
            return True
        self._cut(conn, Teardown(fault.then.value))
        return False

    def _cut(self, conn: Connection, teardown: Teardown) -> None:
        conn.end(ConnectionEnd.CUT_FIN if teardown is Teardown.FIN else ConnectionEnd.CUT_RST)
        conn.closing = True
        with contextlib.suppress(OSError):
            if teardown is Teardown.FIN:
                conn.client.shutdown(socket.SHUT_WR)
            else:
                drain(conn.client)
                conn.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._shut(conn)

    def _abort(self, conn: Connection, ending: ConnectionEnd) -> None:
        conn.end(ending)
        conn.closing = True
        self._shut(conn)

    def _shut(self, conn: Connection) -> None:
        """Wake both pumps; sockets are closed by the last pump (no fd reuse races)."""
        with contextlib.suppress(OSError):
            conn.client.shutdown(socket.SHUT_RD)
        if conn.upstream is not None:
            with contextlib.suppress(OSError):
                conn.upstream.shutdown(socket.SHUT_RDWR)
        conn.gate.set()
        conn.wake.set()

    def pump_done(self, conn: Connection) -> None:
        with self._lock:
            conn.pumps_left -= 1
            if conn.pumps_left > 0:
                self._threads.discard(threading.current_thread())
                return
        conn.client.close()
        if conn.upstream is not None:
            conn.upstream.close()
        conn.end(ConnectionEnd.CLOSED)
        conn.closed_at = time.time()
        with self._idle:
            self._threads.discard(threading.current_thread())
            self._conns.pop(conn.id, None)
            self._checkpoints.pop((conn.upstream_port, self._upstream[1]), None)
            self._closed.append(conn.snapshot())
            self._idle.notify_all()


