"""The relay fast path (no fault acting): exact counts under concurrency, and faults armed mid-transfer."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from rig.net.bus import Direction, Event, EventBus, WireProgress
from rig.net.faults import Counting, Cut, Latency, Position
from rig.net.proxy import FaultProxy
from rig.net.relay import ConnectionEnd

from .support import BlobServer, raw_download

REQUEST = b"get\n"


def test_concurrent_connections_are_counted_exactly(
    blob: BlobServer, blob_proxy: FaultProxy, bus: EventBus
) -> None:
    last: dict[tuple[int, Direction], int] = {}
    stale: list[WireProgress] = []  # publishes that reported no new bytes
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        if isinstance(event, WireProgress):
            with lock:
                key = (event.connection_id, event.direction)
                if event.total_bytes <= last.get(key, 0):
                    stale.append(event)
                last[key] = event.total_bytes

    bus.subscribe(on_event)
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: raw_download(blob_proxy.port, REQUEST), range(12)))
    assert all(received == blob.payload and error is None for received, error in results)
    assert blob_proxy.wait_idle(20)
    records = blob_proxy.records
    assert (len(records), stale) == (12, [])
    for record in records:
        assert (record.bytes_down, record.bytes_up, record.ending) == (
            len(blob.payload), len(REQUEST), ConnectionEnd.CLOSED,
        )
        assert last[(record.id, Direction.DOWN)] == record.bytes_down
        assert last[(record.id, Direction.UP)] == record.bytes_up


def test_a_cut_armed_mid_transfer_lands_on_its_byte(
    blob: BlobServer, blob_proxy: FaultProxy, bus: EventBus
) -> None:
    """Armed from a progress subscriber, as a trigger does, for a byte past what was just reported."""
    armed_at: list[int] = []

    def on_event(event: Event) -> None:
        if isinstance(event, WireProgress) and event.direction is Direction.DOWN and not armed_at:
            armed_at.append(event.total_bytes + 777)
            blob_proxy.arm(Cut(at=Position(Counting.WIRE, armed_at[0])))

    bus.subscribe(on_event)
    received, error = raw_download(blob_proxy.port, REQUEST)
    (cut,) = armed_at
    assert error is None
    assert received == blob.payload[:cut]
    assert blob_proxy.wait_idle(20)
    (record,) = blob_proxy.records
    assert (record.bytes_down, record.fault_at, record.ending) == (cut, cut, ConnectionEnd.CUT_FIN)


def test_latency_armed_mid_transfer_moves_the_connection_without_losing_bytes(
    blob: BlobServer, blob_proxy: FaultProxy, bus: EventBus
) -> None:
    def on_event(event: Event) -> None:
        if isinstance(event, WireProgress) and event.direction is Direction.DOWN and not blob_proxy.armed:
            blob_proxy.arm(Latency(seconds=0.001))

    bus.subscribe(on_event)
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert (error, received == blob.payload) == (None, True)
    assert blob_proxy.wait_idle(20)
    (record,) = blob_proxy.records
    assert (record.bytes_down, record.bytes_up) == (len(blob.payload), len(REQUEST))
    assert record.faults == ("latency=1ms:every",)


def test_stop_ends_an_idle_relayed_connection(blob: BlobServer, bus: EventBus) -> None:
    forwarded = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, WireProgress) and event.direction is Direction.UP:
            forwarded.set()

    bus.subscribe(on_event)
    proxy = FaultProxy(("127.0.0.1", blob.port), bus=bus).start()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as client:
        client.sendall(b"no newline yet")  # the blob server waits; the connection sits in a relay
        assert forwarded.wait(20)
        proxy.stop()
        assert client.recv(1) == b""  # the proxy closed it
    (record,) = proxy.records
    assert (record.ending, record.bytes_up) == (ConnectionEnd.STOPPED, len(b"no newline yet"))
