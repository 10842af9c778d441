"""What Espressif's three OTA examples share on a twin: their build's Kconfig choices and
embedded certificate (read from the image, rig/esp/example_image.py), the console reads of
`CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL="FROM_STDIN"`, NVS init, and protocol_examples_common's
example_connect() over Wi-Fi, at ESP-IDF v5.5.5.

The twin's network interface is the host's loopback, so the station address it reports
(`- IPv4 address: 127.0.0.1,`) is the one a host reaches it by, as on a real board.
"""

from __future__ import annotations

from rig.errors import FormatError
from rig.esp.example_image import KconfigValue, find_embedded_pem, find_kconfig, kconfig
from twin.cpu import Activity, LogLevel
from twin.firmware.base import AppRuntime

# OTA_URL_SIZE of all three examples: fgets() keeps at most 255 characters.
OTA_URL_SIZE = 256
# wifi_config_t: ssid[32] + password[64] + 2 (wifi_connect.c:example_wifi_connect()).
WIFI_LINE_SIZE = 32 + 64 + 2
STATION_ADDRESS = "127.0.0.1"
NETIF_STA = "example_netif_sta"


class ExampleApp:
    """One run of an example app: its tag, its build's choices and the runtime it runs on."""

    def __init__(self, rt: AppRuntime, tag: str) -> None:
        self.rt = rt
        self.tag = tag
        image = rt.app.data[: rt.app.image.image_length]
        try:
            found = find_kconfig(image)
        except FormatError:
            found = None
        self.config: dict[str, KconfigValue] = found if found is not None else kconfig()
        self.ssid = str(self.config["EXAMPLE_WIFI_SSID"])

    @classmethod
    def start(cls, rt: AppRuntime, tag: str) -> ExampleApp:
        """The app starting: app_init's lines, then app_main()'s first line in all three."""
        rt.cpu.set_activity(Activity.IDLE)
        rt.app_init()
        example = cls(rt, tag)
        example.log(LogLevel.INFO, "OTA example app_main start")
        return example

    def flag(self, name: str) -> bool:
        return bool(self.config[name])

    def number(self, name: str) -> int:
        value = self.config[name]
        return value if isinstance(value, int) else int(str(value))

    def log(self, level: LogLevel, message: str, tag: str | None = None) -> None:
        """ESP_LOGx: DEBUG lines only in a CONFIG_LOG_DEFAULT_LEVEL_DEBUG build."""
        if level is LogLevel.DEBUG and not self.flag("LOG_DEFAULT_LEVEL_DEBUG"):
            return
        self.rt.log(level, tag or self.tag, message)

    def cert_pem(self) -> bytes | None:
        """`server_cert_pem_start`: the PEM the build embedded (None: it embedded none)."""
        return find_embedded_pem(self.rt.app.data[: self.rt.app.image.image_length])

    def stdin_line(self, size: int) -> str:
        """fgets(buf, size, stdin) then `buf[len - 1] = '\\0'`: the line, at most size - 1
        characters, with its last character dropped (the newline when the line fitted)."""
        raw = self.rt.cpu.uart_readline(timeout=None) or b""
        text = (raw + b"\n")[: size - 1].decode("utf-8", "replace")
        return text[:-1]

    def upgrade_url(self, option: str) -> str:
        """The URL: the configured one, or the console's next line for "FROM_STDIN"
        (example_configure_stdin_stdout() prints nothing)."""
        configured = str(self.config[option])
        return self.stdin_line(OTA_URL_SIZE) if configured == "FROM_STDIN" else configured

    def example_connect(self) -> None:
        """connect.c:example_connect() → wifi_connect.c:example_wifi_connect(), then
        example_print_all_netif_ips(). The lab's access point takes any credentials."""
        self.log(LogLevel.INFO, "Start example_connect.", "example_connect")
        ssid = self.ssid
        if self.flag("EXAMPLE_WIFI_SSID_PWD_FROM_STDIN"):
            self.log(LogLevel.INFO, "Please input ssid password:", "example_connect")
            line = self.stdin_line(WIFI_LINE_SIZE)
            ssid = line.split(" ")[0][:32]
        self.log(LogLevel.INFO, f"Connecting to {ssid}...", "example_connect")
        self.log(LogLevel.INFO, "Waiting for IP(s)", "example_connect")
        address = STATION_ADDRESS
        # esp_netif_handlers.c:esp_netif_action_got_ip(), then the example's got-ip handler.
        self.log(
            LogLevel.INFO, f"{NETIF_STA} ip: {address}, mask: 255.0.0.0, gw: {address}", "esp_netif_handlers"
        )
        message = f'Got IPv4 event: Interface "{NETIF_STA}" address: {address}'
        self.log(LogLevel.INFO, message, "example_connect")
        self.log(LogLevel.INFO, f"Connected to {NETIF_STA}", "example_common")
        self.log(LogLevel.INFO, f"- IPv4 address: {address},", "example_common")
