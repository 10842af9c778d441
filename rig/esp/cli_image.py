"""`rig image …` and `rig keys …`: look inside, patch and sign ESP32 app images."""

from __future__ import annotations

from pathlib import Path

import click

from rig.errors import FormatError, InputError
from rig.esp.image import AppImage, ChipId, parse, patch_image
from rig.esp.marker import Behaviour, find_marker
from rig.esp.signing import SigningKey, SigningScheme
from rig.esp.testimage import make_test_app
from rig.inputs import read_input

_SPI_MODES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT", 4: "FAST_READ", 5: "SLOW_READ"}
_SIZES = {0: "1MB", 1: "2MB", 2: "4MB", 3: "8MB", 4: "16MB", 5: "32MB", 6: "64MB", 7: "128MB"}


def write_output(path: str | Path, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None


def _chip_name(chip_id: int) -> str:
    try:
        return ChipId(chip_id).name
    except ValueError:
        return f"unknown 0x{chip_id:04x}"


def _rev(full: int) -> str:
    return f"v{full // 100}.{full % 100}"


def describe(image: AppImage) -> list[str]:
    """The lines of `rig image info`."""
    validity = "valid" if image.checksum_ok else f"INVALID, calculated 0x{image.checksum_calculated:02x}"
    lines = [
        f"image: {len(image.raw)} bytes, image length {image.image_length}, {image.segment_count} segments",
        f"header: chip {_chip_name(image.chip_id)}, revisions {_rev(image.min_chip_rev_full)}"
        f"..{_rev(image.max_chip_rev_full)}, flash {_SPI_MODES.get(image.spi_mode, image.spi_mode)} "
        f"{_SIZES.get(image.spi_size, image.spi_size)}, entry 0x{image.entry_addr:08x}",
    ]
    for index, segment in enumerate(image.segments):
        lines.append(
            f"  segment {index}: offset 0x{segment.data_offset:06x} vaddr 0x{segment.load_addr:08x} "
            f"size 0x{len(segment.data):05x}"
        )
    lines.append(f"checksum: 0x{image.checksum_stored:02x} ({validity}) at 0x{image.checksum_offset:x}")
    if image.hash_stored is None:
        lines.append("sha256: not appended")
    else:
        lines.append(f"sha256: {image.hash_stored.hex()} ({'valid' if image.hash_ok else 'INVALID'})")
    desc = image.desc
    if desc is None:
        lines.append("app desc: none (no 0xABCD5432 magic at 0x20)")
    else:
        lines.append(
            f"app desc: project {desc.project_name!r} version {desc.version!r} secure_version "
            f"{desc.secure_version} idf {desc.idf_ver!r} built {desc.date} {desc.time}"
        )
    try:
        offset, marker = find_marker(image.raw[: image.image_length])
        lines.append(f"marker: {marker.behaviour.label} param={marker.param} at 0x{offset:x}")
    except FormatError as error:
        lines.append(f"marker: {error}")
    sig = image.signature
    if sig is None:
        lines.append("signature: none")
    else:
        digest = sig.key_digest.hex() if sig.key_digest is not None else "n/a (v1 blocks carry no key)"
        lines.append(
            f"signature: {sig.scheme.value} at 0x{sig.offset:x}, crc {'ok' if sig.crc_ok else 'BAD'}, "
            f"image digest {'ok' if sig.digest_ok else 'MISMATCH'}, key digest {digest}"
        )
    return lines


@click.group()
def image() -> None:
    """Inspect, patch and make ESP32 app images."""


@image.command("info")
@click.argument("file")
def info(file: str) -> None:
    """One-screen description of an app image FILE."""
    click.echo("\n".join(describe(parse(read_input(file, "image")))))


@image.command("patch")
@click.argument("file")
@click.option("--out", "out", required=True, help="Where to write the patched image.")
@click.option("--version", "version", help="New esp_app_desc_t version.")
@click.option("--secure-version", type=int, help="New anti-rollback secure_version.")
@click.option("--project", help="New project name.")
@click.option("--chip-id", type=int, help="Header chip id (0 = ESP32).")
@click.option("--min-rev-full", type=int, help="Minimum chip revision, major*100+minor.")
@click.option("--max-rev-full", type=int, help="Maximum chip revision, major*100+minor.")
@click.option("--behaviour", type=click.Choice([b.label for b in Behaviour]), help="Behaviour marker value.")
@click.option("--behaviour-param", type=int, help="Behaviour marker parameter (ms).")
@click.option("--key", help="Re-sign with this PEM key (the old signature is always removed).")
def patch(
    file: str,
    out: str,
    version: str | None,
    secure_version: int | None,
    project: str | None,
    chip_id: int | None,
    min_rev_full: int | None,
    max_rev_full: int | None,
    behaviour: str | None,
    behaviour_param: int | None,
    key: str | None,
) -> None:
    """Change fields of FILE, recompute checksum and SHA-256, optionally re-sign."""
    patched = patch_image(
        read_input(file, "image"),
        version=version,
        secure_version=secure_version,
        project_name=project,
        chip_id=chip_id,
        min_rev_full=min_rev_full,
        max_rev_full=max_rev_full,
        behaviour=Behaviour.from_label(behaviour) if behaviour is not None else None,
        behaviour_param=behaviour_param,
        key=SigningKey.load(key) if key is not None else None,
    )
    write_output(out, patched)
    click.echo(f"wrote {out}: {len(patched)} bytes")


@image.command("make-test")
@click.option("--version", "version", required=True, help="App version string.")
@click.option("--out", "out", required=True, help="Where to write the image.")
@click.option("--secure-version", type=int, default=0, show_default=True)
@click.option("--size", type=int, default=128 * 1024, show_default=True, help="Unsigned size (x16).")
@click.option("--behaviour", type=click.Choice([b.label for b in Behaviour]), default="healthy")
@click.option("--key", help="Sign with this PEM key.")
def make_test(
    version: str, out: str, secure_version: int, size: int, behaviour: str, key: str | None
) -> None:
    """Make a test app image (the virtual lab's reference firmware stand-in)."""
    data = make_test_app(
        version=version,
        secure_version=secure_version,
        behaviour=Behaviour.from_label(behaviour),
        size=size,
        key=SigningKey.load(key) if key is not None else None,
    )
    write_output(out, data)
    click.echo(f"wrote {out}: {len(data)} bytes")


@click.group()
def keys() -> None:
    """Signing keys for ESP32 app images."""


@keys.command("generate")
@click.option(
    "--scheme",
    type=click.Choice([s.value for s in SigningScheme]),
    default=SigningScheme.RSA3072_SBV2.value,
    show_default=True,
)
@click.argument("out")
def generate(scheme: str, out: str) -> None:
    """Write a new private signing key OUT with espsecure."""
    key = SigningKey.generate(out, SigningScheme(scheme))
    click.echo(f"wrote {out}: {key.scheme.value} key, digest {key.public_key_digest().hex()}")


@keys.command("mqtt")
@click.option("--out", required=True, help="directory of the farm's MQTT identities (the farm's mqtt.pki)")
@click.option("--thing", "things", multiple=True, help="a board's AWS IoT thing name (repeat for each board)")
@click.option("--host", "hosts", multiple=True, help="broker address (default 127.0.0.1)")
def mqtt_keys(out: str, things: tuple[str, ...], hosts: tuple[str, ...]) -> None:
    """The farm's MQTT identities: CA, broker certificate, one client certificate per thing,
    the rig's service identity and the code-signing key + certificate (codeSigning usage).
    What exists is kept (boards are built with their certificates); what is missing is issued."""
    from pathlib import Path

    from rig.mqtt.pki import ensure_pki

    pki = ensure_pki(Path(out), things, hosts or ("127.0.0.1",))
    listed = ", ".join(things) or "none"
    click.echo(f"wrote {pki.directory}: ca.pem, broker, service, codesign, things: {listed}")
    for thing in things:
        identity = pki.thing(thing)
        click.echo(f"  {thing}: build the firmware with {identity.cert} and {identity.key}")
    click.echo(f"  every board: root CA {pki.ca}, code-signing certificate {pki.codesign.cert}")
