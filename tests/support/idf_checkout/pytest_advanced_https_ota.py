"""advanced_https_ota driven as Espressif's example tests drive it (this project's words)."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from common_test_methods import get_host_ip4_by_dest_ip
from example_https import serve
from pytest_embedded import Dut

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_certs")


@pytest.mark.parametrize("target", ["esp32"], indirect=True)
def test_advanced_update_boots_the_other_slot(dut: Dut) -> None:
    server = multiprocessing.Process(target=serve, args=(dut.app.binary_path, 8001, CERTS), daemon=True)
    server.start()
    try:
        dut.expect("Loaded app from partition at offset 0x20000", timeout=30)
        board_ip = dut.expect(r"IPv4 address: (\d+\.\d+\.\d+\.\d+)[^\d]", timeout=30)[1].decode()
        dut.expect("Starting Advanced OTA example", timeout=30)
        dut.write(f"https://{get_host_ip4_by_dest_ip(board_ip)}:8001/advanced_https_ota.bin")
        dut.expect("upgrade successful. Rebooting ...", timeout=120)
        dut.expect("Loaded app from partition at offset 0x1d0000", timeout=30)
    finally:
        server.terminate()


@pytest.mark.parametrize("config", ["ota_resumption_flash_enc"], indirect=True)
@pytest.mark.parametrize("target", ["esp32"], indirect=True)
def test_needs_flash_encryption(dut: Dut) -> None:
    dut.expect("Flash encryption mode is DEVELOPMENT", timeout=30)
