"""The identities of an MQTT farm: one CA, the broker's server certificate, one client
certificate per thing, the rig's own client certificate (the Jobs/Streams side) and the
code-signing key + certificate (`extendedKeyUsage = codeSigning`) whose signature every
OTA job carries.

A real board is built with its thing's certificate and key, the CA and the code-signing
certificate embedded (esp-aws-iot's examples/ota/ota_mqtt/main/certs: client.crt,
client.key, root_cert_auth.crt, aws_codesign.crt), so the files are made once by `rig keys
mqtt` and kept; what exists is reused, what is missing is issued.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from rig.errors import InputError
from rig.net.certs import issue_leaf, load_or_create_ca, san_entries

# otaconfigMAX_THINGNAME_LEN is 64; AWS IoT thing names are [a-zA-Z0-9:_-]+.
THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,64}")
SERVICE_NAME = "ota-rig-jobs"


def check_thing(name: str) -> str:
    if not THING_NAME.fullmatch(name):
        raise InputError(f"thing name {name!r}: 1-64 of letters, digits, ':', '_' or '-'")
    return name


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


@dataclass(frozen=True)
class MqttPki:
    """Paths of every identity under one directory."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker(self) -> Identity:
        return Identity(self.directory / "broker.pem", self.directory / "broker.key")

    @property
    def service(self) -> Identity:
        return Identity(self.directory / "service.pem", self.directory / "service.key")

    @property
    def codesign(self) -> Identity:
        return Identity(self.directory / "codesign.pem", self.directory / "codesign.key")

    def thing(self, name: str) -> Identity:
        check_thing(name)
        return Identity(self.directory / "things" / f"{name}.pem", self.directory / "things" / f"{name}.key")

    def check(self, *, embedded: bool) -> None:
        """Every file the rig needs is there (the broker's own when it runs the broker): a
        missing one is bad input, named, not a broker that fails to start."""
        needed = [self.ca, self.service.cert, self.service.key, self.codesign.cert, self.codesign.key]
        if embedded:
            needed += [self.broker.cert, self.broker.key]
        missing = [path for path in needed if not path.is_file()]
        if missing:
            raise InputError(f"mqtt.pki {self.directory}: {missing[0].name} is missing (make the farm's "
                             f"identities with `rig keys mqtt --out {self.directory}`)")  # fmt: skip


def ensure_pki(directory: Path, things: Sequence[str], hosts: Sequence[str] = ("127.0.0.1",)) -> MqttPki:
    """Issue whatever of the farm's identities is missing under `directory`."""
    for name in things:
        check_thing(name)  # before anything is written
    pki = MqttPki(directory)
    (directory / "things").mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = load_or_create_ca(directory, "ota-rig MQTT CA")
    wanted: list[tuple[str, Identity, x509.ObjectIdentifier, list[x509.GeneralName]]] = [
        ("ota-rig broker", pki.broker, ExtendedKeyUsageOID.SERVER_AUTH, san_entries(hosts)),
        (SERVICE_NAME, pki.service, ExtendedKeyUsageOID.CLIENT_AUTH, []),
        ("ota-rig code signing", pki.codesign, ExtendedKeyUsageOID.CODE_SIGNING, []),
    ]
    wanted += [(name, pki.thing(name), ExtendedKeyUsageOID.CLIENT_AUTH, []) for name in things]
    for common_name, identity, usage, names in wanted:
        if not _current(identity, ca_cert, names):
            issue_leaf(ca_key, ca_cert, common_name, identity.cert, identity.key, usage=usage, names=names)
    return pki


def _current(identity: Identity, ca_cert: x509.Certificate, names: list[x509.GeneralName]) -> bool:
    if not (identity.cert.exists() and identity.key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
        if names:
            present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            return set(names) <= set(present)
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return True


# -- code signing (what AWS Signer's "SHA256withECDSA" profile does) -----------------------


def make_untrusted_codesign(directory: Path) -> Identity:
    """A code-signing identity from a CA no board trusts (the UntrustedCertificate case)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = load_or_create_ca(directory, "ota-rig UNTRUSTED signing CA")
    identity = Identity(directory / "codesign.pem", directory / "codesign.key")
    if not identity.cert.exists():
        issue_leaf(ca_key, ca_cert, "untrusted code signing", identity.cert, identity.key,
                   usage=ExtendedKeyUsageOID.CODE_SIGNING)  # fmt: skip
    return identity


def sign_file(data: bytes, key_pem: Path) -> bytes:
    """The DER ECDSA P-256 / SHA-256 signature of `data` (the job's `sig-sha256-ecdsa`)."""
    try:
        key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"{key_pem}: not a readable code-signing key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{key_pem}: the code-signing key must be ECDSA P-256")
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_file(data: bytes, signature: bytes, cert_pem: bytes) -> bool:
    """What the ESP32 PAL's otaPal_CheckFileSignature() decides: the signature verifies
    against the public key of the code-signing certificate the firmware embeds."""
    try:
        public = x509.load_pem_x509_certificate(cert_pem).public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return False
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
