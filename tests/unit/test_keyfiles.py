"""Private keys are the owner's alone from their first byte, and live beside the run folders
people share, not in them."""

from __future__ import annotations

import stat
from pathlib import Path

from rig.cli import main
from rig.keyfiles import private_folder, write_private
from rig.net.certs import ensure_bundle


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_rig_keys_generate_writes_a_key_only_its_owner_can_read(tmp_path: Path) -> None:
    key = tmp_path / "signing.pem"
    assert main(["keys", "generate", "--scheme", "ecdsa256-v1", str(key)]) == 0
    assert mode(key) == 0o600


def test_the_tls_keys_of_a_run_are_private(tmp_path: Path) -> None:
    bundle = ensure_bundle(private_folder(tmp_path / "reports", "run-1") / "certs")
    keys = [p for p in (tmp_path / "reports" / ".private" / "run-1" / "certs").iterdir() if "key" in p.name]
    assert keys and all(mode(p) == 0o600 for p in keys), [(p.name, oct(mode(p))) for p in keys]
    assert mode(tmp_path / "reports" / ".private") == 0o700
    assert bundle.ca_der()
    assert not (tmp_path / "reports" / "run-1").exists()  # nothing private in the run folder


def test_an_existing_world_readable_file_is_made_private_when_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o600
