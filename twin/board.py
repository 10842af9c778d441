"""A twin board: chip + 2nd-stage bootloader + firmware models + config + state dir.

The chip's ROM calls `flash_boot` after its banner; that runs the bootloader and
hands the chosen app to the firmware model registered for its project name.
State (flash.bin, efuse.json, nvs.json) lives in one directory and survives both
power cuts and lab restarts.
"""

from __future__ import annotations

from pathlib import Path

from twin.bootloader import Bootloader
from twin.chip import Esp32Chip
from twin.config import BoardConfig
from twin.cpu import Cpu
from twin.firmware import get_model
from twin.firmware.base import AppRuntime, Nvs
from twin.net import Net
from twin.ota_ops import OtaOps
from twin.power import USB_RAIL_VOLTS, PoweredDevice
from twin.uart import Rfc2217Server


class TwinBoard:
    """What the lab orchestrator drives: power, the serial port, the state on disk."""

    def __init__(self, state_dir: Path, config: BoardConfig | None = None) -> None:
        self.state_dir = state_dir
        self.config = config or BoardConfig()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.nvs = Nvs(state_dir / "nvs.json")
        rev = self.config.chip_rev_full
        self.chip = Esp32Chip(
            state_dir,
            self.flash_boot,
            flash_size=self.config.flash_size,
            revision=(rev // 100, rev % 100),
            log_colours=self.config.log_colors,
        )
        self._server: Rfc2217Server | None = None

    @property
    def power(self) -> PoweredDevice:
        return self.chip

    def flash_boot(self, cpu: Cpu) -> None:
        """Bootloader, then the firmware model of the loaded image (its app_main)."""
        table, app = Bootloader(cpu, self.config).run()
        self.chip.install_brownout_isr(cpu)
        model = get_model(self.config.model_for(app.project_name))()
        ota = OtaOps(cpu, self.config, table, app)
        model.run(AppRuntime(cpu, self.config, table, app, ota, self.nvs, Net(cpu)))
        cpu.halt()

    def start(self, *, rfc2217_port: int | None = 0, powered: bool = True) -> None:
        """Serve the UART over RFC2217 (port 0 = ephemeral; None = no server) and power up."""
        if rfc2217_port is not None and self._server is None:
            self._server = self.chip.serve_rfc2217(rfc2217_port)
        if powered:
            self.chip.supply_changed(USB_RAIL_VOLTS)

    @property
    def port(self) -> int | None:
        """The RFC2217 TCP port on 127.0.0.1, once started."""
        return None if self._server is None else self._server.port

    def stop(self) -> None:
        self.chip.supply_changed(0.0)
        self.chip.close()
