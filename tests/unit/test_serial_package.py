"""The `serial` package both pyserial and pyserial-labgrid install: ./dev makes
pyserial-labgrid's win, and the rig's RFC2217 client must not depend on which did."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import serial
from serial import rfc2217

from rig.serialio.fast_rfc2217 import _AckedSubnegotiation


def test_both_distributions_are_installed_and_pyserial_labgrid_owns_the_files() -> None:
    assert metadata.version("pyserial") == "3.5"  # esptool and pytest-embedded require it
    assert metadata.version("pyserial-labgrid") == "3.5.0.2"  # labgrid requires it
    assert serial.__version__ == "3.5.0.2"
    files = metadata.distribution("pyserial-labgrid").files or []
    owned = {Path(str(f)).as_posix() for f in files}
    assert "serial/rfc2217.py" in owned


class _Wire:
    """The RFC2217 connection a subnegotiation writes to."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.logger = None

    def rfc2217_send_subnegotiation(self, option: bytes, value: bytes) -> None:
        self.sent.append(option + value)


def test_an_unchanged_setting_is_sent_again_and_answered() -> None:
    """pyserial-labgrid's `set` skips a value equal to the last one; the rig's client waits
    for an answer to every setting it sends, so it must really send it."""
    wire = _Wire()
    original = rfc2217.TelnetSubnegotiation(
        wire, "datasize", rfc2217.SET_DATASIZE, rfc2217.SERVER_SET_DATASIZE
    )
    option = _AckedSubnegotiation(original)
    for _ in range(2):
        option.set(bytes([8]))
        option.check_answer(bytes([8]))
        option.wait(0.1)
    assert wire.sent == [rfc2217.SET_DATASIZE + bytes([8])] * 2
