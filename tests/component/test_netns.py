"""Fault paths held at once by many rig processes (xdist workers, a rollout's boards) each get a
/30 of their own: no two share an address, and every one reaches its own listener."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys

import pytest

from rig.net.netns import NetNamespace, reclaim_stale, unavailable

HOLD = """
import sys
from rig.net.netns import NetNamespace
paths = [NetNamespace().create() for _ in range(12)]
print(" ".join(p.address for p in paths), flush=True)
sys.stdin.read()
for p in paths:
    p.close()
"""


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


def test_paths_of_concurrent_processes_never_share_an_address() -> None:
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    holders = [subprocess.Popen([sys.executable, "-c", HOLD], **pipes) for _ in range(3)]  # type: ignore[call-overload]
    try:
        with contextlib.ExitStack() as stack:
            ours = [stack.enter_context(contextlib.closing(NetNamespace().create())) for _ in range(12)]
            theirs = [h.stdout.readline().split() for h in holders if h.stdout is not None]
            addresses = [p.address for p in ours] + [a for held in theirs for a in held]
            assert len(addresses) == 48 and len(set(addresses)) == 48
            for path in ours:  # each reaches a listener made inside its own namespace
                listener = path.listener(path.address, 0, "test")
                with listener, socket.create_connection((path.address, listener.getsockname()[1]), timeout=5):
                    pass
    finally:
        for holder in holders:
            holder.communicate("", timeout=60)


def test_paths_a_killed_run_left_behind_are_reclaimed_and_live_ones_kept() -> None:
    killed = subprocess.Popen(
        [sys.executable, "-c", "from rig.net.netns import NetNamespace\n"
         "p = NetNamespace().create(); print(p.name, flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert killed.stdout is not None
    left_behind = killed.stdout.readline().strip()
    killed.kill()  # SIGKILL: no chance to close its path
    killed.wait(timeout=10)
    with contextlib.closing(NetNamespace().create()) as live:
        assert left_behind not in _namespaces()  # creating a path reclaimed it
        assert reclaim_stale() == []
        assert live.name in _namespaces()


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}
