"""esptool, called in-process, as the rig's only way to write and read flash.

In-process (rather than a subprocess) so the fast RFC2217 handler applies and a
failure arrives as an exception we can classify: a board that does not answer is
an infrastructure problem, never a firmware verdict.

Boards flashed at once from one process (a rollout) each keep their own esptool output:
esptool logs through one process-wide logger, so the rig installs a logger that writes to
the calling thread's capture instead of swapping the process-wide sys.stdout.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import esptool
from esptool.cmds import attach_flash, detect_chip, run_stub
from esptool.logger import TemplateLogger, log

from rig.errors import InfraError
from rig.serialio import enable_fast_rfc2217


class _ThreadLog(TemplateLogger):  # type: ignore[misc]  # esptool ships no type hints
    """esptool's log, captured per thread; outside a capture it prints as esptool would."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        buffer, previous = io.StringIO(), getattr(self._local, "buffer", None)
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = previous

    def _write(self, text: str) -> None:
        buffer = getattr(self._local, "buffer", None)
        print(text, file=buffer if buffer is not None else sys.stdout)

    def print(self, *args: object, **kwargs: object) -> None:
        self._write(str(kwargs.get("sep", " ")).join(str(a) for a in args))

    def note(self, message: str) -> None:
        self._write(f"Note: {message}")

    def warning(self, message: str) -> None:
        self._write(f"WARNING: {message}")

    def error(self, message: str) -> None:
        self._write(f"ERROR: {message}")

    def stage(self, finish: bool = False) -> None:
        """Collapsible stages are a terminal nicety; a capture keeps every line."""

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                     bar_length: int = 30) -> None:  # fmt: skip
        """No progress bars in a log file."""

    def set_verbosity(self, verbosity: str) -> None:
        """The rig always keeps the normal level."""


_LOG = _ThreadLog()
log.set_logger(_LOG)


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
    try:
        with _LOG.capture() as out:
            esptool.main(argv)
    except (esptool.FatalError, OSError, SystemExit, ValueError) as error:
        _append(log, argv, out.getvalue())
        raise InfraError(f"{target.name}: esptool {args[0]} failed: {_cause(error)}") from None
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


@dataclass(frozen=True)
class ReadBack:
    """One esptool session's view of the flash: raw bytes of one region, MD5s of others."""

    data: bytes
    md5: dict[tuple[int, int], str]


def read_back(
    target: FlashTarget, offset: int, size: int, digests: Sequence[tuple[int, int]], log: Path | None = None
) -> ReadBack:
    """Read `size` bytes at `offset` and the flash MD5 (`SPI_FLASH_MD5`, computed on the chip) of
    each (offset, size) in `digests`, in one ROM-loader session.

    The MD5 costs the wire 16 bytes per region, so checking that a slot was not written stays
    cheap on a real board too. The board is left in the ROM's download mode (`--after no-reset`).
    """
    enable_fast_rfc2217()
    before = "no-reset" if target.port.startswith("socket://") else target.before
    esp = None
    try:
        with _LOG.capture() as out:
            esp = detect_chip(target.port, connect_mode=before)
            esp = run_stub(esp)
            if target.baud != esp.ESP_ROM_BAUD:
                esp.change_baud(target.baud)
            attach_flash(esp)
            data = esp.read_flash(offset, size)
            md5 = {(at, length): str(esp.flash_md5sum(at, length)) for at, length in digests}
    except (esptool.FatalError, OSError, ValueError) as error:
        _append(log, ["read-back", hex(offset), hex(size)], out.getvalue())
        raise InfraError(f"{target.name}: esptool read-back failed: {_cause(error)}") from None
    finally:
        if esp is not None:
            with contextlib.suppress(OSError):
                esp._port.close()
    regions = " ".join(f"md5@{at:#x}+{length:#x}={digest}" for (at, length), digest in md5.items())
    _append(log, ["read-back", hex(offset), hex(size), regions], out.getvalue())
    return ReadBack(data, md5)


def read_mac(target: FlashTarget, log: Path | None = None) -> str:
    output = run_esptool(target, ["read-mac"], log)
    for line in output.splitlines():
        if line.startswith("MAC:"):
            return line.split(":", 1)[1].strip()
    raise InfraError(f"{target.name}: esptool read-mac printed no MAC")


def _cause(error: BaseException) -> str:
    """The line of an esptool error that says what went wrong, not its closing advice
    ("For troubleshooting steps visit: …")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(("For troubleshooting", "http"))]
    return (telling or lines or [type(error).__name__])[0]


def _append(log: Path | None, argv: Sequence[str], output: str) -> None:
    if log is None:
        return
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ esptool {' '.join(argv)}\n{output}\n")
