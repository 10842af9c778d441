"""Reading a file a person named: stat first, then read, so a wrong path (a directory, a 1 TiB
sparse file, a device) is one clear line instead of a MemoryError or a hang."""

from __future__ import annotations

import stat
from pathlib import Path

from rig.errors import InputError
from rig.units import MIB, size_text

# The largest ESP32 flash is 128 MiB (esptool --flash-size 128MB): no image, dump or table is bigger.
MAX_BINARY = 128 * MIB
MAX_TEXT = 4 * MIB  # farm files, policies, CSVs, keys


def read_input(path: Path | str, what: str, *, limit: int = MAX_BINARY) -> bytes:
    """The bytes of `path`, a `what` ("image", "farm file", ...); InputError when it cannot be one."""
    where = Path(path)
    try:
        info = where.stat()
    except FileNotFoundError:
        raise InputError(f"{where}: {what} not found") from None
    except OSError as error:
        raise InputError(f"{where}: cannot read {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{where}: {what} is not a regular file")
    if info.st_size > limit:
        size, most = size_text(info.st_size), size_text(limit)
        raise InputError(f"{where}: {what} of {size} bytes; at most {most} expected")
    try:
        return where.read_bytes()
    except OSError as error:
        raise InputError(f"{where}: cannot read {what} ({error.strerror or error})") from None
