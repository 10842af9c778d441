"""32 concurrent TLS downloads of a 1 MiB image, direct vs through the fault proxy.

Prints `proxy_throughput: measured=<ratio> target=0.8 ratio=<0.8/measured>` (like every
benchmark here, a ratio above 1 misses the target), where
measured = proxied aggregate throughput / direct aggregate throughput (best of several
interleaved rounds each, so a noisy neighbour on a shared machine hurts both sides alike).
Server and proxy share one process, as in a rig run; the clients run in another.
"""

from __future__ import annotations

import random
import socket
import ssl
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from rig.net.certs import ensure_bundle
from rig.net.events import EventBus
from rig.net.fault_proxy import FaultProxy
from rig.net.ota_server import OtaServer

CLIENTS = 32
IMAGE_SIZE = 1024 * 1024
ROUNDS = 8
TARGET = 0.8


def _download(port: int, context: ssl.SSLContext) -> int:
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET /fw.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = 0
        while chunk := sock.recv(262144):
            received += len(chunk)
    return received


def _round(port: int, ca_pem: Path) -> float:
    """One round of CLIENTS parallel downloads; aggregate bytes/s. Runs in the client process."""
    context = ssl.create_default_context(cafile=ca_pem)
    with ThreadPoolExecutor(CLIENTS) as pool:
        started = time.perf_counter()
        sizes = list(pool.map(lambda _: _download(port, context), range(CLIENTS)))
        elapsed = time.perf_counter() - started
    if min(sizes) < IMAGE_SIZE:
        raise RuntimeError("a download came back short")
    return sum(sizes) / elapsed


def main() -> None:
    image = random.Random(1).randbytes(IMAGE_SIZE)
    bus = EventBus()
    results: dict[str, float] = {"direct": 0.0, "proxied": 0.0}
    with tempfile.TemporaryDirectory() as certs:
        bundle = ensure_bundle(Path(certs))
        # The clients play the boards: their own process, as boards are their own machines.
        server = OtaServer(bundle, {"fw.bin": image}, bus=bus).start()
        proxy = FaultProxy(("127.0.0.1", server.port), bus=bus)
        with ProcessPoolExecutor(1) as clients, server, proxy:
            for _ in range(ROUNDS):  # interleaved, best of each: load spikes hit both sides
                for name, port in (("direct", server.port), ("proxied", proxy.port)):
                    rate = clients.submit(_round, port, bundle.ca_pem).result()
                    results[name] = max(results[name], rate)
    measured = results["proxied"] / results["direct"]
    print(f"direct: {results['direct'] / 1e6:.1f} MB/s, proxied: {results['proxied'] / 1e6:.1f} MB/s")
    print(f"proxy_throughput: measured={measured:.3f} target={TARGET} ratio={TARGET / measured:.3f}")


if __name__ == "__main__":
    main()
