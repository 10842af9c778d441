"""The files an AWS IoT OTA scenario sends, and the job-file entry that describes each.

Built from the run's base image the way a release pipeline would: re-versioned (and, on the
virtual lab, renamed to the project the twin runs as the AWS OTA demo), each re-signed with
the run's app-signing key (the bootloader's) and code-signed for the job with ECDSA P-256.
The broken variants are the AWS OTA end-to-end test list's: unsigned, untrusted signer,
corrupt before/after signing, corrupt signature, single byte, incorrect platform.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rig.errors import FormatError, InputError
from rig.esp.image import parse, patch_image
from rig.esp.marker import Behaviour
from rig.esp.signing import SigningKey
from rig.mqtt import protocol as p
from rig.mqtt.pki import Identity, make_untrusted_codesign, sign_file

LAB_PROJECT = "ota-rig-aws"  # the twin lab runs images of this project as `aws-ota`
ESP32S2_CHIP_ID = 2  # esp_chip_id_t: an image for another chip (IncorrectPlatform)
FILE_PATH = "/device/firmware/ota.bin"
CERT_PATH = "/device/certs/codesign.pem"


class Signing(enum.Enum):
    """How the job's `sig-sha256-ecdsa` relates to the file."""

    GOOD = "good"
    NONE = "none"  # UnsignedImage: no signature key in the job document
    UNTRUSTED = "untrusted"  # UntrustedCertificate: signed by a key the device does not trust
    AFTER = "after"  # CorruptImageAfterSigning: the file changed after it was signed
    BAD = "bad"  # CorruptSignature: the signature's bytes changed


@dataclass(frozen=True)
class OtaFile:
    """One update: the bytes sent, their version, and the job entry (with its signature)."""

    name: str
    data: bytes
    version: str
    entry: p.JobFile


class AwsImages:
    """The run's AWS OTA files, derived from one base image."""

    def __init__(self, base: bytes, key: SigningKey | None, codesign: Identity, scratch: Path,
                 *, project: str | None) -> None:  # fmt: skip
        self.key = key
        self.codesign = codesign
        self.scratch = scratch
        self.base = patch_image(base, project_name=project, key=key) if project else base
        desc = parse(self.base).desc
        if desc is None:
            raise FormatError("the base image has no app descriptor: no version to bump for the OTA jobs")
        self.base_version = desc.version
        self._packed = p.version32(self.base_version)

    def variant(self, project: str) -> AwsImages:
        """The same files built as another project (on the lab: another firmware build)."""
        return AwsImages(self.base, self.key, self.codesign, self.scratch, project=project)

    def _bumped(self, minor_delta: int) -> str:
        major, minor, build = self._packed >> 24, self._packed >> 16 & 0xFF, self._packed & 0xFFFF
        if minor_delta < 0:
            if build:
                return f"{major}.{minor}.{build - 1}"
            if minor:
                return f"{major}.{minor - 1}.{build}"
            return f"{major - 1}.{minor}.{build}"
        return f"{major}.{minor + minor_delta}.{build}"

    @property
    def greater_version(self) -> str:
        return self._bumped(1)

    @property
    def previous_version(self) -> str:
        return self._bumped(-1)

    def app(self, version: str, behaviour: Behaviour = Behaviour.HEALTHY, param: int = 0) -> bytes:
        return patch_image(
            self.base, version=version, behaviour=behaviour, behaviour_param=param, key=self.key
        )

    def file(self, name: str, data: bytes, version: str, signing: Signing = Signing.GOOD,
             *, filepath: str | None = FILE_PATH) -> OtaFile:  # fmt: skip
        """The job entry for `data`; `signing` picks one of the broken-signature cases."""
        signature: bytes | None = None
        sent = data
        if signing is Signing.GOOD:
            signature = sign_file(data, self.codesign.key)
        elif signing is Signing.UNTRUSTED:
            signature = sign_file(data, make_untrusted_codesign(self.scratch / "untrusted").key)
        elif signing is Signing.AFTER:
            signature = sign_file(data, self.codesign.key)
            changed = bytearray(data)
            changed[len(changed) // 2] ^= 0xFF
            sent = bytes(changed)
        elif signing is Signing.BAD:
            good = bytearray(sign_file(data, self.codesign.key))
            good[-1] ^= 0xFF
            signature = bytes(good)
        entry = p.JobFile(filepath, len(sent), 0, CERT_PATH, signature)
        return OtaFile(name, sent, version, entry)

    def greater(self, behaviour: Behaviour = Behaviour.HEALTHY, param: int = 0, *, steps: int = 1) -> OtaFile:
        """The base `steps` minor versions up, with a first-boot `behaviour`."""
        version = self._bumped(steps)
        name = "greater" if steps == 1 else f"greater{steps}"
        if behaviour is not Behaviour.HEALTHY or param:
            name += f"_{behaviour.label}"
        return self.file(name, self.app(version, behaviour, param), version)

    def corrupt_before_signing(self) -> OtaFile:
        """The image's own SHA-256 no longer matches, yet the code signature covers it."""
        data = bytearray(self.app(self.greater_version))
        data[len(data) // 3] ^= 0xFF
        return self.file("corrupt_before_signing", bytes(data), self.greater_version)

    def incorrect_platform(self) -> OtaFile:
        data = patch_image(self.app(self.greater_version), chip_id=ESP32S2_CHIP_ID, key=self.key)
        return self.file("incorrect_platform", data, self.greater_version)

    def single_byte(self) -> OtaFile:
        return self.file("single_byte", b"\xe9", self.greater_version)

    def case(self, name: str) -> tuple[OtaFile, bool]:
        """The AWS OTA test case `name` (`greater`, `unsigned`, …) and whether a correct device
        accepts it."""
        greater = self.greater_version
        cases: dict[str, Callable[[], OtaFile]] = {
            "greater": self.greater,
            "next": self.greater,
            "same_version": lambda: self.file("same_version", self.app(self.base_version), self.base_version),
            "previous_version": lambda: self.file(
                "previous_version", self.app(self.previous_version), self.previous_version
            ),
            "corrupt_before_signing": self.corrupt_before_signing,
            "single_byte": self.single_byte,
            "incorrect_platform": self.incorrect_platform,
        }
        signings = {"unsigned": Signing.NONE, "untrusted_certificate": Signing.UNTRUSTED,
                    "corrupt_after_signing": Signing.AFTER, "corrupt_signature": Signing.BAD}  # fmt: skip
        if name in signings:
            return self.file(name, self.app(greater), greater, signings[name]), False
        if name not in cases:
            raise InputError(f"not an AWS OTA case ({', '.join(sorted([*cases, *signings]))})")
        return cases[name](), name in ("greater", "next")
