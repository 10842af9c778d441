"""The ESP32 OTA PAL of esp-aws-iot (libraries/ota-for-aws-iot-embedded-sdk/port/ota_pal.c and
aws_esp_ota_ops.c): how the AWS OTA library's file and image-state calls land on
esp_ota_ops, with the PAL's own log lines (tag AWS_OTA, its LIBRARY_LOG_NAME).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from rig.esp.otadata import OtaState
from rig.mqtt.pki import verify_file
from twin.cpu import LogLevel
from twin.firmware.base import AppRuntime
from twin.ota_ops import EspError, OtaHandle

TAG = "AWS_OTA"
RESET_DELAY_S = 0.5  # ota_pal.c: OTA_HALF_SECOND_DELAY before esp_restart()
ECDSA_SIG_SIZE = 64  # the raw r||s written after the image for the bootloader (secure boot v1 layout)


class PalStatus(enum.IntEnum):
    """OtaPalMainStatus_t (include/ota_platform_interface.h)."""

    SUCCESS = 0x0
    SIGNATURE_CHECK_FAILED = 0xE3
    RX_FILE_CREATE_FAILED = 0xE4
    BAD_IMAGE_STATE = 0xE8
    COMMIT_FAILED = 0xEB
    FILE_CLOSE = 0xEE

    @property
    def text(self) -> str:
        """OTA_PalStatus_strerror()."""
        return {
            PalStatus.SUCCESS: "OtaPalSuccess",
            PalStatus.SIGNATURE_CHECK_FAILED: "OtaPalSignatureCheckFailed",
            PalStatus.RX_FILE_CREATE_FAILED: "OtaPalRxFileCreateFailed",
            PalStatus.BAD_IMAGE_STATE: "OtaPalBadImageState",
            PalStatus.COMMIT_FAILED: "OtaPalCommitFailed",
            PalStatus.FILE_CLOSE: "OtaPalFileClose",
        }[self]


class ImageState(enum.IntEnum):
    """OtaImageState_t."""

    TESTING = 1
    ACCEPTED = 2
    REJECTED = 3
    ABORTED = 4


class PlatformState(enum.Enum):
    """OtaPalImageState_t."""

    VALID = "valid"
    PENDING_COMMIT = "pending_commit"
    INVALID = "invalid"


@dataclass
class _File:
    handle: OtaHandle
    written: int = 0
    valid_image: bool = False


class EspPal:
    """ota_pal.c's esp_ota_context_t and the eight PAL calls."""

    def __init__(self, rt: AppRuntime) -> None:
        self.rt = rt
        self.file: _File | None = None
        self.rtc_wdt_armed = False

    def _log(self, level: LogLevel, message: str) -> None:
        self.rt.log(level, TAG, message)

    def create_file(self) -> PalStatus:
        """otaPal_CreateFileForRx(): esp_ota_begin(next slot, OTA_SIZE_UNKNOWN) erases it whole."""
        ota = self.rt.ota
        try:
            target = ota.get_next_update_partition()
        except EspError:
            self._log(LogLevel.ERROR, "Failed to find update partition")
            return PalStatus.RX_FILE_CREATE_FAILED
        self._log(
            LogLevel.INFO, f"Writing to partition subtype {target.subtype} at offset 0x{target.offset:x}"
        )
        try:
            handle = ota.begin(target, erase_all=True)
        except EspError as error:
            self._log(LogLevel.ERROR, f"esp_ota_begin failed ({error.err.value})")
            return PalStatus.RX_FILE_CREATE_FAILED
        self.file = _File(handle)
        self._log(LogLevel.INFO, "esp_ota_begin succeeded")
        return PalStatus.SUCCESS

    def write_block(self, offset: int, data: bytes) -> int:
        """otaPal_WriteBlock(): esp_ota_write_with_offset(); -1 on failure."""
        if self.file is None:
            self._log(LogLevel.INFO, "Invalid OTA Context")
            return -1
        try:
            self.rt.ota.write_with_offset(self.file.handle, data, offset)
        except EspError:
            self._log(LogLevel.ERROR, f"Couldn't flash at the offset {offset}")
            return -1
        self.file.written += len(data)
        return len(data)

    def abort(self) -> None:
        """otaPal_Abort(): forget the context; the partly written slot stays as it is."""
        if self.file is not None:
            self.rt.ota.abort(self.file.handle)
        self.file = None

    def close_file(self, signature: bytes | None, codesign_cert: Path) -> PalStatus:
        """otaPal_CloseFile(): ECDSA-SHA256 check of the written bytes against the code-signing
        certificate the firmware embeds; a failure erases the slot, a success appends the raw
        signature after the image (for a secure-boot-v1 bootloader)."""
        file = self.file
        if file is None:
            return PalStatus.FILE_CLOSE
        if signature is None:
            self._log(LogLevel.ERROR, "Image Signature not found")
            self.file = None
            return PalStatus.SIGNATURE_CHECK_FAILED
        if file.written == 0:
            self._log(LogLevel.ERROR, "No data written to partition")
            return PalStatus.SIGNATURE_CHECK_FAILED
        part = file.handle.partition
        data = self.rt.cpu.flash.read(part.offset, file.written)
        try:
            cert = codesign_cert.read_bytes()
        except OSError:
            self._log(LogLevel.ERROR, "Cert read failed")
            return PalStatus.SIGNATURE_CHECK_FAILED
        if not verify_file(data, signature, cert):
            self._log(LogLevel.ERROR, "Signature verification failed.")
            self.rt.ota.erase_range(part)
            return PalStatus.SIGNATURE_CHECK_FAILED
        self._log(LogLevel.INFO, "Signature verification succeeded.")
        raw = _raw_ecdsa(signature)
        if raw is not None:
            self.rt.ota.write_with_offset(file.handle, raw, file.written)
            file.written += len(raw)
        file.valid_image = True
        return PalStatus.SUCCESS

    def activate(self) -> None:
        """otaPal_ActivateNewImage(): esp_ota_end() (full image verification), set the boot
        partition, reset; a failed verification erases the slot and resets all the same."""
        file = self.file
        ota = self.rt.ota
        if file is not None:
            try:
                ota.end(file.handle)
            except EspError:
                self._log(LogLevel.ERROR, "esp_ota_end failed!")
                ota.erase_range(file.handle.partition)
                self.reset()
            try:
                ota.set_boot_partition(file.handle.partition)
            except EspError as error:
                self._log(LogLevel.ERROR, f"esp_ota_set_boot_partition failed ({error.err.value})!")
                ota.erase_range(file.handle.partition)
                self.file = None
        self.reset()

    def reset(self) -> None:
        """otaPal_ResetDevice(): half a second for the log, then esp_restart()."""
        self.rt.cpu.sleep(RESET_DELAY_S)
        self.rt.cpu.restart()

    def _running_state(self) -> OtaState | None:
        try:
            return self.rt.ota.get_state_partition(self.rt.running)
        except EspError:
            return None

    def platform_state(self) -> PlatformState:
        """otaPal_GetPlatformImageState()."""
        self._log(LogLevel.INFO, "otaPal_GetPlatformImageState")
        if self.file is not None and self.file.written:
            return PlatformState.VALID if self.file.valid_image else PlatformState.INVALID
        state = self._running_state()
        if state is OtaState.PENDING_VERIFY:
            return PlatformState.PENDING_COMMIT
        if state in (OtaState.VALID, OtaState.NEW, None, OtaState.UNDEFINED):
            return PlatformState.VALID  # no otadata entry (first flash) reads as UNDEFINED: valid
        return PlatformState.INVALID

    def set_image_state(self, state: ImageState) -> PalStatus:
        """otaPal_SetPlatformImageState(): the running image's otadata state right after a
        boot, the update slot's while a download is open."""
        self._log(LogLevel.INFO, f"otaPal_SetPlatformImageState, {state.value}")
        target = {
            ImageState.ACCEPTED: OtaState.VALID,
            ImageState.REJECTED: OtaState.INVALID,
            ImageState.ABORTED: OtaState.ABORTED,
        }.get(state)
        message = {
            ImageState.ACCEPTED: (LogLevel.INFO, "Set image as valid one!"),
            ImageState.REJECTED: (LogLevel.WARN, "Set image as invalid!"),
            ImageState.ABORTED: (LogLevel.WARN, "Set image as aborted!"),
            ImageState.TESTING: (LogLevel.WARN, "Set image as testing!"),
        }[state]
        self._log(*message)
        if target is None:
            return PalStatus.SUCCESS
        running = self._running_state()
        ota = self.rt.ota
        if self.file is None or self.file.written == 0:
            if running is OtaState.PENDING_VERIFY:
                try:
                    ota.set_entry_state(target, active=True)
                except EspError as error:
                    self._log(LogLevel.ERROR, f"Failed to set ota flags {error.err.value}")
                    return PalStatus.COMMIT_FAILED
                self._log(LogLevel.INFO, "Disabling RTC hardware watchdog timer")
                self.rtc_wdt_armed = False
                return PalStatus.SUCCESS
            flags = running.value if running is not None else 0xFFFFFFFF
            self._log(LogLevel.WARN, f"Image not in self test mode {flags}")
            return PalStatus.SUCCESS if running in (OtaState.VALID, None) else PalStatus.COMMIT_FAILED
        if state is ImageState.ACCEPTED and not self.file.valid_image:
            return PalStatus.COMMIT_FAILED
        if running not in (OtaState.VALID, None):
            self._log(LogLevel.ERROR, "Currently executing firmware not marked as valid, abort")
            return PalStatus.COMMIT_FAILED
        try:
            ota.set_entry_state(target, active=False)
        except EspError as error:
            self._log(LogLevel.ERROR, f"Failed to set ota flags {error.err.value}")
            return PalStatus.COMMIT_FAILED
        return PalStatus.SUCCESS

    def erase_last_boot_partition(self) -> None:
        """ota_pal.c:otaPal_EraseLastBootPartition(): esp_ota_erase_last_boot_app_partition()."""
        running = self.rt.running
        boot = self.rt.ota.get_boot_partition() or running
        self.rt.log(LogLevel.INFO, TAG, f"Running partition type 0 subtype {running.subtype} "
                    f"(offset 0x{running.offset:08x})")  # fmt: skip
        self.rt.log(LogLevel.INFO, TAG, f"Configured partition type 0 subtype {boot.subtype} "
                    f"(offset 0x{boot.offset:08x})")  # fmt: skip
        self.rt.log(LogLevel.INFO, TAG, f"Current running firmware is: {running.name}")
        try:
            self.rt.ota.erase_last_boot_app_partition()
        except EspError as error:
            message = f"Failed to erase last boot partition! ({error.err.value})"
            self.rt.log(LogLevel.ERROR, "otaAppCallback", message)


def _raw_ecdsa(der: bytes) -> bytes | None:
    """ota_pal.c:asn1_to_raw_ecdsa(): DER (r, s) to 32-byte big-endian r || s."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        return None
    if r.bit_length() > 256 or s.bit_length() > 256:
        return None
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
