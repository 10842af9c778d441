"""Power states, reset reasons, ROM banners and loader robustness of the twin chip."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from pathlib import Path

import esptool
import serial

from rig.serialio import enable_fast_rfc2217
from twin import slip
from twin.chip import Esp32Chip
from twin.cpu import Cpu, LogLevel

from .conftest import HOOK_LINE, Board, Console, bootloader_header, flash_boot_hook

FLASH_BOOT = r"^rst:{} \({}\),boot:0x13 \(SPI_FAST_FLASH_BOOT\)$"


def test_power_on_prints_the_rom_banner_and_runs_the_hook(board: Board) -> None:
    board.console.expect("^ets Jul 29 2019 12:21:46$")
    board.console.expect(FLASH_BOOT.format("0x1", "POWERON_RESET"))
    board.console.expect(HOOK_LINE)
    assert board.chip.current_draw_amps() > 0
    board.chip.supply_changed(0.0)
    assert board.chip.current_draw_amps() == 0.0


def test_brownout_holds_the_chip_then_reboots_with_brownout_reason(board: Board) -> None:
    board.console.expect(HOOK_LINE)
    board.chip.supply_changed(2.2)
    held = board.chip.current_draw_amps()
    board.chip.supply_changed(3.3)
    board.console.expect(FLASH_BOOT.format("0xf", "RTCWDT_BROWN_OUT_RESET"))
    board.console.expect(rf"{HOOK_LINE} reset=RTCWDT_BROWN_OUT_RESET")
    assert 0 < held < board.chip.current_draw_amps()


def test_power_cycle_from_off_is_a_power_on_reset(board: Board) -> None:
    board.console.expect(HOOK_LINE)
    board.chip.supply_changed(1.0)
    board.chip.supply_changed(3.3)
    board.console.expect(FLASH_BOOT.format("0x1", "POWERON_RESET"))


def test_software_restart_reports_sw_cpu_reset(board: Board) -> None:
    board.console.expect(HOOK_LINE)
    board.chip.uart.feed(b"restart\r\n")
    board.console.expect(FLASH_BOOT.format("0xc", "SW_CPU_RESET"))
    board.console.expect(rf"{HOOK_LINE} reset=SW_CPU_RESET")


def test_blank_flash_complains_then_the_rtc_watchdog_resets(tmp_path: Path) -> None:
    chip = Esp32Chip(tmp_path, flash_boot_hook)
    console = Console()
    chip.uart.attach(console.sink)
    chip.supply_changed(3.3)
    try:
        console.expect("^invalid header: 0xffffffff$")
        console.expect(FLASH_BOOT.format("0x10", "RTCWDT_RTC_RESET"))
    finally:
        chip.close()


def test_power_loss_wakes_code_blocked_in_sleep(tmp_path: Path) -> None:
    def sleeper(cpu: Cpu) -> None:
        cpu.log(LogLevel.INFO, "sleeper", f"up after {cpu.reset_reason.name}")
        cpu.sleep(3600)

    chip = Esp32Chip(tmp_path, sleeper)
    chip.flash.program(0x1000, bootloader_header())
    console = Console()
    chip.uart.attach(console.sink)
    try:
        chip.supply_changed(3.3)
        console.expect("sleeper: up after POWERON_RESET")
        chip.supply_changed(2.0)
        chip.supply_changed(3.3)
        # Only possible if the hour-long sleep was cut short by the brownout.
        console.expect("sleeper: up after RTCWDT_BROWN_OUT_RESET")
    finally:
        chip.close()


def _download_mode_chip(tmp_path: Path) -> tuple[Esp32Chip, Console]:
    chip = Esp32Chip(tmp_path, flash_boot_hook)
    console = Console()
    chip.uart.attach(console.sink)
    chip.lines.set_lines(dtr=True, rts=False)  # IO0 held low while powering up
    chip.supply_changed(3.3)
    console.expect("waiting for download")
    chip.lines.release()
    return chip, console


def test_garbage_in_download_mode_does_not_crash_the_loader(tmp_path: Path) -> None:
    chip, _ = _download_mode_chip(tmp_path)
    server = chip.serve_rfc2217()
    enable_fast_rfc2217()
    try:
        # Random bytes, a truncated request, a runt frame and a dangling escape.
        noise = os.urandom(4096) + b"\xc0\x00\x99\x00\x00\xc0" + slip.encode(b"\x00\x08\xff\xff") + b"\xdb"
        with serial.serial_for_url(server.url, timeout=0.5) as port:
            port.write(noise)
            port.read(4096)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(["--port", server.url, "--before", "no-reset", "--no-stub", "flash-id"])
        assert "Manufacturer: ef" in out.getvalue()
    finally:
        chip.close()


def test_unknown_command_gets_the_rom_error(tmp_path: Path) -> None:
    chip, console = _download_mode_chip(tmp_path)
    console.skip_to_end()
    try:
        chip.uart.feed(slip.encode(bytes([0, 0x14, 0, 0, 0, 0, 0, 0])))  # GET_SECURITY_INFO
        console.expect("\xc0\x01\x14\x04\x00\x00\x00\x00\x00\x01\x05\x00\x00\xc0")
    finally:
        chip.close()


def test_pty_with_no_reset_flows(tmp_path: Path) -> None:
    chip, _ = _download_mode_chip(tmp_path)
    endpoint = chip.serve_pty()
    try:
        out = io.StringIO()
        resets = ["--before", "no-reset", "--after", "no-reset"]
        args = ["--port", endpoint.path, *resets, "--no-stub", "read-mac"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(args)
        assert "MAC:                24:0a:c4:12:34:56" in out.getvalue()
    finally:
        chip.close()


def test_fast_handler_is_used_and_a_new_client_replaces_the_old(board: Board) -> None:
    from rig.serialio import fast_rfc2217

    enable_fast_rfc2217()
    enable_fast_rfc2217()
    assert serial.protocol_handler_packages.count("rig.serialio") == 1
    # Opening a port pulses DTR alone (IO0 low): wait until the boot strap is latched.
    board.console.expect(HOOK_LINE)
    stale = serial.serial_for_url(board.url, timeout=1)
    assert isinstance(stale, fast_rfc2217.Serial)
    with serial.serial_for_url(board.url, timeout=5) as port:
        port.write(b"restart\n")
        board.console.expect(FLASH_BOOT.format("0xc", "SW_CPU_RESET"))
        assert b"SW_CPU_RESET" in port.read_until(b"SW_CPU_RESET")
    with contextlib.suppress(serial.SerialException):
        stale.close()


def test_a_port_reopened_at_once_reaches_the_board(board: Board) -> None:
    """The rig hands the port to esptool and back twice per OTA: no pause between close and open."""
    enable_fast_rfc2217()
    board.console.expect(HOOK_LINE)
    for _ in range(5):
        with serial.serial_for_url(board.url, timeout=5) as port:
            port.write(b"restart\n")
            assert b"SW_CPU_RESET" in port.read_until(b"SW_CPU_RESET")


def test_an_open_waits_for_a_server_that_is_not_listening_yet(tmp_path: Path) -> None:
    chip, _ = _download_mode_chip(tmp_path)
    enable_fast_rfc2217()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port_number = probe.getsockname()[1]
    late = threading.Timer(0.3, chip.serve_rfc2217, kwargs={"port": port_number})
    late.start()
    try:
        with serial.serial_for_url(f"rfc2217://127.0.0.1:{port_number}", timeout=1) as port:
            assert port.is_open
    finally:
        late.join()
        chip.close()
