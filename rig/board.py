"""One board under test: console, power, flash, and the conversation with its firmware
(through the board's agent, rig/agents/).

Everything here works the same for a DevKitC on a USB hub and for a virtual-lab
twin, because both are reached through the same seams (serial URL, power driver,
esptool).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.agents import agent_for
from rig.agents.rig_agent import RigAgent
from rig.console import Console
from rig.errors import InfraError, InputError
from rig.esp.otadata import OtaData
from rig.esp.partitions import PartitionTable
from rig.farm import BoardSpec, Farm
from rig.flashing import FlashTarget, read_back, write_regions
from rig.power import create_driver
from rig.power.base import PowerDriver
from rig.resources import fixture

DEFAULT_TABLE = ("partitions", "two_ota_large.csv")  # under fixtures/
TABLE_OFFSET = 0x8000


@dataclass(frozen=True)
class Ready:
    """The `ready` marker: the app is up and accepts console commands."""

    version: str
    running: str
    state: str
    line_index: int


@dataclass(frozen=True)
class FlashState:
    """What a read-back saw: otadata, and the MD5 the chip computed for each region asked for."""

    otadata: OtaData
    md5: dict[tuple[int, int], str]

    @property
    def top_seq(self) -> int:
        """The highest CRC-valid otadata sequence number: it rises only when a switch is made."""
        return max((e.seq for e in self.otadata.entries if not e.is_erased and e.crc_ok), default=0)


def _sectors(size: int) -> int:
    """`size` rounded up to whole 4 KiB flash sectors."""
    return -(-size // 0x1000) * 0x1000


def load_table(spec: BoardSpec, farm: Farm) -> PartitionTable:
    """The board's partition table: its farm entry's CSV (relative to the farm file) or the default."""
    if spec.partition_table is None:
        path = fixture(*DEFAULT_TABLE)
    else:
        path = Path(spec.partition_table)
        if not path.is_absolute() and farm.path is not None:
            path = farm.path.parent / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise InputError(f"board {spec.name}: partition table {path} cannot be read") from None
    return PartitionTable.from_csv(text, flash_size=spec.flash_size, source=str(path))


class Board:
    """A board of the farm, opened for one scenario."""

    def __init__(self, farm: Farm, spec: BoardSpec, artifacts: Path) -> None:
        self.farm = farm
        self.spec = spec
        self.name = spec.name
        self.artifacts = artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        self.table = load_table(spec, farm)
        slots = {part.offset: part.name for part in self.table.partitions}
        log = artifacts / "serial.log"
        self.console = Console(spec.serial, spec.baud, log, name=spec.name, partitions=slots)
        self.esptool_log = artifacts / "esptool.log"
        self.flash_target = FlashTarget(spec.name, spec.serial, spec.flash_baud, spec.reset, spec.chip)
        self._power: PowerDriver | None = None
        self.agent = agent_for(spec)

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> Board:
        self.console.open()
        self.agent.attach(self)
        return self

    def close(self) -> None:
        if self._power is not None:
            self._power.close()
            self._power = None
        self.console.shutdown()

    def __enter__(self) -> Board:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- power -----------------------------------------------------------------------

    @property
    def power(self) -> PowerDriver:
        """The board's power driver; boards without one fall back to a DTR/RTS reset."""
        if self._power is None:
            spec = self.farm.power_spec(self.spec) or {"driver": "dtr-rts", "port": self.spec.serial}
            self._power = create_driver(spec)
        return self._power

    # -- flash -----------------------------------------------------------------------

    def prepare(self, app: bytes, *, blank_bytes: int = 0x1000, ready_timeout: float = 20.0) -> Ready:
        """`flash_known_state`, then reset and wait for the app's `ready` marker from ota_0."""
        self.flash_known_state(app, blank_bytes=blank_bytes)
        return self.reset_and_wait_ready(ready_timeout)

    def flash_known_state(self, app: bytes, *, blank_bytes: int = 0x1000) -> None:
        """Known state: table written, otadata and NVS erased, `app` in ota_0, and the first
        `blank_bytes` of every other slot erased (the whole slot at most); left in the ROM
        loader until `reset()`.

        Erasing as far as the largest image reaches matters: an agent that skips part of the
        download (a wrong resume offset) must meet erased flash there, not the bytes an earlier
        test left, or the image it "finished" verifies.
        """
        slots = self.table.ota_slots
        if not slots:
            raise InputError(f"board {self.name}: the partition table has no OTA slots")
        if self.farm.power_spec(self.spec):
            # A known power state first: a run killed mid-cut leaves the supply off or sagged.
            self.power.on()
        if len(app) > slots[0].size:
            raise InputError(f"board {self.name}: image of {len(app)} bytes does not fit {slots[0].name}")
        erase = [(slot.offset, min(slot.size, _sectors(blank_bytes))) for slot in slots[1:]]
        for name in ("otadata", "nvs"):
            with contextlib.suppress(InputError):
                part = self.table.find(name)
                erase.append((part.offset, part.size))
        # Erased = written with 0xFF: one esptool session instead of one per region
        # (each session is a reset into the ROM loader plus a stub upload, ~0.7 s).
        blank = [(offset, b"\xff" * size) for offset, size in erase]
        with self.console.released():
            write_regions(
                self.flash_target,
                [(TABLE_OFFSET, self.table.to_binary()), (slots[0].offset, app), *blank],
                self.esptool_log,
            )

    def read_otadata(self) -> OtaData:
        """Read otadata back with esptool (see `read_state`)."""
        return self.read_state(()).otadata

    def read_state(self, digests: Sequence[tuple[int, int]]) -> FlashState:
        """otadata and the on-chip MD5 of each (offset, size) region, in one esptool session.

        The board is left in the ROM's download mode, not reset back into the app: a reset
        is a boot, and a boot may change otadata (rollback). Call `reset()` to run it again.
        """
        part = self.table.otadata
        if part is None:
            raise InputError(f"board {self.name}: the partition table has no otadata partition")
        with self.console.released():
            found = read_back(self.flash_target, part.offset, part.size, digests, self.esptool_log)
        (self.artifacts / "otadata.bin").write_bytes(found.data)
        return FlashState(OtaData.from_bytes(found.data), found.md5)

    # -- console conversation ---------------------------------------------------------

    def reset(self) -> int:
        """Pulse EN through RTS; returns the console mark before the reset."""
        mark = self.console.mark()
        self.console.pulse_reset()
        return mark

    def wait_ready(self, timeout: float, since: int) -> Ready | None:
        return self.agent.wait_ready(self, timeout, since)

    def reset_and_wait_ready(self, timeout: float) -> Ready:
        mark = self.reset()
        ready = self.wait_ready(timeout, mark)
        if ready is None:
            what = self.agent.ready_description()
            raise InfraError(f"board {self.name}: no {what} within {timeout:.0f} s after reset")
        return ready

    def command(self, text: str, timeout: float = 5.0) -> str:
        """Send a PROTOCOL.md command; returns its `ok` details. An `error` reply raises InputError."""
        if not isinstance(self.agent, RigAgent):
            protocol = self.spec.firmware.protocol.value
            raise InputError(f"board {self.name}: its firmware ({protocol}) takes no console commands")
        return self.agent.command(self, text, timeout)

    def status(self, timeout: float = 5.0) -> dict[str, str]:
        """The running app's `version`, `running` and `state` (PROTOCOL.md §1 `status` fields)."""
        return self.agent.status(self, timeout)
