"""The twin's UART as a device node behind a real ser2net, as labgrid's exporter serves it:
esptool's DTR/RTS reset must reach the auto-reset circuit through RFC2217, ser2net and the
pty (carried by twin/usb_uart's shim), or no board on a labgrid host could be flashed."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import esptool
import pytest

from twin.chip import BOOTLOADER_OFFSET, Esp32Chip
from twin.usb_uart import modem_shim
from twin.usb_uart.bridge import MODEM_DIR_ENV

from .conftest import HOOK_LINE, Console, bootloader_header, flash_boot_hook

pytestmark = pytest.mark.skipif(
    shutil.which("ser2net") is None and not Path("/usr/sbin/ser2net").exists(),
    reason="./dev test installs ser2net",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def ser2net(device: str, modem_dir: Path, *, shim: bool = True) -> Iterator[int]:
    """ser2net exactly as labgrid 26's exporter starts it for a RawSerialPort."""
    port = _free_port()
    config = [
        "-Y", f"connection: &con01#  accepter: telnet(rfc2217,mode=server),tcp,{port}",
        "-Y", f"  connector: serialdev(nouucplock=true),{device},115200n81,local",
        "-Y", "  options:", "-Y", "    max-connections: 10",
    ]  # fmt: skip
    env = {**os.environ, MODEM_DIR_ENV: str(modem_dir)}
    if shim:
        env["LD_PRELOAD"] = str(modem_shim())
    binary = shutil.which("ser2net") or "/usr/sbin/ser2net"
    process = subprocess.Popen([binary, "-d", "-n", *config], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and process.poll() is None, "ser2net did not listen"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _read_mac(port: int) -> str:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(["--port", f"rfc2217://127.0.0.1:{port}", "--connect-attempts", "1", "read-mac"])
    except (esptool.FatalError, SystemExit) as error:
        out.write(f"esptool failed: {error}")
    return out.getvalue()


@contextlib.contextmanager
def running_twin(tmp_path: Path) -> Iterator[tuple[str, Console]]:
    """A twin running its app, its UART on a pty whose modem lines go to tmp_path/modem."""
    chip = Esp32Chip(tmp_path, flash_boot_hook)
    console = Console()
    chip.uart.attach(console.sink)
    endpoint = chip.serve_pty(tmp_path / "modem")
    chip.flash.program(BOOTLOADER_OFFSET, bootloader_header())
    chip.supply_changed(3.3)
    console.expect(HOOK_LINE)  # the app runs: only a DTR/RTS reset gets esptool in
    try:
        yield endpoint.path, console
    finally:
        chip.close()


def test_esptool_resets_a_twin_into_its_rom_loader_through_ser2net(tmp_path: Path) -> None:
    with running_twin(tmp_path) as (device, console), ser2net(device, tmp_path / "modem") as port:
        output = _read_mac(port)
        assert "MAC:                24:0a:c4:12:34:56" in output, output
        assert "Hard resetting via RTS pin" in output
        console.expect(HOOK_LINE)  # esptool's hard reset ran the app again


def test_without_the_shim_esptool_cannot_use_the_port(tmp_path: Path) -> None:
    """Why the shim exists: Linux's pty driver has no modem lines (tty_tiocmset: -ENOTTY), so
    ser2net's modem-line calls on the pty fail and esptool never reaches the ROM loader."""
    with running_twin(tmp_path) as (device, _), ser2net(device, tmp_path / "modem", shim=False) as port:
        output = _read_mac(port)
    assert "MAC:" not in output and "esptool failed" in output, output
