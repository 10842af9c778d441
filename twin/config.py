"""A twin board's build configuration: the sdkconfig choices that change what the
bootloader and the app decide, plus the lab's timing knobs.

Real boards get these from Kconfig at build time; a twin gets them from a dict
(a YAML section of the farm file), so one lab can hold boards built differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from rig.errors import InputError
from rig.esp.example_image import STOCK_PROJECTS


class SignedUpdates(Enum):
    """`CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT` and its scheme
    (bootloader_support/src/secure_boot_v2/secure_boot_signatures_app.c)."""

    NONE = "none"
    RSA3072 = "rsa3072"
    ECDSA256_V1 = "ecdsa256-v1"


@dataclass(frozen=True)
class KeepAlive:
    """TCP keep-alive of the OTA connection (esp_http_client keep_alive_*)."""

    idle_s: float = 5.0
    interval_s: float = 5.0
    count: int = 3

    @property
    def give_up_s(self) -> float:
        """How long a silent link lasts before lwIP aborts the socket."""
        return self.idle_s + self.interval_s * self.count


@dataclass(frozen=True)
class AwsOtaSettings:
    """The AWS OTA library's build-time settings (ota_config_defaults.h of
    ota-for-aws-iot-embedded-sdk v3.4.1; esp-aws-iot's ota_config.h keeps them except the
    self-test wait and status frequency), plus the bootloader's RTC watchdog
    (CONFIG_BOOTLOADER_WDT_TIME_MS, left running into the app by
    CONFIG_BOOTLOADER_WDT_DISABLE_IN_USER_CODE=n so a new image that never connects resets)."""

    log2_block_size: int = 12  # otaconfigLOG2_FILE_BLOCK_SIZE
    blocks_per_request: int = 1  # otaconfigMAX_NUM_BLOCKS_REQUEST
    request_momentum: int = 32  # otaconfigMAX_NUM_REQUEST_MOMENTUM
    request_wait_ms: int = 10000  # otaconfigFILE_REQUEST_WAIT_MS
    self_test_wait_ms: int = 16000  # otaconfigSELF_TEST_RESPONSE_WAIT_MS
    status_every: int = 64  # otaconfigOTA_UPDATE_STATUS_FREQUENCY
    allow_downgrade: bool = False  # otaconfigAllowDowngrade
    rtc_wdt_ms: int = 9000  # CONFIG_BOOTLOADER_WDT_TIME_MS
    reconnect_backoff_ms: int = 500  # the demo's first retry delay (backoffAlgorithm base)

    def __post_init__(self) -> None:
        if not 8 <= self.log2_block_size <= 17:
            raise ValueError("aws_ota.log2_block_size must be 8..17 (256 B..128 KiB blocks)")
        if min(self.blocks_per_request, self.request_momentum, self.status_every) < 1:
            raise ValueError("aws_ota counts must be at least 1")
        if min(self.request_wait_ms, self.self_test_wait_ms, self.rtc_wdt_ms, self.reconnect_backoff_ms) <= 0:
            raise ValueError("aws_ota times must be above zero")


@dataclass(frozen=True)
class MqttEndpoint:
    """What an AWS IoT firmware is built with: broker endpoint, thing name (its MQTT client
    id, CONFIG_MQTT_CLIENT_IDENTIFIER) and where its embedded certificates came from
    (rig.mqtt.pki layout: ca.pem, things/<thing>.pem/.key, codesign.pem)."""

    host: str
    port: int
    thing: str
    pki: str


@dataclass(frozen=True)
class BoardConfig:
    """Everything a twin needs to behave like one particular ESP-IDF build.

    Timing decides races with the rig (does a cut land before or after a boot?):
    `rom_boot_ms` is the ROM's share of a boot, before the 2nd-stage banner; the
    bootloader then reads and SHA-checks the app at `flash_read_bytes_per_s` (DIO
    40 MHz ≈ 5 MB/s); `restart_ms` is esp_restart's UART flush and shutdown handlers;
    `tcp_window` is lwIP's receive window (CONFIG_LWIP_TCP_WND_DEFAULT);
    `sector_erase_ms` is what esp_ota_write waits per 4 KiB sector it erases (real NOR
    takes ~45 ms; 4 ms keeps a lab OTA of 1 MiB near a second while a log-triggered
    cut still lands within a few sectors of its line, not after the whole image).
    """

    rollback: bool = True
    anti_rollback: bool = False
    signed_updates: SignedUpdates = SignedUpdates.NONE
    signed_on_boot: bool = False
    chip_rev_full: int = 300
    flash_size: int = 4 * 1024 * 1024
    table_offset: int = 0x8000
    log_colors: bool = False
    idf_version: str = "v5.5.5"
    http_timeout_ms: int = 5000
    keepalive: KeepAlive = field(default_factory=KeepAlive)
    task_wdt_timeout_ms: int = 5000
    rom_boot_ms: float = 30.0
    flash_read_bytes_per_s: int = 5_000_000
    restart_ms: float = 5.0
    sector_erase_ms: float = 4.0
    tcp_window: int = 5760
    firmware: str = "reference"
    firmware_overrides: Mapping[str, str] = field(default_factory=dict)
    aws_ota: AwsOtaSettings = field(default_factory=AwsOtaSettings)
    mqtt: MqttEndpoint | None = None

    def __post_init__(self) -> None:
        if self.anti_rollback and not self.rollback:
            raise InputError("anti_rollback needs rollback (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK)")
        if self.flash_read_bytes_per_s <= 0 or self.tcp_window <= 0:
            raise InputError("flash_read_bytes_per_s and tcp_window must be positive")
        if min(self.rom_boot_ms, self.restart_ms, self.sector_erase_ms) < 0:
            raise InputError("rom_boot_ms, restart_ms and sector_erase_ms must not be negative")
        if self.signed_on_boot and self.signed_updates is not SignedUpdates.ECDSA256_V1:
            raise InputError("signed_on_boot without hardware secure boot exists only for ecdsa256-v1")

    def model_for(self, project_name: str) -> str:
        """The firmware model that runs an image of this project: the board's overrides, then
        Espressif's stock OTA examples by their project name, then the board's firmware."""
        if project_name in self.firmware_overrides:
            return self.firmware_overrides[project_name]
        return project_name if project_name in STOCK_PROJECTS else self.firmware

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BoardConfig:
        """Build from a YAML/dict section; unknown keys are errors, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown board config key(s): {', '.join(unknown)}")
        values: dict[str, Any] = dict(data)
        try:
            if "signed_updates" in values:
                values["signed_updates"] = SignedUpdates(str(values["signed_updates"]))
            if "keepalive" in values and not isinstance(values["keepalive"], KeepAlive):
                values["keepalive"] = KeepAlive(**dict(values["keepalive"]))
            if "aws_ota" in values and not isinstance(values["aws_ota"], AwsOtaSettings):
                values["aws_ota"] = AwsOtaSettings(**dict(values["aws_ota"]))
            if (
                "mqtt" in values
                and values["mqtt"] is not None
                and not isinstance(values["mqtt"], MqttEndpoint)
            ):
                values["mqtt"] = MqttEndpoint(**dict(values["mqtt"]))
            if "firmware_overrides" in values:
                overrides = values["firmware_overrides"].items()
                values["firmware_overrides"] = {str(k): str(v) for k, v in overrides}
            for name in ("flash_size", "table_offset", "chip_rev_full"):
                if isinstance(values.get(name), str):
                    values[name] = int(values[name], 0)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad board config: {exc}") from exc
