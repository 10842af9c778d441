"""The image set a run serves: one base build and its derived mutants, on disk.

A real farm brings its own ESP-IDF build (`--base-image`, `--signing-key`); the
virtual lab gets a reference test app built here. Either way every scenario picks
images by mutant name and reads from the manifest what a correct device must do.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from rig.errors import InputError
from rig.esp.example_image import make_example_app
from rig.esp.image import ImageFault, verify_image
from rig.esp.marker import Behaviour, find_marker
from rig.esp.signing import SigningKey, SigningScheme
from rig.esp.testimage import make_test_app
from rig.esp.versions import compare_versions
from rig.farm import BoardSpec, FirmwareProtocol
from rig.images.mutants import MANIFEST_NAME, Expect, Manifest, MutantEntry, SkippedMutant, derive_images
from rig.inputs import read_input

# The virtual lab's reference build: secure_version 1 so the anti-rollback mutants exist.
LAB_BASE_VERSION = "1.0.0"
LAB_BASE_SECURE_VERSION = 1
LAB_IMAGE_SIZE = 128 * 1024
# Behaviours a correct device answers with a rollback at the image's first boot.
ROLLS_BACK = (Behaviour.CRASH_ON_BOOT, Behaviour.SELFTEST_FAIL, Behaviour.HANG, Behaviour.NEVER_CONFIRM)
_PLACEHOLDER = re.compile(r"%[-0-9.]*[sdux]")


CONFIRMED = "app confirmed valid"


@dataclass(frozen=True)
class ImageEntry:
    """One servable image and the behaviour it must provoke."""

    name: str
    path: Path
    version: str
    expect: str
    behaviour: str | None
    proof_lines: tuple[str, ...]

    def proof_patterns(
        self, *, rollback: bool = True, firmware: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None
    ) -> list[re.Pattern[str]]:
        """The manifest's "L tag: message" lines as regexes over real log lines.

        The manifest speaks for a build with rollback. Without it a new image is never
        PENDING_VERIFY, so no self-test confirms it (PROTOCOL.md §4) and otadata keeps the
        state esp_ota_set_boot_partition() wrote: ESP_OTA_IMG_UNDEFINED. `firmware` keeps
        the lines the board's firmware prints (its agent's `proof_lines`)."""
        patterns = []
        for line in firmware(self.proof_lines) if firmware is not None else self.proof_lines:
            if not rollback:
                if line.endswith(CONFIRMED):
                    continue
                line = line.replace("state=VALID", "state=UNDEFINED")
            level, _, rest = line.partition(" ")
            pieces = [re.escape(p) for p in _PLACEHOLDER.split(rest)]
            patterns.append(re.compile(rf"{re.escape(level)} \([\d:.]+\) " + r"\S+".join(pieces)))
        return patterns


class ImageSet:
    """A directory of images with its manifest.json."""

    def __init__(self, directory: Path, manifest: Manifest, key: SigningKey | None) -> None:
        self.directory = directory
        self.manifest = manifest
        self.key = key

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.manifest.entries]

    @property
    def base_version(self) -> str:
        return self.manifest.base_version

    def entry(self, name: str) -> ImageEntry:
        try:
            mutant = self.manifest.entry(name)
        except KeyError:
            skipped = {s.name: s.reason for s in self.manifest.skipped}
            why = skipped.get(name, f"known images: {', '.join(self.names)}")
            raise InputError(f"no image {name!r} in {self.directory} ({why})") from None
        return ImageEntry(
            name=mutant.name,
            path=self.directory / mutant.file,
            version=mutant.version or "",
            expect=mutant.expect.value,
            behaviour=mutant.behaviour,
            proof_lines=mutant.logs,
        )

    def data(self, name: str) -> bytes:
        return self.entry(name).path.read_bytes()

    def largest_size(self) -> int:
        """Bytes of the largest image in the set: how far an update can reach into a slot."""
        return max((e.size for e in self.manifest.entries), default=0)

    def skipped_reason(self, name: str) -> str | None:
        return next((s.reason for s in self.manifest.skipped if s.name == name), None)

    def source(self) -> dict[str, bytes]:
        """What the OTA server serves: each image under its mutant name (no extension)."""
        return {e.name: (self.directory / e.file).read_bytes() for e in self.manifest.entries}


def _scheme(signing: Iterable[str]) -> SigningScheme | None:
    schemes = {s for s in signing if s != "none"}
    if len(schemes) > 1:
        raise InputError(f"the farm mixes signing schemes {sorted(schemes)}; select one per run (--boards)")
    return SigningScheme(schemes.pop()) if schemes else None


LabApp = Callable[[SigningKey | None, int], bytes]


def reference_lab_app(key: SigningKey | None, size: int) -> bytes:
    """The lab's reference-firmware build (PROTOCOL.md agent, healthy behaviour marker)."""
    return make_test_app(version=LAB_BASE_VERSION, secure_version=LAB_BASE_SECURE_VERSION, size=size, key=key)


def prepare_image_set(
    directory: Path,
    *,
    base: Path | None,
    key: Path | None,
    signing: Iterable[str],
    seed: int = 0,
    extra: Mapping[str, Path] | None = None,
    private: Path | None = None,
    lab_image_size: int = LAB_IMAGE_SIZE,
    lab_app: LabApp = reference_lab_app,
) -> ImageSet:
    """Derive (once per run directory) the run's image set from `base` or a lab build.

    `lab_app` builds the lab's base (of `lab_image_size` bytes) when there is no `base`. The
    lab's signing key (made when no `key` is given) goes to `private`
    (`rig.keyfiles.private_folder`), not beside the images, when given."""
    directory.mkdir(parents=True, exist_ok=True)
    scheme = _scheme(signing)
    if base is not None and key is None and scheme is not None:
        raise InputError("the farm's boards verify signed updates: pass --signing-key with --base-image")
    out = directory / "set"
    # xdist workers share the run's image directory: the first derives, the rest reuse.
    with FileLock(str(directory / ".derive.lock")):
        signing_key = _signing_key(private or directory, key, scheme)
        if (out / ".complete").exists():
            return ImageSet(out, _load_manifest(out / MANIFEST_NAME), signing_key)
        base_bytes = lab_app(signing_key, lab_image_size) if base is None else read_input(base, "base image")
        manifest = derive_images(base_bytes, out, signing_key, seed=seed)
        if extra:
            manifest = _with_extra(manifest, out, extra)
        (out / ".complete").touch()
    return ImageSet(out, manifest, signing_key)


def _with_extra(manifest: Manifest, out: Path, extra: Mapping[str, Path]) -> Manifest:
    """Add user-supplied images, with the expectation their contents imply."""
    added = []
    for name, path in extra.items():
        data = read_input(path, "image")
        (out / f"{name}.bin").write_bytes(data)
        expect, version, behaviour = _expectation(data, manifest.base_version)
        added.append(
            MutantEntry(
                name=name,
                file=f"{name}.bin",
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                change=f"user image {path.name}",
                expect=expect,
                logs=(),
                version=version,
                secure_version=None,
                behaviour=behaviour,
                image_fault=None,
                signature=None,
            )
        )
    return replace(manifest, entries=(*manifest.entries, *added))


def _expectation(data: bytes, base_version: str) -> tuple[Expect, str | None, str | None]:
    """What a device running the base does with `data` (signatures are not judged here)."""
    check = verify_image(data)
    if not check.ok or check.image is None or check.image.desc is None:
        fault = check.fault
        early = fault in (ImageFault.BAD_MAGIC, ImageFault.CHIP_ID_MISMATCH, ImageFault.TRUNCATED)
        return (Expect.REJECT_BEFORE_WRITE if early else Expect.REJECT_AT_VERIFY), None, None
    version = check.image.desc.version
    behaviour = find_marker(data)[1].behaviour
    if (compare_versions(version, base_version) or 0) <= 0:
        return Expect.REJECT_BY_VERSION_CHECK, version, behaviour.label
    if behaviour in (
        Behaviour.CRASH_ON_BOOT,
        Behaviour.SELFTEST_FAIL,
        Behaviour.HANG,
        Behaviour.NEVER_CONFIRM,
    ):
        return Expect.ROLL_BACK, version, behaviour.label
    return Expect.ACCEPT, version, behaviour.label


def _signing_key(directory: Path, key: Path | None, scheme: SigningScheme | None) -> SigningKey | None:
    if key is not None:
        return SigningKey.load(key)
    if scheme is None:
        return None
    path = directory / f"lab-key-{scheme.value}.pem"
    return SigningKey.load(path) if path.exists() else SigningKey.generate(path, scheme)


def _load_manifest(path: Path) -> Manifest:
    """Rebuild the Manifest record from the manifest.json derive_images wrote."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    key = raw.get("key") or {}
    entries = tuple(
        MutantEntry(**{**item, "expect": Expect(item["expect"]), "logs": tuple(item["logs"])})
        for item in raw["images"]
    )
    return Manifest(
        base_sha256=raw["base"]["sha256"],
        base_version=raw["base"]["version"],
        base_secure_version=raw["base"]["secure_version"],
        project=raw["base"]["project"],
        key_scheme=key.get("scheme"),
        key_digest=key.get("digest"),
        entries=entries,
        skipped=tuple(SkippedMutant(**item) for item in raw.get("skipped", [])),
    )


def example_lab_app(project: str, ca_pem: bytes) -> LabApp:
    """A lab build of stock example `project` at the lab's base version, embedding `ca_pem`
    (the rig's CA, as a team replaces server_certs/ca_cert.pem with its own server's). Like
    every sdkconfig.ci of Espressif's, it skips the server name check: the rig's server is
    reached by an address (the fault path's) its certificate cannot know in advance."""

    def build(key: SigningKey | None, size: int) -> bytes:
        return make_example_app(
            project=project, version=LAB_BASE_VERSION, secure_version=LAB_BASE_SECURE_VERSION,
            ca_pem=ca_pem, choices={"EXAMPLE_SKIP_COMMON_NAME_CHECK": True}, size=size, key=key,
        )  # fmt: skip

    return build


@dataclass(frozen=True)
class ImageLibrary:
    """The image set each board of a run is served: the run's set (the reference firmware on
    the lab, or the farm's own `--base-image` build everywhere), and on the lab one set per
    stock example its `idf-example` boards run, derived the same way from a lab build."""

    directory: Path
    default: ImageSet
    custom_base: bool
    key: Path | None
    signing: frozenset[str]
    seed: int
    private: Path | None
    ca_pem: Callable[[], bytes]

    def for_board(self, spec: BoardSpec) -> ImageSet:
        example = spec.firmware.example
        if self.custom_base or spec.firmware.protocol is not FirmwareProtocol.IDF_EXAMPLE or example is None:
            return self.default
        return prepare_image_set(
            self.directory / f"example-{example}", base=None, key=self.key, signing=self.signing,
            seed=self.seed, private=self.private, lab_app=example_lab_app(example, self.ca_pem()),
        )  # fmt: skip

    def base_for(self, spec: BoardSpec) -> bytes:
        """The known-good app a health check or a prepare flashes on this board."""
        return self.for_board(spec).data("base")
