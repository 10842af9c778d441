"""Espressif's simple_ota_example at ESP-IDF v5.5.5
(examples/system/ota/simple_ota_example/main/simple_ota_example.c) on a twin.

app_main(): NVS, the SHA-256 of the bootloader and of the running app
(get_sha256_of_partitions()), example_connect(); simple_ota_example_task() reads the URL and
makes one esp_https_ota() call (begin, perform loop, finish; abort on a perform error). It
restarts after a success; after a failure it loops for ever, as the example does.
"""

from __future__ import annotations

import hashlib

from rig.errors import FormatError
from rig.esp.image import parse
from twin.cpu import LogLevel
from twin.firmware import register
from twin.firmware.base import AppRuntime, FirmwareModel
from twin.firmware.https_ota import HttpsOta, OtaConfig
from twin.firmware.idf_example import ExampleApp
from twin.ota_ops import EspError

TAG = "simple_ota_example"
BOOTLOADER_OFFSET = 0x1000  # ESP_BOOTLOADER_OFFSET (esp32)
PARTITION_TABLE_OFFSET = 0x8000  # ESP_PARTITION_TABLE_OFFSET


def partition_sha256(data: bytes) -> bytes:
    """esp_partition_get_sha256() of an app-type region → bootloader_common_get_sha256_of_partition():
    the image's appended SHA-256 when it has one, else the SHA-256 computed over the image;
    a region holding no valid image gives all zeros (the call fails, the buffer stays zeroed)."""
    try:
        image = parse(data)
    except FormatError:
        return bytes(32)
    if image.hash_appended and image.hash_stored is not None:
        return image.hash_stored
    return hashlib.sha256(data[: image.image_length]).digest()


@register
class SimpleOta(FirmwareModel):
    """simple_ota_example.c, app_main() and simple_ota_example_task()."""

    name = "simple_ota"

    def run(self, app: AppRuntime) -> None:
        ex = ExampleApp.start(app, TAG)
        flash = app.cpu.flash
        bootloader = flash.read(BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET)
        ex.log(LogLevel.INFO, f"SHA-256 for bootloader:  {partition_sha256(bootloader).hex()}")
        ex.log(LogLevel.INFO, f"SHA-256 for current firmware:  {partition_sha256(app.app.data).hex()}")
        ex.example_connect()
        self._task(ex)
        app.cpu.halt()  # the task's `while (1) vTaskDelay(1000)` after a failure

    @staticmethod
    def _task(ex: ExampleApp) -> None:
        """simple_ota_example_task()."""
        rt = ex.rt
        ex.log(LogLevel.INFO, "Starting OTA example task")
        rt.log(LogLevel.INFO, "main_task", "Returned from app_main()")
        url = ex.upgrade_url("EXAMPLE_FIRMWARE_UPGRADE_URL")
        pem = ex.cert_pem()
        config = OtaConfig(
            url=url,
            cadata=pem.decode("ascii", "replace") if pem else None,
            timeout_ms=5000,  # esp_http_client's DEFAULT_TIMEOUT_MS: the example sets none
            keepalive=rt.config.keepalive,
            skip_common_name=ex.flag("EXAMPLE_SKIP_COMMON_NAME_CHECK"),
            tls13=ex.flag("MBEDTLS_SSL_PROTO_TLS1_3"),
        )
        ex.log(LogLevel.INFO, f"Attempting to download update from {url}")
        try:
            _esp_https_ota(HttpsOta(rt.cpu, rt.net, rt.ota, config))
        except EspError:
            ex.log(LogLevel.ERROR, "Firmware upgrade failed")
            return
        ex.log(LogLevel.INFO, "OTA Succeed, Rebooting...")
        rt.cpu.restart()


def _esp_https_ota(ota: HttpsOta) -> None:
    """esp_https_ota.c:esp_https_ota(): begin, perform until done, abort on a perform error,
    then finish (which validates and switches the boot partition)."""
    ota.begin()
    try:
        while ota.perform():
            pass
    except EspError:
        ota.abort()
        raise
    ota.finish()
