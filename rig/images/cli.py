"""`rig images derive`: the standard mutant set of one build, with its manifest."""

from __future__ import annotations

from pathlib import Path

import click

from rig.esp.signing import SigningKey
from rig.images.mutants import MANIFEST_NAME, derive_images
from rig.inputs import read_input


@click.group()
def images() -> None:
    """Derive test image sets from a build."""


@images.command("derive")
@click.option("--from", "source", required=True, help="The build: an ESP-IDF app .bin or a test image.")
@click.option("--key", help="Signing key (PEM); without it the signature mutants are skipped.")
@click.option("--out", "out", required=True, help="Output directory (created if missing).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random-bytes mutant.")
def derive(source: str, key: str | None, out: str, seed: int) -> None:
    """Write the standard mutant set of the build and manifest.json into OUT."""
    signing_key = SigningKey.load(key) if key is not None else None
    manifest = derive_images(read_input(source, "image"), Path(out), signing_key, seed=seed)
    for entry in manifest.entries:
        click.echo(f"{entry.file:<28} {entry.expect.value:<24} {entry.change}")
    for skipped in manifest.skipped:
        click.echo(f"{'(skipped) ' + skipped.name:<28} {'':<24} {skipped.reason}")
    click.echo(f"wrote {len(manifest.entries)} images and {Path(out) / MANIFEST_NAME}")
