"""Signed updates (CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT, RSA-3072): the running app's
key decides; every rejection prints ESP-IDF's §5.5 sequence and leaves otadata alone."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest

from rig.esp.image import parse, patch_image, recompute_digests
from rig.esp.marker import Behaviour
from rig.esp.signing import SigningKey, find_signature, sign_image
from rig.esp.testimage import make_test_app
from twin.config import SignedUpdates

from .conftest import Keys, Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]
SIZE = 64 * 1024
# Offsets inside an SBv2 signature block (esp_secure_boot.h ets_secure_boot_sig_block_t).
_SIGNATURE_AT = 812
_CRC_AT = 1196

VERIFYING = [
    "I esp_image: Verifying image signature...",
    "I secure_boot_v2: Take trusted digest key(s) from running app",
]
RSA_VERIFYING = [
    "I secure_boot_v2: #0 app key digest == #0 trusted key digest",
    "I secure_boot_v2: Verifying with RSA-PSS...",
]
# mbedtls 3.6 rsa.c:mbedtls_rsa_rsassa_pss_verify_ext(): a good signature over other bytes
# fails the hash comparison (VERIFY_FAILED); a flipped signature bit decodes to a random EM
# without the 0xBC trailer (INVALID_PADDING).
RSA_FAILED = [*RSA_VERIFYING, "E secure_boot_v2_rsa: Failed mbedtls_rsa_rsassa_pss_verify, err: -17280"]
RSA_BAD_PADDING = [*RSA_VERIFYING, "E secure_boot_v2_rsa: Failed mbedtls_rsa_rsassa_pss_verify, err: -16640"]
TAIL = [
    "E esp_image: Secure boot signature verification failed",
    "I esp_image: Calculating simple hash to check for corruption...",
]


def _signed_lab(make_lab: MakeLab, key: SigningKey) -> Lab:
    config = lab_config(signed_updates=SignedUpdates.RSA3072)
    return make_lab(make_test_app(version="1.0.0", size=SIZE, key=key), config)


def _corrupt_signature(signed: bytes) -> bytes:
    """Flip a bit of the RSA-PSS signature and fix the block CRC: a present, trusted, wrong signature."""
    info = find_signature(signed, parse(signed).image_length)
    assert info is not None
    buf = bytearray(signed)
    buf[info.offset + _SIGNATURE_AT + 40] ^= 0x01
    struct.pack_into("<I", buf, info.offset + _CRC_AT, zlib.crc32(buf[info.offset : info.offset + _CRC_AT]))
    return bytes(buf)


def _tamper(signed: bytes, *, fix_hash: bool) -> bytes:
    """Change two payload bytes after signing so the XOR checksum still holds; a careful
    attacker also fixes the appended SHA-256, transit corruption does not."""
    buf = bytearray(signed)
    buf[SIZE // 2] ^= 0x5A
    buf[SIZE // 2 + 1] ^= 0x5A
    return recompute_digests(bytes(buf)) if fix_hash else bytes(buf)


def _variants(keys: Keys) -> dict[str, tuple[bytes, list[str]]]:
    ours, other = keys
    good = make_test_app(version="1.0.1", size=SIZE, key=ours)
    valid_bad = "W esp_image: image valid, signature bad"
    return {
        "unsigned": (make_test_app(version="1.0.1", size=SIZE), [*VERIFYING, *TAIL, valid_bad]),
        "wrong-key": (make_test_app(version="1.0.1", size=SIZE, key=other), [*VERIFYING, *TAIL, valid_bad]),
        "corrupted-signature": (_corrupt_signature(good), [*VERIFYING, *RSA_BAD_PADDING, *TAIL, valid_bad]),
        "tampered-after-signing": (_tamper(good, fix_hash=True), [*VERIFYING, *RSA_FAILED, *TAIL, valid_bad]),
        "corrupted-after-signing": (
            _tamper(good, fix_hash=False),
            [*VERIFYING, *RSA_FAILED, *TAIL, "W esp_image: image corrupted on flash"],
        ),
    }


CASES = ["unsigned", "wrong-key", "corrupted-signature", "tampered-after-signing", "corrupted-after-signing"]


@pytest.mark.parametrize("case", CASES)
def test_rejected_signature_prints_the_idf_sequence_and_keeps_the_old_app(
    make_lab: MakeLab, served: Served, keys: Keys, case: str
) -> None:
    image, expected = _variants(keys)[case]
    served.images["next.bin"] = image
    lab = _signed_lab(make_lab, keys[0])
    start_ota(lab, served, "next.bin")
    c = lab.console
    begin = c.expect(r"rig_agent: ota progress bytes=\d+ total=\d+$").end()
    c.expect(r"^E \(\d+\) rig_agent: ota failed err=0x1503 reason=finish$")
    lines = c.log_lines(begin)
    first = lines.index(VERIFYING[0])
    expected = [*expected, "E esp_ota_ops: New image failed verification"]
    assert lines[first : first + len(expected)] == expected
    assert "E advanced_https_ota_example: Image validation failed, image is corrupted" in lines
    assert "E advanced_https_ota_example: ESP_HTTPS_OTA upgrade failed 0x1503" in lines
    assert lab.otadata().entries[1].is_erased
    c.send("restart")
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")


def test_signed_by_the_running_key_is_accepted_and_booted(
    make_lab: MakeLab, served: Served, keys: Keys
) -> None:
    served.images["next.bin"] = make_test_app(version="1.0.1", size=SIZE, key=keys[0])
    lab = _signed_lab(make_lab, keys[0])
    start_ota(lab, served, "next.bin")
    c = lab.console
    begin = c.expect(r"rig_agent: ota progress bytes=\d+ total=\d+$").end()
    c.expect(r"rig_agent: ota complete bytes=\d+$")
    lines = c.log_lines(begin)
    first = lines.index(VERIFYING[0])
    assert lines[first : first + 5] == [
        *VERIFYING,
        "I secure_boot_v2: #0 app key digest == #0 trusted key digest",
        "I secure_boot_v2: Verifying with RSA-PSS...",
        "I secure_boot_v2_rsa: Signature verified successfully!",
    ]
    c.expect(r"boot: Loaded app from partition at offset 0x1d0000$")
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")


def test_a_good_signature_over_a_bad_appended_hash_passes_the_update_but_not_the_boot(
    make_lab: MakeLab, served: Served, keys: Keys
) -> None:
    """esp_image_format.c: with CONFIG_SECURE_SIGNED_ON_UPDATE the app checks the signature and
    only looks at the appended SHA-256 to explain a failure, so the update is accepted and the
    boot partition switched; the bootloader (no CONFIG_SECURE_SIGNED_ON_BOOT) checks the simple
    hash instead, refuses the slot and boots the old app."""
    ours, _ = keys
    unsigned = bytearray(make_test_app(version="1.0.1", size=SIZE))
    unsigned[parse(bytes(unsigned)).image_length - 1] ^= 0xFF  # last byte of the appended SHA-256
    served.images["bad_hash.bin"] = sign_image(bytes(unsigned), ours)
    lab = _signed_lab(make_lab, ours)
    start_ota(lab, served, "bad_hash.bin")
    c = lab.console
    c.expect(r"secure_boot_v2_rsa: Signature verified successfully!$")
    c.expect(r"rig_agent: ota complete ")
    c.expect(r"E \(\d+\) esp_image: Image hash failed - image is corrupt$")
    c.expect(r"E \(\d+\) boot: OTA app partition slot 1 is not bootable$")
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")


def test_a_rollback_check_with_signed_updates_verifies_and_logs_the_old_slot_signature(
    make_lab: MakeLab, served: Served, keys: Keys
) -> None:
    """esp_ota_ops.c:esp_ota_check_rollback_is_possible() runs image_validate(SILENT) on the
    slot it would go back to; with signed updates that is a signature check, whose lines
    are not silenced, before `Rollback to previously worked partition.`."""
    ours, _ = keys
    served.images["fails.bin"] = patch_image(
        make_test_app(version="1.0.1", size=SIZE), behaviour=Behaviour.SELFTEST_FAIL, key=ours
    )
    lab = _signed_lab(make_lab, ours)
    start_ota(lab, served, "fails.bin")
    c = lab.console
    mark = c.expect(r"rig_agent: selftest failed$").end()
    c.expect(r"esp_ota_ops: Rollback to previously worked partition\.$")
    between = c.text[mark:]
    assert "esp_image: Verifying image signature..." in between
    assert "secure_boot_v2_rsa: Signature verified successfully!" in between
    c.expect(r"rig_agent: ready version=1\.0\.0 running=ota_0 state=VALID$")
