"""Signing keys made once per session: RSA-3072 generation is the slow part."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.esp.signing import SigningKey, SigningScheme


@pytest.fixture(scope="session")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("keys") / "test_rsa.pem", SigningScheme.RSA3072_SBV2)


@pytest.fixture(scope="session")
def other_rsa_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    path = tmp_path_factory.mktemp("keys") / "test_rsa_other.pem"
    return SigningKey.generate(path, SigningScheme.RSA3072_SBV2)


@pytest.fixture(scope="session")
def ec_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("keys") / "test_ec.pem", SigningScheme.ECDSA256_V1)


@pytest.fixture(scope="session")
def keys_dir(rsa_key: SigningKey) -> Path:
    return rsa_key.path.parent
