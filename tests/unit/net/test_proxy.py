"""The fault proxy: exact cuts, stalls, throttling, refusal, once/every and byte accounting."""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time

import pytest

from rig.errors import InputError
from rig.net.bus import Direction, Event, EventBus, WireProgress
from rig.net.certs import CertBundle
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
)
from rig.net.ota_server import OtaServer, ServeMode
from rig.net.proxy import FaultProxy
from rig.net.relay import ConnectionEnd, ConnectionRecord

from .support import BlobServer, raw_download, tls_download

REQUEST = b"get\n"


def only_record(proxy: FaultProxy) -> list[ConnectionRecord]:
    """The proxy's records once every connection has closed."""
    assert proxy.wait_idle(20)
    return proxy.records


@pytest.mark.parametrize(
    ("fault", "described"),
    [
        (Cut(at=Position(Counting.WIRE, 400000), teardown=Teardown.RST), "cut@bytes=400000:rst:once"),
        (Cut(at=Position(Counting.FRACTION, 0.4)), "cut@fraction=0.4:fin:once"),
        (Cut(at=Position(Counting.IMAGE, 1000), apply=Apply.EVERY), "cut@image=1000:fin:every"),
        (Stall(seconds=20, at=Position(Counting.WIRE, 100000)), "stall@bytes=100000:20s:resume:once"),
        (Stall(seconds=0.5, then=AfterStall.FIN, apply=Apply.EVERY), "stall:500ms:fin:every"),
        (Throttle(bytes_per_second=200000), "throttle=200000:every"),
        (Latency(seconds=0.05), "latency=50ms:every"),
        (Refuse(seconds=5, mode=RefuseMode.CLOSED), "refuse=5s:closed"),
    ],
)
def test_connection_records_name_the_faults_that_acted(fault: Fault, described: str) -> None:
    assert fault.describe() == described


@pytest.mark.parametrize(
    ("counting", "value"),
    [(Counting.FRACTION, 1.5), (Counting.FRACTION, 0), (Counting.WIRE, -1), (Counting.IMAGE, 0)],
)
def test_impossible_positions_are_input_errors(counting: Counting, value: float) -> None:
    with pytest.raises(InputError):
        Position(counting, value)


def wire_cut(at: int, teardown: Teardown = Teardown.FIN, apply: Apply = Apply.ONCE) -> Cut:
    return Cut(at=Position(Counting.WIRE, at), teardown=teardown, apply=apply)


def test_unfaulted_bytes_are_counted_exactly(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert error is None
    assert received == blob.payload
    (record,) = only_record(blob_proxy)
    assert (record.bytes_down, record.bytes_up) == (len(blob.payload), len(REQUEST))
    assert record.ending is ConnectionEnd.CLOSED


def test_fin_cut_is_exact_to_the_byte(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(wire_cut(400000))
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert error is None  # a clean EOF
    assert received == blob.payload[:400000]
    (record,) = only_record(blob_proxy)
    assert (record.bytes_down, record.fault_at, record.ending) == (400000, 400000, ConnectionEnd.CUT_FIN)
    assert record.faults == ("cut@bytes=400000:fin:once",)


def test_rst_cut_resets_the_client_after_exactly_n_bytes(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(wire_cut(400000, Teardown.RST))
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert isinstance(error, ConnectionResetError)
    assert received == blob.payload[:400000]
    (record,) = only_record(blob_proxy)
    assert (record.bytes_down, record.ending) == (400000, ConnectionEnd.CUT_RST)


def test_once_cuts_only_the_first_connection(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(wire_cut(1000))
    first, _ = raw_download(blob_proxy.port, REQUEST)
    second, _ = raw_download(blob_proxy.port, REQUEST)
    assert (len(first), len(second)) == (1000, len(blob.payload))


def test_every_cuts_each_connection(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(wire_cut(1000, apply=Apply.EVERY))
    lengths = [len(raw_download(blob_proxy.port, REQUEST)[0]) for _ in range(3)]
    assert lengths == [1000, 1000, 1000]
    blob_proxy.disarm()
    assert len(raw_download(blob_proxy.port, REQUEST)[0]) == len(blob.payload)


def test_stall_then_resume_loses_nothing(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Stall(seconds=0.3, at=Position(Counting.WIRE, 100000)))
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert error is None
    assert received == blob.payload
    (record,) = only_record(blob_proxy)
    assert (record.fault_at, record.bytes_down) == (100000, len(blob.payload))


def test_stall_then_close(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Stall(seconds=0.2, at=Position(Counting.WIRE, 100000), then=AfterStall.FIN))
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert error is None
    assert received == blob.payload[:100000]
    (record,) = only_record(blob_proxy)
    assert record.ending is ConnectionEnd.CUT_FIN


def test_disarm_ends_a_running_stall(blob: BlobServer, blob_proxy: FaultProxy, bus: EventBus) -> None:
    stalled = threading.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, WireProgress) and (event.direction, event.total_bytes) == (Direction.DOWN, 5000):
            stalled.set()

    bus.subscribe(on_event)
    blob_proxy.arm(Stall(seconds=60, at=Position(Counting.WIRE, 5000)))
    result: list[bytes] = []
    client = threading.Thread(target=lambda: result.append(raw_download(blob_proxy.port, REQUEST)[0]))
    client.start()
    assert stalled.wait(20)
    blob_proxy.disarm()
    client.join(20)
    assert result == [blob.payload]


def test_throttle_slows_the_transfer(image: bytes, bus: EventBus) -> None:
    payload = image[: 128 * 1024]
    upstream = BlobServer(payload)
    try:
        with FaultProxy(("127.0.0.1", upstream.port), bus=bus) as proxy:
            proxy.arm(Throttle(bytes_per_second=262144))
            started = time.monotonic()
            received, _ = raw_download(proxy.port, REQUEST)
            elapsed = time.monotonic() - started
            (record,) = only_record(proxy)
    finally:
        upstream.close()
    assert received == payload
    assert record.faults == ("throttle=262144:every",)
    # a rate limit can only make it slower; the bound leaves room for the first burst
    assert elapsed >= 0.4


def test_latency_keeps_the_data_intact(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Latency(seconds=0.02))
    received, _ = raw_download(blob_proxy.port, REQUEST)
    assert received == blob.payload


def test_refuse_resets_then_recovers_on_disarm(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Refuse(seconds=30))
    received, error = raw_download(blob_proxy.port, REQUEST)
    assert received == b""
    assert error is None or isinstance(error, ConnectionResetError | BrokenPipeError)
    blob_proxy.disarm()
    assert raw_download(blob_proxy.port, REQUEST)[0] == blob.payload
    endings = [record.ending for record in only_record(blob_proxy)]
    assert endings == [ConnectionEnd.REFUSED, ConnectionEnd.CLOSED]


def test_refuse_ends_by_itself(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Refuse(seconds=0.2))
    attempts = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        attempts += 1
        if raw_download(blob_proxy.port, REQUEST)[0] == blob.payload:
            break
    else:
        pytest.fail("the proxy never recovered")
    assert attempts > 1


def test_refuse_closed_stops_listening(blob: BlobServer, blob_proxy: FaultProxy) -> None:
    blob_proxy.arm(Refuse(seconds=30, mode=RefuseMode.CLOSED))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", blob_proxy.port), timeout=5).close()
    blob_proxy.disarm()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            assert raw_download(blob_proxy.port, REQUEST)[0] == blob.payload
            return
        except ConnectionRefusedError:
            time.sleep(0.02)
    pytest.fail("the proxy never listened again")


def test_fraction_cut_lands_at_the_end_of_the_record_holding_the_byte(
    server: OtaServer, tls_proxy: FaultProxy, bundle: CertBundle, image: bytes
) -> None:
    record_size = 4096
    server.mode = ServeMode(record_size=record_size)
    tls_proxy.arm(Cut(at=Position(Counting.FRACTION, 0.4)))
    head, body, error = tls_download(tls_proxy.port, "/fw.bin", bundle.client_context())
    assert error is None
    assert head.startswith(b"HTTP/1.1 200")
    wanted = math.floor(0.4 * len(image))
    assert len(body) == math.ceil(wanted / record_size) * record_size
    assert body == image[: len(body)]
    (record,) = only_record(tls_proxy)
    assert record.ending is ConnectionEnd.CUT_FIN
    assert record.fault_at == record.bytes_down


def test_image_cut_counts_absolute_image_offsets_in_a_range(
    server: OtaServer, tls_proxy: FaultProxy, bundle: CertBundle, image: bytes
) -> None:
    tls_proxy.arm(Cut(at=Position(Counting.IMAGE, 200000)))
    context = bundle.client_context()
    raw = socket.create_connection(("127.0.0.1", tls_proxy.port), timeout=20)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET /fw.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=150000-\r\nConnection: close\r\n\r\n")
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    body = bytes(received).partition(b"\r\n\r\n")[2]
    assert len(body) == 16384 * 4  # records of 16 KiB from 150000: the 4th holds byte 199999
    assert body == image[150000 : 150000 + len(body)]


def test_image_cut_with_rst_reaches_the_tls_client_as_a_reset(
    server: OtaServer, tls_proxy: FaultProxy, bundle: CertBundle
) -> None:
    tls_proxy.arm(Cut(at=Position(Counting.IMAGE, 100000), teardown=Teardown.RST))
    _, body, error = tls_download(tls_proxy.port, "/fw.bin", bundle.client_context(), ragged_eof_ok=False)
    assert isinstance(error, ssl.SSLEOFError)  # Python's ssl reports the reset as an EOF violation
    assert len(body) == 16384 * 7
    (record,) = only_record(tls_proxy)
    assert record.ending is ConnectionEnd.CUT_RST


def test_full_tls_download_through_the_proxy(
    server: OtaServer, tls_proxy: FaultProxy, bundle: CertBundle, image: bytes
) -> None:
    _, body, error = tls_download(tls_proxy.port, "/fw.bin", bundle.client_context())
    assert (error, body) == (None, image)
    (record,) = only_record(tls_proxy)
    (served,) = server.records
    assert record.upstream_port == int(served.peer.rsplit(":", 1)[1])
    assert record.bytes_down > len(image)  # the image plus TLS framing and the handshake
