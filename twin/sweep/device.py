"""One device run of a sweep: power on with the flash as a cut left it and run the ROM, the
2nd-stage bootloader and the firmware model, on virtual time, until the app idles at its
console (steady state) — typing the update commands once more if it idles on the old image
and the sweep retries.

The code that runs is the twin's own (`twin.chip.rom_flash_boot`, `twin.board.boot_app`,
the firmware models); only the CPU underneath differs: `ReplayCpu` has no thread, no UART
server and no wall clock, so a boot that takes a board 300 ms takes the host about one.
`TrackingFlash` and `TrackingNvs` note what a run depended on — the flash sectors it read
before erasing them, the NVS values it read before writing them — so that a later cut
point whose state differs from this one only elsewhere is known to run identically.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from rig.esp.otadata import ERASED_WORD, OtaData, OtaEntry, ota_seq_crc
from rig.esp.otadata import SECTOR_SIZE as OTADATA_SECTOR
from rig.esp.partitions import Partition
from rig.sweep.records import BootFacts, EntryHealth, Image, RunEnd
from twin.board import boot_app
from twin.bootloader import VerifiedApp
from twin.chip import rom_banner, rom_flash_boot
from twin.config import BoardConfig
from twin.cpu import Activity, ChipReset, Cpu, ResetReason
from twin.efuse import Efuse
from twin.flash import SECTOR_SIZE, NorFlash, PowerLost
from twin.nvs import Nvs

# More boots than any healthy sequence needs (cut boot, rollback, retry, new image's first boot).
MAX_BOOTS = 12
# A re-run's script: console lines, and the resets the rig itself caused between them.
Script = list[bytes | ResetReason]


class SteadyState(Exception):
    """The app waits at its console for a line nobody will type: the run is over."""


def sectors_of(address: int, length: int) -> range:
    return range(address // SECTOR_SIZE, (address + max(length, 1) - 1) // SECTOR_SIZE + 1)


class TrackingFlash(NorFlash):
    """A NorFlash that notes, per run, the sectors whose earlier contents the run could see.

    A read or a program (which ANDs into what is there) depends on a sector's contents
    unless the run erased that sector first. Sectors in `untracked` (the NVS partition)
    are judged by value instead (`TrackingNvs`)."""

    def __init__(self, path: Path, size: int, untracked: range) -> None:
        super().__init__(path, size)
        self.untracked = frozenset(untracked)
        self.depends: set[int] = set()
        self.erased: set[int] = set()
        self.written: set[int] = set()
        self.nvs_read: dict[str, object] = {}
        self.nvs_written: set[str] = set()

    def start_run(self) -> None:
        self.depends, self.erased, self.written = set(), set(), set()
        self.nvs_read, self.nvs_written = {}, set()

    def _depend(self, address: int, length: int) -> None:
        for sector in sectors_of(address, length):
            if sector not in self.erased and sector not in self.untracked:
                self.depends.add(sector)

    def read(self, address: int, length: int) -> bytes:
        self._depend(address, length)
        return super().read(address, length)

    def erase(self, address: int, length: int) -> None:
        super().erase(address, length)
        span = sectors_of(address, length)
        self.erased.update(span)
        self.written.update(span)

    def program(self, address: int, data: bytes) -> None:
        self._depend(address, len(data))
        super().program(address, data)
        self.written.update(sectors_of(address, len(data)))


class TrackingNvs(Nvs):
    """NVS whose reads of values the run has not written yet are dependencies of the run.

    The twin's NVS stores its values whole, so what a run does with NVS depends on the
    values, not on which half or sequence number holds them."""

    def get(self, key: str) -> object | None:
        value = super().get(key)
        flash = self.flash
        if isinstance(flash, TrackingFlash) and key not in flash.nvs_written:
            flash.nvs_read.setdefault(key, value)
        return value

    def set(self, key: str, value: object) -> None:
        if isinstance(self.flash, TrackingFlash):
            self.flash.nvs_written.add(key)
        super().set(key, value)

    def erase(self, key: str) -> None:
        if isinstance(self.flash, TrackingFlash):
            self.flash.nvs_written.add(key)
        super().erase(key)


def entry_health(entry: OtaEntry) -> EntryHealth:
    if entry.is_erased or entry.is_unused:
        return EntryHealth.ERASED
    if entry.seq != ERASED_WORD and entry.crc == ota_seq_crc(entry.seq):
        return EntryHealth.VALID
    return EntryHealth.TORN


def otadata_health(flash: NorFlash, otadata: Partition) -> tuple[EntryHealth, EntryHealth]:
    data = OtaData.from_bytes(flash.read(otadata.offset, 2 * OTADATA_SECTOR))
    first, second = (entry_health(e) for e in data.entries)
    return first, second


class ImageIds:
    """Tells the old image from the new one by their bytes."""

    def __init__(self, old: bytes, new: bytes) -> None:
        self._images = {Image.OLD: old, Image.NEW: new}
        self._cache: dict[bytes, Image] = {}

    def of(self, app: VerifiedApp) -> Image:
        body = app.data[: app.image.image_length]
        # The bootloader checked the image against its appended SHA-256: that names it.
        key = app.image.hash_stored or hashlib.sha256(body).digest()
        known = self._cache.get(key)
        if known is None:
            known = Image.OTHER
            for image, data in self._images.items():
                if data[: len(body)] == body:
                    known = image
                    break
            self._cache[key] = known
        return known


@dataclass
class RunResult:
    boots: list[BootFacts]
    end: RunEnd
    retried: bool
    boots_before_retry: int
    state_end: str
    log: bytes


@dataclass
class ReplayDevice:
    """A board powered on from whatever its flash and eFuses hold now."""

    flash: NorFlash
    efuse: Efuse
    config: BoardConfig
    images: ImageIds
    otadata: Partition | None
    slot_count: int
    # Console lines typed at the first idle prompts and the rig's resets (a re-run of the update).
    script: Script = field(default_factory=list)
    # Typed once if the app idles on the old image (the scenario's retried update).
    retry: Sequence[bytes] = ()
    nvs_type: type[Nvs] = Nvs
    clock: float = 0.0
    out: bytearray = field(default_factory=bytearray)
    boots: list[BootFacts] = field(default_factory=list)
    retried: bool = False
    boots_before_retry: int = 0
    _running: VerifiedApp | None = None

    def power_on(self) -> RunResult:
        reason = ResetReason.POWERON_RESET
        for _ in range(MAX_BOOTS):
            cpu = ReplayCpu(self, reason)
            self._running = None
            try:
                rom_banner(cpu, reason, download=False)
                rom_flash_boot(cpu, self._boot)
            except SteadyState:
                return self._result(RunEnd.STEADY)
            except ChipReset as reset:
                reason = reset.reason or ResetReason.POWERON_RESET
            except PowerLost:
                # A re-run's armed cut: what the rig typed belonged to the boot that died.
                self.script.clear()
                reason = ResetReason.POWERON_RESET
        return self._result(RunEnd.BOOT_LOOP)

    def _boot(self, cpu: Cpu) -> None:
        boot_app(cpu, self.config, lambda app: self._started(app, cpu), self.nvs_type)
        cpu.halt()

    def _started(self, app: VerifiedApp, cpu: Cpu) -> None:
        image = self.images.of(app)
        self._running = app
        self.boots.append(BootFacts(image, app.partition.name, self._state_of(app), cpu.reset_reason.name))

    def _state_of(self, app: VerifiedApp) -> str:
        if self.otadata is None or app.partition.ota_index is None:
            return ""
        data = OtaData.from_bytes(self.flash.read(self.otadata.offset, 2 * OTADATA_SECTOR))
        entry = data.active_entry
        if entry is None or data.boot_slot(self.slot_count) != app.partition.ota_index:
            return ""
        return entry.state_name

    def idle(self) -> bytes:
        """The app waits for a console line: the next scripted one, the retry, or the end."""
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, ResetReason):
                raise ChipReset(item)
            return item
        running = self._running
        if self.retry and not self.retried and running is not None and self.images.of(running) is Image.OLD:
            self.retried = True
            self.boots_before_retry = len(self.boots)
            self.script = list(self.retry[1:])
            return self.retry[0]
        raise SteadyState

    def _result(self, end: RunEnd) -> RunResult:
        before = self.boots_before_retry if self.retried else len(self.boots)
        state = self._state_of(self._running) if self._running is not None else ""
        return RunResult(list(self.boots), end, self.retried, before, state, bytes(self.out))


class ReplayCpu(Cpu):
    """The `Cpu` a replayed boot runs on: single-threaded, never interrupted, virtual time."""

    def __init__(self, device: ReplayDevice, reason: ResetReason) -> None:
        self.device = device
        self.reset_reason = reason
        self.flash = device.flash
        self.efuse = device.efuse
        self.log_colours = device.config.log_colors
        self._booted_at = device.clock

    def alive(self) -> bool:
        return True

    def check(self) -> None:
        return None

    def millis(self) -> int:
        return int((self.device.clock - self._booted_at) * 1000)

    def sleep(self, seconds: float) -> None:
        self.device.clock += max(0.0, seconds)

    def uart_write(self, data: bytes) -> None:
        self.device.out += data

    def uart_read(self, size: int, timeout: float | None) -> bytes:
        if timeout is None:
            raise SteadyState
        self.sleep(timeout)
        return b""

    def uart_readline(self, timeout: float | None) -> bytes | None:
        if timeout is None:
            return self.device.idle()
        if timeout > 0:
            # A timed wait (an app's own deadline on the host clock): let that clock move too.
            time.sleep(timeout)
            self.sleep(timeout)
        return None

    def set_activity(self, activity: Activity) -> None:
        return None

    def reset(self, reason: ResetReason) -> NoReturn:
        raise ChipReset(reason)

    def restart(self) -> NoReturn:
        self.sleep(self.device.config.restart_ms / 1000)
        raise ChipReset(ResetReason.SW_CPU_RESET)

    def halt(self) -> NoReturn:
        raise SteadyState

