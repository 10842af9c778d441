"""simple_ota driven as Espressif's example tests drive it (this project's words)."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from common_test_methods import get_env_config_variable, get_host_ip4_by_dest_ip
from example_https import serve
from pytest_embedded import Dut

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_certs")


def update(dut: Dut, expected: list[str]) -> None:
    server = multiprocessing.Process(target=serve, args=(dut.app.binary_path, 8000, CERTS), daemon=True)
    server.start()
    try:
        dut.expect("Loaded app from partition at offset 0x20000", timeout=30)
        bootloader = dut.app.get_sha256(os.path.join(dut.app.binary_path, "bootloader", "bootloader.bin"))
        assert bootloader in dut.expect(r"SHA-256 for bootloader:\s+[a-f0-9]{64}")[0].decode()
        if dut.app.sdkconfig.get("EXAMPLE_WIFI_SSID_PWD_FROM_STDIN") is True:
            dut.expect("Please input ssid password:")
            ssid = get_env_config_variable("wifi_high_traffic", "ap_ssid")
            dut.write(f"{ssid} {get_env_config_variable('wifi_high_traffic', 'ap_password')}")
        board_ip = dut.expect(r"IPv4 address: (\d+\.\d+\.\d+\.\d+)[^\d]", timeout=30)[1].decode()
        dut.expect("Starting OTA example task", timeout=30)
        dut.write(f"https://{get_host_ip4_by_dest_ip(board_ip)}:8000/simple_ota.bin")
        for line in expected:
            dut.expect(line, timeout=120)
        dut.expect("Loaded app from partition at offset 0x1d0000", timeout=30)
    finally:
        server.terminate()


@pytest.mark.parametrize("target", ["esp32", "esp32c3"], indirect=True)
def test_simple_update_with_wifi_from_the_console(dut: Dut) -> None:
    update(dut, ["OTA Succeed, Rebooting..."])


@pytest.mark.parametrize("config", ["on_update_no_sb_rsa"], indirect=True)
@pytest.mark.parametrize("target", ["esp32"], indirect=True)
def test_simple_signed_update_verified_before_the_switch(dut: Dut) -> None:
    update(
        dut,
        [
            "Writing to <ota_1> partition at offset 0x1d0000",
            "Verifying image signature...",
            "Signature verified successfully!",
            "OTA Succeed, Rebooting...",
        ],
    )
