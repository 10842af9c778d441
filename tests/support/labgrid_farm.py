"""A labgrid farm on loopback: one coordinator and one virtual lab per "host", each lab
running its own `labgrid-exporter` (twin/labgrid_host.py), plus the farm file that names
their places. What the multi-host tests run the rig against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig.lab_cli import running_lab
from rig.labgrid.coordinator import session
from twin.labconfig import LabgridHost
from twin.labgrid_host import EXPORTER_PID, ExporterHost, labgrid_tool

LAB_FIRMWARE = {"rollback": True, "anti_rollback": True, "signing": "rsa3072"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LabgridFarm:
    coordinator: str
    labs: dict[str, Path]
    boards_per_host: int
    relaunched: list[ExporterHost] = field(default_factory=list)

    def farm_document(self, **settings: Any) -> dict[str, Any]:
        """A farm file with every host's places, matched by their `host` tag."""
        labgrid: dict[str, Any] = {"coordinator": self.coordinator, "acquire_timeout": 10}
        labgrid |= settings.pop("labgrid", {})
        labgrid.setdefault(
            "places",
            [{"match": {"host": host}, "firmware": LAB_FIRMWARE, "tags": ["virtual"]} for host in self.labs],
        )
        return {
            "name": "loopback-labgrid",
            "virtual": True,
            "network": {"bind": "127.0.0.1", "board_facing_address": "127.0.0.1", "fault_path": "namespace"},
            "labgrid": labgrid,
            **settings,
        }

    def write_farm(self, path: Path, **settings: Any) -> Path:
        path.write_text(yaml.safe_dump(self.farm_document(**settings), sort_keys=False), encoding="utf-8")
        return path

    def kill_exporter(self, host: str) -> None:
        """The host's exporter and its ser2nets die at once, as when the host loses power."""
        pid = int((self.labs[host] / EXPORTER_PID).read_text(encoding="utf-8"))
        os.killpg(pid, signal.SIGKILL)

    def relaunch_exporter(self, host: str) -> None:
        """What an admin does once the host is back: start its exporter again."""
        exporter = ExporterHost(self.labs[host], LabgridHost(self.coordinator, host))
        deadline = time.monotonic() + 15
        while True:  # the coordinator forgets the dead exporter when its stream breaks
            try:
                exporter.launch([f"b{i + 1}" for i in range(self.boards_per_host)])
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.relaunched.append(exporter)

    def acquired(self) -> dict[str, str]:
        """Places someone holds, with who."""
        with session(self.coordinator) as coordinator:
            return {name: p.acquired for name, p in coordinator.places().items() if p.acquired}

    def places(self) -> list[str]:
        with session(self.coordinator) as coordinator:
            return sorted(coordinator.places())


@contextmanager
def labgrid_farm(
    tmp: Path, hosts: Sequence[str] = ("host-a", "host-b"), boards: int = 2
) -> Iterator[LabgridFarm]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"}
    with ExitStack() as stack:
        log = stack.enter_context((tmp / "coordinator.log").open("ab"))
        coordinator = subprocess.Popen(
            [labgrid_tool("labgrid-coordinator"), "-l", address], cwd=tmp, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        stack.callback(_stop, coordinator)
        _wait_listening(port, coordinator)
        labs: dict[str, Path] = {}
        for host in hosts:
            config = tmp / f"{host}.yaml"
            config.write_text(
                yaml.safe_dump({"throwaway": True, "labgrid": {"coordinator": address, "exporter": host}}),
                encoding="utf-8",
            )
            labs[host] = tmp / host
            stack.enter_context(running_lab(labs[host], boards, config))
        farm = LabgridFarm(address, labs, boards)
        try:
            yield farm
        finally:
            for exporter in farm.relaunched:
                exporter.stop()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"labgrid-coordinator exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("labgrid-coordinator did not start listening")


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def rig(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
