"""Broken images: truncated, bad header, random bytes, flipped payload byte, bad checksum, wrong chip."""

from __future__ import annotations

import pytest

from rig.checks import RejectReason, image_rejected
from rig.phase import Final
from rig.session import OtaSession
from scenarios._support import assert_log, assert_no_log, ended_on

pytestmark = [pytest.mark.gate]

# Mutant -> the ESP-IDF refusal the log must show (rig.checks' reason families).
BROKEN = {
    "truncated": RejectReason.VERIFICATION,
    "truncated_header": RejectReason.TRUNCATED,
    "random_bytes": RejectReason.DESCRIPTOR,
    "corrupt_payload": RejectReason.VERIFICATION,
    "bad_checksum": RejectReason.CHECKSUM,
}


def test_broken_images_rejected(ota: OtaSession) -> None:
    """Field failure: a broken file on the update server (truncated upload, disk error,
    wrong artifact) bricks the devices that download it.

    Fault: the server serves a truncated image, only the first 180 bytes, 32000 random
    bytes, `next` with one payload byte flipped, and `next` with a wrong checksum byte.
    Correct outcome (ESP-IDF): each is refused with its own line, e.g. `E esp_https_ota:
    Complete headers were not received`, `E esp_https_ota: Incorrect app descriptor magic`,
    `E esp_image: Checksum failed...` / `Image hash failed...` then `E esp_ota_ops: New image
    failed verification`; otadata is untouched and the old app keeps running.
    """
    ota.prepare()
    for image, reason in BROKEN.items():
        # Which esp_image line a truncated image earns depends on what the slot held past
        # the new image's end (esp_ota_begin erases only the image's length), so the
        # manifest's exact line is not required for it: any verification failure is correct.
        result = ota.ok(image, expect=Final.OLD if image == "truncated" else None)
        check = image_rejected(result.timeline, result.otadata, ota.board.table, reason=reason)
        assert check.passed, f"{image}: {check.explain()}"
        ended_on(result, ota.images.base_version)


def test_wrong_chip_rejected_before_write(ota: OtaSession) -> None:
    """Field failure: an image built for another chip (or a newer silicon revision) is
    flashed and the device never boots again.

    Fault: `next` with chip id 0xFE.. in its header, `next` requiring chip revision v4.0,
    and `next` allowing at most v2.0. Correct outcome (ESP-IDF v5.5.5
    esp_https_ota.c:esp_https_ota_perform()): the first call runs `esp_ota_begin`, then checks
    the header's chip id and revision range (`esp_ota_verify_chip_revision` →
    `bootloader_common_check_chip_revision_validity(hdr, true)`, minimum and maximum) before
    anything is written: `E esp_https_ota: Mismatch chip id, expected 0, found ...`,
    `E boot_comm: chip revision check failed. Required >= v4.0, found v3.0.` and
    `... Required <= v2.0, found v3.0.` (ESP_ERR_INVALID_VERSION), no `ota saved` or
    `ota progress` marker. Old app keeps running.
    """
    ota.prepare()
    wrong_chip = ota.ok("wrong_chip_id")
    check = image_rejected(wrong_chip.timeline, wrong_chip.otadata, ota.board.table,
                             reason=RejectReason.CHIP_ID)
    assert check.passed, check.explain()
    assert_no_log(ota, wrong_chip, *ota.says.wrote)
    ended_on(wrong_chip, ota.images.base_version)

    revisions = (("chip_rev_too_high", "Required >= v4.0"), ("chip_rev_max_too_low", "Required <= v2.0"))
    for image, needle in revisions:
        refused = ota.ok(image)
        assert_log(ota, refused, f"chip revision check failed. {needle}", ota.says.failed)
        assert_no_log(ota, refused, *ota.says.wrote, ota.says.complete)
        ended_on(refused, ota.images.base_version)
