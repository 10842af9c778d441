"""Sizes and durations as people write them in farm files, lab configs, partition CSVs and
`--cut` specs: one parser each, so `4M` means the same everywhere.

Sizes follow ESP-IDF (gen_esp32part.py, esptool --flash-size): a decimal or 0x number with
an optional K or M multiplier (KiB / MiB; `KB`/`MB`/`KiB`/`MiB` are read the same way).
"""

from __future__ import annotations

import math
import re

KIB = 1024
MIB = 1024 * 1024
_SIZE = re.compile(r"([-+]?(?:0x[0-9a-f]+|\d+))\s*(?:(k|m)(?:i?b)?)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_size(value: object, *, signed: bool = False) -> int:
    """Bytes from `4MB`, `4M`, `64K`, `0x400000`, `4096` (or an int); ValueError otherwise.

    `signed` admits a leading minus: a partition CSV's negative size means "up to N bytes
    before the end of flash" (gen_esp32part.py)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.fullmatch(str(value).strip().lower())
        if match is None:
            raise ValueError(f"{value!r} is not a size (use e.g. 4MB, 4096K or 0x400000)")
        number = int(match[1], 0) * {"k": KIB, "m": MIB, None: 1}[match[2]]
    if number < 0 and not signed:
        raise ValueError(f"{value!r} is not a size: it is negative")
    return number


def size_text(size: int) -> str:
    """The shortest exact spelling: `4M`, `64K`, else hex."""
    for unit, suffix in ((MIB, "M"), (KIB, "K")):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"0x{size:x}"


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Seconds from `250ms`, `1.5s`, `2m` or a plain number of seconds; ValueError for
    anything else, including negative, zero (unless `allow_zero`), NaN and infinite values."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"{value!r} is not a duration (e.g. 2s, 0.5s, 200ms)")
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{value!r} is not a usable duration (must be {'>= 0' if allow_zero else '> 0'})")
    return seconds
