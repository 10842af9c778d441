"""Signing keys, signatures and verification, cross-checked against espsecure."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from pathlib import Path

import espsecure
import esptool
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rig.cli import main
from rig.errors import InputError
from rig.esp.image import ImageFault, parse, patch_image, recompute_digests, signature_block_len, verify_image
from rig.esp.signing import (
    MBEDTLS_ERR_RSA_INVALID_PADDING,
    MBEDTLS_ERR_RSA_VERIFY_FAILED,
    SignatureVerdict,
    SigningKey,
    SigningScheme,
    pss_verify_error,
    signed_by,
    verify_signature,
)
from rig.esp.testimage import make_test_app


def espsecure_accepts(data: bytes, key: SigningKey, tmp_path: Path) -> bool:
    """`espsecure verify-signature` in-process: True when it verifies."""
    path = tmp_path / "to_verify.bin"
    path.write_bytes(data)
    version = "2" if key.scheme is SigningScheme.RSA3072_SBV2 else "1"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            espsecure.main(["verify-signature", "--version", version, "--keyfile", str(key.path), str(path)])
    except (esptool.FatalError, AssertionError, ValueError):
        return False
    return True


def _pem(tmp_path: Path, name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / name
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


@pytest.fixture(scope="module")
def app() -> bytes:
    return make_test_app(version="3.0.0")


def test_load_detects_scheme(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    assert SigningKey.load(rsa_key.path).scheme is SigningScheme.RSA3072_SBV2
    assert SigningKey.load(ec_key.path).scheme is SigningScheme.ECDSA256_V1


def test_wrong_key_kinds_are_refused_with_the_reason(tmp_path: Path) -> None:
    p384 = _pem(tmp_path, "key.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InputError, match=r"key\.pem is an EC P-384 key; ESP32 signing needs RSA-3072"):
        SigningKey.load(p384)
    rsa2048 = _pem(tmp_path, "small.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(InputError, match="RSA-2048"):
        SigningKey.load(rsa2048)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        SigningKey.load(junk)


def test_key_digest_matches_espsecure(rsa_key: SigningKey, tmp_path: Path) -> None:
    out = tmp_path / "digest.bin"
    with contextlib.redirect_stdout(io.StringIO()):
        espsecure.main(["digest-sbv2-public-key", "--keyfile", str(rsa_key.path), "--output", str(out)])
    assert rsa_key.public_key_digest() == out.read_bytes()


def test_sbv2_signature_layout(app: bytes, rsa_key: SigningKey) -> None:
    signed = patch_image(app, key=rsa_key)
    assert len(signed) == len(app) + 4096  # app is 4 KB aligned already
    info = parse(signed).signature
    assert info is not None and info.offset == len(app) and info.crc_ok and info.digest_ok
    assert signed[len(app)] == 0xE7 and signed[len(app) + 1] == 2
    assert info.key_digest == rsa_key.public_key_digest() == signed_by(signed)
    assert verify_image(signed).ok


def test_v1_block_is_68_bytes_after_the_hash(app: bytes, ec_key: SigningKey) -> None:
    signed = patch_image(app, key=ec_key)
    assert len(signed) == len(app) + 68 and signed[len(app) : len(app) + 4] == bytes(4)
    info = parse(signed).signature
    assert info is not None and info.scheme is SigningScheme.ECDSA256_V1 and info.offset == len(app)
    assert signed_by(signed) is None


def _tampered(signed: bytes) -> bytes:
    buf = bytearray(signed)
    buf[0x5000] ^= 1
    return recompute_digests(bytes(buf))


def _corrupt_rsa(signed: bytes, offset: int) -> bytes:
    buf = bytearray(signed)
    buf[offset + 1000] ^= 1
    struct.pack_into("<I", buf, offset + 1196, zlib.crc32(bytes(buf[offset : offset + 1196])))
    return bytes(buf)


@pytest.mark.parametrize("scheme", ["rsa", "ec"])
def test_verdicts_agree_with_espsecure(
    app: bytes,
    rsa_key: SigningKey,
    other_rsa_key: SigningKey,
    ec_key: SigningKey,
    scheme: str,
    tmp_path: Path,
) -> None:
    key = rsa_key if scheme == "rsa" else ec_key
    trusted = [key.trust_anchor()]
    signed = patch_image(app, key=key)
    cases: dict[str, tuple[bytes, SignatureVerdict]] = {
        "signed": (signed, SignatureVerdict.VERIFIED),
        "tampered": (
            _tampered(signed),
            SignatureVerdict.DIGEST_MISMATCH if scheme == "rsa" else SignatureVerdict.BAD_SIGNATURE,
        ),
    }
    if scheme == "rsa":
        cases["wrong_key"] = (patch_image(app, key=other_rsa_key), SignatureVerdict.KEY_NOT_TRUSTED)
        cases["corrupt_signature"] = (_corrupt_rsa(signed, len(app)), SignatureVerdict.BAD_SIGNATURE)
    else:
        other = SigningKey.generate(tmp_path / "other_ec.pem", SigningScheme.ECDSA256_V1)
        cases["wrong_key"] = (patch_image(app, key=other), SignatureVerdict.BAD_SIGNATURE)
    for name, (data, verdict) in cases.items():
        assert verify_signature(data, trusted) is verdict, name
        assert espsecure_accepts(data, key, tmp_path) is (verdict is SignatureVerdict.VERIFIED), name


def test_unsigned_image_has_no_signature(app: bytes, rsa_key: SigningKey) -> None:
    assert verify_signature(app, [rsa_key.trust_anchor()]) is SignatureVerdict.NO_SIGNATURE
    assert verify_signature(app + b"\xff" * 8192, [rsa_key.trust_anchor()]) is SignatureVerdict.NO_SIGNATURE


def test_resigning_replaces_the_old_signature(
    app: bytes, rsa_key: SigningKey, other_rsa_key: SigningKey
) -> None:
    resigned = patch_image(patch_image(app, key=rsa_key), version="3.0.1", key=other_rsa_key)
    assert signed_by(resigned) == other_rsa_key.public_key_digest()
    assert verify_signature(resigned, [other_rsa_key.trust_anchor()]) is SignatureVerdict.VERIFIED


def test_keys_generate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new.pem"
    assert main(["keys", "generate", "--scheme", "ecdsa256-v1", str(out)]) == 0
    assert SigningKey.load(out).scheme is SigningScheme.ECDSA256_V1
    assert main(["keys", "generate", "--scheme", "ecdsa256-v1", str(out)]) == 2  # exists: espsecure refuses
    assert main(["keys", "generate", str(tmp_path / "no" / "dir.pem")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("rig: error: ") for line in err)


def test_pss_verify_error_is_what_mbedtls_returns_for_each_kind_of_bad_signature(
    app: bytes, rsa_key: SigningKey
) -> None:
    """mbedtls 3.6 rsa.c:mbedtls_rsa_rsassa_pss_verify_ext(): a flipped signature byte decodes
    to a random EM without the 0xBC trailer (INVALID_PADDING, -16640); a good signature over
    other image bytes decodes fine and fails the hash comparison (VERIFY_FAILED, -17280)."""
    signed = patch_image(app, key=rsa_key)
    sector = len(app)
    assert pss_verify_error(signed, sector) == 0
    flipped = bytearray(signed)
    flipped[sector + 900] ^= 0x01
    assert pss_verify_error(bytes(flipped), sector) == MBEDTLS_ERR_RSA_INVALID_PADDING == -16640
    tampered = bytearray(signed)
    tampered[100] ^= 0x01
    assert pss_verify_error(bytes(tampered), sector) == MBEDTLS_ERR_RSA_VERIFY_FAILED == -17280


def test_a_signed_image_that_outgrows_its_slot_counts_its_signature_sector(app: bytes) -> None:
    """esp_image_format.c:process_appended_hash_and_sig(): the length check adds the pad to
    4 KiB plus the 4 KiB signature sector (RSA) or the 68-byte block (ECDSA v1)."""
    assert verify_image(app, partition_size=len(app)).ok
    check = verify_image(app, partition_size=len(app), signed_apps=SigningScheme.RSA3072_SBV2)
    assert check.fault is ImageFault.TOO_LONG_FOR_PARTITION
    assert check.detail["length"] == len(app) + 4096
    assert signature_block_len(len(app) - 10, SigningScheme.RSA3072_SBV2) == 10 + 4096
    assert signature_block_len(len(app), SigningScheme.ECDSA256_V1) == 68
