"""Espressif's three OTA examples (ESP-IDF v5.5.5 examples/system/ota/*/main/*.c) on a twin:
what their own pytest files wait for, and how each reacts to what the field does to it."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest

from rig.esp.example_image import KconfigValue, make_example_app
from rig.esp.image import patch_image
from rig.esp.otadata import OtaState

from .conftest import Lab, Served, lab_config

MakeLab = Callable[..., Lab]
OTA_0, OTA_1 = 0x20000, 0x1D0000
CI = {"EXAMPLE_SKIP_COMMON_NAME_CHECK": True, "EXAMPLE_SKIP_VERSION_CHECK": True}


def _pem(served: Served) -> bytes:
    return ssl.DER_cert_to_PEM_cert(served.pinned_der).encode()


def _app(served: Served, project: str, version: str, **choices: KconfigValue) -> bytes:
    return make_example_app(project=project, version=version, ca_pem=_pem(served), choices=choices or CI)


def _booted(lab: Lab, offset: int, version: str) -> None:
    c = lab.console
    c.expect(rf"Loaded app from partition at offset 0x{offset:x}$")
    c.expect(rf"App version:\s+{version}$")


def test_advanced_example_takes_its_url_from_the_console_and_boots_the_update(
    make_lab: MakeLab, served: Served
) -> None:
    served.images["advanced_https_ota.bin"] = _app(served, "advanced_https_ota", "2.0.0")
    lab = make_lab(_app(served, "advanced_https_ota", "1.0.0"))
    c = lab.console
    _booted(lab, OTA_0, "1.0.0")
    c.expect(r"advanced_https_ota_example: OTA example app_main start$")
    c.expect(r"example_common: - IPv4 address: 127\.0\.0\.1,$")
    c.expect(r"advanced_https_ota_example: Starting Advanced OTA example$")
    c.send(served.url("advanced_https_ota.bin"))
    for line in ("OTA started", "Connected to server", "Reading Image Description",
                 "Running firmware version: 1.0.0", "Verifying chip id of new image: 0",
                 "Boot partition updated. Next Partition: 17", "OTA finish",
                 "ESP_HTTPS_OTA upgrade successful. Rebooting ..."):  # fmt: skip
        c.expect(rf"advanced_https_ota_example: {line.replace('.', chr(92) + '.')}$")
    _booted(lab, OTA_1, "2.0.0")
    c.expect(r"advanced_https_ota_example: App is valid, rollback cancelled successfully$")
    entry = lab.otadata().active_entry
    assert entry is not None and entry.state == OtaState.VALID

