"""Espressif's native_ota_example at ESP-IDF v5.5.5
(examples/system/ota/native_ota_example/main/native_ota_example.c) on a twin.

app_main(): the SHA-256 lines, the diagnostic of a PENDING_VERIFY image (GPIO
CONFIG_EXAMPLE_GPIO_DIAGNOSTIC with its pull-up: a twin has nothing wired there, so it reads
high and the image confirms), NVS, example_connect(); ota_example_task() drives esp_http_client
and esp_ota_begin / write / end / set_boot_partition itself, checking the new version against
the running one and the last invalid one. Any failure ends in task_fatal_error(); the app
idles until the next reset.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from rig.esp.appdesc import APP_DESC_FILE_OFFSET, APP_DESC_MAGIC, APP_DESC_SIZE
from rig.esp.otadata import OtaState
from rig.esp.partitions import Partition
from twin.cpu import LogLevel
from twin.firmware import register
from twin.firmware.base import AppRuntime, FirmwareModel
from twin.firmware.idf_example import ExampleApp
from twin.firmware.simple_ota import BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET, partition_sha256
from twin.net import ConnectError, HttpResponse, ReadError, ReadTimeout, TlsConnection, request
from twin.ota_ops import Err, EspError, OtaHandle

TAG = "native_ota_example"
BUFFSIZE = 1024
# sizeof(esp_image_header_t) + sizeof(esp_image_segment_header_t) + sizeof(esp_app_desc_t)
HEADER_FIT = 24 + 8 + 256
PARTITION_TABLE_MAX_LEN = 0xC00
VERSION_FIELD = slice(16, 48)  # esp_app_desc_t.version[32]


class _FatalError(Exception):
    """task_fatal_error(): the task logs its last line and deletes itself."""


def _version_text(desc: bytes) -> str:
    """`%s` of the 32-byte version field: up to the first NUL."""
    return desc[VERSION_FIELD].split(b"\0")[0].decode("utf-8", "replace")


@register
class NativeOta(FirmwareModel):
    """native_ota_example.c, app_main() and ota_example_task()."""

    name = "native_ota"

    def run(self, app: AppRuntime) -> None:
        ex = ExampleApp.start(app, TAG)
        flash = app.cpu.flash
        table = flash.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_MAX_LEN)
        # esp_partition_get_sha256() of a data region: the SHA-256 of its bytes.
        ex.log(LogLevel.INFO, f"SHA-256 for the partition table: : {hashlib.sha256(table).hexdigest()}")
        bootloader = flash.read(BOOTLOADER_OFFSET, PARTITION_TABLE_OFFSET - BOOTLOADER_OFFSET)
        ex.log(LogLevel.INFO, f"SHA-256 for bootloader: : {partition_sha256(bootloader).hex()}")
        ex.log(LogLevel.INFO, f"SHA-256 for current firmware: : {partition_sha256(app.app.data).hex()}")
        self._diagnose(ex)
        ex.example_connect()
        try:
            self._task(ex)
        except _FatalError:
            ex.log(LogLevel.ERROR, "Exiting task due to fatal error...")
        app.cpu.halt()

    @staticmethod
    def _diagnose(ex: ExampleApp) -> None:
        """A PENDING_VERIFY image runs diagnostic(): 5 s, then the GPIO's level decides."""
        try:
            state = ex.rt.ota.get_state_partition(ex.rt.running)
        except EspError:
            return
        if state is not OtaState.PENDING_VERIFY:
            return
        ex.log(LogLevel.INFO, "Diagnostics (5 sec)...")
        ex.rt.cpu.sleep(5.0)
        ex.log(LogLevel.INFO, "Diagnostics completed successfully! Continuing execution ...")
        ex.rt.ota.mark_app_valid_cancel_rollback()

    def _task(self, ex: ExampleApp) -> None:
        """ota_example_task()."""
        rt = ex.rt
        ota = rt.ota
        ex.log(LogLevel.INFO, "Starting OTA example task")
        rt.log(LogLevel.INFO, "main_task", "Returned from app_main()")
        configured = ota.get_boot_partition()
        running = rt.running
        if configured is not None and configured != running:
            ex.log(
                LogLevel.WARN,
                f"Configured OTA boot partition at offset 0x{configured.offset:08x}, but running "
                f"from offset 0x{running.offset:08x}",
            )
            ex.log(
                LogLevel.WARN,
                "(This can happen if either the OTA boot data or preferred boot image become "
                "corrupted somehow.)",
            )
        ex.log(
            LogLevel.INFO,
            f"Running partition type {int(running.type)} subtype {running.subtype} "
            f"(offset 0x{running.offset:08x})",
        )
        url = ex.upgrade_url(
            "EXAMPLE_FIRMWARE_UPG_URL"
            if "EXAMPLE_FIRMWARE_UPG_URL" in ex.config
            else "EXAMPLE_FIRMWARE_UPGRADE_URL"
        )
        conn, resp = self._open(ex, url)
        update = ota.get_next_update_partition()
        ex.log(LogLevel.INFO, f"Writing to partition subtype {update.subtype} at offset 0x{update.offset:x}")
        handle = self._download(ex, conn, resp, update)
        if not resp.complete:
            ex.log(LogLevel.ERROR, "Error in receiving complete file")
            conn.close()
            raise _FatalError
        try:
            ota.end(handle)
        except EspError as exc:
            if exc.err is Err.ESP_ERR_OTA_VALIDATE_FAILED:
                ex.log(LogLevel.ERROR, "Image validation failed, image is corrupted")
            else:
                ex.log(LogLevel.ERROR, f"esp_ota_end failed ({exc.err.name})!")
            conn.close()
            raise _FatalError from exc
        try:
            ota.set_boot_partition(update)
        except EspError as exc:
            ex.log(LogLevel.ERROR, f"esp_ota_set_boot_partition failed ({exc.err.name})!")
            conn.close()
            raise _FatalError from exc
        ex.log(LogLevel.INFO, "Prepare to restart system!")
        rt.cpu.restart()

    @staticmethod
    def _open(ex: ExampleApp, url: str) -> tuple[TlsConnection, HttpResponse]:
        """esp_http_client_init / esp_http_client_open / esp_http_client_fetch_headers; the
        example looks at neither the status code nor a header-fetch failure."""
        rt = ex.rt
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        pem = ex.cert_pem()
        try:
            if pem is None:
                raise ConnectError("no server verification option", tls=True)
            conn = rt.net.connect_tls(
                host,
                port,
                cadata=pem.decode("ascii", "replace"),
                timeout_ms=ex.number("EXAMPLE_OTA_RECV_TIMEOUT"),
                keepalive=rt.config.keepalive,
                check_common_name=not ex.flag("EXAMPLE_SKIP_COMMON_NAME_CHECK"),
                tls13=ex.flag("MBEDTLS_SSL_PROTO_TLS1_3"),
            )
        except ConnectError as exc:
            if exc.tls:
                rt.log(LogLevel.ERROR, "esp-tls-mbedtls", "mbedtls_ssl_handshake returned -0x2700")
            rt.log(LogLevel.ERROR, "esp-tls", "Failed to open new connection")
            rt.log(LogLevel.ERROR, "transport_base", "Failed to open a new connection")
            rt.log(LogLevel.ERROR, "HTTP_CLIENT", "Connection failed, sock < 0")
            ex.log(LogLevel.ERROR, "Failed to open HTTP connection: ESP_ERR_HTTP_CONNECT")
            raise _FatalError from exc
        try:
            resp = request(conn, "GET", host, port, parts.path or "/")
        except (ReadError, ReadTimeout):
            resp = HttpResponse(0, {}, conn, remaining=0)
        return conn, resp

    def _download(
        self, ex: ExampleApp, conn: TlsConnection, resp: HttpResponse, update: Partition
    ) -> OtaHandle:
        """The receive loop: check the first block, esp_ota_begin, esp_ota_write each block."""
        ota = ex.rt.ota
        handle: OtaHandle | None = None
        total = 0
        while True:
            data = self._client_read(ex, resp, BUFFSIZE)
            if data is None:
                ex.log(LogLevel.ERROR, "Error: SSL data read error")
                conn.close()
                raise _FatalError
            if data:
                if handle is None:
                    handle = self._check_first_block(ex, conn, data, update)
                try:
                    ota.write(handle, data)
                except EspError as exc:
                    conn.close()
                    raise _FatalError from exc
                total += len(data)
                ex.log(LogLevel.DEBUG, f"Written image length {total}")
                continue
            if resp.complete:
                ex.log(LogLevel.INFO, "Connection closed")
                break
        ex.log(LogLevel.INFO, f"Total Write binary data length: {total}")
        if handle is None:
            ex.log(LogLevel.ERROR, "Error in receiving complete file")
            conn.close()
            raise _FatalError
        return handle

    @staticmethod
    def _client_read(ex: ExampleApp, resp: HttpResponse, size: int) -> bytes | None:
        """esp_http_client.c:esp_http_client_read(): fill `size` unless the body ends; a timeout
        returns what arrived or, with nothing, -ESP_ERR_HTTP_EAGAIN; a failed read with
        nothing read and the body incomplete is ESP_FAIL (None: both are negative)."""
        data = b""
        while len(data) < size and not resp.complete:
            try:
                chunk = resp.read(size - len(data))
            except ReadTimeout:
                return data or None
            except ReadError as exc:
                ex.rt.log(LogLevel.ERROR, "transport_base", f"esp_tls_conn_read error, errno={exc.reason}")
                returned = f"esp_transport_read returned:-1 and errno:{exc.errno} "
                ex.rt.log(LogLevel.WARN, "HTTP_CLIENT", returned)
                return data or None
            if not chunk:
                # The peer closed: the end of a body without Content-Length, else ESP_FAIL.
                return data if (data or resp.complete) else None
            data += chunk
        return data

    def _check_first_block(
        self, ex: ExampleApp, conn: TlsConnection, data: bytes, update: Partition
    ) -> OtaHandle:
        """The first block: versions (new, running, last invalid), then esp_ota_begin()."""
        ota = ex.rt.ota
        if len(data) <= HEADER_FIT:
            ex.log(LogLevel.ERROR, "received package is not fit len")
            conn.close()
            raise _FatalError
        desc = data[APP_DESC_FILE_OFFSET : APP_DESC_FILE_OFFSET + APP_DESC_SIZE]
        new_version = _version_text(desc)
        ex.log(LogLevel.INFO, f"New firmware version: {new_version}")
        running_version = ex.rt.desc.version
        ex.log(LogLevel.INFO, f"Running firmware version: {running_version}")
        invalid = ota.get_last_invalid_partition()
        invalid_version = self._partition_version(ex, invalid) if invalid is not None else None
        if invalid_version is not None:
            ex.log(LogLevel.INFO, f"Last invalid firmware version: {invalid_version}")
            if invalid_version == new_version:
                ex.log(LogLevel.WARN, "New version is the same as invalid version.")
                ex.log(
                    LogLevel.WARN,
                    "Previously, there was an attempt to launch the firmware with "
                    f"{invalid_version} version, but it failed.",
                )
                ex.log(LogLevel.WARN, "The firmware has been rolled back to the previous version.")
                conn.close()
                self._infinite_loop(ex)
        if not ex.flag("EXAMPLE_SKIP_VERSION_CHECK") and new_version == running_version:
            ex.log(
                LogLevel.WARN,
                "Current running version is the same as a new. We will not continue the update.",
            )
            conn.close()
            self._infinite_loop(ex)
        try:
            handle = ota.begin(update)
        except EspError as exc:
            ex.log(LogLevel.ERROR, f"esp_ota_begin failed ({exc.err.name})")
            conn.close()
            raise _FatalError from exc
        ex.log(LogLevel.INFO, "esp_ota_begin succeeded")
        return handle

    @staticmethod
    def _partition_version(ex: ExampleApp, partition: Partition) -> str | None:
        """esp_ota_get_partition_description(): the version, when the descriptor's magic is there."""
        raw = ex.rt.cpu.flash.read(partition.offset + APP_DESC_FILE_OFFSET, APP_DESC_SIZE)
        if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
            return None
        return _version_text(raw)

    @staticmethod
    def _infinite_loop(ex: ExampleApp) -> None:
        """infinite_loop(): a line every 2 s until the next reset."""
        ex.log(
            LogLevel.INFO,
            "When a new firmware is available on the server, press the reset button to download it",
        )
        count = 0
        while True:
            count += 1
            ex.log(LogLevel.INFO, f"Waiting for a new firmware ... {count}")
            ex.rt.cpu.sleep(2.0)
