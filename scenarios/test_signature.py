"""Signed updates: unsigned, wrong key, corrupted signature, tampered after signing."""

from __future__ import annotations

import pytest

from rig.checks import signature_rejected
from rig.session import OtaSession
from scenarios._support import assert_no_log, ended_on, need_image, need_signing

pytestmark = [pytest.mark.signature, pytest.mark.gate]
BAD_SIGNATURES = ("unsigned", "wrong_key", "signature_corrupted", "tampered_after_signing")


def test_bad_signatures_rejected(ota: OtaSession) -> None:
    """Field failure: an attacker (or a mis-configured CI) pushes an image the fleet must
    not run.

    Fault: `next` without a signature, signed with another key, with one signature byte
    flipped, and with its version changed after signing. Correct outcome (ESP-IDF signed
    updates, esp_image_format.c:verify_secure_boot_signature()): `esp_ota_end` verifies the signature and
    fails (`E esp_image:
    Secure boot signature verification failed`, `W esp_image: image valid, signature
    bad`, `E esp_ota_ops: New image failed verification`); the boot partition is not
    switched and the old app keeps running.
    """
    need_signing(ota)
    for image in BAD_SIGNATURES:
        need_image(ota, image)
    ota.prepare()
    for image in BAD_SIGNATURES:
        result = ota.ok(image)
        check = signature_rejected(result.timeline, result.otadata, ota.board.table)
        assert check.passed, f"{image}: {check.explain()}"
        assert_no_log(ota, result, ota.says.complete)
        ended_on(result, ota.images.base_version)
