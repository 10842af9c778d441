"""native_ota driven as Espressif's example tests drive it (this project's words)."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from common_test_methods import get_host_ip4_by_dest_ip
from example_https import serve
from pytest_embedded import Dut

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_certs")


@pytest.mark.parametrize("target", ["esp32"], indirect=True)
def test_native_refuses_a_short_image(dut: Dut) -> None:
    with open(os.path.join(dut.app.binary_path, "native_ota.bin"), "rb") as whole:
        head = whole.read(180)
    with open(os.path.join(dut.app.binary_path, "short.bin"), "wb") as short:
        short.write(head)
    server = multiprocessing.Process(target=serve, args=(dut.app.binary_path, 8002, CERTS), daemon=True)
    server.start()
    try:
        dut.expect("Loaded app from partition at offset", timeout=30)
        board_ip = dut.expect(r"IPv4 address: (\d+\.\d+\.\d+\.\d+)[^\d]", timeout=30)[1].decode()
        dut.expect("Starting OTA example task", timeout=30)
        dut.write(f"https://{get_host_ip4_by_dest_ip(board_ip)}:8002/short.bin")
        dut.expect("native_ota_example: received package is not fit len", timeout=30)
    finally:
        server.terminate()
