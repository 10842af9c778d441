"""advanced_https_ota driven as Espressif's example tests drive it (this project's words)."""

from __future__ import annotations

import http.server
import multiprocessing
import os
import ssl

import pytest
from common_test_methods import get_host_ip4_by_dest_ip
from pytest_embedded import Dut

HERE = os.path.dirname(os.path.abspath(__file__))


def serve(directory: str, port: int) -> None:
    os.chdir(directory)
    httpd = http.server.HTTPServer(("0.0.0.0", port), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        os.path.join(HERE, "test_certs", "server_cert.pem"),
        os.path.join(HERE, "test_certs", "server_key.pem"),
    )
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.serve_forever()


@pytest.mark.parametrize("target", ["esp32"], indirect=True)
def test_advanced_update_boots_the_other_slot(dut: Dut) -> None:
    server = multiprocessing.Process(target=serve, args=(dut.app.binary_path, 8001), daemon=True)
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
