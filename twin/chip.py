"""`Esp32Chip`: flash, eFuses, UART0, the power state and one CPU thread.

The CPU thread runs one *boot* at a time: ROM banner, then the serial download
loader or the flash-boot hook (the 2nd-stage bootloader and app, supplied by the
caller). Power changes, the EN pin and software resets end the current boot by
bumping a generation counter and waking every waiter; the running code then
unwinds with `PowerLost`/`ChipReset` from its next `Cpu` call or flash chunk.
"""

from __future__ import annotations

import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from twin import rom_loader
from twin.autoreset import DevKitAutoReset
from twin.cpu import Activity, ChipReset, Cpu, ResetReason
from twin.efuse import DEFAULT_MAC, Efuse
from twin.flash import DEFAULT_SIZE, FlashOp, NorFlash, PowerLost
from twin.power import BROWNOUT_VOLTS, POWER_ON_VOLTS
from twin.trace import FlashTrace
from twin.uart import DownloadPort, PtyEndpoint, Rfc2217Server, Uart

# The ROM latches GPIO0 when EN rises. On a DevKitC EN rises through an RC, so a
# DTR/RTS pair changed one line at a time (RFC2217 clients do: DTR on, then RTS off)
# still pulls IO0 low before EN crosses the threshold: an asserted DTR at the EN
# edge means a download boot. Sampling at the edge costs a flash boot no time.
HELD_IN_RESET_AMPS = 0.02
BOOTLOADER_OFFSET = 0x1000
# How often the ROM complains about a blank bootloader before the RTC WDT bites.
_INVALID_HEADER_REPEATS = 5
_INVALID_HEADER_PERIOD_S = 0.2

DOWNLOAD_STRAP = "0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
FLASH_STRAP = "0x13 (SPI_FAST_FLASH_BOOT)"
_SPI_MODES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT"}
_CLOCK_DIVS = {0x0: 2, 0x1: 3, 0x2: 4, 0xF: 1}

FlashBoot = Callable[[Cpu], None]
# What the app's brownout ISR prints with esp_rom_printf before it restarts the CPU.
BROWNOUT_MESSAGE = b"\r\nBrownout detector was triggered\r\n\r\n"


class PowerState(Enum):
    OFF = "off"
    BROWNOUT = "brownout"
    ON = "on"


@dataclass(frozen=True)
class _Boot:
    reason: ResetReason
    download: bool


class Esp32Chip:
    """A twin ESP32 (ECO3 by default) on a DevKitC; implements `twin.power.PoweredDevice`."""

    def __init__(
        self,
        state_dir: Path,
        flash_boot: FlashBoot,
        *,
        flash_size: int = DEFAULT_SIZE,
        mac: bytes = DEFAULT_MAC,
        revision: tuple[int, int] = (3, 0),
        log_colours: bool = False,
        restart_delay_s: float = 0.0,
        trace: FlashTrace | None = None,
    ) -> None:
        self.condition = threading.Condition()
        self.flash = NorFlash(state_dir / "flash.bin", flash_size, power_ok=self._boot_alive)
        self.flash.on_cut = self._injected_cut
        self.efuse = Efuse(state_dir / "efuse.json", mac, *revision)
        self.uart = Uart(self.condition)
        self.trace = trace
        self._download_boot = False
        if trace is not None:
            trace.restart(self.flash, self.efuse)
            self.flash.observer = self._traced_op
            self.efuse.on_burn = trace.efuse_burn
            self.uart.attach(trace.console_out)
        self.lines = DevKitAutoReset(self)
        self.log_colours = log_colours
        self.restart_delay_s = restart_delay_s
        self.activity = Activity.IDLE
        self.generation = 0
        self._flash_boot = flash_boot
        self._running_generation = -1
        self._stop: PowerLost | ChipReset = PowerLost("not powered yet")
        self._power = PowerState.OFF
        self._en_high = True
        self._io0_high = True
        self._pending: _Boot | None = None
        self._brownout_isr_generation = -1
        self._closed = False
        self._servers: list[Rfc2217Server | DownloadPort | PtyEndpoint] = []
        self._thread = threading.Thread(target=self._cpu_loop, name="twin-cpu", daemon=True)
        self._thread.start()

    # -- PoweredDevice -------------------------------------------------------------

    def supply_changed(self, volts: float) -> None:
        with self.condition:
            before = self._power
            if volts < POWER_ON_VOLTS:
                self._power = PowerState.OFF
            elif volts < BROWNOUT_VOLTS:
                self._power = PowerState.BROWNOUT
            else:
                self._power = PowerState.ON
            if self._power is before:
                return
            if before is PowerState.ON:
                if self._power is PowerState.BROWNOUT and self._brownout_isr_generation == self.generation:
                    self.uart.write(BROWNOUT_MESSAGE)
                self._end_boot(PowerLost(f"supply dropped to {volts:.2f} V"))
            if self._power is PowerState.ON and self._en_high:
                reason = (
                    ResetReason.RTCWDT_BROWN_OUT_RESET
                    if before is PowerState.BROWNOUT
                    else ResetReason.POWERON_RESET
                )
                self._pending = _Boot(reason, download=not self._io0_high)
            self._update_rx()
            self.condition.notify_all()

    def current_draw_amps(self) -> float:
        if self._power is PowerState.OFF:
            return 0.0
        if self._power is PowerState.BROWNOUT or not self._en_high or not self._running():
            return HELD_IN_RESET_AMPS
        return float(self.activity.value)

    @property
    def power_state(self) -> PowerState:
        return self._power

    # -- StrapPins (driven by the auto-reset circuit) ------------------------------

    def set_pins(self, en_high: bool, io0_high: bool) -> None:
        with self.condition:
            self._io0_high = io0_high
            if en_high != self._en_high:
                self._en_high = en_high
                if self._power is PowerState.ON:
                    if en_high:
                        # On ESP32 the EN pin is a chip power-on reset; the strap is latched now.
                        download = not io0_high or self.lines.dtr
                        self._pending = _Boot(ResetReason.POWERON_RESET, download=download)
                    else:
                        self._end_boot(ChipReset(None))
                self._update_rx()
            self.condition.notify_all()

    # -- hooks for Cpu -------------------------------------------------------------

    def stop_exception(self) -> PowerLost | ChipReset:
        return self._stop

    def request_reset(self, reason: ResetReason, generation: int) -> None:
        """A reset from running code: end that boot and boot again with `reason`."""
        with self.condition:
            if generation != self.generation:
                return
            self._end_boot(ChipReset(reason))
            self._pending = _Boot(reason, download=not self._io0_high)
            self._update_rx()
            self.condition.notify_all()

    def install_brownout_isr(self, cpu: Cpu) -> None:
        """esp_brownout_init in the app's startup: a sag below the threshold now prints
        the ISR's line before the chip goes into brownout reset (bootloader and ROM don't)."""
        with self.condition:
            if cpu.alive():
                self._brownout_isr_generation = self.generation

    # -- host conveniences ---------------------------------------------------------

    def serve_rfc2217(self, port: int = 0) -> Rfc2217Server:
        server = Rfc2217Server(self.uart, self.lines, port)
        self._servers.append(server)
        return server

    def serve_download(self, port: int = 0) -> DownloadPort:
        server = DownloadPort(self.uart, self.lines, port)
        self._servers.append(server)
        return server

    def serve_pty(self, modem_dir: Path | None = None) -> PtyEndpoint:
        """The UART as a device node; with `modem_dir`, DTR/RTS arrive there (twin/usb_uart)."""
        endpoint = PtyEndpoint(self.uart, self.lines, modem_dir)
        self._servers.append(endpoint)
        return endpoint

    def close(self) -> None:
        for server in self._servers:
            server.close()
        with self.condition:
            self._closed = True
            self._end_boot(PowerLost("chip closed"))
            self.condition.notify_all()
        self._thread.join(timeout=10)
        self.flash.close()
        if self.trace is not None:
            self.trace.close()

    # -- internals -----------------------------------------------------------------

    def _running(self) -> bool:
        return self._running_generation == self.generation

    def _boot_alive(self) -> bool:
        return self._running() or threading.current_thread() is not self._thread

    def _end_boot(self, stop: PowerLost | ChipReset) -> None:
        """Caller holds the condition."""
        self.generation += 1
        self._stop = stop
        self._pending = None
        self.uart.clear_rx()

    def _update_rx(self) -> None:
        self.uart.receiving = self._power is PowerState.ON and self._en_high

    def _injected_cut(self) -> None:
        """`NorFlash.cut_at` fired: a power glitch; the chip reboots from power-on."""
        with self.condition:
            self._end_boot(PowerLost("injected power cut"))
            if self._power is PowerState.ON and self._en_high:
                self._pending = _Boot(ResetReason.POWERON_RESET, download=not self._io0_high)
            self.condition.notify_all()

    def _cpu_loop(self) -> None:
        while True:
            with self.condition:
                self.condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                boot = self._pending
                assert boot is not None
                self._pending = None
                self._running_generation = self.generation
                cpu = Cpu(self, self.generation, boot.reason)
            try:
                self._run_boot(cpu, boot)
                cpu.halt()
            except (PowerLost, ChipReset):
                pass
            except Exception:
                # Code on the CPU crashed in Python: a twin bug, not chip behaviour.
                traceback.print_exc(file=sys.stderr)
            finally:
                self.activity = Activity.IDLE

    def _run_boot(self, cpu: Cpu, boot: _Boot) -> None:
        cpu.check()
        self._trace_boot(boot)
        cpu.set_activity(Activity.BOOT)
        rom_banner(cpu, boot.reason, download=boot.download)
        if boot.download:
            cpu.uart_write(b"waiting for download\r\n")
            rom_loader.run(cpu)
            self._download_boot = False
            if self.trace is not None and self.trace.download_wrote:
                self.trace.restart(self.flash, self.efuse)
        rom_flash_boot(cpu, self._flash_boot)

    def _trace_boot(self, boot: _Boot) -> None:
        """A boot after an esptool session that wrote flash starts a new trace (a new known state)."""
        self._download_boot = boot.download
        if self.trace is None:
            return
        if not boot.download and self.trace.download_wrote:
            self.trace.restart(self.flash, self.efuse)
        self.trace.boot(boot.reason.name, boot.download)

    def _traced_op(self, op: FlashOp, data: bytes) -> None:
        assert self.trace is not None
        if self._download_boot:
            self.trace.download_wrote = True
        self.trace.flash_op(op, data)


def rom_banner(cpu: Cpu, reason: ResetReason, *, download: bool) -> None:
    """The first ROM lines of every boot: build date, reset cause and boot strap."""
    rom_date = "Jul 29 2019 12:21:46" if cpu.efuse.revision[0] >= 3 else "Jun  8 2016 00:22:57"
    strap = DOWNLOAD_STRAP if download else FLASH_STRAP
    cpu.uart_write(f"ets {rom_date}\r\n\r\nrst:{reason.value:#x} ({reason.name}),boot:{strap}\r\n".encode())


def rom_flash_boot(cpu: Cpu, flash_boot: FlashBoot) -> None:
    """The ROM's SPI boot: print its load lines for the bootloader image, then jump."""
    flash = cpu.flash
    header = flash.read(BOOTLOADER_OFFSET, 24)
    if header[0] != 0xE9:
        for _ in range(_INVALID_HEADER_REPEATS):
            cpu.uart_write(f"invalid header: {struct.unpack_from('<I', header)[0]:#010x}\r\n".encode())
            cpu.sleep(_INVALID_HEADER_PERIOD_S)
        cpu.reset(ResetReason.RTCWDT_RTC_RESET)
    lines = [
        "configsip: 0, SPIWP:0xee",
        "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00",
        f"mode:{_SPI_MODES.get(header[2], 'DIO')}, clock div:{_CLOCK_DIVS.get(header[3] & 0xF, 2)}",
    ]
    offset = BOOTLOADER_OFFSET + 24
    for _ in range(header[1]):
        address, length = struct.unpack("<II", flash.read(offset, 8))
        lines.append(f"load:{address:#010x},len:{length}")
        offset += 8 + length
        if offset >= flash.size:
            break
    lines.append(f"entry {struct.unpack_from('<I', header, 4)[0]:#010x}")
    cpu.uart_write("".join(line + "\r\n" for line in lines).encode())
    cpu.set_activity(Activity.IDLE)
    flash_boot(cpu)

