"""`rig images derive`: every mutant checked against esptool, espsecure and our own verifiers."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import espsecure
import esptool
import pytest

from rig.cli import main
from rig.esp.image import ImageFault, parse, verify_image
from rig.esp.marker import Behaviour, find_marker
from rig.esp.signing import SignatureVerdict, SigningKey, verify_signature
from rig.esp.testimage import make_test_app
from rig.esp.versions import compare_versions
from rig.images.mutants import Expect, Manifest, derive_images, oversized

ALWAYS = {
    "base", "next", "next2", "same_version", "older_version", "lower_secure_version", "higher_secure_version",
    "corrupt_payload", "bad_checksum", "truncated", "truncated_header", "random_bytes", "wrong_chip_id",
    "chip_rev_too_high", "chip_rev_max_too_low", "crash_on_boot", "selftest_fail", "hang", "never_confirm",
    "confirm_then_crash",
    "version_digits_low", "version_digits_high", "version_major", "version_prerelease",
}
SIGNATURE = {"unsigned", "wrong_key", "signature_corrupted", "tampered_after_signing"}


def esptool_says_valid(path: Path) -> bool:
    """`esptool --chip esp32 image-info`: both checksum and validation hash "(valid)"."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(["--chip", "esp32", "image-info", str(path)])
    except (esptool.FatalError, ValueError, IndexError, KeyError, AssertionError, OSError):
        return False
    text = out.getvalue()
    checksum = text.split("Checksum: ")[1].splitlines()[0] if "Checksum: " in text else ""
    digest = text.split("Validation hash: ")[1].splitlines()[0] if "Validation hash: " in text else ""
    return checksum.endswith("(valid)") and digest.endswith("(valid)")


def espsecure_verifies(path: Path, key: SigningKey) -> bool:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            espsecure.main(["verify-signature", "--version", "2", "--keyfile", str(key.path), str(path)])
    except (esptool.FatalError, AssertionError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def base() -> bytes:
    return make_test_app(version="1.0.0", secure_version=1)


@pytest.fixture(scope="module")
def signed_set(
    base: bytes, rsa_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Manifest, Path]:
    out = tmp_path_factory.mktemp("derived")
    return derive_images(base, out, rsa_key, seed=7), out


def test_signed_set_is_complete_and_matches_manifest_file(signed_set: tuple[Manifest, Path]) -> None:
    manifest, out = signed_set
    assert {e.name for e in manifest.entries} == ALWAYS | SIGNATURE
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest.to_json()
    for entry in manifest.entries:
        assert (out / entry.file).stat().st_size == entry.size
        assert entry.expect in Expect and entry.logs


def test_versions_follow_the_bump_rule(signed_set: tuple[Manifest, Path]) -> None:
    manifest, _ = signed_set
    versions = {e.name: (e.version, e.secure_version) for e in manifest.entries}
    assert versions["next"] == ("1.0.1", 1) and versions["next2"] == ("1.0.2", 1)
    assert versions["older_version"] == ("0.9.9", 1) and versions["same_version"] == ("1.0.0", 1)
    assert versions["lower_secure_version"] == ("1.0.1", 0)
    assert versions["higher_secure_version"] == ("1.0.1", 2)


def test_each_mutant_agrees_with_esptool_and_espsecure(
    signed_set: tuple[Manifest, Path], rsa_key: SigningKey
) -> None:
    manifest, out = signed_set
    # chip id and revision range are the chip's business, not the format's
    structurally_fine = {None, ImageFault.CHIP_ID_MISMATCH.value, ImageFault.CHIP_REV_TOO_LOW.value,
                          ImageFault.CHIP_REV_TOO_HIGH.value}
    for entry in manifest.entries:
        path = out / entry.file
        data = path.read_bytes()
        check = verify_image(data)
        assert (check.fault.value if check.fault else None) == entry.image_fault, entry.name
        assert esptool_says_valid(path) is (entry.image_fault in structurally_fine), entry.name
        if entry.signature is not None:
            verdict = verify_signature(data, [rsa_key.trust_anchor()])
            assert verdict.value == entry.signature, entry.name
            assert espsecure_verifies(path, rsa_key) is (verdict is SignatureVerdict.VERIFIED), entry.name


def test_expected_faults(signed_set: tuple[Manifest, Path]) -> None:
    manifest, _ = signed_set
    by_name = {e.name: e for e in manifest.entries}
    assert by_name["corrupt_payload"].image_fault == "checksum"
    assert by_name["bad_checksum"].image_fault == "checksum"
    assert by_name["bad_checksum"].signature == "verified"
    assert by_name["wrong_chip_id"].logs == ("E esp_https_ota: Mismatch chip id, expected 0, found 65024",)
    assert by_name["chip_rev_too_high"].logs[0] == (
        "E boot_comm: chip revision check failed. Required >= v4.0, found v3.0."
    )
    assert by_name["unsigned"].signature == "no_signature"
    assert by_name["wrong_key"].signature == "key_not_trusted"
    assert by_name["signature_corrupted"].signature == "bad_signature"
    tampered = by_name["tampered_after_signing"]
    assert tampered.image_fault is None and tampered.signature == "digest_mismatch"
    assert "W esp_image: image valid, signature bad" in tampered.logs
    assert by_name["random_bytes"].size == 32000 and by_name["truncated_header"].size == 180
    for behaviour in Behaviour:
        if behaviour is Behaviour.HEALTHY:
            continue
        entry = by_name[behaviour.label]
        assert entry.behaviour == behaviour.label and entry.version == "1.0.1"


def test_behaviour_mutants_carry_one_marker(signed_set: tuple[Manifest, Path]) -> None:
    _, out = signed_set
    for behaviour in Behaviour:
        if behaviour is not Behaviour.HEALTHY:
            data = (out / f"{behaviour.label}.bin").read_bytes()
            assert find_marker(data[: parse(data).image_length])[1].behaviour is behaviour


def test_unsigned_set_skips_signature_mutants(base: bytes, tmp_path: Path) -> None:
    manifest = derive_images(base, tmp_path / "plain", None)
    assert {e.name for e in manifest.entries} == ALWAYS
    assert {s.name for s in manifest.skipped} == SIGNATURE
    assert all("--key" in s.reason for s in manifest.skipped)
    assert all(e.signature is None for e in manifest.entries)
    assert manifest.entry("base").file == "base.bin"


def test_derive_is_deterministic_without_key(base: bytes, tmp_path: Path) -> None:
    first = derive_images(base, tmp_path / "a", None, seed=3)
    second = derive_images(base, tmp_path / "b", None, seed=3)
    assert [e.sha256 for e in first.entries] == [e.sha256 for e in second.entries]


def test_secure_version_zero_skips_lower_secure_version(tmp_path: Path) -> None:
    manifest = derive_images(make_test_app(version="2.0"), tmp_path, None)
    assert "lower_secure_version" in {s.name for s in manifest.skipped}
    assert manifest.entry("older_version").version == "1.9"


def test_cli_derive(
    base: bytes, rsa_key: SigningKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "app.bin"
    src.write_bytes(base)
    out = tmp_path / "set"
    assert main(["images", "derive", "--from", str(src), "--key", str(rsa_key.path), "--out", str(out)]) == 0
    assert len(json.loads((out / "manifest.json").read_text())["images"]) == len(ALWAYS | SIGNATURE)
    assert "reject_at_verify" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["not_an_image", "wrong_key_type", "unwritable_out", "missing_input"])
def test_cli_derive_bad_input(
    case: str, base: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "app.bin"
    src.write_bytes(b"garbage" * 10 if case == "not_an_image" else base)
    args = ["images", "derive", "--from", str(src), "--out", str(tmp_path / "out")]
    if case == "wrong_key_type":
        key = tmp_path / "key.pem"
        key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        args += ["--key", str(key)]
    if case == "unwritable_out":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        args[-1] = str(blocker / "out")
    if case == "missing_input":
        args[3] = str(tmp_path / "nope.bin")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rig: error: ") and "Traceback" not in err[0]


@pytest.mark.parametrize(
    "base, low, high, major, rc",
    [("1.0.0", "1.0.9", "1.0.10", "2.0.0", "1.0.1-rc.1"), ("v2.3.12", "v2.3.99", "v2.3.100", "v3.0.0",
                                                            "v2.3.13-rc.1")],
)
def test_version_order_mutants_straddle_the_orderings_agents_get_wrong(
    tmp_path: Path, base: str, low: str, high: str, major: str, rc: str
) -> None:
    """x.9 -> x.10 gains a digit (a string comparison calls it older); the pre-release of next
    sorts below next (PROTOCOL.md §6); all are newer than base, so base accepts each."""
    manifest = derive_images(make_test_app(version=base, secure_version=1), tmp_path, None)
    versions = {e.name: e.version for e in manifest.entries}
    assert (versions["version_digits_low"], versions["version_digits_high"]) == (low, high)
    assert (versions["version_major"], versions["version_prerelease"]) == (major, rc)
    assert low > high  # as strings: the bug the pair exists to catch
    assert compare_versions(high, low) == 1 and compare_versions(rc, versions["next"]) == -1
    names = ("version_digits_low", "version_digits_high", "version_major", "version_prerelease")
    assert all(compare_versions(versions[name], base) == 1 for name in names)


def test_oversized_image_reaches_past_its_slot_into_the_next_64k_and_keeps_its_header() -> None:
    app = make_test_app(version="1.0.0", secure_version=0)
    slot = len(app) + 0x3000
    big = oversized(app, slot)
    assert len(big) == slot + 0x10000 and big[: len(app)] == app
