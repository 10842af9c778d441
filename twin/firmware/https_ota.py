"""esp_https_ota (ESP-IDF v5.5, facts §8) on the twin: begin / get_img_desc / perform /
finish / abort with its HTTP semantics (HEAD + Range partial download, resumption,
redirects), its checks before the first write, and its exact log lines.

`perform` returns True while ESP_ERR_HTTPS_OTA_IN_PROGRESS (the caller loops, as
every ESP-IDF example does) and False when the body is complete; failures raise
`EspError` after ESP-IDF's lines.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class OtaConfig:
    """esp_https_ota_config_t + the esp_http_client_config_t fields the agent sets."""

    url: str
    cadata: bytes | None
    timeout_ms: int
    keepalive: KeepAlive
    partial_http_download: bool = False
    max_http_request_size: int = 0
    ota_resumption: bool = False
    ota_image_bytes_written: int = 0


class HttpsOta:
    """One esp_https_ota handle."""

    def __init__(self, cpu: Cpu, net: Net, ota: OtaOps, config: OtaConfig) -> None:
        self.cpu = cpu
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

    def _log(self, level: LogLevel, message: str, tag: str = TAG) -> None:
        self.cpu.log(level, tag, message)

    # -- HTTP plumbing -------------------------------------------------------------

    def _open(self, method: str, range_header: str | None) -> HttpResponse:
        """esp_http_client_open + fetch_headers, following redirects like esp_http_client."""
        if self.config.cadata is None:
            message = "No option for server verification is enabled in esp_http_client config."
            self._log(LogLevel.ERROR, message)
            raise EspError(Err.ESP_FAIL)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(self.url)
            host, port = parts.hostname or "", parts.port or 443
            self.close()
            try:
                self.conn = self.net.connect_tls(
                    host, port, cadata=self.config.cadata, timeout_ms=self.config.timeout_ms,
                    keepalive=self.config.keepalive,
                )
            except ConnectError as exc:
                self._connect_failed(exc)
            headers = {"Range": range_header} if range_header else {}
            try:
                assert self.conn is not None
                resp = request(self.conn, method, host, port, parts.path or "/", headers)
            except (ReadError, ReadTimeout) as exc:
                self._log(LogLevel.ERROR, "Failed to open HTTP connection: ESP_ERR_HTTP_FETCH_HEADER")
                raise EspError(Err.ESP_FAIL) from exc
            location = resp.headers.get("location")
            if resp.status in _REDIRECTS and location:
                self.url = location if "://" in location else f"{parts.scheme}://{parts.netloc}{location}"
                continue
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
        self._log(LogLevel.ERROR, "Failed to establish HTTP connection")
        raise EspError(Err.ESP_ERR_HTTP_CONNECT)

    def _check_status(self, status: int) -> None:
        if status in (200, 206):
            return
        if status == 416:
            self._log(LogLevel.INFO, f"Requested range is incorrect (status code: {status})")
            self._log(LogLevel.ERROR, "Failed to establish HTTP connection")
            raise EspError(Err.ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE)
        if status in (403, 404):
            self._log(LogLevel.ERROR, f"File not found({status})")
        elif 400 <= status < 500:
            self._log(LogLevel.ERROR, f"Client error ({status})")
        elif status >= 500:
            self._log(LogLevel.ERROR, f"Server error ({status})")
        else:
            self._log(LogLevel.ERROR, f"Received incorrect http status {status}")
        self._log(LogLevel.ERROR, "Failed to establish HTTP connection")
        raise EspError(Err.ESP_FAIL)

    def _range_for(self, start: int) -> str | None:
        if self.config.partial_http_download and self.image_length is not None:
            end = start + self.max_request - 1
            if end >= self.image_length - 1:
                return f"bytes={start}-" if start else None
            return f"bytes={start}-{end}"
        return f"bytes={start}-" if start else None

    def close(self) -> None:
        """esp_http_client_close: drop the connection, keep the handle."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    # -- the esp_https_ota API --------------------------------------------------------

    def begin(self) -> None:
        """esp_https_ota_begin."""
        self.cpu.set_activity(Activity.RADIO)
        if self.config.partial_http_download:
            head = self._open("HEAD", None)
            if head.status != 200:
                self._log(LogLevel.ERROR, f"Received incorrect http status {head.status}")
                raise EspError(Err.ESP_FAIL)
            self.image_length = head.content_length
        resume = self.config.ota_image_bytes_written if self.config.ota_resumption else 0
        resume = resume if resume >= 1024 else 0
        self.resp = self._open("GET", self._range_for(resume))
        if resume and self.resp.status == 200:
            self._log(LogLevel.WARN, "Server ignored the requested Range header")
            message = "Falling back to OTA without resumption and restarting download from beginning"
            self._log(LogLevel.INFO, message)
            resume = 0
        self._check_status(self.resp.status)
        if self.image_length is None:
            length = self.resp.content_length
            self.image_length = None if length is None else length + resume
        self.received = resume
        if resume:
            self.handle = self.ota.begin(self.partition, resume_from=resume)
        self._log(LogLevel.INFO, "Starting OTA...")
        part = self.partition
        self._log(LogLevel.INFO, f"Writing to <{part.name}> partition at offset 0x{part.offset:x}")

    def _read(self, size: int) -> bytes | None:
        """One esp_http_client_read; None = EAGAIN (caller reports IN_PROGRESS)."""
        assert self.resp is not None
        try:
            return self.resp.read(size)
        except ReadTimeout:
            return None
        except ReadError as exc:
            # newlib's strerror text for lwIP's errno (the host's differ: 113 is EHOSTUNREACH on Linux).
            self._log(LogLevel.ERROR, f"esp_tls_conn_read error, errno={exc.reason}", "transport_base")
            self._log(LogLevel.WARN, f"esp_transport_read returned:-1 and errno:{exc.errno} ", "HTTP_CLIENT")
            self._log(LogLevel.ERROR, f"data read -1, errno {exc.errno}")
            raise EspError(Err.ESP_FAIL) from exc

    def get_img_desc(self) -> AppDescriptor:
        """Read until the first 1024 bytes are in; nothing is written yet. A resumed download
        already has the descriptor in the partition: v5.5 reads it from there."""
        desc_end = APP_DESC_FILE_OFFSET + APP_DESC_SIZE
        if self.received >= desc_end:
            raw = self.cpu.flash.read(self.partition.offset + APP_DESC_FILE_OFFSET, APP_DESC_SIZE)
            if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
                self._log(LogLevel.ERROR, "Incorrect app descriptor magic")
                raise EspError(Err.ESP_FAIL)
            return decode(raw)
        while len(self.header) < IMAGE_HEADER_SIZE:
            data = self._read(IMAGE_HEADER_SIZE - len(self.header))
            if data is None:
                continue
            if not data:
                self._log(LogLevel.ERROR, "Complete headers were not received")
                raise EspError(Err.ESP_FAIL)
            self.header += data
        raw = self.header[APP_DESC_FILE_OFFSET:desc_end]
        if int.from_bytes(raw[:4], "little") != APP_DESC_MAGIC:
            self._log(LogLevel.ERROR, "Incorrect app descriptor magic")
            raise EspError(Err.ESP_FAIL)
        return decode(raw)

    def _first_write(self) -> None:
        """Chip id and revision are checked before anything touches flash."""
        if len(self.header) < IMAGE_HEADER_SIZE:
            self.get_img_desc()
        chip_id = int.from_bytes(self.header[12:14], "little")
        if chip_id != 0:
            self._log(LogLevel.ERROR, f"Mismatch chip id, expected 0, found {chip_id}")
            raise EspError(Err.ESP_ERR_INVALID_VERSION)
        min_rev = int.from_bytes(self.header[15:17], "little")
        rev = self.ota.config.chip_rev_full
        if rev < min_rev:
            self._log(
                LogLevel.ERROR,
                f"chip revision check failed. Required >= v{min_rev // 100}.{min_rev % 100}, "
                f"found v{rev // 100}.{rev % 100}.",
                "boot_comm",
            )
            raise EspError(Err.ESP_ERR_INVALID_VERSION)
        self.handle = self.ota.begin(self.partition)
        self._write(self.header)

    def _write(self, data: bytes) -> None:
        assert self.handle is not None
        self.ota.write(self.handle, data)
        self.cpu.set_activity(Activity.RADIO)
        self.received += len(data)

    def is_complete_data_received(self) -> bool:
        return self.image_length is not None and self.received >= self.image_length

    def perform(self) -> bool:
        """One step; True = ESP_ERR_HTTPS_OTA_IN_PROGRESS."""
        if self.handle is None:
            self._first_write()
            return True
        if self.is_complete_data_received():
            return False
        data = self._read(OTA_BUF_SIZE)
        if data is None:
            return True
        if data:
            self._write(data)
            return True
        if self.config.partial_http_download and self.image_length and self.received < self.image_length:
            self.resp = self._open("GET", self._range_for(self.received))
            self._check_status(self.resp.status)
            return True
        if self.image_length is None or self.is_complete_data_received():
            self.image_length = self.received
            return False
        self._log(LogLevel.ERROR, "Connection closed before complete data was received!")
        raise EspError(Err.ESP_FAIL)

    def finish(self) -> None:
        """esp_https_ota_finish: esp_ota_end, then esp_ota_set_boot_partition (no reboot)."""
        self.close()
        if self.handle is None:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        self.cpu.set_activity(Activity.IDLE)
        self.ota.end(self.handle)
        try:
            self.ota.set_boot_partition(self.partition)
        except EspError as exc:
            self._log(LogLevel.ERROR, f"esp_ota_set_boot_partition failed! err={exc.hex}")
            raise

    def abort(self) -> None:
        """esp_https_ota_abort: the partial image stays, otadata is untouched."""
        self.close()
        self.cpu.set_activity(Activity.IDLE)
