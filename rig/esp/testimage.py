"""Test apps: the virtual lab's stand-in for an ESP-IDF build of the reference firmware.

A valid ESP32 app with a real `esp_app_desc_t` and exactly one behaviour marker in
DROM, deterministic for the same arguments, so scenarios and tests can name images
by their inputs.
"""

from __future__ import annotations

import hashlib

from rig.esp.appdesc import AppDescriptor
from rig.esp.image import build_app_image
from rig.esp.marker import Behaviour, marker_bytes
from rig.esp.signing import SigningKey, sign_image, verification_key_record

# Fixed build stamp: a real build's time/date would make every image differ.
_TIME = "12:00:00"
_DATE = "Jan  1 2025"
_IDF_VER = "v5.5.5"


def make_test_app(
    *,
    version: str,
    project: str = "ota-rig-ref",
    secure_version: int = 0,
    behaviour: Behaviour = Behaviour.HEALTHY,
    size: int = 128 * 1024,
    key: SigningKey | None = None,
) -> bytes:
    """An app image of exactly `size` bytes before signing (a multiple of 16)."""
    elf_sha256 = hashlib.sha256(f"{project}/{version}/{secure_version}".encode()).digest()
    desc = AppDescriptor(
        secure_version=secure_version,
        version=version,
        project_name=project,
        time=_TIME,
        date=_DATE,
        idf_ver=_IDF_VER,
        app_elf_sha256=elf_sha256,
    )
    rodata = marker_bytes(behaviour) + verification_key_record(key)
    image = build_app_image(desc=desc, rodata=rodata, payload_size=size)
    return sign_image(image, key) if key is not None else image
