"""The MQTT farm's identities and the job's ECDSA code signing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from rig.errors import InputError
from rig.mqtt.pki import ensure_pki, make_untrusted_codesign, sign_file, verify_file


def _usage(path: Path) -> list[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_every_identity_has_its_purpose_and_keys_stay_private(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["b1", "b2"])
    assert _usage(pki.codesign.cert) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert _usage(pki.broker.cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _usage(pki.thing("b2").cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    names = x509.load_pem_x509_certificate(pki.broker.cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "127.0.0.1" in {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    for key in (pki.codesign.key, pki.thing("b1").key, tmp_path / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_existing_identities_are_kept_and_new_things_added(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["b1"])
    kept = first.thing("b1").cert.read_bytes()
    second = ensure_pki(tmp_path, ["b1", "b3"])
    assert second.thing("b1").cert.read_bytes() == kept  # a built board's certificate stays valid
    assert second.thing("b3").cert.exists()


def test_thing_names_follow_aws_iot_rules(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="thing name 'b 1'"):
        ensure_pki(tmp_path, ["b 1"])


def test_signature_verifies_only_against_the_signer_and_the_bytes(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "farm", [])
    data = b"\xe9" + bytes(4095)
    signature = sign_file(data, pki.codesign.key)
    trusted = pki.codesign.cert.read_bytes()
    assert verify_file(data, signature, trusted)
    assert not verify_file(data[:-1] + b"\x01", signature, trusted)
    stranger = make_untrusted_codesign(tmp_path / "other")
    assert not verify_file(data, sign_file(data, stranger.key), trusted)
    assert not verify_file(data, b"\x30\x00", trusted)


def test_a_key_that_is_not_p256_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key", encoding="utf-8")
    with pytest.raises(InputError, match="not a readable code-signing key"):
        sign_file(b"x", bad)


def test_a_farm_pki_without_its_files_is_named_bad_input(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["b1"])
    pki.check(embedded=True)
    pki.codesign.key.unlink()
    with pytest.raises(InputError, match=r"codesign\.key is missing \(make the farm's identities"):
        pki.check(embedded=False)
