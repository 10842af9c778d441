"""The standard image set: one build in, every image an OTA test needs out, plus a manifest.

Expectations assume the device runs `base` (confirmed VALID, anti-rollback eFuse at
base's secure_version, the agent's version check on, signed updates on when a key is
given). Every mutant except the version ones therefore carries the *next* version, so
the version check never hides the fault the mutant is about.

Version rule (PROTOCOL.md §6): the last number of the base version is bumped —
`1.0.0` → next `1.0.1`, next2 `1.0.2`, older `0.9.9` (borrowing: a part below 0
becomes 9 and the part to its left drops by one); a suffix is dropped and a leading
`v` kept.

Log lines are `<level> <tag>: <message>` (an ESP-IDF line without its timestamp);
`%s`/`%d` stay where the value depends on the device (slot label, mbedtls error).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import tempfile
import zlib
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

from rig.errors import FormatError, InputError
from rig.esp.appdesc import APP_DESC_FILE_OFFSET, AppDescriptor
from rig.esp.image import (
    AppImage,
    fault_log_line,
    parse,
    patch_image,
    recompute_digests,
    strip_signature,
    verify_image,
)
from rig.esp.marker import MARKER_SIZE, Behaviour, find_marker
from rig.esp.signing import SigningKey, SigningScheme, sign_image, verify_signature
from rig.esp.versions import ParsedVersion, parse_version

MANIFEST_NAME = "manifest.json"
ASSUMED_CHIP_REV_FULL = 300  # an ESP32 v3.0, what the rig's boards are


class Expect(Enum):
    """What a device running `base` does with the mutant."""

    ACCEPT = "accept"
    REJECT_BEFORE_WRITE = "reject_before_write"
    REJECT_AT_WRITE = "reject_at_write"
    REJECT_AT_VERIFY = "reject_at_verify"
    REJECT_BY_VERSION_CHECK = "reject_by_version_check"
    REJECT_BY_ANTI_ROLLBACK = "reject_by_anti_rollback"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True)
class MutantEntry:
    """One derived image and what it must provoke."""

    name: str
    file: str
    sha256: str
    size: int
    change: str
    expect: Expect
    logs: tuple[str, ...]
    version: str | None
    secure_version: int | None
    behaviour: str | None
    image_fault: str | None
    signature: str | None

    def to_json(self) -> dict[str, object]:
        record = asdict(self)
        record["expect"] = self.expect.value
        record["logs"] = list(self.logs)
        return record


@dataclass(frozen=True)
class SkippedMutant:
    name: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """The derived set; `manifest.json` is this record."""

    base_sha256: str
    base_version: str
    base_secure_version: int
    project: str
    key_scheme: str | None
    key_digest: str | None
    entries: tuple[MutantEntry, ...]
    skipped: tuple[SkippedMutant, ...] = field(default=())

    def entry(self, name: str) -> MutantEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_json(self) -> dict[str, object]:
        return {
            "format": 1,
            "assumes": (
                "device runs base (VALID, eFuse secure_version = base's), version_check=on, "
                f"signed updates {'on' if self.key_scheme else 'off'}, chip ESP32 "
                f"v{ASSUMED_CHIP_REV_FULL // 100}.{ASSUMED_CHIP_REV_FULL % 100}"
            ),
            "version_rule": "bump the last number: next +1, next2 +2, older -1 with borrow (1.0.0 -> 0.9.9)",
            "base": {
                "sha256": self.base_sha256,
                "version": self.base_version,
                "secure_version": self.base_secure_version,
                "project": self.project,
            },
            "key": (
                None if self.key_scheme is None else {"scheme": self.key_scheme, "digest": self.key_digest}
            ),
            "images": [entry.to_json() for entry in self.entries],
            "skipped": [asdict(skip) for skip in self.skipped],
        }


def _ready(version: str, state: str) -> str:
    return f"I rig_agent: ready version={version} running=%s state={state}"


def _sig_ok_logs(key: SigningKey | None) -> tuple[str, ...]:
    if key is None:
        return ()
    if key.scheme is SigningScheme.ECDSA256_V1:
        return ("I esp_image: Verifying image signature...",)
    return (
        "I esp_image: Verifying image signature...",
        "I secure_boot_v2: Take trusted digest key(s) from running app",
        "I secure_boot_v2: #0 app key digest == #0 trusted key digest",
        "I secure_boot_v2: Verifying with RSA-PSS...",
        "I secure_boot_v2_rsa: Signature verified successfully!",
    )


_SIG_FAIL_TAIL = (
    "E esp_image: Secure boot signature verification failed",
    "I esp_image: Calculating simple hash to check for corruption...",
    "W esp_image: image valid, signature bad",
    "E esp_ota_ops: New image failed verification",
)


def _verify_fail_logs(data: bytes, chip_id: int) -> tuple[str, ...]:
    """The esp_image line for an image that fails `esp_ota_end`, as the twin would print it.

    Flash after a short image reads as erased (0xFF), which is what the check sees.
    """
    check = verify_image(data + b"\xff" * len(data), chip_id=chip_id, chip_rev_full=ASSUMED_CHIP_REV_FULL)
    line = fault_log_line(check)
    if line is None:
        raise FormatError("internal: mutant unexpectedly passes image verification")
    level, tag, message = line
    return (f"{level} {tag}: {message}", "E esp_ota_ops: New image failed verification")


def _bump(parsed: ParsedVersion, prefix: str, delta: int) -> str | None:
    try:
        return prefix + str(parsed.bumped(delta))
    except ValueError:
        return None


def _flip_mid_payload(data: bytes, image: AppImage) -> bytes:
    """Flip one byte in the middle of the largest segment, away from descriptor and marker."""
    segment = max(image.segments, key=lambda s: len(s.data))
    offset = segment.data_offset + len(segment.data) // 2
    protected = [(APP_DESC_FILE_OFFSET, APP_DESC_FILE_OFFSET + 256)]
    try:
        marker_at, _ = find_marker(data[: image.image_length])
        protected.append((marker_at, marker_at + MARKER_SIZE))
    except FormatError:
        pass
    while any(start <= offset < end for start, end in protected):
        offset += MARKER_SIZE
    buf = bytearray(data)
    buf[offset] ^= 0x55
    return bytes(buf)


def _bad_checksum(unsigned: bytes) -> bytes:
    """Wrong checksum byte with the SHA-256 recomputed over it, so only the checksum fails."""
    image = parse(unsigned)
    buf = bytearray(unsigned)
    buf[image.checksum_offset] ^= 0xFF
    end = image.checksum_offset + 1
    if image.hash_appended:
        buf[end : end + 32] = hashlib.sha256(bytes(buf[:end])).digest()
    return bytes(buf)


def _corrupt_signature(signed: bytes, scheme: SigningScheme) -> bytes:
    """Flip a signature byte; SBv2 gets its CRC fixed so the block still counts as present."""
    info = parse(signed).signature
    if info is None:
        raise FormatError("internal: signed image has no signature")
    buf = bytearray(signed)
    if scheme is SigningScheme.RSA3072_SBV2:
        buf[info.offset + 900] ^= 0x01
        crc = zlib.crc32(bytes(buf[info.offset : info.offset + 1196]))
        struct.pack_into("<I", buf, info.offset + 1196, crc)
    else:
        buf[info.offset + 10] ^= 0x01
    return bytes(buf)


def _tamper_signed(signed: bytes, desc: AppDescriptor, version: str) -> bytes:
    """Change the version after signing and fix checksum + SHA-256, leaving the signature stale."""
    buf = bytearray(signed)
    patched = replace(desc, version=version)
    buf[APP_DESC_FILE_OFFSET : APP_DESC_FILE_OFFSET + 256] = patched.encode()
    return recompute_digests(bytes(buf))


class _Writer:
    """Collects entries and writes files, turning OS errors into one-line InputErrors."""

    def __init__(self, out_dir: Path, key: SigningKey | None, chip_id: int) -> None:
        self.out_dir = out_dir
        self.key = key
        self.chip_id = chip_id
        self.entries: list[MutantEntry] = []
        self.skipped: list[SkippedMutant] = []

    def add(self, name: str, data: bytes, change: str, expect: Expect, logs: tuple[str, ...]) -> None:
        try:
            image: AppImage | None = parse(data)
        except FormatError:
            image = None
        desc = image.desc if image is not None else None
        behaviour = None
        if image is not None:
            try:
                behaviour = find_marker(data[: image.image_length])[1].behaviour.label
            except FormatError:
                behaviour = None
        check = verify_image(data, chip_id=self.chip_id, chip_rev_full=ASSUMED_CHIP_REV_FULL)
        signature = None
        if self.key is not None and image is not None:
            signature = verify_signature(data, [self.key.trust_anchor()]).value
        path = self.out_dir / f"{name}.bin"
        try:
            path.write_bytes(data)
        except OSError as error:
            raise InputError(f"cannot write {path}: {error.strerror}") from None
        self.entries.append(
            MutantEntry(
                name=name,
                file=path.name,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                change=change,
                expect=expect,
                logs=logs,
                version=desc.version if desc else None,
                secure_version=desc.secure_version if desc else None,
                behaviour=behaviour,
                image_fault=check.fault.value if check.fault else None,
                signature=signature,
            )
        )

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append(SkippedMutant(name, reason))


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create output directory {out_dir}: {error.strerror}") from None


def derive_images(base: bytes, out_dir: Path, key: SigningKey | None, seed: int = 0) -> Manifest:
    """Write the standard mutant set of `base` and `manifest.json` into `out_dir`."""
    image = parse(base)
    if not (image.checksum_ok and image.hash_ok):
        raise FormatError("base image is corrupt (checksum or SHA-256 mismatch); derive needs a good build")
    desc = image.desc
    if desc is None:
        raise FormatError("base image has no app descriptor (magic 0xABCD5432 at offset 0x20)")
    parsed = parse_version(desc.version)
    if parsed is None:
        raise FormatError(f"base version {desc.version!r} is not dotted numbers (PROTOCOL §6); cannot bump")
    prefix = "v" if desc.version[:1] in ("v", "V") else ""
    next_v = _bump(parsed, prefix, 1) or desc.version
    next2_v = _bump(parsed, prefix, 2) or desc.version
    older_v = _bump(parsed, prefix, -1)
    _prepare_out_dir(out_dir)
    w = _Writer(out_dir, key, image.chip_id)
    sv = desc.secure_version
    unsigned = strip_signature(base)
    accept_tail = _sig_ok_logs(key)

    def sign(data: bytes) -> bytes:
        return sign_image(data, key) if key is not None else data

    def ok_logs(version: str) -> tuple[str, ...]:
        return (*accept_tail, "I rig_agent: app confirmed valid", _ready(version, "VALID"))

    w.add("base", sign(unsigned) if key else base, "copy of the build" + (", re-signed" if key else ""),
          Expect.ACCEPT, ok_logs(desc.version))
    next_unsigned = patch_image(unsigned, version=next_v)
    next_signed = sign(next_unsigned)
    w.add("next", next_signed, f"version {desc.version} -> {next_v}", Expect.ACCEPT, ok_logs(next_v))
    w.add("next2", patch_image(unsigned, version=next2_v, key=key), f"version -> {next2_v}", Expect.ACCEPT,
          ok_logs(next2_v))
    same_msg = ("W advanced_https_ota_example: Current running version is the same as a new. "
                "We will not continue the update.")
    same_marker = f"W rig_agent: ota rejected reason=same_version new={desc.version} running={desc.version}"
    w.add("same_version", patch_image(unsigned, key=key), "same version as base",
          Expect.REJECT_BY_VERSION_CHECK, (same_msg, same_marker))
    if older_v is None:
        w.skip("older_version", f"base version {desc.version} has nothing below it")
    else:
        w.add("older_version", patch_image(unsigned, version=older_v, key=key), f"version -> {older_v}",
              Expect.REJECT_BY_VERSION_CHECK,
              (f"W rig_agent: ota rejected reason=older_version new={older_v} running={desc.version}",))
    if sv == 0:
        w.skip("lower_secure_version", "base secure_version is 0; derive from a build with secure_version>=1")
    else:
        w.add("lower_secure_version", patch_image(unsigned, version=next_v, secure_version=sv - 1, key=key),
              f"version -> {next_v}, secure_version {sv} -> {sv - 1}", Expect.REJECT_BY_ANTI_ROLLBACK,
              (f"W rig_agent: ota rejected reason=lower_secure_version new={next_v} running={desc.version}",))
    w.add("higher_secure_version", patch_image(unsigned, version=next_v, secure_version=sv + 1, key=key),
          f"version -> {next_v}, secure_version {sv} -> {sv + 1}", Expect.ACCEPT, ok_logs(next_v))

    corrupt = _flip_mid_payload(next_signed, parse(next_signed))
    w.add("corrupt_payload", corrupt, "next with one payload byte flipped after checksum/hash/signature",
          Expect.REJECT_AT_VERIFY, _verify_fail_logs(_strip_or_keep(corrupt), image.chip_id))
    bad = sign(_bad_checksum(next_unsigned))
    w.add("bad_checksum", bad, "next with a wrong checksum byte (SHA-256 recomputed)",
          Expect.REJECT_AT_VERIFY, _verify_fail_logs(_strip_or_keep(bad), image.chip_id))
    half = next_signed[: len(next_signed) // 2]
    # Which esp_image error a truncated image hits depends on the stale flash behind it
    # (esp_ota_begin erases only the bytes it is sent), so only the verdict line is fixed.
    w.add("truncated", half, f"first {len(half)} of {len(next_signed)} bytes of next",
          Expect.REJECT_AT_VERIFY, ("E esp_ota_ops: New image failed verification",))
    w.add("truncated_header", next_signed[:180], "first 180 bytes (less than header + app descriptor)",
          Expect.REJECT_BEFORE_WRITE, ("E esp_https_ota: Complete headers were not received",))
    noise = bytearray(random.Random(seed).randbytes(32000))
    noise[0] = 0x00
    w.add("random_bytes", bytes(noise), f"32000 random bytes (seed {seed}), first byte 0x00",
          Expect.REJECT_BEFORE_WRITE, ("E esp_https_ota: Incorrect app descriptor magic",))
    wrong_chip = 0xFE00 | (image.chip_id & 0xFF)
    w.add("wrong_chip_id", patch_image(next_unsigned, chip_id=wrong_chip, key=key),
          f"header chip id {image.chip_id} -> {wrong_chip} (byte 13 = 0xFE)", Expect.REJECT_BEFORE_WRITE,
          (f"E esp_https_ota: Mismatch chip id, expected {image.chip_id}, found {wrong_chip}",))
    high = patch_image(next_unsigned, min_rev_full=400, key=key)
    w.add("chip_rev_too_high", high, "minimum chip revision v4.0 (above any ESP32 v3.x)",
          # esp_https_ota checks the chip revision on the first block, before any write (§8.2).
          Expect.REJECT_BEFORE_WRITE, _verify_fail_logs(_strip_or_keep(high), image.chip_id)[:1])

    low_max = patch_image(next_unsigned, max_rev_full=200, key=key)
    found = f"v{ASSUMED_CHIP_REV_FULL // 100}.{ASSUMED_CHIP_REV_FULL % 100}"
    w.add("chip_rev_max_too_low", low_max, "maximum chip revision v2.0 (below an ESP32 v3.x)",
          # esp_ota_verify_chip_revision -> bootloader_common_check_chip_revision_validity(hdr, true)
          Expect.REJECT_BEFORE_WRITE,
          (f"E boot_comm: chip revision check failed. Required <= v2.0, found {found}.",))
    _signature_mutants(w, key, next_unsigned, next_signed, desc, next2_v)
    _behaviour_mutants(w, key, unsigned, desc.version, next_v)
    _version_order_mutants(w, key, unsigned, parsed, prefix, next_v)
    manifest = Manifest(
        base_sha256=hashlib.sha256(base).hexdigest(),
        base_version=desc.version,
        base_secure_version=sv,
        project=desc.project_name,
        key_scheme=key.scheme.value if key else None,
        key_digest=key.public_key_digest().hex() if key else None,
        entries=tuple(w.entries),
        skipped=tuple(w.skipped),
    )
    path = out_dir / MANIFEST_NAME
    try:
        path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None
    return manifest


def _strip_or_keep(data: bytes) -> bytes:
    """The image part of `data` when it parses, else `data` (a mutant may be unparsable)."""
    try:
        return strip_signature(data)
    except FormatError:
        return data


def _signature_mutants(
    w: _Writer,
    key: SigningKey | None,
    next_unsigned: bytes,
    next_signed: bytes,
    desc: AppDescriptor,
    next2_v: str,
) -> None:
    names = ("unsigned", "wrong_key", "signature_corrupted", "tampered_after_signing")
    if key is None:
        for name in names:
            w.skip(name, "no --key given: signature mutants need the signing key")
        return
    no_match: tuple[str, ...]
    bad_sig: tuple[str, ...]
    unsigned_logs: tuple[str, ...]
    if key.scheme is SigningScheme.RSA3072_SBV2:
        no_match = ("I esp_image: Verifying image signature...",
                    "I secure_boot_v2: Take trusted digest key(s) from running app", *_SIG_FAIL_TAIL)
        bad_sig = ("I esp_image: Verifying image signature...",
                   "I secure_boot_v2: Take trusted digest key(s) from running app",
                   "I secure_boot_v2: #0 app key digest == #0 trusted key digest",
                   "I secure_boot_v2: Verifying with RSA-PSS...",
                   "E secure_boot_v2_rsa: Failed mbedtls_rsa_rsassa_pss_verify, err: %d", *_SIG_FAIL_TAIL)
        unsigned_logs = no_match
    else:
        bad_sig = no_match = ("I esp_image: Verifying image signature...", *_SIG_FAIL_TAIL)
        unsigned_logs = ("I esp_image: Verifying image signature...",
                         "E secure_boot_v1: image has invalid signature version field 0xffffffff "
                         "(image without a signature?)", *_SIG_FAIL_TAIL)
    w.add("unsigned", next_unsigned, "next without a signature", Expect.REJECT_AT_VERIFY, unsigned_logs)
    with tempfile.TemporaryDirectory(prefix="rig-wrong-key-") as tmp:
        other = SigningKey.generate(Path(tmp) / "other.pem", key.scheme)
        w.add("wrong_key", sign_image(next_unsigned, other), "next signed with a freshly generated other key",
              Expect.REJECT_AT_VERIFY, no_match)
    w.add("signature_corrupted", _corrupt_signature(next_signed, key.scheme),
          "next with one signature byte flipped (SBv2 block CRC fixed)", Expect.REJECT_AT_VERIFY, bad_sig)
    w.add("tampered_after_signing", _tamper_signed(next_signed, desc, next2_v),
          f"next, version changed to {next2_v} after signing, checksum/SHA-256 fixed, signature stale",
          Expect.REJECT_AT_VERIFY, bad_sig if key.scheme is SigningScheme.ECDSA256_V1 else no_match)


_BEHAVIOUR_EXPECT: dict[Behaviour, Expect] = {
    Behaviour.CRASH_ON_BOOT: Expect.ROLL_BACK,
    Behaviour.SELFTEST_FAIL: Expect.ROLL_BACK,
    Behaviour.HANG: Expect.ROLL_BACK,
    Behaviour.NEVER_CONFIRM: Expect.ROLL_BACK,
    Behaviour.CONFIRM_THEN_CRASH: Expect.ACCEPT,
}


def _behaviour_logs(behaviour: Behaviour, base_v: str, next_v: str) -> tuple[str, ...]:
    rolled_back = _ready(base_v, "VALID")
    begin = f"I rig_agent: selftest begin behaviour={behaviour.label}"
    logs: dict[Behaviour, tuple[str, ...]] = {
        Behaviour.CRASH_ON_BOOT: (rolled_back,),
        Behaviour.SELFTEST_FAIL: (begin, "E rig_agent: selftest failed",
                                  "I esp_ota_ops: Rollback to previously worked partition.", rolled_back),
        Behaviour.HANG: (rolled_back,),
        Behaviour.NEVER_CONFIRM: (begin, _ready(next_v, "PENDING_VERIFY"), rolled_back),
        Behaviour.CONFIRM_THEN_CRASH: (begin, "I rig_agent: app confirmed valid", _ready(next_v, "VALID")),
    }
    return logs[behaviour]


def _behaviour_mutants(w: _Writer, key: SigningKey | None, unsigned: bytes, base_v: str, next_v: str) -> None:
    try:
        find_marker(unsigned)
    except FormatError as error:
        for behaviour in _BEHAVIOUR_EXPECT:
            w.skip(behaviour.label, f"base has no usable behaviour marker: {error}")
        return
    for behaviour, expect in _BEHAVIOUR_EXPECT.items():
        w.add(behaviour.label, patch_image(unsigned, version=next_v, behaviour=behaviour, key=key),
              f"version -> {next_v}, behaviour marker -> {behaviour.label}", expect,
              _behaviour_logs(behaviour, base_v, next_v))


def _version_order_mutants(
    w: _Writer, key: SigningKey | None, unsigned: bytes, base: ParsedVersion, prefix: str, next_v: str
) -> None:
    """Versions across the orderings agents get wrong (PROTOCOL.md §6), all newer than base:
    a last number that gains a digit (x.9 -> x.10; a string comparison calls x.10 older),
    a major bump, and a pre-release of `next` (below `next` itself)."""
    last = base.numbers[-1]
    low = 10 ** len(str(last + 1)) - 1  # the smallest all-nines number above base's last one
    high = low + 1
    head = base.numbers[:-1]
    versions = {
        "version_digits_low": (ParsedVersion((*head, low), ""), f"last number {low}, a digit short of"),
        "version_digits_high": (ParsedVersion((*head, high), ""), f"last number {high}, a digit more than"),
        "version_major": (ParsedVersion((base.numbers[0] + 1, *(0,) * (len(base.numbers) - 1)), ""),
                          "major bump of"),
    }
    for name, (version, why) in versions.items():
        text = prefix + str(version)
        w.add(name, patch_image(unsigned, version=text, key=key), f"version -> {text} ({why} base)",
              Expect.ACCEPT, _accepted_logs(key, text))
    rc = f"{next_v}-rc.1"
    w.add("version_prerelease", patch_image(unsigned, version=rc, key=key),
          f"version -> {rc} (a pre-release: newer than base, older than {next_v})", Expect.ACCEPT,
          _accepted_logs(key, rc))


def _accepted_logs(key: SigningKey | None, version: str) -> tuple[str, ...]:
    return (*_sig_ok_logs(key), "I rig_agent: app confirmed valid", _ready(version, "VALID"))


OVERSIZE = 0x10000


def oversized(data: bytes, slot_size: int) -> bytes:
    """`data` padded to 64 KiB past `slot_size`: a build that outgrew its OTA slot by enough to
    reach the next app partition (app partitions are 64 KiB aligned, gen_esp32part.py).

    The header, descriptor and signature of `data` stay as they are, so the device meets
    nothing wrong before it runs out of slot (esp_ota_write -> ESP_ERR_INVALID_SIZE).
    """
    extra = max(slot_size + OVERSIZE - len(data), OVERSIZE)
    return data + bytes(0xA5 ^ (i & 0xFF) for i in range(extra))

