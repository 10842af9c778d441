"""Private keys on disk: created 0600 from the first byte, and kept out of the run folders
that people zip, attach to tickets and serve (`reports/<run-id>/`).

A run's private material (the TLS CA and server keys, the lab's image-signing key) lives in
`<report-dir>/.private/<run-id>/`, mode 0700, beside the run folder rather than in it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PRIVATE = ".private"


def private_folder(report_root: Path, run_id: str) -> Path:
    """The run's folder for private keys, created 0700."""
    folder = report_root / PRIVATE / run_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for part in (report_root / PRIVATE, folder):
        part.chmod(0o700)
    return folder


def write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by its owner only, never world-readable even for a moment."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)  # an existing file keeps its old mode through O_TRUNC


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files a library creates inside this block (espsecure's key) are 0600 from the start."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
