"""Progress records shared by the OTA server, the fault proxy and whoever triggers on them.

The trigger engine fires a power cut "at 40 % of the download" from these, so a
publish is a plain synchronous call into each subscriber: no queue, no thread hop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Direction(Enum):
    """Which way bytes travel through the proxy."""

    DOWN = "server->client"
    UP = "client->server"


@dataclass(frozen=True)
class BodyProgress:
    """The server has handed `body_bytes_sent` of a response body to the kernel."""

    connection_id: int
    path: str
    body_bytes_sent: int
    total: int


@dataclass(frozen=True)
class BodyCheckpoint:
    """Where a body write lands on the wire; published *before* its ciphertext is sent.

    `peer_port`/`server_port` name the TCP connection as the server sees it (the proxy
    matches its upstream socket on them). The write carries image bytes
    [image_start, image_end) and its ciphertext ends at server->client wire byte `wire_end`
    (counted from the first byte of the TLS handshake).
    """

    connection_id: int
    peer_port: int
    server_port: int
    path: str
    image_start: int
    image_end: int
    image_size: int
    wire_end: int


@dataclass(frozen=True)
class WireProgress:
    """The proxy has forwarded `total_bytes` so far in `direction` on one connection."""

    connection_id: int
    direction: Direction
    total_bytes: int


Event = BodyProgress | BodyCheckpoint | WireProgress
Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe; subscribers run in the publisher's thread and must be cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not callback)

    def publish(self, event: Event) -> None:
        # The tuple is replaced, never mutated, so reading it needs no lock.
        for callback in self._subscribers:
            callback(event)
