"""The twin's TCP sockets hold about lwIP's window of unread data, not Linux's megabytes:
a server pushing an image to a board that is busy writing flash gets ahead by a few KB."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from collections.abc import Iterator
from typing import cast

import pytest

from twin.cpu import Cpu
from twin.net import Net

IMAGE = 128 * 1024


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def unread_after_push(client: socket.socket, listener: socket.socket) -> int:
    """Push an image at a client that reads nothing; bytes waiting in its receive queue."""
    conn, _ = listener.accept()
    with conn:
        conn.setblocking(False)
        sent = 0
        while sent < IMAGE:
            try:
                sent += conn.send(b"\xa5" * 4096)
            except BlockingIOError:
                break
        deadline = time.monotonic() + 5.0
        queued, last = 0, -1
        while queued != last and time.monotonic() < deadline:  # until the queue stops growing
            last = queued
            time.sleep(0.05)
            queued = struct.unpack("i", fcntl.ioctl(client, termios.FIONREAD, b"\0\0\0\0"))[0]
        return queued


def test_the_receive_queue_is_about_the_lwip_window(listener: socket.socket) -> None:
    net = Net(cast(Cpu, None), window=5760)
    host, port = listener.getsockname()[:2]
    with net.connect_tcp(host, port, 5.0) as client:
        queued = unread_after_push(client, listener)
    assert 0 < queued <= 16 * 1024, f"{queued} bytes buffered for a 5760-byte window"

