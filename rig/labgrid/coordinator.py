"""A short-lived client session with a labgrid coordinator, through labgrid's own client
(`labgrid.remote.client.ClientSession` and its gRPC stub, labgrid 26).

Sessions are opened for one step (reserve and acquire; release) and closed again: an
acquisition belongs to the client's `host/user` name, not to a session, so nothing is
held open across a night's run. A coordinator that does not answer is InfraError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rig.errors import InfraError, InputError

# gRPC's fork handlers only warn when the rig later forks pytest or esptool; labgrid's own
# tests run with them off too. Read when grpc is first imported, which happens below.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0
POLL_S = 0.25


@dataclass(frozen=True)
class PlaceInfo:
    """A place as the coordinator reports it."""

    name: str
    tags: Mapping[str, str]
    acquired: str | None


@dataclass(frozen=True)
class ExportedResource:
    """One resource an acquired place holds: its labgrid class and parameters."""

    name: str
    cls: str
    params: Mapping[str, Any]
    available: bool


class Coordinator:
    """One session; use `session(address)`."""

    def __init__(self, address: str, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.address = address
        self._client = client
        self._loop = loop

    @property
    def me(self) -> str:
        """Who acquisitions are recorded as (labgrid's `host/user`, LG_HOSTNAME/LG_USERNAME)."""
        return f"{self._client.gethostname()}/{self._client.getuser()}"

    def places(self) -> dict[str, PlaceInfo]:
        self._sync()
        return {
            name: PlaceInfo(name, dict(place.tags), place.acquired or None)
            for name, place in self._client.places.items()
        }

    def reserve(self, filters: Mapping[str, str]) -> str:
        """A reservation for one place whose tags (or `name`) match; returns its token."""
        pb2 = _pb2()
        request = pb2.CreateReservationRequest(
            filters={"main": pb2.Reservation.Filter(filter=dict(filters))}, prio=0.0
        )
        response = self._call("reserve", self._client.stub.CreateReservation(request))
        return str(response.reservation.token)

    def allocation(self, token: str) -> str | None:
        """The place a reservation got, or None while it waits (polling keeps it alive)."""
        request = _pb2().PollReservationRequest(token=token)
        response = self._call("poll reservation", self._client.stub.PollReservation(request))
        allocations = dict(response.reservation.allocations)
        return allocations.get("main") or None

    def cancel(self, token: str) -> None:
        request = _pb2().CancelReservationRequest(token=token)
        self._call("cancel reservation", self._client.stub.CancelReservation(request))

    def acquire(self, place: str) -> None:
        request = _pb2().AcquirePlaceRequest(placename=place)
        self._call(f"acquire {place}", self._client.stub.AcquirePlace(request))

    def release(self, place: str) -> None:
        request = _pb2().ReleasePlaceRequest(placename=place, fromuser=self.me)
        self._call(f"release {place}", self._client.stub.ReleasePlace(request))

    def resources(self, place: str) -> list[ExportedResource]:
        """What an acquired place holds now; a vanished exporter's resources are missing."""
        self._sync()
        info = self._client.places.get(place)
        if info is None:
            return []
        found = []
        for path in info.acquired_resources:
            exporter, group, _cls, name = path
            entry = self._client.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is not None:
                found.append(ExportedResource(f"{exporter}/{group}/{name}", entry.cls, dict(entry.params),
                                              bool(entry.avail)))  # fmt: skip
        return found

    def _sync(self) -> None:
        if not self._run(self._client.sync_with_coordinator(), "sync"):
            raise InfraError(f"labgrid coordinator {self.address} closed the session")

    def _call(self, what: str, call: Any) -> Any:
        import grpc

        try:
            result = self._run(call, what)
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(self.address, what, error) from None
        self._sync()
        return result

    def _run(self, awaitable: Any, what: str) -> Any:
        try:
            return self._loop.run_until_complete(asyncio.wait_for(awaitable, CALL_TIMEOUT_S))
        except TimeoutError:
            raise InfraError(
                f"labgrid coordinator {self.address}: no answer to {what} in {CALL_TIMEOUT_S:g} s"
            ) from None


def _rpc_error(address: str, what: str, error: Any) -> InfraError | InputError:
    import grpc

    text = f"labgrid coordinator {address}: {what}: {error.details()}"
    if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return InputError(text)
    return InfraError(text)


def _pb2() -> Any:
    from labgrid.remote.generated import labgrid_coordinator_pb2

    return labgrid_coordinator_pb2


@contextmanager
def session(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Coordinator]:
    """A connected session, closed on exit; an unreachable coordinator is one InfraError line."""
    from labgrid.remote.client import ClientSession

    async def new_client() -> Any:
        return ClientSession(address, loop)  # its gRPC channel binds to the running loop

    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(new_client())
    started = time.monotonic()
    quiet = _LabgridClientLog()
    logging.getLogger().addFilter(quiet)
    try:
        try:
            loop.run_until_complete(asyncio.wait_for(client.start(), timeout_s))
        except (TimeoutError, Exception) as error:
            waited = time.monotonic() - started
            why = "no answer" if isinstance(error, TimeoutError) else str(error) or type(error).__name__
            why = why.removeprefix("Error: ").rstrip(".")
            raise InfraError(
                f"labgrid coordinator {address} unreachable: {why} (after {waited:.1f} s)"
            ) from None
        yield Coordinator(address, client, loop)
    finally:
        for step in (client.stop(), client.close()):
            # Closing a session that never opened, or one the coordinator dropped, may fail.
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(step, 5))
        loop.close()
        logging.getLogger().removeFilter(quiet)


class _LabgridClientLog(logging.Filter):
    """labgrid's client logs a lost stream with a traceback on the root logger; the rig says
    what happened in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "labgrid" not in record.pathname
