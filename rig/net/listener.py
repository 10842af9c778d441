"""Listening-socket plumbing shared by the OTA server and the fault proxy."""

from __future__ import annotations

import contextlib
import socket
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from rig.errors import InfraError


class Service(ABC):
    """A server running in background threads: `with` starts it and always stops it."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def listen(host: str, port: int, owner: str) -> socket.socket:
    """A bound, listening TCP socket; a taken address is an InfraError naming `owner`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise InfraError(f"{owner} cannot listen on {host}:{port}: {error}") from None
    listener.listen(128)
    return listener


def close_listener(listener: socket.socket) -> None:
    """Shut down before closing: on Linux close() alone does not wake a thread blocked in accept()."""
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def peer_name(peer: tuple[str, int]) -> str:
    """`host:port`, as connection records name the client."""
    return f"{peer[0]}:{peer[1]}"


def free_port(host: str) -> int:
    """A port nothing listens on right now, for a server that binds it itself (mosquitto)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError as error:
            raise InfraError(f"no free port on {host}: {error}") from None
        return int(probe.getsockname()[1])
