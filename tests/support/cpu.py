"""A fake CPU for driving the twin's bootloader and esp_ota_ops directly, and the partition table both use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from rig.esp.partitions import PartitionTable
from twin.cpu import Activity, LogLevel, ResetReason
from twin.efuse import Efuse
from twin.flash import NorFlash

TABLE = PartitionTable.from_csv(
    "nvs, data, nvs, , 0x6000,\notadata, data, ota, , 0x2000,\nphy_init, data, phy, , 0x1000,\n"
    "ota_0, app, ota_0, , 1700K,\nota_1, app, ota_1, , 1700K,\n"
)


class Reset(Exception):
    """The bootloader reset the chip; the message is the reset reason's name."""


class Restarted(Exception):
    """The app called esp_restart()."""


@dataclass
class FakeCpu:
    """Just what the bootloader and esp_ota_ops touch: flash, eFuses, the log, activity, delays,
    reset and esp_restart()."""

    flash: NorFlash
    efuse: Efuse
    lines: list[str] = field(default_factory=list)

    def log(self, level: LogLevel, tag: str, message: str) -> None:
        self.lines.append(f"{level.value} {tag}: {message}")

    def set_activity(self, activity: Activity) -> None:
        pass

    def sleep(self, seconds: float) -> None:
        pass

    def reset(self, reason: ResetReason) -> NoReturn:
        raise Reset(reason.name)

    def restart(self) -> NoReturn:
        raise Restarted()
