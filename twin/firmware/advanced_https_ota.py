"""Espressif's advanced_https_ota example at ESP-IDF v5.5.5
(examples/system/ota/advanced_https_ota/main/advanced_https_ota_example.c) on a twin.

app_main(): NVS, example_connect(), then (rollback builds) the new image confirms itself once
connected; advanced_ota_example_task() reads the URL, runs esp_https_ota_begin /
get_img_desc / validate_image_header() / perform loop / finish, printing the example's
ESP_HTTPS_OTA_EVENT handler lines, with resumption state kept in NVS when the build enables
it. It restarts only after a successful update; on any failure the task deletes itself and
the app idles until the next reset, as the example does.
"""

from __future__ import annotations

from rig.esp.appdesc import AppDescriptor
from rig.esp.otadata import OtaState
from twin.cpu import LogLevel
from twin.firmware import register
from twin.firmware.base import AppRuntime, FirmwareModel
from twin.firmware.https_ota import HttpsOta, OtaConfig, OtaEvent
from twin.firmware.idf_example import ExampleApp
from twin.ota_ops import Err, EspError

TAG = "advanced_https_ota_example"
NVS_WR_LENGTH = "ota_resumption/nvs_ota_wr_len"  # NVS_NAMESPACE_OTA_RESUMPTION / NVS_KEY_OTA_WR_LENGTH
NVS_SAVED_URL = "ota_resumption/nvs_ota_url"  # NVS_KEY_SAVED_URL


@register
class AdvancedHttpsOta(FirmwareModel):
    """advanced_https_ota_example.c, app_main() and advanced_ota_example_task()."""

    name = "advanced_https_ota"

    def run(self, app: AppRuntime) -> None:
        ex = ExampleApp.start(app, TAG)
        ex.example_connect()
        if app.config.rollback:
            self._confirm(ex)
        self._task(ex)
        app.cpu.halt()  # vTaskDelete(NULL): nothing runs until the next reset

    @staticmethod
    def _confirm(ex: ExampleApp) -> None:
        """CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: a connected Wi-Fi is the example's checkpoint."""
        ota = ex.rt.ota
        try:
            state = ota.get_state_partition(ex.rt.running)
        except EspError:
            return
        if state is not OtaState.PENDING_VERIFY:
            return
        try:
            ota.mark_app_valid_cancel_rollback()
        except EspError:
            ex.log(LogLevel.ERROR, "Failed to cancel rollback")
            return
        ex.log(LogLevel.INFO, "App is valid, rollback cancelled successfully")

    def _task(self, ex: ExampleApp) -> None:
        """advanced_ota_example_task()."""
        rt = ex.rt
        ex.log(LogLevel.INFO, "Starting Advanced OTA example")
        rt.log(LogLevel.INFO, "main_task", "Returned from app_main()")
        url = ex.upgrade_url("EXAMPLE_FIRMWARE_UPGRADE_URL")
        resumption = ex.flag("EXAMPLE_ENABLE_OTA_RESUMPTION")
        written = self._saved_length(ex, url) if resumption else 0
        partial = ex.flag("EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD")
        pem = ex.cert_pem()
        config = OtaConfig(
            url=url,
            cadata=pem.decode("ascii", "replace") if pem else None,
            timeout_ms=ex.number("EXAMPLE_OTA_RECV_TIMEOUT"),
            keepalive=rt.config.keepalive,
            partial_http_download=partial,
            max_http_request_size=ex.number("EXAMPLE_HTTP_REQUEST_SIZE") if partial else 0,
            ota_resumption=resumption,
            ota_image_bytes_written=written,
            skip_common_name=ex.flag("EXAMPLE_SKIP_COMMON_NAME_CHECK"),
            tls13=ex.flag("MBEDTLS_SSL_PROTO_TLS1_3"),
            log_debug=ex.flag("LOG_DEFAULT_LEVEL_DEBUG"),
        )
        ota = HttpsOta(rt.cpu, rt.net, rt.ota, config, on_event=lambda e, d: self._event(ex, e, d))
        try:
            ota.begin()
        except EspError:
            ex.log(LogLevel.ERROR, "ESP HTTPS OTA Begin failed")
            return
        try:
            desc = ota.get_img_desc()
        except EspError:
            ex.log(LogLevel.ERROR, "esp_https_ota_get_img_desc failed")
            self._ota_end(ex, ota)
            return
        if not self._validate_image_header(ex, desc):
            ex.log(LogLevel.ERROR, "image header verification failed")
            self._ota_end(ex, ota)
            return
        while True:
            try:
                if not ota.perform():
                    break
            except EspError:
                break
            ex.log(LogLevel.DEBUG, f"Image bytes read: {ota.received}")
            if resumption:
                self._save_length(ex, ota.received, url)
        if not ota.is_complete_data_received():
            ex.log(LogLevel.ERROR, "Complete data was not received.")
            self._ota_end(ex, ota)
            return
        if resumption:
            rt.nvs.erase(NVS_WR_LENGTH)
            rt.nvs.erase(NVS_SAVED_URL)
        try:
            ota.finish()
        except EspError as exc:
            if exc.err is Err.ESP_ERR_OTA_VALIDATE_FAILED:
                ex.log(LogLevel.ERROR, "Image validation failed, image is corrupted")
            ex.log(LogLevel.ERROR, f"ESP_HTTPS_OTA upgrade failed 0x{exc.err.value & 0xFFFFFFFF:x}")
            return
        ex.log(LogLevel.INFO, "ESP_HTTPS_OTA upgrade successful. Rebooting ...")
        rt.cpu.sleep(1.0)  # vTaskDelay(1000 / portTICK_PERIOD_MS)
        rt.cpu.restart()

    @staticmethod
    def _ota_end(ex: ExampleApp, ota: HttpsOta) -> None:
        """The `ota_end:` label: esp_https_ota_abort(), then the failure line."""
        ota.abort()
        ex.log(LogLevel.ERROR, "ESP_HTTPS_OTA upgrade failed")

    @staticmethod
    def _event(ex: ExampleApp, event: OtaEvent, data: int | None) -> None:
        """The example's event_handler() for ESP_HTTPS_OTA_EVENT."""
        lines = {
            OtaEvent.START: "OTA started",
            OtaEvent.CONNECTED: "Connected to server",
            OtaEvent.GET_IMG_DESC: "Reading Image Description",
            OtaEvent.VERIFY_CHIP_ID: f"Verifying chip id of new image: {data}",
            OtaEvent.VERIFY_CHIP_REVISION: f"Verifying chip revision of new image: {data}",
            OtaEvent.UPDATE_BOOT_PARTITION: f"Boot partition updated. Next Partition: {data}",
            OtaEvent.FINISH: "OTA finish",
            OtaEvent.ABORT: "OTA abort",
        }
        if event is OtaEvent.WRITE_FLASH:
            ex.log(LogLevel.DEBUG, f"Writing to flash: {data} written")
        elif event in lines:
            ex.log(LogLevel.INFO, lines[event])

    @staticmethod
    def _validate_image_header(ex: ExampleApp, new: AppDescriptor) -> bool:
        """validate_image_header(): the 32-byte version must differ from the running one
        (unless CONFIG_EXAMPLE_SKIP_VERSION_CHECK), and with anti-rollback the new
        secure_version must not be below the eFuse's."""
        running = ex.rt.desc
        ex.log(LogLevel.INFO, f"Running firmware version: {running.version}")
        if not ex.flag("EXAMPLE_SKIP_VERSION_CHECK") and new.version == running.version:
            ex.log(
                LogLevel.WARN,
                "Current running version is the same as a new. We will not continue the update.",
            )
            return False
        if ex.rt.config.anti_rollback:
            fuse = ex.rt.cpu.efuse.secure_version
            if new.secure_version < fuse:
                message = (
                    "New firmware security version is less than eFuse programmed, "
                    f"{new.secure_version} < {fuse}"
                )
                ex.log(LogLevel.WARN, message)
                return False
        return True

    @staticmethod
    def _saved_length(ex: ExampleApp, url: str) -> int:
        """example_ota_res_get_ota_written_len_from_nvs(): kilobytes saved for this same URL."""
        nvs = ex.rt.nvs
        if nvs.get(NVS_SAVED_URL) != url:
            return 0
        saved_kb = nvs.get(NVS_WR_LENGTH)
        return int(str(saved_kb)) * 1024 if saved_kb is not None else 0

    @staticmethod
    def _save_length(ex: ExampleApp, received: int, url: str) -> None:
        """example_ota_res_save_ota_cfg_to_nvs(): whole kilobytes as a u16, and the URL once."""
        nvs = ex.rt.nvs
        nvs.set(NVS_WR_LENGTH, (received // 1024) & 0xFFFF)
        if received and nvs.get(NVS_SAVED_URL) != url:
            nvs.set(NVS_SAVED_URL, url)
        ex.log(LogLevel.DEBUG, f"Saving state in NVS. Total image written so far : {received // 1024} KB")
