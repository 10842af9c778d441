"""esp_ota_ops for the twin (ESP-IDF v5.5.5 components/app_update/esp_ota_ops.c).

A firmware model updates itself only through this class, so every flash write an
OTA makes (sequential sector erases, the image, the otadata flip) goes through
NorFlash in ESP-IDF's order and a power cut tears it exactly where a real one would.
Errors are `EspError` carrying ESP-IDF's error code, after ESP-IDF's log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from rig.esp.otadata import ERASED_WORD, SECTOR_SIZE, OtaData, OtaState, plan_set_boot, slot_for_seq
from rig.esp.partitions import Partition, PartitionTable
from twin.bootloader import (
    ImageVerifier,
    VerifiedApp,
    app_secure_version,
    read_otadata,
    trusted_keys_of,
    update_anti_rollback,
    write_otadata,
)
from twin.config import BoardConfig, SignedUpdates
from twin.cpu import Activity, Cpu, LogLevel

TAG = "esp_ota_ops"
IMAGE_MAGIC = 0xE9
BLOCK_ERASE_SIZE = 0x10000


def _state_or_none(value: int) -> OtaState | None:
    try:
        return OtaState(value)
    except ValueError:
        return None


class Err(IntEnum):
    """esp_err_t values the OTA path can return."""

    ESP_FAIL = -1
    ESP_ERR_INVALID_ARG = 0x102
    ESP_ERR_INVALID_SIZE = 0x104
    ESP_ERR_NOT_FOUND = 0x105
    ESP_ERR_NOT_SUPPORTED = 0x106
    ESP_ERR_INVALID_VERSION = 0x10A
    ESP_ERR_OTA_PARTITION_CONFLICT = 0x1501
    ESP_ERR_OTA_SELECT_INFO_INVALID = 0x1502
    ESP_ERR_OTA_VALIDATE_FAILED = 0x1503
    ESP_ERR_OTA_SMALL_SEC_VER = 0x1504
    ESP_ERR_OTA_ROLLBACK_FAILED = 0x1505
    ESP_ERR_OTA_ROLLBACK_INVALID_STATE = 0x1506
    ESP_ERR_HTTP_CONNECT = 0x7002
    ESP_ERR_HTTP_FETCH_HEADER = 0x7004
    ESP_ERR_HTTP_EAGAIN = 0x7007
    ESP_ERR_HTTP_NOT_MODIFIED = 0x7009
    ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE = 0x700A
    ESP_ERR_HTTPS_OTA_IN_PROGRESS = 0x9001


class EspError(Exception):
    """An ESP-IDF call returned something other than ESP_OK."""

    def __init__(self, err: Err) -> None:
        super().__init__(err.name)
        self.err = err

    @property
    def hex(self) -> str:
        """The code as `0x%x` prints it in C (ESP_FAIL → 0xffffffff)."""
        return f"0x{self.err.value & 0xFFFFFFFF:x}"


@dataclass
class OtaHandle:
    """An update in progress: what was written and which sectors are already erased."""

    partition: Partition
    written: int = 0
    erased_end: int = 0
    first_byte_checked: bool = False
    ended: bool = False
    verified: VerifiedApp | None = field(default=None, repr=False)


class OtaOps:
    """The ESP-IDF app-side OTA API of one running app."""

    def __init__(self, cpu: Cpu, config: BoardConfig, table: PartitionTable, running: VerifiedApp) -> None:
        self.cpu = cpu
        self.config = config
        self.table = table
        self.running = running
        self.verifier = ImageVerifier(cpu, config, loading=False)

    def _log(self, level: LogLevel, message: str) -> None:
        self.cpu.log(level, TAG, message)

    # -- otadata helpers -----------------------------------------------------------

    @property
    def _slots(self) -> tuple[Partition, ...]:
        return self.table.ota_slots

    def _otadata(self) -> OtaData | None:
        part = self.table.otadata
        return None if part is None else read_otadata(self.cpu, part)

    def get_running_partition(self) -> Partition:
        return self.running.partition

    def get_boot_partition(self) -> Partition | None:
        """esp_ota_ops.c:esp_ota_get_boot_partition(): the active entry's slot; the default
        (factory, else ota_0) when both entries are invalid, and the same with
        `ota data invalid, no current app. Assuming factory` when neither is CRC-valid."""
        otadata = self._otadata()
        default = self.table.factory or (self._slots[0] if self._slots else self.table.test_app)
        if otadata is None or not self._slots or all(e.is_invalid for e in otadata.entries):
            return default
        slot = otadata.boot_slot(len(self._slots))
        if slot is None:
            self._log(LogLevel.ERROR, "ota data invalid, no current app. Assuming factory")
            return default
        return self._slots[slot]

    def get_next_update_partition(self) -> Partition:
        """The slot after the running one; ota_0 from the last slot or a non-OTA app."""
        index = self.running.partition.ota_index
        if not self._slots:
            raise EspError(Err.ESP_ERR_NOT_FOUND)
        nxt = 0 if index is None else (index + 1) % len(self._slots)
        return self._slots[nxt]

    def get_state_partition(self, partition: Partition) -> OtaState:
        """The otadata state of an OTA slot's entry (ESP_ERR_NOT_SUPPORTED / NOT_FOUND otherwise)."""
        if partition.ota_index is None:
            raise EspError(Err.ESP_ERR_NOT_SUPPORTED)
        otadata = self._otadata()
        if otadata is not None and self._slots:
            for entry in otadata.entries:
                if entry.crc_ok and slot_for_seq(entry.seq, len(self._slots)) == partition.ota_index:
                    try:
                        return OtaState(entry.state)
                    except ValueError:
                        break
        raise EspError(Err.ESP_ERR_NOT_FOUND)

    # -- esp_ota_begin / write / end -------------------------------------------------

    def begin(self, partition: Partition, *, erase_all: bool = False) -> OtaHandle:
        """esp_ota_ops.c:esp_ota_begin(): only an OTA slot (a factory partition is
        ESP_ERR_INVALID_ARG), never the running one, and (rollback) never while the running
        app is still PENDING_VERIFY. With OTA_WITH_SEQUENTIAL_WRITES sectors are erased as
        writes reach them; with OTA_SIZE_UNKNOWN (`erase_all`, what esp_ota_write_with_offset()
        needs) the whole partition is erased here, one 64 KiB block erase at a time as
        esp_flash_erase_region() does where aligned."""
        self._check_target(partition)
        if self.config.rollback and self._running_state() == OtaState.PENDING_VERIFY:
            self._log(LogLevel.ERROR, "Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
            raise EspError(Err.ESP_ERR_OTA_ROLLBACK_INVALID_STATE)
        handle = OtaHandle(partition)
        if erase_all:
            self.erase_range(partition)
            handle.erased_end = partition.size
            handle.first_byte_checked = True  # esp_ota_write_with_offset() checks no magic byte
        if self.config.rollback:
            self._erase_stale_otadata()
        return handle

    def resume(self, partition: Partition, written: int) -> OtaHandle:
        """esp_ota_ops.c:esp_ota_resume(): carry on after `written` bytes. It has no
        PENDING_VERIFY check and erases nothing up front (sectors are erased as writes reach them)."""
        self._check_target(partition)
        erased = -(-written // SECTOR_SIZE) * SECTOR_SIZE
        return OtaHandle(partition, written=written, erased_end=erased, first_byte_checked=written > 0)

    def _check_target(self, partition: Partition) -> None:
        if not partition.is_app or partition.ota_index is None:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        if partition == self.running.partition:
            raise EspError(Err.ESP_ERR_OTA_PARTITION_CONFLICT)

    def _running_state(self) -> OtaState | None:
        try:
            return self.get_state_partition(self.running.partition)
        except EspError:
            return None

    def _erase_stale_otadata(self) -> None:
        """v5.5: the inactive sector is erased if it points at a slot other than the running one (§2.7)."""
        part = self.table.otadata
        otadata = self._otadata()
        if part is None or otadata is None or not self._slots:
            return
        active = otadata.active_index()
        if active is None:
            return
        other = 1 - active
        entry = otadata.entries[other]
        if entry.is_erased or not entry.crc_ok:
            return
        if slot_for_seq(entry.seq, len(self._slots)) != self.running.partition.ota_index:
            self.cpu.set_activity(Activity.FLASH_WRITE)
            self.cpu.flash.erase(part.offset + other * SECTOR_SIZE, SECTOR_SIZE)

    def write(self, handle: OtaHandle, data: bytes) -> None:
        """esp_ota_ops.c:esp_ota_write(): erase each sector just before its first write (a
        range past the partition is ESP_ERR_INVALID_SIZE from esp_partition_erase_range(),
        before anything is written), then the 0xE9 check on the first byte, which therefore
        comes after the first sector was already erased."""
        if not data:
            return
        part = handle.partition
        end = handle.written + len(data)
        if -(-end // SECTOR_SIZE) * SECTOR_SIZE > part.size and end > handle.erased_end:
            raise EspError(Err.ESP_ERR_INVALID_SIZE)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        while handle.erased_end < end:
            self.cpu.sleep(self.config.sector_erase_ms / 1000)
            self.cpu.flash.erase(part.offset + handle.erased_end, SECTOR_SIZE)
            handle.erased_end += SECTOR_SIZE
        if not handle.first_byte_checked:
            if data[0] != IMAGE_MAGIC:
                message = f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})"
                self._log(LogLevel.ERROR, message)
                raise EspError(Err.ESP_ERR_OTA_VALIDATE_FAILED)
            handle.first_byte_checked = True
        self.cpu.flash.program(part.offset + handle.written, data)
        handle.written = end

    def write_with_offset(self, handle: OtaHandle, data: bytes, offset: int) -> None:
        """esp_ota_ops.c:esp_ota_write_with_offset(): program at `offset` of a partition
        esp_ota_begin() erased whole; no erase and no magic-byte check here."""
        if offset + len(data) > handle.partition.size:
            raise EspError(Err.ESP_ERR_INVALID_SIZE)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        self.cpu.flash.program(handle.partition.offset + offset, data)
        handle.written += len(data)

    def abort(self, handle: OtaHandle) -> None:
        """esp_ota_abort(): forget the handle; what was written stays in flash."""
        handle.ended = True

    def erase_range(self, partition: Partition) -> None:
        """esp_partition_erase_range(partition, 0, size), in 64 KiB block erases."""
        self.cpu.set_activity(Activity.FLASH_WRITE)
        for offset in range(0, partition.size, BLOCK_ERASE_SIZE):
            self.cpu.sleep(self.config.sector_erase_ms / 1000)
            self.cpu.flash.erase(partition.offset + offset, min(BLOCK_ERASE_SIZE, partition.size - offset))

    def erase_last_boot_app_partition(self) -> None:
        """esp_ota_ops.c:erase_last_boot_app_partition(false): erase the app the inactive
        otadata entry selects (never the running one), then that otadata sector — no
        rollback to it is possible afterwards."""
        part = self.table.otadata
        otadata = self._otadata()
        active = None if otadata is None else otadata.active_index()
        if part is None or otadata is None or active is None or not self._slots:
            raise EspError(Err.ESP_FAIL)
        inactive = 1 - active
        entry = otadata.entries[inactive]
        if entry.is_erased or not entry.crc_ok:
            raise EspError(Err.ESP_FAIL)
        last = self._slots[slot_for_seq(entry.seq, len(self._slots))]
        if last == self.running.partition:
            raise EspError(Err.ESP_FAIL)
        self.erase_range(last)
        self.cpu.flash.erase(part.offset + inactive * SECTOR_SIZE, SECTOR_SIZE)

    def set_entry_state(self, state: OtaState, *, active: bool) -> OtaState | None:
        """aws_esp_ota_ops.c:aws_esp_ota_set_boot_flags(): rewrite the state of the active
        (highest valid seq) or passive otadata entry in place (erase its sector, write it
        back; the CRC covers only the seq, so it stays valid). VALID burns the running
        app's secure version under anti-rollback. Returns the state it replaced."""
        part = self.table.otadata
        otadata = self._otadata()
        if part is None or otadata is None:
            raise EspError(Err.ESP_FAIL)
        active_index = otadata.active_index()
        if active_index is None:
            raise EspError(Err.ESP_FAIL)
        index = active_index if active else 1 - active_index
        entry = otadata.entries[index]
        previous = None if entry.is_erased else _state_or_none(entry.state)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        write_otadata(self.cpu, part, index, entry.with_state(state))
        if state is OtaState.VALID and active and self.config.anti_rollback:
            version = app_secure_version(self.cpu, self.running.partition)
            if version is not None:
                update_anti_rollback(self.cpu, version)
        return previous

    def _trusted_keys(self) -> list[bytes]:
        return trusted_keys_of(self.running.data)

    def _verify(self, partition: Partition, *, silent: bool = False) -> VerifiedApp | None:
        """image_validate(): esp_image_verify(), with the signature when updates are signed."""
        signed = self.config.signed_updates is not SignedUpdates.NONE
        keys = self._trusted_keys() if signed else []
        return self.verifier.verify(partition, silent=silent, check_signature=signed, trusted_keys=keys)

    def end(self, handle: OtaHandle) -> VerifiedApp:
        """esp_ota_end: full verification (signature too when signed updates are on)."""
        if handle.written == 0:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        handle.ended = True
        app = self._verify(handle.partition)
        if app is None:
            self._log(LogLevel.ERROR, "New image failed verification")
            raise EspError(Err.ESP_ERR_OTA_VALIDATE_FAILED)
        handle.verified = app
        return app

    # -- boot partition and rollback ------------------------------------------------------

    def set_boot_partition(self, partition: Partition) -> None:
        """esp_ota_set_boot_partition: verify again, anti-rollback, write the other otadata sector."""
        app = self._verify(partition)
        if app is None:
            raise EspError(Err.ESP_ERR_OTA_VALIDATE_FAILED)
        part = self.table.otadata
        if part is None:
            raise EspError(Err.ESP_ERR_NOT_FOUND)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        if partition.is_factory:
            self.cpu.flash.erase(part.offset, 2 * SECTOR_SIZE)
            return
        if partition.ota_index is None:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        if self.config.anti_rollback:
            version = app.image.desc.secure_version if app.image.desc else 0
            if version < self.cpu.efuse.secure_version:
                self._log(
                    LogLevel.ERROR,
                    "This a new partition can not be booted due to a secure version is lower than stored in "
                    "efuse. Partition will be erased.",
                )
                self.cpu.flash.erase(partition.offset, partition.size)
                raise EspError(Err.ESP_ERR_OTA_SMALL_SEC_VER)
        otadata = read_otadata(self.cpu, part)
        sector, entry = plan_set_boot(otadata, partition.ota_index, len(self._slots), self.config.rollback)
        write_otadata(self.cpu, part, sector, entry)

    def mark_app_valid_cancel_rollback(self) -> None:
        """The active entry becomes VALID in place; anti-rollback burns the running app's secure_version."""
        part, otadata, active = self._active_or_factory()
        entry = otadata.entries[active]
        if entry.state != OtaState.VALID:
            self.cpu.set_activity(Activity.FLASH_WRITE)
            write_otadata(self.cpu, part, active, entry.with_state(OtaState.VALID))
            if self.config.anti_rollback:
                version = app_secure_version(self.cpu, self.running.partition)
                if version is not None:
                    update_anti_rollback(self.cpu, version)

    def mark_app_invalid_rollback_and_reboot(self) -> None:
        """INVALID in place, then esp_restart(); refuses when nothing else could boot."""
        part, otadata, active = self._active_or_factory()
        if not self.check_rollback_is_possible():
            self._log(LogLevel.ERROR, "Rollback is not possible, do not have any suitable apps in slots")
            raise EspError(Err.ESP_ERR_OTA_ROLLBACK_FAILED)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        write_otadata(self.cpu, part, active, otadata.entries[active].with_state(OtaState.INVALID))
        self._log(LogLevel.INFO, "Rollback to previously worked partition.")
        self.cpu.restart()

    def _active_or_factory(self) -> tuple[Partition, OtaData, int]:
        part = self.table.otadata
        otadata = self._otadata()
        active = None if otadata is None else otadata.active_index()
        if part is None or otadata is None or active is None or not self._slots:
            self._log(LogLevel.ERROR, "Running firmware is factory")
            raise EspError(Err.ESP_FAIL)
        return part, otadata, active

    def check_rollback_is_possible(self) -> bool:
        """esp_ota_ops.c:esp_ota_check_rollback_is_possible(): another entry's image passes
        image_validate(ESP_IMAGE_VERIFY_SILENT) - with signed updates that checks (and logs)
        its signature - and, with anti-rollback, has an acceptable secure version; or factory."""
        otadata = self._otadata()
        if otadata is None or not self._slots:
            return False
        active = otadata.active_index()
        if active is None:
            return False
        other = otadata.entries[1 - active]
        if not other.is_selectable:
            factory = self.table.factory
            return (
                not self.config.anti_rollback
                and factory is not None
                and self._verify(factory, silent=True) is not None
            )
        slot = self._slots[slot_for_seq(other.seq, len(self._slots))]
        if self._verify(slot, silent=True) is None:
            return False
        if self.config.anti_rollback:
            version = app_secure_version(self.cpu, slot)
            return version is not None and version >= self.cpu.efuse.secure_version
        return True

    def get_last_invalid_partition(self) -> Partition | None:
        """esp_ota_ops.c:esp_ota_get_last_invalid_partition(): of the entries
        check_invalid_otadata() flags (CRC-valid, INVALID or ABORTED),
        bootloader_common_select_otadata(..., false) takes the lower sequence number; its slot
        counts only while its image still passes image_validate(ESP_IMAGE_VERIFY_SILENT)."""
        otadata = self._otadata()
        if otadata is None or not self._slots:
            return None
        flagged = [
            e for e in otadata.entries
            if e.crc_ok and e.seq != ERASED_WORD and e.state in (OtaState.INVALID, OtaState.ABORTED)
        ]  # fmt: skip
        if not flagged:
            return None
        slot = self._slots[slot_for_seq(min(e.seq for e in flagged), len(self._slots))]
        return slot if self._verify(slot, silent=True) is not None else None
