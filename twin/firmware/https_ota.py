"""esp_https_ota as ESP-IDF v5.5.5 has it (components/esp_https_ota/src/esp_https_ota.c) on
the twin: begin / get_img_desc / perform / finish / abort with its HTTP semantics (HEAD +
Range partial download, resumption with its fallback, redirects), its checks on the first
block, and its exact log lines. Each method names the function it follows.

`perform` returns True while ESP_ERR_HTTPS_OTA_IN_PROGRESS (the caller loops, as
every ESP-IDF example does) and False when the body is complete; failures raise
`EspError` after ESP-IDF's lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn
from urllib.parse import urlsplit

from rig.esp.appdesc import APP_DESC_FILE_OFFSET, APP_DESC_MAGIC, APP_DESC_SIZE, AppDescriptor, decode
from rig.esp.partitions import Partition
from twin.config import KeepAlive
from twin.cpu import Activity, Cpu, LogLevel
from twin.net import ConnectError, HttpResponse, Net, ReadError, ReadTimeout, TlsConnection, request
from twin.ota_ops import Err, EspError, OtaHandle, OtaOps

TAG = "esp_https_ota"
IMAGE_HEADER_SIZE = 1024
OTA_BUF_SIZE = 1024
DEFAULT_MAX_REQUEST = 64 * 1024
MAX_REDIRECTS = 10
_REDIRECTS = {301, 302, 303, 307, 308}


class _State(Enum):
    """esp_https_ota_state."""

    BEGIN = "begin"
    RESUME = "resume"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"


class OtaEvent(Enum):
    """esp_https_ota_event_t: what esp_https_ota.c:esp_https_ota_dispatch_event() posts to
    ESP_HTTPS_OTA_EVENT (an app's handler prints them; advanced_https_ota_example does)."""

    START = "ESP_HTTPS_OTA_START"
    CONNECTED = "ESP_HTTPS_OTA_CONNECTED"
    GET_IMG_DESC = "ESP_HTTPS_OTA_GET_IMG_DESC"
    VERIFY_CHIP_ID = "ESP_HTTPS_OTA_VERIFY_CHIP_ID"
    VERIFY_CHIP_REVISION = "ESP_HTTPS_OTA_VERIFY_CHIP_REVISION"
    WRITE_FLASH = "ESP_HTTPS_OTA_WRITE_FLASH"
    UPDATE_BOOT_PARTITION = "ESP_HTTPS_OTA_UPDATE_BOOT_PARTITION"
    FINISH = "ESP_HTTPS_OTA_FINISH"
    ABORT = "ESP_HTTPS_OTA_ABORT"


EventHandler = Callable[[OtaEvent, int | None], None]


@dataclass(frozen=True)
class OtaConfig:
    """esp_https_ota_config_t + the esp_http_client_config_t fields the app sets.

    `cadata` is `cert_pem` (PEM text) or a pinned DER certificate; `skip_common_name` is
    `skip_cert_common_name_check` (every lab build sets it: a raw IP never matches a CN).
    """

    url: str
    cadata: bytes | str | None
    timeout_ms: int
    keepalive: KeepAlive
    partial_http_download: bool = False
    max_http_request_size: int = 0
    ota_resumption: bool = False
    ota_image_bytes_written: int = 0
    skip_common_name: bool = True
    log_debug: bool = False  # CONFIG_LOG_DEFAULT_LEVEL_DEBUG: ESP_LOGD lines are printed
    tls13: bool = True  # CONFIG_MBEDTLS_SSL_PROTO_TLS1_3


class HttpsOta:
    """One esp_https_ota handle."""

    def __init__(
        self, cpu: Cpu, net: Net, ota: OtaOps, config: OtaConfig, on_event: EventHandler | None = None
    ) -> None:
        self.cpu = cpu
        self.on_event = on_event
        self.net = net
        self.ota = ota
        self.config = config
        self.partition: Partition = ota.get_next_update_partition()
        self.conn: TlsConnection | None = None
        self.resp: HttpResponse | None = None
        self.url = config.url
        self.image_length: int | None = None
        self.received = 0
        self.header = b""
        self.handle: OtaHandle | None = None
        self.max_request = config.max_http_request_size or DEFAULT_MAX_REQUEST
        self.resumption = config.ota_resumption
        self.state = _State.BEGIN

    def _log(self, level: LogLevel, message: str, tag: str = TAG) -> None:
        self.cpu.log(level, tag, message)

    def _debug(self, message: str) -> None:
        if self.config.log_debug:
            self._log(LogLevel.DEBUG, message)

    def _dispatch(self, event: OtaEvent, data: int | None = None) -> None:
        """esp_https_ota.c:esp_https_ota_dispatch_event()."""
        if self.on_event is not None:
            self.on_event(event, data)

    # -- HTTP plumbing -------------------------------------------------------------

    def _connect(self, method: str, range_header: str | None, *, check_status: bool = True) -> HttpResponse:
        """esp_https_ota.c:_http_connect(): open (reusing a kept-alive connection, as
        esp_http_client.c:esp_http_client_connect() does), fetch headers, follow redirects,
        then _http_handle_response_code(). A header fetch failure returns its error without a
        line of its own; the caller prints `Failed to establish HTTP connection`."""
        if self.config.cadata is None:
            message = "No option for server verification is enabled in esp_http_client config."
            self._log(LogLevel.ERROR, message)
            raise EspError(Err.ESP_FAIL)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(self.url)
            host, port = parts.hostname or "", parts.port or 443
            if self.conn is None:
                try:
                    self.conn = self.net.connect_tls(
                        host, port, cadata=self.config.cadata, timeout_ms=self.config.timeout_ms,
                        keepalive=self.config.keepalive, check_common_name=not self.config.skip_common_name,
                        tls13=self.config.tls13,
                    )
                except ConnectError as exc:
                    self._connect_failed(exc)
            headers = {"Range": range_header} if range_header else {}
            try:
                assert self.conn is not None
                resp = request(self.conn, method, host, port, parts.path or "/", headers)
            except (ReadError, ReadTimeout) as exc:
                self.close()
                raise EspError(Err.ESP_ERR_HTTP_FETCH_HEADER) from exc
            location = resp.headers.get("location")
            if resp.status in _REDIRECTS and location:
                self.url = location if "://" in location else f"{parts.scheme}://{parts.netloc}{location}"
                self.close()
                continue
            if check_status:
                self._handle_response_code(resp.status)
            return resp
        raise EspError(Err.ESP_FAIL)

    def _connect_failed(self, exc: ConnectError) -> None:
        if exc.tls:
            self._log(LogLevel.ERROR, "mbedtls_ssl_handshake returned -0x2700", "esp-tls-mbedtls")
            self._log(LogLevel.INFO, "Failed to verify peer certificate!", "esp-tls-mbedtls")
        self._log(LogLevel.ERROR, "Failed to open new connection", "esp-tls")
        self._log(LogLevel.ERROR, "Failed to open a new connection", "transport_base")
        self._log(LogLevel.ERROR, "Connection failed, sock < 0", "HTTP_CLIENT")
        self._log(LogLevel.ERROR, "Failed to open HTTP connection: ESP_ERR_HTTP_CONNECT")
        raise EspError(Err.ESP_ERR_HTTP_CONNECT)

    def _handle_response_code(self, status: int) -> None:
        """esp_https_ota.c:_http_handle_response_code() (v5.5.5: the resumption check also
        covers partial downloads, CONFIG_ESP_HTTPS_OTA_ENABLE_PARTIAL_DOWNLOAD being absent)."""
        if status == 304:
            self._log(LogLevel.INFO, f"OTA image not modified since last request (status code: {status})")
            raise EspError(Err.ESP_ERR_HTTP_NOT_MODIFIED)
        if status == 416:
            self._log(LogLevel.INFO, f"Requested range is incorrect (status code: {status})")
            raise EspError(Err.ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE)
        if status in (403, 404):
            self._log(LogLevel.ERROR, f"File not found({status})")
            raise EspError(Err.ESP_FAIL)
        if 400 <= status < 500:
            self._log(LogLevel.ERROR, f"Client error ({status})")
            raise EspError(Err.ESP_FAIL)
        if status >= 500:
            self._log(LogLevel.ERROR, f"Server error ({status})")
            raise EspError(Err.ESP_FAIL)
        if self.resumption and status != 206:
            self._log(LogLevel.WARN, "Server ignored the requested Range header")
            self._log(LogLevel.WARN, "OTA resumption requires server with range request support.")
            raise EspError(Err.ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE)

    def _first_range(self, start: int) -> str | None:
        """The Range of the first GET (esp_https_ota.c:esp_https_ota_begin()): partial download
        asks for `bytes=<start>-<end>` with ESP-IDF's end (the image length for the tail, and
        no header when one range covers the image); resumption alone asks `bytes=<start>-`,
        `bytes=0-` on a fresh download, to learn at once whether the server honours Range."""
        if self.config.partial_http_download and self.image_length is not None:
            tail = self.image_length <= self.max_request + start
            end = self.image_length if tail else start + self.max_request - 1
            return f"bytes={start}-{end}" if end - start < self.image_length else None
        return f"bytes={start}-" if self.resumption else None

    def _next_range(self) -> str:
        """The Range of each later partial-download request (esp_https_ota_perform())."""
        assert self.image_length is not None
        if self.image_length - self.received > self.max_request:
            return f"bytes={self.received}-{self.received + self.max_request - 1}"
        return f"bytes={self.received}-"

    def close(self) -> None:
        """esp_http_client_close: drop the connection, keep the handle."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _keep_alive(self) -> bool:
        """esp_http_client.c:esp_http_client_is_persistent_connection() →
        http_parser.c:http_should_keep_alive(): HTTP/1.1 unless `Connection: close`, HTTP/1.0
        only with `Connection: keep-alive`, and never a body that ends at the FIN."""
        if self.resp is None or self.resp.content_length is None:
            return False
        connection = self.resp.headers.get("connection", "").lower()
        if self.resp.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    # -- the esp_https_ota API --------------------------------------------------------

    def begin(self) -> None:
        """esp_https_ota.c:esp_https_ota_begin()."""
        self._dispatch(OtaEvent.START)
        self.cpu.set_activity(Activity.RADIO)
        written = self.config.ota_image_bytes_written if self.resumption else 0
        self.received = written if written >= IMAGE_HEADER_SIZE else 0
        if self.config.partial_http_download:
            head = self._head()
            self.image_length = head.content_length
        try:
            self.resp = self._connect("GET", self._first_range(self.received))
        except EspError as exc:
            if exc.err is not Err.ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE or not self.resumption:
                self._establish_failed(exc)
            self._log(LogLevel.ERROR, f"OTA resumption failed with err: {int(exc.err)}.")
            message = "Falling back to OTA without resumption and restarting download from beginning"
            self._log(LogLevel.INFO, message)
            self.resumption = False
            self.received = 0
            self.close()
            try:
                self.resp = self._connect("GET", self._first_range(0))
            except EspError as again:
                self._establish_failed(again)
        self._dispatch(OtaEvent.CONNECTED)
        if not self.config.partial_http_download:
            length = self.resp.content_length
            self.image_length = None if length is None else length + self.received
        self._log(LogLevel.INFO, "Starting OTA...")
        part = self.partition
        self._log(LogLevel.INFO, f"Writing to <{part.name}> partition at offset 0x{part.offset:x}")
        self.state = _State.RESUME if self.received else _State.BEGIN

    def _head(self) -> HttpResponse:
        """Partial download's HEAD through esp_http_client_perform(): no response-code
        handling, but it must answer 200."""
        try:
            head = self._connect("HEAD", None, check_status=False)
        except EspError as exc:
            self._log(LogLevel.ERROR, f"ESP HTTP client perform failed: {int(exc.err)}")
            self.close()
            raise
        self.close()
        if head.status != 200:
            self._log(LogLevel.ERROR, f"Received incorrect http status {head.status}")
            raise EspError(Err.ESP_FAIL)
        return head

    def _establish_failed(self, exc: EspError) -> NoReturn:
        if exc.err is not Err.ESP_ERR_HTTP_NOT_MODIFIED:
            self._log(LogLevel.ERROR, "Failed to establish HTTP connection")
        self.close()
        raise exc

    def _read(self, size: int) -> bytes | None:
        """esp_http_client.c:esp_http_client_read(): fills `size` bytes unless the body ends
        first; a timeout returns what arrived (None, i.e. -ESP_ERR_HTTP_EAGAIN, if nothing)."""
        assert self.resp is not None
        data = b""
        while len(data) < size:
            try:
                chunk = self.resp.read(size - len(data))
            except ReadTimeout:
                return data or None
            except ReadError as exc:
                if data:
                    return data
                # newlib's strerror text for lwIP's errno (the host's differ: 113 is EHOSTUNREACH on Linux).
                self._log(LogLevel.ERROR, f"esp_tls_conn_read error, errno={exc.reason}", "transport_base")
                returned = f"esp_transport_read returned:-1 and errno:{exc.errno} "
                self._log(LogLevel.WARN, returned, "HTTP_CLIENT")
                self._log(LogLevel.ERROR, f"data read -1, errno {exc.errno}")
                raise EspError(Err.ESP_FAIL) from exc
            if not chunk:
                return data
            data += chunk
        return data

    def get_img_desc(self) -> AppDescriptor:
        """esp_https_ota.c:get_description_from_image(): read until the first 1024 bytes are in
        (nothing is written yet); a resumed download reads the descriptor from the partition."""
        self._dispatch(OtaEvent.GET_IMG_DESC)
        desc_end = APP_DESC_FILE_OFFSET + APP_DESC_SIZE
        if self.received >= desc_end:
            raw = self.cpu.flash.read(self.partition.offset + APP_DESC_FILE_OFFSET, APP_DESC_SIZE)
            if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
                self._log(LogLevel.ERROR, "Incorrect app descriptor magic")
                raise EspError(Err.ESP_FAIL)
            return decode(raw)
        self._read_header()
        raw = self.header[APP_DESC_FILE_OFFSET:desc_end]
        if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
            self._log(LogLevel.ERROR, "Incorrect app descriptor magic")
            raise EspError(Err.ESP_FAIL)
        return decode(raw)

    def _read_header(self) -> None:
        """esp_https_ota.c:read_header(): IMAGE_HEADER_SIZE bytes, waiting out timeouts."""
        while len(self.header) < IMAGE_HEADER_SIZE:
            data = self._read(IMAGE_HEADER_SIZE - len(self.header))
            if data is None:
                continue
            if not data:
                self._log(LogLevel.ERROR, "Complete headers were not received")
                raise EspError(Err.ESP_FAIL)
            self.header += data

    def _verify_chip(self) -> None:
        """esp_ota_verify_chip_id() then esp_ota_verify_chip_revision() →
        bootloader_common_loader.c:bootloader_common_check_chip_revision_validity(hdr, true):
        the minimum and, when set (not 0 or 0xFFFF), the maximum revision."""
        chip_id = int.from_bytes(self.header[12:14], "little")
        self._dispatch(OtaEvent.VERIFY_CHIP_ID, chip_id)
        if chip_id != 0:
            self._log(LogLevel.ERROR, f"Mismatch chip id, expected 0, found {chip_id}")
            raise EspError(Err.ESP_ERR_INVALID_VERSION)
        min_rev = int.from_bytes(self.header[15:17], "little")
        max_rev = int.from_bytes(self.header[17:19], "little")
        self._dispatch(OtaEvent.VERIFY_CHIP_REVISION, min_rev)
        rev = self.ota.config.chip_rev_full
        if rev < min_rev:
            self._chip_revision_failed(">=", min_rev, rev)
        if max_rev not in (0, 0xFFFF) and rev > max_rev:
            self._chip_revision_failed("<=", max_rev, rev)

    def _chip_revision_failed(self, relation: str, limit: int, rev: int) -> NoReturn:
        self._log(
            LogLevel.ERROR,
            f"chip revision check failed. Required {relation} v{limit // 100}.{limit % 100}, "
            f"found v{rev // 100}.{rev % 100}.",
            "boot_comm",
        )
        raise EspError(Err.ESP_ERR_INVALID_VERSION)

    def _write(self, data: bytes) -> None:
        """esp_https_ota.c:_ota_write()."""
        assert self.handle is not None
        try:
            self.ota.write(self.handle, data)
        except EspError as exc:
            self._log(LogLevel.ERROR, f"Error: esp_ota_write failed! err={exc.hex}")
            self._dispatch(OtaEvent.WRITE_FLASH, self.received)
            raise
        self.cpu.set_activity(Activity.RADIO)
        self.received += len(data)
        self._debug(f"Written image length {self.received}")
        self._dispatch(OtaEvent.WRITE_FLASH, self.received)

    def is_complete_data_received(self) -> bool:
        return self.image_length is not None and self.received >= self.image_length

    def perform(self) -> bool:
        """esp_https_ota.c:esp_https_ota_perform(); True = ESP_ERR_HTTPS_OTA_IN_PROGRESS.

        The first call runs esp_ota_begin() before the chip checks (so its PENDING_VERIFY
        check and otadata erase happen even for an image refused there), then writes the
        header; a resumed download calls esp_ota_resume() instead and reads on.
        """
        if self.state is _State.BEGIN:
            try:
                self.handle = self.ota.begin(self.partition)
            except EspError as exc:
                self._log(LogLevel.ERROR, f"esp_ota_begin failed ({exc.err.name})")
                raise
            self.state = _State.IN_PROGRESS
            self._read_header()
            self._verify_chip()
            self._write(self.header)
            return True
        if self.state is _State.RESUME:
            self._debug("OTA resumption case")
            try:
                self.handle = self.ota.resume(self.partition, self.received)
            except EspError as exc:
                self._log(LogLevel.ERROR, f"esp_ota_resume failed ({exc.err.name})")
                raise
            self.state = _State.IN_PROGRESS
        if self.state is _State.SUCCESS:
            return False
        data = self._read(OTA_BUF_SIZE)
        if data is None:
            self._debug("ESP_ERR_HTTP_EAGAIN invoked: Call timed out before data was ready")
            return True
        if data:
            self._write(data)
            return True
        assert self.resp is not None
        if not self.resp.complete:
            self._log(LogLevel.ERROR, "Connection closed before complete data was received!")
            raise EspError(Err.ESP_FAIL)
        self._debug("Connection closed")
        if self.config.partial_http_download and self.image_length and self.received < self.image_length:
            if not self._keep_alive():
                self.close()
            try:
                self.resp = self._connect("GET", self._next_range())
            except EspError as exc:
                self._log(LogLevel.ERROR, "Failed to establish HTTP connection")
                raise EspError(Err.ESP_FAIL) from exc
            self._debug("Connection start")
            return True
        if self.image_length is None:
            self.image_length = self.received
        self.state = _State.SUCCESS
        return False

    def finish(self) -> None:
        """esp_https_ota.c:esp_https_ota_finish(): esp_ota_end, then esp_ota_set_boot_partition
        (no reboot); ESP_HTTPS_OTA_FINISH is posted whether or not they succeeded."""
        self.close()
        if self.handle is None:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        self.cpu.set_activity(Activity.IDLE)
        try:
            self.ota.end(self.handle)
            try:
                self.ota.set_boot_partition(self.partition)
            except EspError as exc:
                self._log(LogLevel.ERROR, f"esp_ota_set_boot_partition failed! err={exc.hex}")
                raise
            subtype = 0x10 + (self.partition.ota_index or 0)  # ESP_PARTITION_SUBTYPE_APP_OTA_0 + n
            self._dispatch(OtaEvent.UPDATE_BOOT_PARTITION, subtype)
        finally:
            self._dispatch(OtaEvent.FINISH)

    def abort(self) -> None:
        """esp_https_ota_abort: the partial image stays, otadata is untouched."""
        self._dispatch(OtaEvent.ABORT)
        self.close()
        self.cpu.set_activity(Activity.IDLE)
