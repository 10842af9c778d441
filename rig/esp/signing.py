"""Signed app images: Secure Boot v2 RSA-3072 sectors and ESP32 ECDSA v1 blocks.

Signing and key generation go through espsecure (the tool a firmware team uses),
so a rig-signed image is byte-for-byte what their release pipeline would make.
Verification is a pure function (for the twin's OTA agent) using `cryptography`
and ESP-IDF's acceptance rules: block 0 only, magic 0xE7, CRC, version.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import espsecure
import esptool
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from rig.errors import InputError
from rig.inputs import MAX_TEXT, read_input
from rig.keyfiles import private_files

SECTOR_SIZE = 4096
SIG_BLOCK_SIZE = 1216
SIG_BLOCK_MAGIC = 0xE7
SIG_BLOCK_VERSION_RSA = 0x02
V1_BLOCK_SIZE = 68
_CRC_OFFSET = 1196
_KEY_FIELDS = slice(36, 812)  # n, e, rinv, m' — what ESP-IDF hashes into the key digest
_RSA_SIGNATURE = slice(812, 1196)
_WRONG_KEY_HINT = "ESP32 signing needs RSA-3072 (secure boot v2) or ECDSA P-256 (v1)"


class SigningScheme(Enum):
    """The two schemes an ESP32 app can be signed with."""

    RSA3072_SBV2 = "rsa3072"
    ECDSA256_V1 = "ecdsa256-v1"


class SignatureVerdict(Enum):
    """Outcome of checking an image's signature against trusted keys."""

    VERIFIED = "verified"
    NO_SIGNATURE = "no_signature"
    KEY_NOT_TRUSTED = "key_not_trusted"
    DIGEST_MISMATCH = "digest_mismatch"
    BAD_SIGNATURE = "bad_signature"


def _load_private_key(path: Path) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    pem = read_input(path, "key", limit=MAX_TEXT)
    if b"PUBLIC KEY-----" in pem:
        raise InputError(f"{path.name} is a public key; signing needs the private key PEM")
    try:
        # Only the public half and the key kind are used here (espsecure validates
        # when it signs); skipping RSA validation saves ~0.15 s per load.
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as error:
        raise InputError(f"{path.name} is not an unencrypted PEM private key ({error})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size != 3072:
            raise InputError(f"{path.name} is an RSA-{key.key_size} key; {_WRONG_KEY_HINT}")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            bits = key.curve.key_size
            raise InputError(f"{path.name} is an EC P-{bits} key; {_WRONG_KEY_HINT}")
        return key
    kind = type(key).__name__.removesuffix("PrivateKey").lstrip("_")
    raise InputError(f"{path.name} is a {kind} key; {_WRONG_KEY_HINT}")


def _rsa_key_fields(public: rsa.RSAPublicKey) -> bytes:
    """n, e, R = 2^6144 mod n and M' = -n^-1 mod 2^32, little-endian, as in the SBv2 block."""
    numbers = public.public_numbers()
    n = numbers.n
    rinv = pow(2, 2 * 3072, n)
    m_prime = (-pow(n, -1, 1 << 32)) % (1 << 32)
    return struct.pack(
        "<384sI384sI", n.to_bytes(384, "little"), numbers.e, rinv.to_bytes(384, "little"), m_prime
    )


def _raw_ec_point(public: ec.EllipticCurvePublicKey) -> bytes:
    numbers = public.public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


@dataclass(frozen=True)
class SigningKey:
    """A private signing key on disk and the scheme it signs with."""

    path: Path
    scheme: SigningScheme

    @classmethod
    def load(cls, path: Path | str) -> SigningKey:
        """Read a PEM and tell its scheme; other key kinds are refused with a clear line."""
        path = Path(path)
        key = _load_private_key(path)
        is_rsa = isinstance(key, rsa.RSAPrivateKey)
        scheme = SigningScheme.RSA3072_SBV2 if is_rsa else SigningScheme.ECDSA256_V1
        return cls(path, scheme)

    @classmethod
    def generate(cls, path: Path | str, scheme: SigningScheme) -> SigningKey:
        """Write a new key with `espsecure generate-signing-key`."""
        path = Path(path)
        if scheme is SigningScheme.RSA3072_SBV2:
            args = ["generate-signing-key", "--version", "2", "--scheme", "rsa3072", str(path)]
        else:
            args = ["generate-signing-key", "--version", "1", "--scheme", "ecdsa256", str(path)]
        if not path.parent.is_dir():
            raise InputError(f"cannot write key {path}: directory does not exist")
        with private_files():
            _run_espsecure(args)
        return cls(path, scheme)

    def public_key_bytes(self) -> bytes:
        """SBv2: the key fields of the signature block; v1: the raw 64-byte point x‖y."""
        key = _load_private_key(self.path)
        if isinstance(key, rsa.RSAPrivateKey):
            return _rsa_key_fields(key.public_key())
        return _raw_ec_point(key.public_key())

    def public_key_digest(self) -> bytes:
        """The digest ESP-IDF compares when it decides whether a key is trusted."""
        return hashlib.sha256(self.public_key_bytes()).digest()

    def trust_anchor(self) -> bytes:
        """What `verify_signature` needs to trust this key.

        SBv2 blocks carry their public key, so the key digest suffices; a v1 block
        carries none, so the verifier needs the raw public key (as the bootloader
        embeds `signature_verification_key.bin`).
        """
        if self.scheme is SigningScheme.RSA3072_SBV2:
            return self.public_key_digest()
        return self.public_key_bytes()


def _run_espsecure(args: list[str]) -> str:
    """Run espsecure in-process; its errors become one-line InputErrors."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            espsecure.main(args)
    except esptool.FatalError as error:
        raise InputError(f"espsecure {args[0]}: {str(error).strip().splitlines()[-1]}") from None
    except SystemExit as done:
        last = (out.getvalue().strip().splitlines() or ["failed"])[-1]
        raise InputError(f"espsecure {args[0]} exited {done.code}: {last}") from None
    except (OSError, ValueError, AssertionError) as error:
        raise InputError(f"espsecure {args[0]}: {error}") from None
    return out.getvalue()


def sign_image(data: bytes, key: SigningKey) -> bytes:
    """`data` (an unsigned image) plus the signature espsecure appends for `key`'s scheme.

    SBv2 pads to a 4 KB boundary with 0xFF and appends the 4 KB sector; v1 appends
    the 68-byte block right after the image.
    """
    version = "2" if key.scheme is SigningScheme.RSA3072_SBV2 else "1"
    with tempfile.TemporaryDirectory(prefix="rig-sign-") as tmp:
        source, signed = Path(tmp) / "image.bin", Path(tmp) / "signed.bin"
        source.write_bytes(data)
        args = ["sign-data", "--version", version, "--keyfile", str(key.path), "--output", str(signed)]
        _run_espsecure([*args, str(source)])
        return signed.read_bytes()


@dataclass(frozen=True)
class SignatureInfo:
    """A signature found after an image.

    `key_digest` is None for v1 (the block carries no key); `crc_ok` and `digest_ok`
    are True for v1, whose block has neither a CRC nor a stored digest.
    """

    scheme: SigningScheme
    offset: int
    key_digest: bytes | None
    crc_ok: bool
    digest_ok: bool

    @property
    def end(self) -> int:
        """File offset just past the signature area."""
        return self.offset + (SECTOR_SIZE if self.scheme is SigningScheme.RSA3072_SBV2 else V1_BLOCK_SIZE)


def sbv2_sector_offset(image_length: int) -> int:
    """Where the SBv2 signature sector starts: the next 4 KB boundary."""
    return -(-image_length // SECTOR_SIZE) * SECTOR_SIZE


def find_signature(data: bytes, image_length: int) -> SignatureInfo | None:
    """The SBv2 block 0 (magic 0xE7, RSA version) or v1 block following the image, if any."""
    sector = sbv2_sector_offset(image_length)
    block = data[sector : sector + SIG_BLOCK_SIZE]
    if len(block) == SIG_BLOCK_SIZE and block[0] == SIG_BLOCK_MAGIC and block[1] == SIG_BLOCK_VERSION_RSA:
        (stored_crc,) = struct.unpack_from("<I", block, _CRC_OFFSET)
        return SignatureInfo(
            scheme=SigningScheme.RSA3072_SBV2,
            offset=sector,
            key_digest=hashlib.sha256(block[_KEY_FIELDS]).digest(),
            crc_ok=zlib.crc32(block[:_CRC_OFFSET]) == stored_crc,
            digest_ok=block[4:36] == hashlib.sha256(data[:sector]).digest(),
        )
    v1 = data[image_length : image_length + V1_BLOCK_SIZE]
    if len(v1) == V1_BLOCK_SIZE and v1[:4] == bytes(4) and v1[4:] not in (bytes(64), b"\xff" * 64):
        return SignatureInfo(SigningScheme.ECDSA256_V1, image_length, None, True, True)
    return None


def _verify_sbv2(data: bytes, info: SignatureInfo, trusted: Sequence[bytes]) -> SignatureVerdict:
    block = data[info.offset : info.offset + SIG_BLOCK_SIZE]
    if not info.crc_ok:
        return SignatureVerdict.NO_SIGNATURE
    if info.key_digest not in trusted:
        return SignatureVerdict.KEY_NOT_TRUSTED
    if not info.digest_ok:
        return SignatureVerdict.DIGEST_MISMATCH
    n = int.from_bytes(block[36:420], "little")
    (e,) = struct.unpack_from("<I", block, 420)
    signature = block[_RSA_SIGNATURE][::-1]
    try:
        public = rsa.RSAPublicNumbers(e, n).public_key()
        public.verify(
            signature,
            block[4:36],
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            utils.Prehashed(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        return SignatureVerdict.BAD_SIGNATURE
    return SignatureVerdict.VERIFIED


def _verify_v1(data: bytes, info: SignatureInfo, trusted: Sequence[bytes]) -> SignatureVerdict:
    block = data[info.offset : info.offset + V1_BLOCK_SIZE]
    der = utils.encode_dss_signature(int.from_bytes(block[4:36], "big"), int.from_bytes(block[36:68], "big"))
    points = [anchor for anchor in trusted if len(anchor) == 64]
    if not points:
        return SignatureVerdict.KEY_NOT_TRUSTED
    for point in points:
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)
            public.verify(der, data[: info.offset], ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return SignatureVerdict.VERIFIED
    return SignatureVerdict.BAD_SIGNATURE


def verify_signature(data: bytes, trusted_key_digests: Sequence[bytes]) -> SignatureVerdict:
    """Check an image's signature as ESP-IDF does on update (trusted keys from the running app).

    `trusted_key_digests` holds SBv2 key digests and/or raw 64-byte v1 public keys
    (`SigningKey.trust_anchor()`). A v1 block cannot name its key, so a v1 image
    that no trusted key verifies is BAD_SIGNATURE.
    """
    from rig.esp.image import parse  # image.py builds on this module

    image = parse(data)
    info = image.signature
    if info is None:
        return SignatureVerdict.NO_SIGNATURE
    if info.scheme is SigningScheme.RSA3072_SBV2:
        return _verify_sbv2(data, info, trusted_key_digests)
    return _verify_v1(data, info, trusted_key_digests)


# A lab build's `signature_verification_key.bin`: the raw ECDSA public key an app signed with
# the secure boot v1 scheme embeds (secure_boot_v1/secure_boot_signatures_app.c links it in
# as `signature_verification_key_start`), tagged so a twin can find it.
VERIFICATION_KEY_MAGIC = b"OTARIGVK"


def verification_key_record(key: SigningKey | None) -> bytes:
    """What a v1-scheme (ECDSA) build embeds; nothing for RSA (its blocks carry their key)."""
    if key is None or key.scheme is not SigningScheme.ECDSA256_V1:
        return b""
    return VERIFICATION_KEY_MAGIC + key.public_key_bytes()


def embedded_verification_key(data: bytes) -> bytes | None:
    """The raw public key a v1-scheme app embeds, or None."""
    at = data.find(VERIFICATION_KEY_MAGIC)
    if at < 0:
        return None
    raw = data[at + len(VERIFICATION_KEY_MAGIC) : at + len(VERIFICATION_KEY_MAGIC) + 64]
    return raw if len(raw) == 64 else None


def signed_by(data: bytes) -> bytes | None:
    """The key digest of the SBv2 block that signs `data`, or None (unsigned, corrupt block, v1)."""
    from rig.esp.image import parse

    info = parse(data).signature
    if info is None or not info.crc_ok:
        return None
    return info.key_digest



# mbedtls 3.6 library/rsa.c error codes (include/mbedtls/rsa.h).
MBEDTLS_ERR_RSA_BAD_INPUT_DATA = -0x4080
MBEDTLS_ERR_RSA_INVALID_PADDING = -0x4100
MBEDTLS_ERR_RSA_VERIFY_FAILED = -0x4380
_N_OFFSET, _E_OFFSET, _SIG_OFFSET, _RSA_LEN = 36, 420, 812, 384


def pss_verify_error(data: bytes, sector: int) -> int:
    """What mbedtls_rsa_rsassa_pss_verify() returns for the SBv2 block at `sector` and the
    digest of the image before it, as secure_boot_rsa_signature.c:verify_rsa_signature_block()
    calls it (SHA-256, MGF1-SHA-256, any salt length); 0 when the signature holds.

    Follows mbedtls 3.6 library/rsa.c:mbedtls_rsa_rsassa_pss_verify_ext() check by check, so a
    flipped signature byte (random EM: no 0xBC trailer) and a good signature over other bytes
    (the hash comparison) end in the codes a real board prints.
    """
    block = data[sector : sector + SIG_BLOCK_SIZE]
    n = int.from_bytes(block[_N_OFFSET : _N_OFFSET + _RSA_LEN], "little")
    e = int.from_bytes(block[_E_OFFSET : _E_OFFSET + 4], "little")
    s = int.from_bytes(block[_SIG_OFFSET : _SIG_OFFSET + _RSA_LEN], "little")
    if n == 0 or s >= n:
        return MBEDTLS_ERR_RSA_BAD_INPUT_DATA
    em = pow(s, e, n).to_bytes(_RSA_LEN, "big")
    if em[-1] != 0xBC:
        return MBEDTLS_ERR_RSA_INVALID_PADDING
    msb = n.bit_length() - 1
    if em[0] >> (8 - (_RSA_LEN * 8 - msb)):
        return MBEDTLS_ERR_RSA_BAD_INPUT_DATA
    if msb % 8 == 0:
        em = em[1:]
    hlen = hashlib.sha256().digest_size
    masked, h = em[: len(em) - hlen - 1], em[len(em) - hlen - 1 : -1]
    db = bytearray(a ^ b for a, b in zip(masked, _mgf1(h, len(masked)), strict=True))
    db[0] &= 0xFF >> (len(em) * 8 - msb)
    start = next((i for i, byte in enumerate(db[:-1]) if byte != 0), len(db) - 1)
    if db[start] != 0x01:
        return MBEDTLS_ERR_RSA_INVALID_PADDING
    salt = bytes(db[start + 1 :])
    digest = hashlib.sha256(data[:sector]).digest()
    m_prime = b"\x00" * 8 + digest + salt
    return 0 if hashlib.sha256(m_prime).digest() == h else MBEDTLS_ERR_RSA_VERIFY_FAILED


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b"".join(hashlib.sha256(seed + struct.pack(">I", i)).digest() for i in range(-(-length // 32)))
    return out[:length]
