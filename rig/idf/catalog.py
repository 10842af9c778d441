"""Espressif's OTA example tests (ESP-IDF v5.5.5 `examples/system/ota/*/pytest_*.py`) as the
lab sees them: which CI configs (`sdkconfig.ci.<config>`) a lab board can hold, and for each
that it cannot, why.

A config the lab can build becomes a lab build (rig/idf/builds.py) with the choices below;
the example code above example_connect() is the same on Wi-Fi and Ethernet, so Espressif's
Ethernet runner configs become Wi-Fi lab builds. Everything else is named with its reason,
so a skipped test always says what it would need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from rig.esp.example_image import KconfigValue

LAB_TARGET = "esp32"
# sdkconfig.ci files put the partition table at 0xC000 for signed builds (bigger bootloader).
SIGNED_TABLE_OFFSET = 0xC000


class LabBoard(Enum):
    """The lab boards `rig idf-tests` brings up: one per bootloader build the configs need."""

    PLAIN = "plain"  # no signed apps
    RSA = "rsa"  # CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT + RSA (secure boot v2 scheme)
    ECDSA = "ecdsa"  # CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT + ECDSA (secure boot v1 scheme)


@dataclass(frozen=True)
class CiConfig:
    """One `sdkconfig.ci.<name>` the lab can build: its example choices, signing and board."""

    choices: Mapping[str, KconfigValue]
    board: LabBoard = LabBoard.PLAIN
    signing_key: str | None = None  # relative to the example directory, as the sdkconfig names it
    table_offset: int = 0x8000


_CI = {
    "EXAMPLE_SKIP_COMMON_NAME_CHECK": True,
    "EXAMPLE_SKIP_VERSION_CHECK": True,
    "EXAMPLE_OTA_RECV_TIMEOUT": 3000,
}
_CN = {"EXAMPLE_SKIP_COMMON_NAME_CHECK": True}

BUILDABLE: Mapping[str, Mapping[str, CiConfig]] = MappingProxyType(
    {
        "advanced_https_ota": {
            "default": CiConfig(_CI),
            "ota_resumption": CiConfig({**_CI, "EXAMPLE_ENABLE_OTA_RESUMPTION": True}),
            "partial_download": CiConfig(
                {**_CI, "EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD": True, "LOG_DEFAULT_LEVEL_DEBUG": True}
            ),
            "ota_resumption_partial_download": CiConfig(
                {**_CI, "EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD": True, "EXAMPLE_ENABLE_OTA_RESUMPTION": True}
            ),
        },
        "simple_ota": {
            "default": CiConfig({**_CN, "EXAMPLE_WIFI_SSID_PWD_FROM_STDIN": True}),
            "on_update_no_sb_rsa": CiConfig(
                _CN, LabBoard.RSA, "test/secure_boot_signing_key.pem", SIGNED_TABLE_OFFSET
            ),
            "on_update_no_sb_ecdsa": CiConfig(
                _CN, LabBoard.ECDSA, "test/secure_boot_signing_key_ecdsa.pem", SIGNED_TABLE_OFFSET
            ),
            "tls1_3": CiConfig({**_CN, "MBEDTLS_SSL_PROTO_TLS1_3": True}),
            "tls1_3_only_dynamic": CiConfig({**_CN, "MBEDTLS_SSL_PROTO_TLS1_3": True}),
            "tls1_2_dynamic": CiConfig({**_CN, "MBEDTLS_SSL_PROTO_TLS1_3": True}),
        },
        "native_ota": {
            "default": CiConfig(_CI),
        },
    }
)

# Configs and markers a lab board cannot hold, with the reason a skipped test reports.
FLASH_ENCRYPTION = (
    "needs flash encryption (CONFIG_SECURE_FLASH_ENC_ENABLED): the twin does not model encrypted flash"
)
UNBUILDABLE: Mapping[str, str] = MappingProxyType(
    {
        "ota_resumption_flash_enc": FLASH_ENCRYPTION,
        "flash_enc_wifi": FLASH_ENCRYPTION,
        "anti_rollback": FLASH_ENCRYPTION + " (and an emulated-eFuse partition)",
        "nimble": "needs BLE (a NimBLE GATT server beside the OTA): the twin has no Bluetooth radio",
        "bluedroid": "needs BLE (a Bluedroid GATT server beside the OTA): the twin has no Bluetooth radio",
        "spiram": "needs an ESP32-WROVER with PSRAM and an Ethernet PHY (CONFIG_SPIRAM): a twin has none",
        "verify_revision": "QEMU-only (esp32c3 under Espressif's QEMU); no ESP32 QEMU machine here",
    }
)
MARKER_REASONS: Mapping[str, str] = MappingProxyType(
    {"qemu": "QEMU-only (Espressif's QEMU fork; Debian's qemu-system-xtensa has no esp32 machine)"}
)
# Espressif's other OTA suites (examples/system/ota/*/pytest_*.py), not run here, and why.
OTHER_SUITES: Mapping[str, str] = MappingProxyType(
    {
        "examples/system/ota/partitions_ota": (
            "updates the bootloader, the partition table and a data partition through esp_https_ota's "
            "staging/final partitions; the twin models app-slot updates only (and two of its configs "
            "need flash encryption or virtual secure boot)"
        ),
        "examples/system/ota/otatool": (
            "its get_running_partition.py opens the port with serial.Serial(), which takes a local "
            "device path, not the RFC2217 URL a lab (or ser2net) board is reached by; it runs on a "
            "farm board on a local USB-UART"
        ),
    }
)
# Markers Espressif's files use (registered so a strict run does not trip on them).
MARKERS = ("ethernet_ota", "wifi_high_traffic", "flash_encryption_ota", "flash_encryption_wifi_high_traffic",
           "nightly_run", "host_test", "qemu")  # fmt: skip


def skip_reason(project: str, config: str, target: str | None, markers: frozenset[str]) -> str | None:
    """Why a test of `project` built as `config` for `target` cannot run on the lab (None: it can)."""
    for marker, reason in MARKER_REASONS.items():
        if marker in markers:
            return reason
    if target not in (None, LAB_TARGET):
        return f"target {target}: the lab's boards are {LAB_TARGET}"
    if config in UNBUILDABLE:
        return UNBUILDABLE[config]
    if config not in BUILDABLE.get(project, {}):
        return f"no lab build of {project} config {config!r}"
    return None
