"""The firmware-model interface: how a Python model of an app runs on a twin board.

The bootloader hands every app it starts to the model chosen for that image's
project name. A model sees the chip only through `AppRuntime` — the Cpu (console,
log, sleep), the ESP-IDF OTA API (`ota`), NVS in the flash's nvs partition, the network and the
board config — so it can be stopped by a power cut or reset at any point, exactly
like code on silicon. See twin/README.md for a complete one-file example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from rig.errors import FormatError
from rig.esp.appdesc import AppDescriptor
from rig.esp.marker import Behaviour, BehaviourMarker, find_marker
from rig.esp.partitions import Partition, PartitionTable
from twin.bootloader import VerifiedApp
from twin.config import BoardConfig
from twin.cpu import Cpu, LogLevel
from twin.net import Net
from twin.nvs import Nvs
from twin.ota_ops import OtaOps

_HEALTHY = BehaviourMarker(Behaviour.HEALTHY, 0)
# Made-up but plausible register values: the rig matches the panic's shape, not its numbers.
_PANIC_PC = 0x400D15F5


@dataclass
class AppRuntime:
    """Everything a running app can reach on its board."""

    cpu: Cpu
    config: BoardConfig
    table: PartitionTable
    app: VerifiedApp
    ota: OtaOps
    nvs: Nvs
    net: Net

    @property
    def running(self) -> Partition:
        return self.app.partition

    @property
    def desc(self) -> AppDescriptor:
        desc = self.app.image.desc
        if desc is None:
            raise FormatError("running image has no app descriptor")
        return desc

    @property
    def marker(self) -> BehaviourMarker:
        """The image's behaviour marker (healthy when an image carries none: a real build)."""
        try:
            return find_marker(self.app.data[: self.app.image.image_length])[1]
        except FormatError:
            return _HEALTHY

    def log(self, level: LogLevel, tag: str, message: str) -> None:
        self.cpu.log(level, tag, message)

    def app_init(self) -> None:
        """ESP-IDF's app_init block and main_task's "Calling app_main()"."""
        desc = self.desc
        info = LogLevel.INFO
        self.log(info, "app_init", "Application information:")
        self.log(info, "app_init", f"Project name:     {desc.project_name}")
        self.log(info, "app_init", f"App version:      {desc.version}")
        if self.config.anti_rollback:
            self.log(info, "app_init", f"Secure version:   {desc.secure_version}")
        self.log(info, "app_init", f"Compile time:     {desc.date} {desc.time}")
        self.log(info, "app_init", f"ELF file SHA256:  {desc.app_elf_sha256.hex()[:16]}...")
        self.log(info, "app_init", f"ESP-IDF:          {desc.idf_ver}")
        self.log(info, "main_task", "Calling app_main()")

    def _elf_sha(self) -> str:
        return self.desc.app_elf_sha256.hex()[:16] if self.app.image.desc else "0" * 16

    def panic(self, exception: str = "LoadProhibited", excvaddr: int = 0) -> None:
        """A Guru Meditation as ESP-IDF v5.x prints it, then the panic handler's restart."""
        causes = {"LoadProhibited": 0x1C, "StoreProhibited": 0x1D, "IllegalInstruction": 0x0}
        cause = causes.get(exception, 0x1C)
        regs = [
            ("PC", _PANIC_PC), ("PS", 0x00060830), ("A0", 0x800D2B3C), ("A1", 0x3FFB3A30),
            ("A2", 0), ("A3", 1), ("A4", 0x3FFB3A5C), ("A5", 0x3FFB3A58),
            ("A6", 0), ("A7", 0), ("A8", 0x800D15F1), ("A9", 0x3FFB3A00),
            ("A10", 0), ("A11", 0), ("A12", 0), ("A13", 0),
            ("A14", 0), ("A15", 0), ("SAR", 0), ("EXCCAUSE", cause),
            ("EXCVADDR", excvaddr), ("LBEG", 0), ("LEND", 0), ("LCOUNT", 0),
        ]
        lines = [f"Guru Meditation Error: Core  0 panic'ed ({exception}). Exception was unhandled.", "",
                 "Core  0 register dump:"]
        for row in range(0, len(regs), 4):
            lines.append("".join(f"{name:<8s}: 0x{value:08x}  " for name, value in regs[row : row + 4]))
        backtrace = f"Backtrace: 0x{_PANIC_PC - 3:08x}:0x3ffb3a30 0x400d2b39:0x3ffb3a50 0x40088d61:0x3ffb3a70"
        lines += ["", "", backtrace,
                  "", "", "", "", f"ELF file SHA256: {self._elf_sha()}", "", "Rebooting..."]
        self._print_and_restart(lines)

    def task_wdt_timeout(self, task: str = "main") -> None:
        """The task watchdog with CONFIG_ESP_TASK_WDT_PANIC=y: IDLE0 starved, abort(), panic restart."""
        error = LogLevel.ERROR
        self.cpu.sleep(self.config.task_wdt_timeout_ms / 1000)
        self.log(error, "task_wdt", "Task watchdog got triggered. The following tasks/users did not reset "
                 "the watchdog in time:")
        self.log(error, "task_wdt", " - IDLE0 (CPU 0)")
        self.log(error, "task_wdt", "Tasks currently running:")
        self.log(error, "task_wdt", f"CPU 0: {task}")
        self.log(error, "task_wdt", "CPU 1: IDLE1")
        self.log(error, "task_wdt", "Aborting.")
        self._print_and_restart([
            "", "abort() was called at PC 0x400e14ed on core 0", "", "",
            "Backtrace: 0x40081a0e:0x3ffb0600 0x4008a1f1:0x3ffb0620 0x400e14ed:0x3ffb0640", "", "", "", "",
            f"ELF file SHA256: {self._elf_sha()}", "", "Rebooting...",
        ])

    def _print_and_restart(self, lines: list[str]) -> None:
        self.cpu.uart_write("".join(f"{line}\r\n" for line in lines).encode())
        self.cpu.restart()


class FirmwareModel(ABC):
    """A Python model of one firmware; `run` is its app_main and may never return."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, app: AppRuntime) -> None:
        """Run the app on the board; return only to let the CPU idle until the next reset."""
