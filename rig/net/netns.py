"""A network path the rig owns, so a "dead link" can be a real one: packets dropped both ways.

A proxy that merely stops forwarding leaves the TCP connection alive: the kernel holding it
still answers the device's keep-alive probes, so an ESP32 (whose esp_http_client read
timeout only makes esp_https_ota_perform() return ESP_ERR_HTTPS_OTA_IN_PROGRESS) waits for
ever. Only unanswered probes make lwIP's tcp_slowtmr() abort the connection after
idle + interval × count. So the fault proxy listens inside a network namespace the rig
creates, joined to the host by a veth pair, and a dead path is an nftables table in that
namespace dropping the proxy port's packets in both directions.

Linux only, as root, with `ip` (iproute2) and `nft` (nftables); `unavailable()` says why not.
Addresses are link-local (169.254.0.0/16) and exist only on this pair. Each pair takes a /30
no interface of this host holds yet, chosen under a host-wide file lock: any number of rig
processes (xdist workers, a rollout's 16 boards) can hold paths at once without sharing one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.errors import InfraError
from rig.farm import NetworkSpec
from rig.net.listener import listen

CLONE_NEWNET = 0x40000000
NFT_TABLE = "otarig_deadpath"
COMMAND_TIMEOUT_S = 10.0
BLOCKS = 254 * 64  # the /30s of 169.254.1.0-169.254.254.255
ALLOCATION_LOCK = Path(tempfile.gettempdir()) / "ota-rig-netns.lock"


def unavailable() -> str | None:
    """Why a namespace path cannot be made here, or None when it can."""
    if not os.path.exists("/proc/self/ns/net"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces and nftables need root"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (iproute2, nftables)"
    return None


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InfraError(f"{' '.join(argv)}: {error}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise InfraError(f"{' '.join(argv)}: {last}")
    return done.stdout


@dataclass(frozen=True)
class _Names:
    netns: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


def _names(block: int, pid: int) -> _Names:
    """The names and addresses of /30 `block` for process `pid` (the namespace carries the pid
    so a later run can tell a path a killed process left behind; an interface name has at
    most 15 characters)."""
    third, fourth = block // 64 + 1, block % 64 * 4
    return _Names(
        f"otarig-{block}-{pid}", f"orh{block}", f"orn{block}", f"169.254.{third}.{fourth + 1}",
        f"169.254.{third}.{fourth + 2}",
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_stale() -> list[str]:
    """Delete the paths of rig processes that are gone (killed before they could close them);
    returns their namespace names. Called under the allocation lock."""
    stale = []
    for line in _run("ip", "netns", "list").splitlines():
        match = re.fullmatch(r"otarig-(\d+)-(\d+)", line.split()[0]) if line.strip() else None
        if match is None or _alive(int(match[2])):
            continue
        with contextlib.suppress(InfraError):
            _run("ip", "netns", "del", match[0])
        with contextlib.suppress(InfraError):
            _run("ip", "link", "del", f"orh{match[1]}")
        stale.append(match[0])
    return stale


@contextlib.contextmanager
def _allocation() -> Iterator[None]:
    """Held while a path picks its /30 and claims it on the host, by every rig process."""
    with ALLOCATION_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_block() -> int:
    """A /30 no interface of this host uses (after reclaiming what dead rig processes left),
    searched from a point that depends on the pid so processes rarely compete."""
    reclaim_stale()
    addresses = set(re.findall(r"inet (169\.254\.\d+\.\d+)/", _run("ip", "-o", "-4", "addr", "show")))
    links = set(re.findall(r"^\d+: ([^:@\s]+)", _run("ip", "-o", "link", "show"), re.MULTILINE))
    start = os.getpid() * 8 % BLOCKS
    for offset in range(BLOCKS):
        names = _names((start + offset) % BLOCKS, os.getpid())
        if names.host_ip not in addresses and names.host_if not in links:
            return (start + offset) % BLOCKS
    raise InfraError("no free 169.254.0.0/16 block left for a fault path (stale otarig-* namespaces?)")


@dataclass(frozen=True)
class FaultPath:
    """The path a farm's boards reach the fault proxy by: a namespace, or why there is none."""

    namespace: NetNamespace | None
    unavailable: str | None = None


class NetNamespace:
    """A namespace with one veth link to the host: services listen inside, boards reach them
    at `address` from the host side, and `kill_port`/`heal` make that path dead or alive."""

    def __init__(self) -> None:
        self._names = _names(0, os.getpid())  # until create() claims a free block
        self._created = False

    @property
    def address(self) -> str:
        """Where the host (and so a twin board) reaches services listening in the namespace."""
        return self._names.ns_ip

    @property
    def name(self) -> str:
        return self._names.netns

    def create(self) -> NetNamespace:
        with _allocation():
            self._names = n = _names(_free_block(), os.getpid())
            _run("ip", "netns", "add", n.netns)
            self._created = True
            try:
                _run("ip", "link", "add", n.host_if, "type", "veth", "peer", "name", n.ns_if)
                _run("ip", "link", "set", n.ns_if, "netns", n.netns)
                _run("ip", "addr", "add", f"{n.host_ip}/30", "dev", n.host_if)
            except InfraError:
                self.close()
                raise
        try:
            _run("ip", "link", "set", n.host_if, "up")
            inside = ("ip", "netns", "exec", n.netns)
            _run(*inside, "ip", "addr", "add", f"{n.ns_ip}/30", "dev", n.ns_if)
            _run(*inside, "ip", "link", "set", n.ns_if, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
        except InfraError:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete the namespace; its end of the veth pair goes with it, and so does the host end."""
        if self._created:
            self._created = False
            with contextlib.suppress(InfraError):
                _run("ip", "netns", "del", self._names.netns)
            with contextlib.suppress(InfraError):
                _run("ip", "link", "del", self._names.host_if)

    def listener(self, host: str, port: int, owner: str) -> socket.socket:
        """A listening socket created inside the namespace (a socket keeps the namespace it was
        made in; the namespace of a thread is its own, so a short-lived thread enters it)."""
        return self.inside(lambda: listen(self.address, port, owner))

    def inside(self, make: Callable[[], socket.socket]) -> socket.socket:
        made: list[socket.socket] = []
        failed: list[BaseException] = []

        def enter_and_make() -> None:
            try:
                with open(f"/var/run/netns/{self._names.netns}", "rb") as handle:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise InfraError(f"setns({self._names.netns}): {os.strerror(ctypes.get_errno())}")
                made.append(make())
            except BaseException as error:  # handed to the caller's thread below
                failed.append(error)

        thread = threading.Thread(target=enter_and_make, name="netns-socket")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        return made[0]

    def kill_port(self, port: int) -> None:
        """A dead path for `port`: nftables drops its packets in and out of the namespace."""
        inside = ("ip", "netns", "exec", self._names.netns, "nft")
        _run(*inside, "add", "table", "inet", NFT_TABLE)
        for chain, hook, match in (("in", "input", "dport"), ("out", "output", "sport")):
            _run(*inside, "add", "chain", "inet", NFT_TABLE, chain,
                 f"{{ type filter hook {hook} priority 0 ; policy accept ; }}")
            _run(*inside, "add", "rule", "inet", NFT_TABLE, chain, "tcp", match, str(port), "drop")

    def heal(self) -> None:
        """Let packets through again (no-op when the path is alive)."""
        with contextlib.suppress(InfraError):
            _run("ip", "netns", "exec", self._names.netns, "nft", "delete", "table", "inet", NFT_TABLE)


@contextlib.contextmanager
def open_fault_path(network: NetworkSpec) -> Iterator[FaultPath]:
    """The farm's fault path for the duration of a block: a fresh namespace when the farm asks
    for one and this host can make it, else None with the reason (dead-path scenarios skip)."""
    if network.fault_path != "namespace":
        yield FaultPath(None, "the farm file sets no network.fault_path: namespace")
        return
    reason = unavailable()
    if reason is not None:
        yield FaultPath(None, reason)
        return
    try:
        namespace = NetNamespace().create()
    except InfraError as error:  # e.g. a container without CAP_NET_ADMIN: the rest still runs
        yield FaultPath(None, f"cannot create a network namespace: {error}")
        return
    try:
        yield FaultPath(namespace)
    finally:
        namespace.close()
