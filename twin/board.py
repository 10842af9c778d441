"""A twin board: chip + 2nd-stage bootloader + firmware models + config + state dir.

The chip's ROM calls `flash_boot` after its banner; that runs the bootloader and
hands the chosen app to the firmware model registered for its project name.
State (flash.bin, efuse.json) lives in one directory and survives both power cuts
and lab restarts; NVS lives in flash, in the partition table's `nvs` partition.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from twin.bootloader import Bootloader, VerifiedApp
from twin.chip import Esp32Chip
from twin.config import BoardConfig
from twin.cpu import Cpu
from twin.firmware import get_model
from twin.firmware.base import AppRuntime
from twin.net import Net
from twin.nvs import Nvs, find_nvs_partition
from twin.ota_ops import OtaOps
from twin.power import USB_RAIL_VOLTS, PoweredDevice
from twin.trace import TRACE_DIR, FlashTrace
from twin.uart import DownloadPort, Rfc2217Server


class TwinBoard:
    """What the lab orchestrator drives: power, the serial port, the state on disk."""

    def __init__(self, state_dir: Path, config: BoardConfig | None = None, *, trace: bool = False) -> None:
        self.state_dir = state_dir
        self.config = config or BoardConfig()
        state_dir.mkdir(parents=True, exist_ok=True)
        rev = self.config.chip_rev_full
        self.chip = Esp32Chip(
            state_dir,
            self.flash_boot,
            flash_size=self.config.flash_size,
            revision=(rev // 100, rev % 100),
            log_colours=self.config.log_colors,
            restart_delay_s=self.config.restart_ms / 1000,
            trace=FlashTrace(state_dir / TRACE_DIR) if trace else None,
        )
        self._server: Rfc2217Server | None = None
        self._download: DownloadPort | None = None

    @property
    def power(self) -> PoweredDevice:
        return self.chip

    def flash_boot(self, cpu: Cpu) -> None:
        """Bootloader, then the firmware model of the loaded image (its app_main)."""
        boot_app(cpu, self.config, lambda _app: self.chip.install_brownout_isr(cpu))
        cpu.halt()

    def start(
        self, *, rfc2217_port: int | None = 0, download_port: int | None = None, powered: bool = True
    ) -> None:
        """Serve the UART over RFC2217 (port 0 = ephemeral; None = no server), optionally as a
        raw download port for stock esptool by hand (twin/uart.py `DownloadPort`), and power up."""
        if rfc2217_port is not None and self._server is None:
            self._server = self.chip.serve_rfc2217(rfc2217_port)
        if download_port is not None and self._download is None:
            self._download = self.chip.serve_download(download_port)
        if powered:
            self.chip.supply_changed(USB_RAIL_VOLTS)

    @property
    def port(self) -> int | None:
        """The RFC2217 TCP port on 127.0.0.1, once started."""
        return None if self._server is None else self._server.port

    @property
    def download_port(self) -> int | None:
        """The raw download TCP port on 127.0.0.1, if served."""
        return None if self._download is None else self._download.port

    def stop(self) -> None:
        self.chip.supply_changed(0.0)
        self.chip.close()


def boot_app(
    cpu: Cpu,
    config: BoardConfig,
    app_started: Callable[[VerifiedApp], None],
    nvs_type: type[Nvs] = Nvs,
) -> None:
    """The 2nd-stage bootloader, then app_main of the firmware model of the image it loaded;
    `app_started` hears which image that is before app_main runs (the app's startup code)."""
    table, app = Bootloader(cpu, config).run()
    app_started(app)
    model = get_model(config.model_for(app.project_name))()
    nvs_partition = find_nvs_partition(table)
    if nvs_partition is None:
        _nvs_init_abort(cpu)
    ota = OtaOps(cpu, config, table, app)
    nvs = nvs_type(cpu.flash, nvs_partition)
    net = Net(cpu, config.tcp_window)
    try:
        model.run(AppRuntime(cpu, config, table, app, ota, nvs, net))
    finally:
        net.abort_all()


def _nvs_init_abort(cpu: Cpu) -> NoReturn:
    """`ESP_ERROR_CHECK(nvs_flash_init())` in app_main without an nvs partition: abort, restart."""
    lines = [
        "ESP_ERROR_CHECK failed: esp_err_t 0x105 (ESP_ERR_NOT_FOUND) at 0x400d1fdf",
        'file: "../main/main.c" line 20', "func: app_main", "expression: nvs_flash_init()", "",
        "abort() was called at PC 0x40082b6f on core 0", "", "",
        "Backtrace: 0x40081a0e:0x3ffb4ff0 0x4008a1f1:0x3ffb5010 0x400d1fdf:0x3ffb5030", "", "Rebooting...",
    ]
    cpu.uart_write("".join(f"{line}\r\n" for line in lines).encode())
    cpu.restart()
