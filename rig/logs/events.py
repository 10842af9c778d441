"""Typed events read from an ESP32 serial log.

One frozen dataclass per concept, so boot folding, waits and verdicts match on
types (`isinstance`) instead of re-parsing message text. Every
event keeps the `LogLine` it came from: a verdict quotes it as evidence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LogLine:
    """One console line after ANSI and `\\r` stripping; `level`/`timestamp`/`tag` are None for ROM lines."""

    level: str | None
    timestamp: str | None
    tag: str | None
    message: str
    raw: str

    @property
    def ms(self) -> int | None:
        """Milliseconds since boot when the timestamp is the default tick form."""
        if self.timestamp is not None and self.timestamp.isdigit():
            return int(self.timestamp)
        return None


@dataclass(frozen=True, kw_only=True)
class Event:
    """Common part: the source line, its 1-based number and the host receive time (if given)."""

    line: LogLine
    line_no: int
    t: float | None = None

    @property
    def is_error(self) -> bool:
        """True for E-level lines and for the unprefixed fatal lines (panic, brownout)."""
        return self.line.level == "E"


@dataclass(frozen=True, kw_only=True)
class OtherLine(Event):
    """Any line the parser has no concept for (including serial garbage)."""



# --- ROM -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RomBanner(Event):
    """`ets Jul 29 2019 12:21:46` / `ESP-ROM:esp32s3-20210327`: the chip has just reset."""

    build: str


@dataclass(frozen=True, kw_only=True)
class RomReset(Event):
    """`rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)`: starts a new boot."""

    reason_code: int
    reason: str
    boot_mode: int
    boot_mode_name: str

    @property
    def download_mode(self) -> bool:
        """The strapping pins selected the ROM download loader instead of flash boot."""
        return "DOWNLOAD" in self.boot_mode_name.upper()


@dataclass(frozen=True, kw_only=True)
class RomWaitingForDownload(Event):
    """`waiting for download`: the ROM loader waits for esptool."""



# --- bootloader --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BootloaderStart(Event):
    """`ESP-IDF %s 2nd stage bootloader`."""

    idf_version: str


@dataclass(frozen=True, kw_only=True)
class ChipRevision(Event):
    """`chip revision: v%d.%d`."""

    major: int
    minor: int


@dataclass(frozen=True, kw_only=True)
class PartitionRow(Event):
    """One row of the bootloader's partition-table dump."""

    index: int
    label: str
    usage: str
    type: int
    subtype: int
    offset: int
    length: int


@dataclass(frozen=True, kw_only=True)
class PartitionTableEnd(Event):
    """`End of partition table`."""



class BootDecision(enum.Enum):
    """The bootloader's INFO/ERROR selection lines (the rollback decisions themselves are DEBUG only)."""

    DEFAULT_FACTORY = "Defaulting to factory image"
    NO_FACTORY_TRY_OTA0 = "No factory image, trying OTA 0"
    OTADATA_INVALID_FALLBACK_FACTORY = "ota data partition invalid, falling back to factory"
    OTADATA_INVALID_TRY_ALL = "ota data partition invalid and no factory, will try all partitions"
    FALLBACK_TEST_APP = "Falling back to test app as only bootable partition"
    OTADATA_INITIAL_STATE = "otadata[0..1] in initial state"


@dataclass(frozen=True, kw_only=True)
class BootSelection(Event):
    """A boot-selection line; see `BootDecision`."""

    decision: BootDecision


@dataclass(frozen=True, kw_only=True)
class Segment(Event):
    """`segment %d: paddr=… vaddr=… size=…h (…) map|load|`: printed by bootloader and app verify."""

    index: int
    paddr: int
    vaddr: int
    size: int
    suffix: str


@dataclass(frozen=True, kw_only=True)
class SlotLoaded(Event):
    """`Loaded app from partition at offset 0x%x`: the only INFO evidence of which slot booted."""

    offset: int
    partition: str | None = None


@dataclass(frozen=True, kw_only=True)
class OtaSeqSet(Event):
    """`Set actual ota_seq=%u in otadata[0]`: virgin otadata got its first entry."""

    seq: int


class ImageErrorReason(enum.Enum):
    """Why `esp_image`/`boot_comm` refused an image."""

    INVALID_MAGIC = "invalid_magic"
    SEGMENT_COUNT = "segment_count"
    SEGMENT_LENGTH = "segment_length"
    SEGMENT_INVALID = "segment_invalid"
    SEGMENT_ADDRESS = "segment_address"
    PARTITION_TOO_LARGE = "partition_too_large"
    CHECKSUM = "checksum"
    HASH = "hash"
    LENGTH = "length"
    CHIP_ID = "chip_id"
    CHIP_REVISION = "chip_revision"


@dataclass(frozen=True, kw_only=True)
class ImageError(Event):
    """An image-validation error; `values` holds the line's numbers in order (offset, calculated/read …)."""

    reason: ImageErrorReason
    values: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SlotNotBootable(Event):
    """`OTA app partition slot %d is not bootable` (slot) or the factory/test variants (slot None)."""

    slot: int | None
    app: str  # "ota", "factory" or "test"


@dataclass(frozen=True, kw_only=True)
class NoBootableApp(Event):
    """`No bootable app partitions in the partition table`: the board is bricked."""



# --- signatures ----------------------------------------------------------------


class SignatureStep(enum.Enum):
    """Lines of the signed-image check (§5.5 sequences)."""

    VERIFYING = "verifying"
    TRUSTED_KEY_FROM_APP = "trusted_key_from_app"
    TRUSTED_KEY_FROM_EFUSE = "trusted_key_from_efuse"
    KEY_DIGEST_MATCH = "key_digest_match"
    VERIFYING_RSA_PSS = "verifying_rsa_pss"
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification_failed"
    SIMPLE_HASH = "simple_hash"
    VALID_SIGNATURE_BAD = "valid_signature_bad"
    IMAGE_CORRUPTED = "image_corrupted"
    RSA_PSS_FAILED = "rsa_pss_failed"
    SCHEME_MISMATCH = "scheme_mismatch"
    V1_INVALID_VERSION = "v1_invalid_version"


SIGNATURE_FAILURES = frozenset(
    {
        SignatureStep.VERIFICATION_FAILED,
        SignatureStep.VALID_SIGNATURE_BAD,
        SignatureStep.IMAGE_CORRUPTED,
        SignatureStep.RSA_PSS_FAILED,
        SignatureStep.SCHEME_MISMATCH,
        SignatureStep.V1_INVALID_VERSION,
    }
)


@dataclass(frozen=True, kw_only=True)
class SignatureEvent(Event):
    """A signature-verification step; `code` is the mbedtls error or bad version field when printed."""

    step: SignatureStep
    code: int | None = None

    @property
    def failed(self) -> bool:
        """The step reports a refused or corrupt signature."""
        return self.step in SIGNATURE_FAILURES


# --- OTA on the device -------------------------------------------------------------


class HttpsOtaStep(enum.Enum):
    """`esp_https_ota` lines."""

    STARTING = "starting"
    WRITING = "writing"
    CHIP_ID_MISMATCH = "chip_id_mismatch"
    BAD_DESCRIPTOR_MAGIC = "bad_descriptor_magic"
    HEADERS_INCOMPLETE = "headers_incomplete"
    CONNECTION_CLOSED_EARLY = "connection_closed_early"
    DATA_READ_ERROR = "data_read_error"
    OPEN_FAILED = "open_failed"
    ESTABLISH_FAILED = "establish_failed"
    FILE_NOT_FOUND = "file_not_found"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    OTA_BEGIN_FAILED = "ota_begin_failed"
    WRITE_FAILED = "write_failed"
    SET_BOOT_FAILED = "set_boot_failed"
    NO_SERVER_VERIFICATION = "no_server_verification"
    RANGE_IGNORED = "range_ignored"
    RESUME_FALLBACK = "resume_fallback"


@dataclass(frozen=True, kw_only=True)
class HttpsOtaEvent(Event):
    """An `esp_https_ota` line; `partition` for the v5.4+ `Writing to <label>` form, else `subtype`."""

    step: HttpsOtaStep
    partition: str | None = None
    subtype: int | None = None
    offset: int | None = None
    values: tuple[int, ...] = ()
    detail: str | None = None


class OtaOpsStep(enum.Enum):
    """`esp_ota_ops` lines."""

    INVALID_MAGIC = "invalid_magic"
    VERIFY_FAILED = "verify_failed"
    UNCONFIRMED_RUNNING_APP = "unconfirmed_running_app"
    SECURE_VERSION_LOWER = "secure_version_lower"
    ROLLBACK_IMPOSSIBLE = "rollback_impossible"
    ROLLBACK = "rollback"
    RUNNING_FACTORY = "running_factory"


@dataclass(frozen=True, kw_only=True)
class OtaOpsEvent(Event):
    """An `esp_ota_ops` line; `value` is the magic byte seen for INVALID_MAGIC."""

    step: OtaOpsStep
    value: int | None = None


class TlsStep(enum.Enum):
    """The TLS failure chain, in the order ESP-IDF prints it."""

    HANDSHAKE_FAILED = "handshake_failed"
    PEER_CERT_UNVERIFIED = "peer_cert_unverified"
    NEW_CONNECTION_FAILED = "new_connection_failed"
    TRANSPORT_CONNECT_FAILED = "transport_connect_failed"
    HTTP_CONNECT_FAILED = "http_connect_failed"
    READ_ERROR = "read_error"


@dataclass(frozen=True, kw_only=True)
class TlsEvent(Event):
    """A TLS/transport line; `code` is the mbedtls error for HANDSHAKE_FAILED (e.g. -0x2700)."""

    step: TlsStep
    code: int | None = None


# --- app ------------------------------------------------------------------------


class AppInfoField(enum.Enum):
    """`app_init` fields printed at every app start."""

    PROJECT = "Project name"
    VERSION = "App version"
    SECURE_VERSION = "Secure version"
    COMPILE_TIME = "Compile time"
    ELF_SHA256 = "ELF file SHA256"
    IDF = "ESP-IDF"


@dataclass(frozen=True, kw_only=True)
class AppInfo(Event):
    """One `app_init` field line."""

    field: AppInfoField
    value: str


@dataclass(frozen=True, kw_only=True)
class AppMainCalled(Event):
    """`Calling app_main()`: the app is running."""



@dataclass(frozen=True, kw_only=True)
class Panic(Event):
    """`Guru Meditation Error: Core  0 panic'ed (LoadProhibited). …`."""

    core: int
    reason: str

    @property
    def is_error(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class Rebooting(Event):
    """`Rebooting...` from the panic handler."""



@dataclass(frozen=True, kw_only=True)
class TaskWatchdog(Event):
    """`Task watchdog got triggered…`."""


    @property
    def is_error(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class Brownout(Event):
    """`Brownout detector was triggered`."""


    @property
    def is_error(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class EfuseAntiRollback(Event):
    """eFuse secure-version lines: `updated` when the field was burned, not when the app was too old."""

    updated: bool
    value: int | None


class ExampleMessage(enum.Enum):
    """Strings of Espressif's OTA example apps (and what their pytest suites wait for)."""

    ADVANCED_START = "Starting Advanced OTA example"
    ADVANCED_SUCCESS = "ESP_HTTPS_OTA upgrade successful. Rebooting ..."
    IMAGE_CORRUPTED = "Image validation failed, image is corrupted"
    GET_IMG_DESC_FAILED = "esp_https_ota_get_img_desc failed"
    ADVANCED_FAILED = "ESP_HTTPS_OTA upgrade failed"
    INCOMPLETE_DATA = "Complete data was not received."
    ROLLBACK_CANCELLED = "App is valid, rollback cancelled successfully"
    SECURE_VERSION_LOWER = "New firmware security version is less than eFuse programmed"
    SAME_VERSION = "Current running version is the same as a new. We will not continue the update."
    SIMPLE_START = "Starting OTA example task"
    SIMPLE_SUCCESS = "OTA Succeed, Rebooting..."
    SIMPLE_FAILED = "Firmware upgrade failed"
    NATIVE_RESTART = "Prepare to restart system!"
    NATIVE_LENGTH = "received package is not fit len"
    NATIVE_SAME_AS_INVALID = "New version is the same as invalid version."
    DIAGNOSTICS_OK = "Diagnostics completed successfully! Continuing execution ..."
    DIAGNOSTICS_FAILED = "Diagnostics failed! Start rollback to the previous version ..."
    BOOT_MISMATCH = "Configured OTA boot partition at offset"
    APP_MAIN_START = "OTA example app_main start"
    BEGIN_FAILED = "ESP HTTPS OTA Begin failed"
    NATIVE_FATAL = "Exiting task due to fatal error..."
    NATIVE_WAITING = "When a new firmware is available on the server, press the reset button to download it"
    WIFI_PROMPT = "Please input ssid password:"


@dataclass(frozen=True, kw_only=True)
class ExampleEvent(Event):
    """A line of an ESP-IDF OTA example app."""

    message: ExampleMessage


# --- rig_agent markers (PROTOCOL.md §1–§2) ---------------------------------------


@dataclass(frozen=True, kw_only=True)
class RigReady(Event):
    """`ready version=<v> running=<label> state=<STATE>`: console accepts commands."""

    version: str
    running: str
    state: str


@dataclass(frozen=True, kw_only=True)
class RigOtaBegin(Event):
    """`ota begin url=<url> resume_from=<bytes>`."""

    url: str
    resume_from: int


@dataclass(frozen=True, kw_only=True)
class RigOtaImage(Event):
    """`ota image version=<v> secure_version=<n> project=<name>`."""

    version: str
    secure_version: int
    project: str


@dataclass(frozen=True, kw_only=True)
class RigOtaRejected(Event):
    """W `ota rejected reason=<r> new=<v> running=<v>`."""

    reason: str
    new: str
    running: str


@dataclass(frozen=True, kw_only=True)
class RigOtaProgress(Event):
    """`ota progress bytes=<n> total=<n>`."""

    bytes: int
    total: int


@dataclass(frozen=True, kw_only=True)
class RigOtaSaved(Event):
    """`ota saved bytes=<n>`: resume point stored in NVS."""

    bytes: int


@dataclass(frozen=True, kw_only=True)
class RigOtaComplete(Event):
    """`ota complete bytes=<n>`: boot partition switched."""

    bytes: int


@dataclass(frozen=True, kw_only=True)
class RigOtaFailed(Event):
    """E `ota failed err=0x<hex> reason=<text>`: otadata untouched."""

    err: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class RigOtaRestarting(Event):
    """`ota restarting`."""



class SelftestStep(enum.Enum):
    """First-boot self-test markers."""

    BEGIN = "begin"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class RigSelftest(Event):
    """`selftest begin behaviour=<name>` / `selftest passed` / E `selftest failed`."""

    step: SelftestStep
    behaviour: str | None = None


@dataclass(frozen=True, kw_only=True)
class RigAppConfirmed(Event):
    """`app confirmed valid`."""



@dataclass(frozen=True, kw_only=True)
class RigStatus(Event):
    """The `status …` line; `fields` keeps every key=value in order, typed accessors for the defined ones."""

    fields: tuple[tuple[str, str], ...] = field(default=())

    def get(self, key: str) -> str | None:
        """The value of `key`, None when absent."""
        return dict(self.fields).get(key)

    @property
    def running(self) -> str | None:
        return self.get("running")

    @property
    def boot(self) -> str | None:
        return self.get("boot")

    @property
    def version(self) -> str | None:
        return self.get("version")

    @property
    def state(self) -> str | None:
        return self.get("state")

    @property
    def ota(self) -> str | None:
        return self.get("ota")


@dataclass(frozen=True, kw_only=True)
class RigReply(Event):
    """`ok <command>[ <details>]` / E `error <command> <reason>`."""

    ok: bool
    command: str
    details: str
