"""The twin's ESP-IDF v5.5 2nd-stage bootloader: partition table, otadata, rollback,
anti-rollback, full image verification and the fallback order (ESP-IDF v5.5.5 bootloader_support:
bootloader_utility.c, esp_image_format.c).

Every decision is ESP-IDF's and every line is printed as ESP-IDF prints it, because
the rig judges a boot only from these lines and from otadata read back from flash.
Otadata is rewritten as the real code does — erase the 4 KiB sector, then program
32 bytes — so a power cut between the two tears it like on a real chip.

`esp_image` verification lives here too: the app side (`twin.ota_ops`) runs the
same checks and prints the same lines, as `esp_image_verify` is shared code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rig.errors import FormatError
from rig.esp.appdesc import APP_DESC_MAGIC
from rig.esp.image import (
    AppImage,
    ImageCheck,
    ImageFault,
    Segment,
    fault_log_line,
    is_mapped,
    leading_segments,
    parse,
    verify_image,
)
from rig.esp.otadata import SECTOR_SIZE, OtaData, OtaEntry, OtaState, ota_seq_crc
from rig.esp.partitions import Partition, PartitionTable, verify_table_bytes
from rig.esp.signing import (
    SignatureVerdict,
    SigningScheme,
    embedded_verification_key,
    pss_verify_error,
    sbv2_sector_offset,
    signed_by,
    verify_signature,
)
from twin.config import BoardConfig, SignedUpdates
from twin.cpu import Cpu, LogLevel, ResetReason

INFO, WARN, ERROR = LogLevel.INFO, LogLevel.WARN, LogLevel.ERROR

TAG = "boot"
IMAGE_TAG = "esp_image"
FACTORY_INDEX = -1
TEST_INDEX = -2
ESP_ERR_NOT_FOUND = 0x105  # esp_err.h
TABLE_SIZE = 0xC00
# A real bootloader resets within a millisecond; a little slower keeps an idle crash loop cheap.
RESET_LOOP_DELAY_S = 0.05
BOOTLOADER_COMPILE_TIME = "Jan  1 2025 00:00:00"
_SPI_SIZE_NAMES = {1: "1MB", 2: "2MB", 4: "4MB", 8: "8MB", 16: "16MB"}
_SCHEMES = {
    SignedUpdates.RSA3072: SigningScheme.RSA3072_SBV2,
    SignedUpdates.ECDSA256_V1: SigningScheme.ECDSA256_V1,
}

_Log = Callable[[LogLevel, str, str], None]


@dataclass(frozen=True)
class VerifiedApp:
    """An app partition whose image passed verification."""

    partition: Partition
    image: AppImage
    data: bytes

    @property
    def project_name(self) -> str:
        return self.image.desc.project_name if self.image.desc else ""


def read_otadata(cpu: Cpu, part: Partition) -> OtaData:
    return OtaData.from_bytes(cpu.flash.read(part.offset, 2 * SECTOR_SIZE))


def write_otadata(cpu: Cpu, part: Partition, index: int, entry: OtaEntry) -> None:
    """The only way otadata is ever written: erase that sector, program the 32-byte entry."""
    address = part.offset + index * SECTOR_SIZE
    cpu.flash.erase(address, SECTOR_SIZE)
    cpu.flash.program(address, entry.encode())


def segment_lines(segments: Sequence[Segment], partition_offset: int, *, loading: bool) -> list[str]:
    """esp_image's per-segment lines; the bootloader says `load`, the app leaves RAM segments blank."""
    lines = []
    for index, seg in enumerate(segments):
        paddr = partition_offset + seg.file_offset + 8
        suffix = "map" if is_mapped(seg.load_addr) else "load" if loading else ""
        size = len(seg.data)
        lines.append(
            f"segment {index}: paddr={paddr:08x} vaddr={seg.load_addr:08x} "
            f"size={size:05x}h ({size:6d}) {suffix}"
        )
    return lines


# Faults found before esp_image walks the segments (so no segment lines precede them).
_SEGMENT_FAULTS = {ImageFault.BAD_SEGMENT_LENGTH, ImageFault.SEGMENT_MISMATCH}
_CHIP_FAULTS = {ImageFault.CHIP_ID_MISMATCH, ImageFault.CHIP_REV_TOO_LOW, ImageFault.CHIP_REV_TOO_HIGH}
_HEADER_FAULTS = {
    ImageFault.PARTITION_TOO_LARGE, ImageFault.BAD_MAGIC, ImageFault.TRUNCATED, ImageFault.TOO_MANY_SEGMENTS,
    ImageFault.CHIP_ID_MISMATCH, ImageFault.CHIP_REV_TOO_LOW, ImageFault.CHIP_REV_TOO_HIGH,
    ImageFault.BAD_SEGMENT_LENGTH,
}


@dataclass
class ImageVerifier:
    """esp_image_verify / image_load for one chip, boot or app side."""

    cpu: Cpu
    config: BoardConfig
    loading: bool

    def verify(
        self,
        partition: Partition,
        *,
        silent: bool = False,
        check_signature: bool = False,
        trusted_keys: Sequence[bytes] = (),
    ) -> VerifiedApp | None:
        data = self.cpu.flash.read(partition.offset, partition.size)
        check = verify_image(
            data,
            chip_id=0,
            chip_rev_full=self.config.chip_rev_full,
            partition_size=partition.size,
            partition_offset=partition.offset,
            signed_apps=_SCHEMES.get(self.config.signed_updates),
        )
        log: _Log = _quiet if silent else self.cpu.log
        image = check.image
        if image is None and check.fault not in _HEADER_FAULTS:
            image = parse(data)
        segments = image.segments if image is not None else ()
        if check.fault in _SEGMENT_FAULTS:
            # esp_image walks the segments logging each: those before the failing one print.
            segments = leading_segments(data, check.detail["segment"])
            image = None
        for line in segment_lines(segments, partition.offset, loading=self.loading):
            log(INFO, IMAGE_TAG, line)
        if image is not None and self.loading:
            # bootloader_utility loads and SHA-checks the image at flash-read speed.
            self.cpu.sleep(image.image_length / self.config.flash_read_bytes_per_s)
        if check.fault is not None and not (check_signature and check.fault is ImageFault.HASH):
            fault_line = fault_log_line(check)
            if fault_line is not None:
                level, tag, message = fault_line
                # bootloader_common_loader.c:bootloader_common_check_chip_validity() logs with
                # ESP_LOGE directly, not through FAIL_LOAD: ESP_IMAGE_VERIFY_SILENT cannot quiet it.
                (self.cpu.log if check.fault in _CHIP_FAULTS else log)(LogLevel(level), tag, message)
            return None
        assert image is not None
        # verify_secure_boot_signature() and the secure_boot_v2 lines log whatever the mode:
        # ESP_IMAGE_VERIFY_SILENT only quiets esp_image's segment and format lines.
        if check_signature and not self._signature_ok(data, check, image, trusted_keys, self.cpu.log):
            return None
        return VerifiedApp(partition, image, data)

    def _signature_ok(
        self, data: bytes, check: ImageCheck, image: AppImage, trusted: Sequence[bytes], log: _Log
    ) -> bool:
        """esp_image_format.c:verify_secure_boot_signature(): the signature first, the simple
        hash only to explain a failure."""
        log(INFO, IMAGE_TAG, "Verifying image signature...")
        rsa = self.config.signed_updates is SignedUpdates.RSA3072
        if rsa:
            log(INFO, "secure_boot_v2", "Take trusted digest key(s) from running app")
        verdict = verify_signature(data, trusted)
        if verdict is SignatureVerdict.VERIFIED:
            if rsa:
                log(INFO, "secure_boot_v2", "#0 app key digest == #0 trusted key digest")
                log(INFO, "secure_boot_v2", "Verifying with RSA-PSS...")
                log(INFO, "secure_boot_v2_rsa", "Signature verified successfully!")
            # esp_image_format.c:verify_secure_boot_signature(): with a signature the appended
            # SHA-256 ("simple hash") is only looked at to explain a failed signature.
            return check.fault in (None, ImageFault.HASH)
        if verdict in (SignatureVerdict.BAD_SIGNATURE, SignatureVerdict.DIGEST_MISMATCH) and rsa:
            log(INFO, "secure_boot_v2", "#0 app key digest == #0 trusted key digest")
            log(INFO, "secure_boot_v2", "Verifying with RSA-PSS...")
            error = pss_verify_error(data, sbv2_sector_offset(image.image_length))
            message = f"Failed mbedtls_rsa_rsassa_pss_verify, err: {error}"
            log(ERROR, "secure_boot_v2_rsa", message)
        if verdict is SignatureVerdict.NO_SIGNATURE and not rsa:
            end = image.image_length
            version = int.from_bytes(data[end : end + 4].ljust(4, b"\xff"), "little")
            message = f"image has invalid signature version field 0x{version:08x} "
            message += "(image without a signature?)"
            log(ERROR, "secure_boot_v1", message)
        log(ERROR, IMAGE_TAG, "Secure boot signature verification failed")
        log(INFO, IMAGE_TAG, "Calculating simple hash to check for corruption...")
        if check.fault is ImageFault.HASH:
            log(WARN, IMAGE_TAG, "image corrupted on flash")
        else:
            log(WARN, IMAGE_TAG, "image valid, signature bad")
        return False


def _quiet(level: LogLevel, tag: str, message: str) -> None:
    """The log sink of ESP_IMAGE_VERIFY_SILENT."""


def trusted_keys_of(running_image: bytes) -> list[bytes]:
    """Signed apps without secure boot trust the running app: the digest of the key that
    signed it (secure_boot_v2/secure_boot_signatures_app.c), or, with the v1 (ECDSA) scheme,
    the public key it embeds (secure_boot_v1/secure_boot_signatures_app.c:
    esp_secure_boot_verify_ecdsa_signature_block() reads `signature_verification_key_start`)."""
    digest = signed_by(running_image)
    if digest is not None:
        return [digest]
    embedded = embedded_verification_key(running_image)
    return [] if embedded is None else [embedded]


def app_secure_version(cpu: Cpu, partition: Partition) -> int | None:
    """bootloader_common_get_partition_description: the desc's secure_version, if the magic is right."""
    raw = cpu.flash.read(partition.offset + 0x20, 8)
    if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
        return None
    return int.from_bytes(raw[4:8], "little")


def update_anti_rollback(cpu: Cpu, secure_version: int) -> None:
    """esp_efuse_update_secure_version: burn only upwards, with its efuse line."""
    if cpu.efuse.secure_version < secure_version:
        cpu.efuse.burn_secure_version(secure_version)
        cpu.log(INFO, "efuse", f"Anti-rollback is set. eFuse field is updated({secure_version}).")


class Bootloader:
    """One run of the 2nd-stage bootloader on a chip; `run` returns the app to start."""

    def __init__(self, cpu: Cpu, config: BoardConfig) -> None:
        self.cpu = cpu
        self.config = config
        self.verifier = ImageVerifier(cpu, config, loading=True)
        self.initial_contents = False

    def log(self, level: LogLevel, message: str, tag: str = TAG) -> None:
        self.cpu.log(level, tag, message)

    def run(self) -> tuple[PartitionTable, VerifiedApp]:
        """Print the banner, choose and verify an app; never returns without one (resets instead)."""
        # The ROM's share: clocks, SPI flash setup, loading this bootloader.
        self.cpu.sleep(self.config.rom_boot_ms / 1000)
        self._banner()
        table = self._load_table()
        start = self._select(table)
        app = self._load_loop(table, start)
        self.log(INFO, "Disabling RNG early entropy source...")
        return table, app

    def _fail(self) -> None:
        """bootloader_reset(): a real one spins in this reset loop until something changes."""
        self.cpu.sleep(RESET_LOOP_DELAY_S)
        self.cpu.reset(ResetReason.SW_RESET)

    def _banner(self) -> None:
        rev = self.config.chip_rev_full
        self.log(INFO, f"ESP-IDF {self.config.idf_version} 2nd stage bootloader")
        self.log(INFO, f"compile time {BOOTLOADER_COMPILE_TIME}")
        self.log(INFO, "Multicore bootloader")
        self.log(INFO, f"chip revision: v{rev // 100}.{rev % 100}")
        self.log(INFO, "SPI Speed      : 40MHz", "boot.esp32")
        self.log(INFO, "SPI Mode       : DIO", "boot.esp32")
        size = _SPI_SIZE_NAMES.get(self.config.flash_size // (1024 * 1024), "4MB")
        self.log(INFO, f"SPI Flash Size : {size}", "boot.esp32")
        self.log(INFO, "Enabling RNG early entropy source...")

    def _load_table(self) -> PartitionTable:
        raw = self.cpu.flash.read(self.config.table_offset, TABLE_SIZE)
        try:
            table = verify_table_bytes(raw, self.config.flash_size)
        except FormatError as exc:
            self.log(ERROR, str(exc), "flash_parts")
            self.log(ERROR, "Failed to verify partition table")
            self.log(ERROR, "load partition table error!")
            self._fail()
            raise AssertionError("unreachable: reset returned") from exc
        self.log(INFO, "Partition Table:")
        self.log(INFO, "## Label            Usage          Type ST Offset   Length")
        for index, p in enumerate(table.partitions):
            row = f"{index:2d} {p.name:<16s} {p.usage:<16s} {p.type:02x} {p.subtype:02x} "
            row += f"{p.offset:08x} {p.size:08x}"
            self.log(INFO, row)
        self.log(INFO, "End of partition table")
        otadata = table.otadata
        if otadata is not None and otadata.size < 2 * SECTOR_SIZE:
            minimum = 2 * SECTOR_SIZE
            # bootloader_common_read_otadata() fails, get_selected_boot_partition() returns
            # INVALID_INDEX and bootloader_start.c resets: no "load partition table error!".
            self.log(ERROR, f"ota_info partition size {otadata.size} is too small (minimum {minimum} bytes)")
            self._fail()
        return table

    def _select(self, table: PartitionTable) -> int:
        """bootloader_utility.c:bootloader_utility_get_selected_boot_partition()."""
        part = table.otadata
        if part is None:
            return FACTORY_INDEX
        otadata = read_otadata(self.cpu, part)
        entries = list(otadata.entries)
        if self.config.rollback:
            for i, entry in enumerate(entries):
                if entry.state == OtaState.PENDING_VERIFY:
                    entries[i] = entry.with_state(OtaState.ABORTED)
                    write_otadata(self.cpu, part, i, entries[i])
        otadata = OtaData((entries[0], entries[1]))
        n = len(table.ota_slots)
        virgin = all(e.seq == 0xFFFFFFFF or e.crc != ota_seq_crc(e.seq) for e in entries)
        if self.config.anti_rollback:
            return self._select_anti_rollback(table, part, otadata, virgin)
        if all(e.is_invalid for e in entries) or n == 0:
            if table.factory is not None:
                self.log(INFO, "Defaulting to factory image")
                return FACTORY_INDEX
            self.log(INFO, "No factory image, trying OTA 0")
            self.initial_contents = virgin
            return 0
        return self._from_active(table, part, otadata)

    def _from_active(self, table: PartitionTable, part: Partition, otadata: OtaData) -> int:
        active = otadata.active_index()
        n = len(table.ota_slots)
        if active is None:
            if table.factory is not None:
                self.log(ERROR, "ota data partition invalid, falling back to factory")
            else:
                self.log(ERROR, "ota data partition invalid and no factory, will try all partitions")
            return FACTORY_INDEX
        entry = otadata.entries[active]
        slot = ((entry.seq - 1) & 0xFFFFFFFF) % n
        if self.config.rollback and entry.state == OtaState.NEW:
            write_otadata(self.cpu, part, active, entry.with_state(OtaState.PENDING_VERIFY))
        if self.config.anti_rollback and entry.state == OtaState.VALID:
            self._update_anti_rollback(table.ota_slots[slot])
        return slot

    def _select_anti_rollback(
        self, table: PartitionTable, part: Partition, otadata: OtaData, virgin: bool
    ) -> int:
        self.log(INFO, "Enabled a check secure version of app for anti rollback")
        fuse = self.cpu.efuse.secure_version
        self.log(INFO, f"Secure version (from eFuse) = {fuse}")
        if virgin:
            self.log(INFO, "otadata[0..1] in initial state")
            self.initial_contents = True
            return FACTORY_INDEX
        n = len(table.ota_slots)
        entries = list(otadata.entries)
        for i, entry in enumerate(entries):
            # get_active_otadata_with_check_anti_rollback() runs check_anti_rollback() per entry
            slot = table.ota_slots[((entry.seq - 1) & 0xFFFFFFFF) % n] if n else None
            if entry.is_selectable and slot is not None and not self._check_anti_rollback(slot):
                entries[i] = OtaEntry.erased()
        return self._from_active(table, part, OtaData((entries[0], entries[1])))

    def _partition(self, table: PartitionTable, index: int) -> Partition | None:
        if index == FACTORY_INDEX:
            return table.factory
        if index == TEST_INDEX:
            return table.test_app
        slots = table.ota_slots
        return slots[index] if 0 <= index < len(slots) else None

    def _try(self, table: PartitionTable, index: int) -> VerifiedApp | None:
        part = self._partition(table, index)
        if part is None:
            return None
        app = None
        if self._check_anti_rollback(part):
            keys = self._boot_keys(part)
            app = self.verifier.verify(part, check_signature=self.config.signed_on_boot, trusted_keys=keys)
        if app is not None:
            self.log(INFO, f"Loaded app from partition at offset 0x{part.offset:x}")
            return app
        if index == FACTORY_INDEX:
            self.log(ERROR, "Factory app partition is not bootable")
        else:
            self.log(ERROR, f"OTA app partition slot {index} is not bootable")
        return None

    def _boot_keys(self, part: Partition) -> list[bytes]:
        """Signed-on-boot (ECDSA v1) trusts the key built into the bootloader: the one that signed the app."""
        if not self.config.signed_on_boot:
            return []
        digest = signed_by(self.cpu.flash.read(part.offset, part.size))
        return [] if digest is None else [digest]

    def _check_anti_rollback(self, part: Partition) -> bool:
        """bootloader_utility.c:check_anti_rollback(): an app whose descriptor cannot be read
        is refused with `Failed to get partition description 261` (ESP_ERR_NOT_FOUND)."""
        if not self.config.anti_rollback:
            return True
        version = app_secure_version(self.cpu, part)
        if version is None:
            self.log(ERROR, f"Failed to get partition description {ESP_ERR_NOT_FOUND}")
            return False
        return version >= self.cpu.efuse.secure_version

    def _load_loop(self, table: PartitionTable, start: int) -> VerifiedApp:
        """bootloader_utility_load_boot_image's order: start down to factory, then up, then test."""
        n = len(table.ota_slots)
        order = [*range(start, FACTORY_INDEX - 1, -1), *range(start + 1, n)]
        for index in order:
            if self._partition(table, index) is None:
                continue
            app = self._try(table, index)
            if app is not None:
                self._set_actual_ota_seq(table, index)
                return app
        test = table.test_app
        if test is not None:
            # bootloader_utility_load_boot_image(): the warning comes before load_image()
            # prints where it loaded from, and a test app that fails goes straight to the
            # final error (log_invalid_app_partition() is never called for it here).
            app = self.verifier.verify(test) if self._check_anti_rollback(test) else None
            if app is not None:
                self.log(WARN, "Falling back to test app as only bootable partition")
                self.log(INFO, f"Loaded app from partition at offset 0x{test.offset:x}")
                return app
        self.log(ERROR, "No bootable app partitions in the partition table")
        self._fail()
        raise AssertionError("unreachable: reset returned")

    def _set_actual_ota_seq(self, table: PartitionTable, index: int) -> None:
        part = table.otadata
        if index <= FACTORY_INDEX or not self.initial_contents or part is None:
            return
        entry = OtaEntry.make(index + 1, OtaState.VALID)
        write_otadata(self.cpu, part, 0, entry)
        self.log(INFO, f"Set actual ota_seq={entry.seq} in otadata[0]")
        if self.config.anti_rollback:
            self._update_anti_rollback(table.ota_slots[index])

    def _update_anti_rollback(self, part: Partition) -> None:
        """bootloader_utility.c:update_anti_rollback()."""
        version = app_secure_version(self.cpu, part)
        if version is None:
            self.log(ERROR, f"Failed to get partition description {ESP_ERR_NOT_FOUND}")
        else:
            update_anti_rollback(self.cpu, version)
