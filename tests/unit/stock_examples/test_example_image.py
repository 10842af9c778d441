"""Lab builds of Espressif's stock OTA examples: what a build compiles in (Kconfig choices,
the embedded server certificate, a v1-scheme verification key) is found again by the twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.errors import InputError
from rig.esp.example_image import find_embedded_pem, find_kconfig, kconfig, make_example_app
from rig.esp.image import parse, verify_image
from rig.esp.signing import SigningKey, SigningScheme, embedded_verification_key, verify_signature

PEM = b"-----BEGIN CERTIFICATE-----\nMIIBbase64\n-----END CERTIFICATE-----\n"


def test_a_build_carries_its_choices_and_certificate() -> None:
    image = make_example_app(
        project="advanced_https_ota",
        version="2.0",
        ca_pem=PEM,
        choices={"CONFIG_EXAMPLE_ENABLE_OTA_RESUMPTION": True},
        size=64 * 1024,
    )
    assert verify_image(image).ok
    desc = parse(image).desc
    assert desc is not None and (desc.project_name, desc.version) == ("advanced_https_ota", "2.0")
    choices = find_kconfig(image)
    assert choices is not None
    assert choices["EXAMPLE_ENABLE_OTA_RESUMPTION"] is True
    assert choices["EXAMPLE_SKIP_VERSION_CHECK"] is False  # Kconfig.projbuild default
    assert find_embedded_pem(image) == PEM


def test_an_image_without_a_record_is_a_plain_build() -> None:
    assert find_kconfig(b"\xe9" + bytes(4096)) is None
    assert find_embedded_pem(b"no certificate here") is None


@pytest.mark.parametrize(
    "choices, message",
    [
        ({"EXAMPLE_NO_SUCH": True}, "unknown example option EXAMPLE_NO_SUCH"),
        ({"EXAMPLE_OTA_RECV_TIMEOUT": "3000"}, "example option EXAMPLE_OTA_RECV_TIMEOUT must be a int"),
    ],
)
def test_bad_choices_are_one_line_errors(choices: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        kconfig(choices)  # type: ignore[arg-type]


def test_only_the_three_stock_projects_are_built() -> None:
    with pytest.raises(InputError, match="'hello_world' is not a stock OTA example"):
        make_example_app(project="hello_world", version="1", ca_pem=PEM)


def test_an_ecdsa_signed_build_embeds_the_key_that_verifies_it(tmp_path: Path) -> None:
    """secure_boot_v1/secure_boot_signatures_app.c verifies with the key the app links in."""
    key = SigningKey.generate(tmp_path / "ecdsa.pem", SigningScheme.ECDSA256_V1)
    other = SigningKey.generate(tmp_path / "other.pem", SigningScheme.ECDSA256_V1)
    image = make_example_app(project="simple_ota", version="1", ca_pem=PEM, size=64 * 1024, key=key)
    embedded = embedded_verification_key(image)
    assert embedded == key.public_key_bytes()
    assert verify_signature(image, [embedded]).name == "VERIFIED"
    assert verify_signature(image, [other.public_key_bytes()]).name != "VERIFIED"
