"""A farm's labgrid places for the length of one command: reserved, acquired, turned into
boards (serial from the place's NetworkSerialPort, power from its NetworkPowerPort or the
farm file's own driver), and released at the end, also on SIGTERM, SIGHUP or Ctrl-C.

Workers never talk to the coordinator: they get a plain farm file of the acquired boards
(`farm.acquired.yaml` in the run's folder), so one xdist worker per place works as for
local boards, and local boards and places mix in one farm.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from rig.errors import InfraError, InputError, RigError
from rig.farm import LabgridSpec, PlaceSpec, load_farm
from rig.labgrid.coordinator import POLL_S, Coordinator, ExportedResource, PlaceInfo, session

ACQUIRED_FARM = "farm.acquired.yaml"
# How long an acquired place's exporter may take to start ser2net and publish its port.
RESOURCES_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Wanted:
    """One reservation to make: its filter, and the farm-file entry it serves."""

    filters: Mapping[str, str]
    spec: PlaceSpec


def plan(spec: LabgridSpec, places: Mapping[str, PlaceInfo]) -> list[Wanted]:
    """One reservation per place the farm wants: by name for named places and for every
    place a `match` finds, by tags for a `match` with a `limit` (the coordinator picks)."""
    wanted: list[Wanted] = []
    named: set[str] = set()
    for entry in spec.places:
        if entry.place is not None:
            if entry.place not in places:
                known = ", ".join(sorted(places)) or "none"
                raise InputError(
                    f"labgrid coordinator {spec.coordinator} has no place {entry.place!r} (places: {known})"
                )
            candidates = [entry.place]
        else:
            candidates = sorted(n for n, p in places.items() if entry.match.items() <= p.tags.items())
            if not candidates:
                raise InputError(
                    f"labgrid coordinator {spec.coordinator}: no place matches {entry.describe()}"
                )
            if entry.limit is not None:
                count = min(entry.limit, len(candidates))
                wanted += [Wanted(dict(entry.match), entry)] * count
                continue
        for name in candidates:
            if name not in named:
                named.add(name)
                wanted.append(Wanted({"name": name}, entry))
    return wanted


def reserve_and_acquire(
    coordinator: Coordinator, wanted: Sequence[Wanted], timeout_s: float
) -> list[tuple[str, PlaceSpec]]:
    """Reserve every place, acquire each as it is allocated, wait at most `timeout_s` for
    places others hold; on timeout nothing stays acquired or reserved."""
    pending = {coordinator.reserve(w.filters): w for w in wanted}
    acquired: list[tuple[str, PlaceSpec]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            for token, want in list(pending.items()):
                place = coordinator.allocation(token)
                if place is not None:
                    coordinator.acquire(place)
                    acquired.append((place, want.spec))
                    coordinator.cancel(token)
                    del pending[token]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise InfraError(_still_busy(coordinator, list(pending.values()), timeout_s))
            time.sleep(POLL_S)
    except BaseException:
        for token in pending:
            _quietly(lambda t=token: coordinator.cancel(t))
        for place, _ in acquired:
            _quietly(lambda p=place: coordinator.release(p))
        raise
    return acquired


def _still_busy(coordinator: Coordinator, waiting: Sequence[Wanted], timeout_s: float) -> str:
    places = coordinator.places()
    holders = []
    for want in waiting:
        name = want.filters.get("name")
        holder = places[name].acquired if name in places else None
        holders.append(f"{name} (acquired by {holder})" if name and holder else want.spec.describe())
    return f"waited {timeout_s:g} s for labgrid places held by others: {', '.join(holders)}"


def board_section(place: str, spec: PlaceSpec, resources: Sequence[ExportedResource]) -> dict[str, Any]:
    """The farm-file board for an acquired place."""
    by_cls = {r.cls: r for r in resources if r.available}
    serial = by_cls.get("NetworkSerialPort")
    if serial is None or not serial.params.get("port"):
        exported = ", ".join(sorted(r.cls for r in resources)) or "nothing"
        raise InfraError(f"labgrid place {place} has no serial port (NetworkSerialPort); it holds {exported}")
    board: dict[str, Any] = {
        "name": place,
        "serial": f"rfc2217://{serial.params['host']}:{serial.params['port']}",
        "baud": int(serial.params.get("speed") or 115200),
        **spec.board,
    }
    board["tags"] = [*spec.board.get("tags", []), "labgrid"]
    if "power" not in spec.board:
        power = by_cls.get("NetworkPowerPort")
        if power is None:
            raise InfraError(
                f"labgrid place {place} has no power resource (NetworkPowerPort) and the farm file "
                "gives it no power driver"
            )
        board["power"] = {
            "driver": "labgrid-power",
            "model": str(power.params["model"]),
            "host": str(power.params["host"]),
            "index": int(power.params["index"]),
        }
    return board


def _wait_resources(coordinator: Coordinator, place: str) -> list[ExportedResource]:
    """The exporter starts ser2net when the place is acquired; its port follows shortly."""
    deadline = time.monotonic() + RESOURCES_TIMEOUT_S
    while True:
        resources = coordinator.resources(place)
        serial = [r for r in resources if r.cls == "NetworkSerialPort"]
        # No NetworkSerialPort at all: nothing will come; one without its port yet: wait.
        ready = not serial or (serial[0].available and serial[0].params.get("port"))
        if ready or time.monotonic() > deadline:
            return resources
        time.sleep(POLL_S)


def release(address: str, places: Sequence[str]) -> list[str]:
    """Release what this client holds; returns one line per place it could not release."""
    problems: list[str] = []
    if not places:
        return problems
    try:
        with session(address) as coordinator:
            for place in places:
                try:
                    coordinator.release(place)
                except RigError as error:
                    problems.append(str(error))
    except RigError as error:
        problems.append(f"{error}: places {', '.join(places)} stay acquired (labgrid-client release)")
    return problems


@contextmanager
def farm_in_hand(path: Path, workdir: Path) -> Iterator[Path]:
    """`path` itself for a farm of local boards; for one with labgrid places, a farm file of
    its local boards plus the acquired places, which are released when the block ends."""
    farm = load_farm(path)
    if farm.labgrid is None:
        yield path
        return
    spec = farm.labgrid
    held: list[str] = []
    with _signals_end_the_block():
        try:
            with session(spec.coordinator) as coordinator:
                acquired = reserve_and_acquire(
                    coordinator, plan(spec, coordinator.places()), spec.acquire_timeout_s
                )
                held = [place for place, _ in acquired]
                boards = [board_section(p, s, _wait_resources(coordinator, p)) for p, s in acquired]
            workdir.mkdir(parents=True, exist_ok=True)
            resolved = workdir / ACQUIRED_FARM
            resolved.write_text(yaml.safe_dump(_document(path, boards), sort_keys=False), encoding="utf-8")
            load_farm(resolved)
            print(f"labgrid {spec.coordinator}: acquired {', '.join(held)}", file=sys.stderr)
            yield resolved
        finally:
            for problem in release(spec.coordinator, held):
                print(f"rig: warning: {problem}", file=sys.stderr)
            if held:
                print(f"labgrid {spec.coordinator}: released {', '.join(held)}", file=sys.stderr)


def _document(path: Path, boards: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The farm file with its labgrid section replaced by the acquired boards."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document.pop("labgrid")
    document["boards"] = [*document.get("boards", []), *boards]
    mqtt = document.get("mqtt")
    if isinstance(mqtt, dict) and "pki" in mqtt and not Path(mqtt["pki"]).is_absolute():
        mqtt["pki"] = str((path.parent / mqtt["pki"]).resolve())
    document.setdefault("name", path.stem)
    return dict(document)


@contextmanager
def _signals_end_the_block() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command through its `finally` blocks, so places are
    released when a CI job is cancelled (SIGKILL cannot be caught: see the README)."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quietly(action: Any) -> None:
    with contextlib.suppress(RigError):
        action()
