"""The one interface that code running "on" the twin ESP32 uses: `Cpu`.

The ROM download loader, and later the 2nd-stage bootloader and the app, are plain
Python functions that receive a `Cpu`. They talk to the world only through it, so
the chip can stop them at any point: every blocking call wakes up and raises
`PowerLost` or `ChipReset` the moment power drops or a reset strikes, and every
flash operation tears if it is in flight.
"""

from __future__ import annotations

import time
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, NoReturn

from twin.efuse import Efuse
from twin.flash import NorFlash, PowerLost

if TYPE_CHECKING:
    from twin.chip import Esp32Chip

__all__ = ["Activity", "ChipReset", "Cpu", "LogLevel", "PowerLost", "ResetReason"]


class ResetReason(IntEnum):
    """ESP32 ROM reset causes (components/esp_rom/esp32/include/esp32/rom/rtc.h)."""

    POWERON_RESET = 1
    SW_RESET = 3
    OWDT_RESET = 4
    DEEPSLEEP_RESET = 5
    SDIO_RESET = 6
    TG0WDT_SYS_RESET = 7
    TG1WDT_SYS_RESET = 8
    RTCWDT_SYS_RESET = 9
    INTRUSION_RESET = 10
    TGWDT_CPU_RESET = 11
    SW_CPU_RESET = 12
    RTCWDT_CPU_RESET = 13
    EXT_CPU_RESET = 14
    RTCWDT_BROWN_OUT_RESET = 15
    RTCWDT_RTC_RESET = 16


class Activity(Enum):
    """What the CPU is busy with; sets the current the board draws (amps)."""

    BOOT = 0.05
    IDLE = 0.04
    FLASH_WRITE = 0.08
    RADIO = 0.12


class LogLevel(Enum):
    ERROR = "E"
    WARN = "W"
    INFO = "I"
    DEBUG = "D"
    VERBOSE = "V"


_COLOURS = {LogLevel.ERROR: "\033[0;31m", LogLevel.WARN: "\033[0;33m", LogLevel.INFO: "\033[0;32m"}
_COLOUR_RESET = "\033[0m"


class ChipReset(Exception):
    """The CPU was reset (EN pin, software restart, watchdog); unwinds the running code."""

    def __init__(self, reason: ResetReason | None) -> None:
        super().__init__(f"chip reset ({reason.name})" if reason else "chip held in reset")
        self.reason = reason


class Cpu:
    """Handle given to code running on the twin for one boot; dies with that boot.

    Example, a flash-boot hook that greets, echoes lines and restarts on request::

        def app(cpu: Cpu) -> None:
            cpu.log(LogLevel.INFO, "app", f"reset reason {cpu.reset_reason.name}")
            while True:
                line = cpu.uart_readline(timeout=1.0)   # None on timeout
                if line == b"restart":
                    cpu.restart()                       # never returns
                if line is not None:
                    cpu.uart_write(line + b"\\r\\n")

    Every method raises `PowerLost` or `ChipReset` once this boot is over; code must
    let those propagate (the chip catches them). Waiting is event-driven: a chip
    idling in `uart_readline` or `sleep` costs no CPU time on the host.
    """

    def __init__(self, chip: Esp32Chip, generation: int, reset_reason: ResetReason) -> None:
        self._chip = chip
        self._generation = generation
        self._booted_at = time.monotonic()
        self.reset_reason = reset_reason
        self.flash: NorFlash = chip.flash
        self.efuse: Efuse = chip.efuse
        self.log_colours = chip.log_colours

    # -- liveness ----------------------------------------------------------------

    def alive(self) -> bool:
        """True while this boot still runs (no reset, power still good)."""
        return self._chip.generation == self._generation

    def check(self) -> None:
        """Raise `PowerLost`/`ChipReset` if this boot has been ended."""
        if not self.alive():
            raise self._chip.stop_exception()

    def millis(self) -> int:
        """Milliseconds since this boot began (ESP-IDF log timestamps)."""
        return int((time.monotonic() - self._booted_at) * 1000)

    def sleep(self, seconds: float) -> None:
        """Sleep like a FreeRTOS delay, waking early only to die."""
        with self._chip.condition:
            self._chip.condition.wait_for(lambda: not self.alive(), timeout=seconds)
        self.check()

    # -- UART0 -------------------------------------------------------------------

    def uart_write(self, data: bytes) -> None:
        self.check()
        self._chip.uart.write(data)

    def uart_read(self, size: int, timeout: float | None) -> bytes:
        """Up to `size` received bytes; b"" on timeout. `None` waits for ever."""
        data = self._chip.uart.read(size, timeout, lambda: not self.alive())
        self.check()
        return data

    def uart_readline(self, timeout: float | None) -> bytes | None:
        """The next received line without its `\\n` (and a `\\r` before it); None on timeout."""
        line = self._chip.uart.readline(timeout, lambda: not self.alive())
        self.check()
        if line is not None and self._chip.trace is not None:
            self._chip.trace.console_in(line)
        return line

    def log(self, level: LogLevel, tag: str, message: str) -> None:
        """Print one ESP-IDF log line: `I (123) tag: message` (+ colours if enabled)."""
        line = f"{level.value} ({self.millis()}) {tag}: {message}"
        colour = _COLOURS.get(level) if self.log_colours else None
        if colour is not None:
            line = f"{colour}{line}{_COLOUR_RESET}"
        self.uart_write(line.encode() + b"\r\n")

    # -- power and resets ----------------------------------------------------------

    def set_activity(self, activity: Activity) -> None:
        self.check()
        self._chip.activity = activity

    def reset(self, reason: ResetReason) -> NoReturn:
        """Reset the chip with `reason` (it reboots); never returns."""
        self._chip.request_reset(reason, self._generation)
        raise self._chip.stop_exception()

    def restart(self) -> NoReturn:
        """`esp_restart()`: UART flush and shutdown handlers (a few ms a power cut can
        still hit), then a software CPU reset; the next banner shows SW_CPU_RESET."""
        self.sleep(self._chip.restart_delay_s)
        self.reset(ResetReason.SW_CPU_RESET)

    def watchdog_reset(self, reason: ResetReason = ResetReason.TG0WDT_SYS_RESET) -> NoReturn:
        """A watchdog fired (task WDT → TG0WDT_SYS_RESET, RTC WDT → RTCWDT_RTC_RESET, …)."""
        self.reset(reason)

    def halt(self) -> NoReturn:
        """Stop executing until the next reset or power loss (what a returned hook does)."""
        with self._chip.condition:
            self._chip.condition.wait_for(lambda: not self.alive())
        raise self._chip.stop_exception()
