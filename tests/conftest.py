"""Signing keys made once per session for every test that signs: RSA-3072 generation is the slow part."""

from __future__ import annotations

import pytest

from rig.esp.signing import SigningKey, SigningScheme


def _generate(factory: pytest.TempPathFactory, name: str, scheme: SigningScheme) -> SigningKey:
    return SigningKey.generate(factory.mktemp("keys") / name, scheme)


@pytest.fixture(scope="session")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return _generate(tmp_path_factory, "test_rsa.pem", SigningScheme.RSA3072_SBV2)


@pytest.fixture(scope="session")
def other_rsa_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return _generate(tmp_path_factory, "test_rsa_other.pem", SigningScheme.RSA3072_SBV2)


@pytest.fixture(scope="session")
def ec_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return _generate(tmp_path_factory, "test_ec.pem", SigningScheme.ECDSA256_V1)
