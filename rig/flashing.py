"""esptool, called in-process, as the rig's only way to write and read flash.

In-process (rather than a subprocess) so the fast RFC2217 handler applies and a
failure arrives as an exception we can classify: a board that does not answer is
an infrastructure problem, never a firmware verdict.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import esptool

from rig.errors import InfraError
from rig.serialio import enable_fast_rfc2217


@dataclass(frozen=True)
class FlashTarget:
    """How esptool reaches one board."""

    name: str
    port: str
    baud: int
    before: str = "default-reset"
    chip: str = "esp32"


def run_esptool(target: FlashTarget, args: Sequence[str], log: Path | None = None) -> str:
    """Run one esptool command against `target`; returns its output, InfraError on failure."""
    enable_fast_rfc2217()
    before = "no-reset" if target.port.startswith("socket://") else target.before
    argv = [
        "--chip",
        target.chip,
        "--port",
        target.port,
        "--baud",
        str(target.baud),
        "--before",
        before,
        "--after",
        "no-reset",
        *args,
    ]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            esptool.main(argv)
    except (esptool.FatalError, OSError, SystemExit, ValueError) as error:
        _append(log, argv, out.getvalue())
        last = str(error).strip().splitlines()[-1:] or [type(error).__name__]
        raise InfraError(f"{target.name}: esptool {args[0]} failed: {last[0]}") from None
    _append(log, argv, out.getvalue())
    return out.getvalue()


def write_regions(target: FlashTarget, regions: Sequence[tuple[int, bytes]], log: Path | None = None) -> None:
    """Write (offset, bytes) regions in one esptool session (compressed, verified by MD5)."""
    with tempfile.TemporaryDirectory(prefix="rig-flash-") as tmp:
        args = ["write-flash", "-z"]
        for index, (offset, data) in enumerate(regions):
            path = Path(tmp) / f"region{index}.bin"
            path.write_bytes(data)
            args += [hex(offset), str(path)]
        run_esptool(target, args, log)


def read_flash(target: FlashTarget, offset: int, size: int, log: Path | None = None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="rig-read-") as tmp:
        path = Path(tmp) / "dump.bin"
        run_esptool(target, ["read-flash", hex(offset), hex(size), str(path)], log)
        return path.read_bytes()


def read_mac(target: FlashTarget, log: Path | None = None) -> str:
    output = run_esptool(target, ["read-mac"], log)
    for line in output.splitlines():
        if line.startswith("MAC:"):
            return line.split(":", 1)[1].strip()
    raise InfraError(f"{target.name}: esptool read-mac printed no MAC")


def _append(log: Path | None, argv: Sequence[str], output: str) -> None:
    if log is None:
        return
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ esptool {' '.join(argv)}\n{output}\n")
