"""A twin ESP32 served over RFC2217 in-process, and ways to run esptool against it."""

from __future__ import annotations

import contextlib
import io
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import esptool
import pytest

from rig.serialio import enable_fast_rfc2217
from twin.chip import BOOTLOADER_OFFSET, Esp32Chip
from twin.cpu import Cpu, LogLevel
from twin.uart import Rfc2217Server

MAC = bytes.fromhex("240ac4a1b2c3")
# What flash_boot_hook prints, as a regex.
HOOK_LINE = r"I \(\d+\) hook: flash boot reached"
WAIT_S = 20.0
# `python -m esptool` with the rig's fast RFC2217 handler switched on first.
FAST_CLI = "from rig.serialio import enable_fast_rfc2217 as e; e(); import esptool; esptool._main()"


def flash_boot_hook(cpu: Cpu) -> None:
    """Stands in for the 2nd-stage bootloader + app: one line, then idle on the UART."""
    cpu.log(LogLevel.INFO, "hook", f"flash boot reached reset={cpu.reset_reason.name}")
    while True:
        line = cpu.uart_readline(timeout=None)
        if line == b"restart":
            cpu.restart()


def bootloader_header() -> bytes:
    """A minimal 2nd-stage bootloader image header with one 4-byte segment."""
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080764) + b"\xee" + b"\x00" * 15
    return header + struct.pack("<II", 0x3FFF0018, 4) + b"\x00" * 4


@dataclass
class Console:
    """Everything the chip printed on UART0, searchable as it arrives."""

    text: str = ""
    mark: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def sink(self, data: bytes) -> None:
        with self.cond:
            self.text += data.decode("latin-1").replace("\r\n", "\n")
            self.cond.notify_all()

    def expect(self, pattern: str, timeout: float = WAIT_S) -> str:
        regex = re.compile(pattern, re.M)
        with self.cond:
            found = self.cond.wait_for(lambda: regex.search(self.text, self.mark), timeout)
            if not found:
                raise AssertionError(f"{pattern!r} not printed; got:\n{self.text[self.mark:][-2000:]}")
            self.mark = found.end()
            return found.group(0)

    def skip_to_end(self) -> None:
        with self.cond:
            self.mark = len(self.text)


@dataclass
class Board:
    chip: Esp32Chip
    server: Rfc2217Server
    console: Console
    workdir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def esptool(self, *args: str) -> str:
        """esptool in-process over the fast RFC2217 client; raises esptool.FatalError."""
        enable_fast_rfc2217()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(["--port", self.url, *args])
        return out.getvalue()

    def cli(self, *args: str, fast: bool = True) -> subprocess.CompletedProcess[str]:
        """The real esptool command line in a subprocess (stock pyserial unless `fast`)."""
        launcher = ["-c", FAST_CLI] if fast else ["-m", "esptool"]
        return subprocess.run(
            [sys.executable, *launcher, "--port", self.url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.workdir,
        )


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    chip = Esp32Chip(tmp_path / "board", flash_boot_hook, mac=MAC)
    console = Console()
    chip.uart.attach(console.sink)
    server = chip.serve_rfc2217()
    chip.flash.program(BOOTLOADER_OFFSET, bootloader_header())
    chip.supply_changed(3.3)
    yield Board(chip, server, console, tmp_path)
    chip.close()
