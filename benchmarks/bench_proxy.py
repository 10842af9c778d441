"""32 concurrent TLS downloads of a 1 MiB image, direct vs through the fault proxy.

Prints `proxy_throughput_worst_round: measured=<ratio> target=0.8 ratio=<0.8/measured>`
(like every benchmark here, a ratio above 1 misses the target), where measured is the
lowest proxied / direct aggregate throughput of any round pair.

Server and proxy share one process, as in a rig run; the clients run in another. Both
sides do the same work (a fresh TLS handshake per download, same server, same image).
Method, so that a noisy neighbour on a shared machine does not decide the result:
- one unmeasured warm-up round per side (thread start-up, first-use costs);
- each client downloads DOWNLOADS times per round, so a round lasts long enough (about
  half a second) that scheduling hiccups and pool start-up are a small part of it; the
  clock starts once all client threads are ready;
- ROUNDS rounds per side, interleaved in ABBA order (neither side always goes first);
  each pair of adjacent rounds gives one proxied/direct ratio, and the spread of those
  ratios is printed. The figure is the worst pair: the proxy must keep up in every round.
"""

from __future__ import annotations

import random
import socket
import ssl
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from rig.net.bus import EventBus
from rig.net.certs import ensure_bundle
from rig.net.ota_server import OtaServer
from rig.net.proxy import FaultProxy

CLIENTS = 32
IMAGE_SIZE = 1024 * 1024
DOWNLOADS = 4
ROUNDS = 10
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
    """CLIENTS clients, DOWNLOADS downloads each; aggregate bytes/s. Runs in the client process."""
    context = ssl.create_default_context(cafile=ca_pem)
    ready = threading.Barrier(CLIENTS + 1)

    def client() -> int:
        ready.wait()
        return sum(_download(port, context) for _ in range(DOWNLOADS))

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client) for _ in range(CLIENTS)]
        ready.wait()
        started = time.perf_counter()
        sizes = [future.result() for future in futures]
        elapsed = time.perf_counter() - started
    if min(sizes) < DOWNLOADS * IMAGE_SIZE:
        raise RuntimeError("a download came back short")
    return sum(sizes) / elapsed


def main() -> None:
    image = random.Random(1).randbytes(IMAGE_SIZE)
    bus = EventBus()
    ratios: list[float] = []
    best = {"direct": 0.0, "proxied": 0.0}
    with tempfile.TemporaryDirectory() as certs:
        bundle = ensure_bundle(Path(certs))
        # The clients play the boards: their own process, as boards are their own machines.
        server = OtaServer(bundle, {"fw.bin": image}, bus=bus).start()
        proxy = FaultProxy(("127.0.0.1", server.port), bus=bus)
        with ProcessPoolExecutor(1) as clients, server, proxy:
            sides = (("direct", server.port), ("proxied", proxy.port))
            for _, port in sides:
                clients.submit(_round, port, bundle.ca_pem).result()  # warm-up
            for number in range(ROUNDS):
                rates = {}
                for name, port in sides if number % 2 == 0 else sides[::-1]:
                    rates[name] = clients.submit(_round, port, bundle.ca_pem).result()
                    best[name] = max(best[name], rates[name])
                ratios.append(rates["proxied"] / rates["direct"])
    ratios.sort()
    spread = f"min {ratios[0]:.2f}, median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}"
    print(f"best round: direct {best['direct'] / 1e6:.1f} MB/s, proxied {best['proxied'] / 1e6:.1f} MB/s")
    print(f"proxied/direct per round ({ROUNDS} ABBA pairs): {spread}")
    # The worst round is the figure: a proxy that is sometimes slow slows some night's suite.
    worst = ratios[0]
    print(f"proxy_throughput_worst_round: measured={worst:.3f} target={TARGET} ratio={TARGET / worst:.3f}")


if __name__ == "__main__":
    main()
