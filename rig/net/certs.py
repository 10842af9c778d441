"""The rig's TLS identities: a rig CA, a server certificate it signs, and an unrelated "wrong" one.

Boards pin the rig CA (esp_https_ota `cert_pem`), so the CA is generated once and
reused; the server certificate is re-issued when the farm's addresses change. The
wrong identity has its own CA so a board pinning the rig CA must refuse it.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import exceptions, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rig.errors import InputError
from rig.keyfiles import write_private

DEFAULT_HOSTS = ("127.0.0.1",)
WRONG_DIR = "wrong"
_CA_KEY = "ca.key"
_CA_CERT = "ca.pem"
_SERVER_KEY = "server.key"
_SERVER_CERT = "server.pem"
_CA_DAYS = 20 * 365
_SERVER_DAYS = 10 * 365


@dataclass(frozen=True)
class CertBundle:
    """Paths of one identity: the CA to pin and the server's certificate chain and key."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def ca_der(self) -> bytes:
        """The CA certificate in DER, compact enough to send over a console command."""
        cert = x509.load_pem_x509_certificate(self.ca_pem.read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)

    def server_context(self) -> ssl.SSLContext:
        """A TLS ≥ 1.2 server context presenting this identity."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this identity's CA, as a pinned board does."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=self.ca_pem)
        return context


def ensure_bundle(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> CertBundle:
    """Load the rig identity from `directory`, creating what is missing or stale.

    The CA is kept whenever present (boards already pin it); the server certificate is
    re-issued if it does not name every host in `hosts` or no longer chains to the CA.
    """
    return _ensure_identity(directory, "ota-rig CA", hosts)


def ensure_wrong_bundle(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> CertBundle:
    """An unrelated identity under `directory/wrong` (own CA) for pinning-failure tests."""
    return _ensure_identity(directory / WRONG_DIR, "ota-rig WRONG CA", hosts)


def _ensure_identity(directory: Path, ca_name: str, hosts: Sequence[str]) -> CertBundle:
    wanted = san_entries(hosts)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = load_or_create_ca(directory, ca_name)
    bundle = CertBundle(directory / _CA_CERT, directory / _SERVER_CERT, directory / _SERVER_KEY)
    if not _server_cert_is_current(bundle, ca_cert, wanted):
        _issue_server_cert(bundle, ca_key, ca_cert, wanted)
    return bundle


def san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        if not host:
            raise InputError("empty host name for the server certificate")
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ota-rig"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)


def load_or_create_ca(
    directory: Path, common_name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / _CA_KEY, directory / _CA_CERT
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InputError(f"{key_path}: the rig CA key must be an EC key")
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _server_cert_is_current(
    bundle: CertBundle, ca_cert: x509.Certificate, wanted: list[x509.GeneralName]
) -> bool:
    if not (bundle.cert_pem.exists() and bundle.key_pem.exists()):
        return False
    cert = x509.load_pem_x509_certificate(bundle.cert_pem.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, exceptions.InvalidSignature, x509.ExtensionNotFound):
        return False
    return set(wanted) <= set(names) and cert.not_valid_after_utc > _now() + datetime.timedelta(days=30)


def _issue_server_cert(
    bundle: CertBundle,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    wanted: list[x509.GeneralName],
) -> None:
    issue_leaf(
        ca_key, ca_cert, "ota-rig server", bundle.cert_pem, bundle.key_pem,
        usage=x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, names=wanted,
    )  # fmt: skip


def issue_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    cert_path: Path,
    key_path: Path,
    *,
    usage: x509.ObjectIdentifier,
    names: Sequence[x509.GeneralName] = (),
) -> None:
    """A P-256 key and a certificate for one purpose (`usage`: server, client or code
    signing), signed by the CA; the key is written owner-only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    _write_key(key_path, key)
    cert_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
