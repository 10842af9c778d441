"""The lab config file: how many twin boards, and how each one's firmware was "built".

A lab mixes builds on purpose (one board without anti-rollback, one signing with
ECDSA), so the file has lab-wide `defaults` and per-board overrides under `boards`:

    count: 3
    throwaway: true          # boards get the `efuse-burnable` tag
    defaults: {signing: rsa3072, http_timeout_ms: 1500}
    boards:
      b2: {anti_rollback: false, firmware: acme}

Keys are `twin.config.BoardConfig` fields, except that `signing` stands for
`signed_updates` (the farm file's word) and `flash_size` also takes 4MB/4096K.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig.errors import InputError
from twin.config import BoardConfig

# Shorter-than-real timeouts: a lab run should notice a dead link in seconds, not 20 s.
LAB_DEFAULTS: Mapping[str, Any] = {
    "rollback": True,
    "anti_rollback": True,
    "signed_updates": "rsa3072",
    "http_timeout_ms": 1500,
    "keepalive": {"idle_s": 1.0, "interval_s": 1.0, "count": 2},
}
DEFAULT_BOARD_COUNT = 2
_SIZE = re.compile(r"(0X[0-9A-F]+|\d+)\s*(MB|M|KB|K)?")
_UNITS = {"": 1, "K": 1024, "KB": 1024, "M": 1 << 20, "MB": 1 << 20}


@dataclass(frozen=True)
class LabConfig:
    """Board count (None = let the command line decide) and per-board build settings."""

    count: int | None = None
    # A lab discarded after one run may have its eFuses burnt for good (anti-rollback).
    throwaway: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    boards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def board_config(self, name: str) -> BoardConfig:
        """Lab defaults, then the file's defaults, then this board's overrides."""
        values = {**LAB_DEFAULTS, **self.defaults, **self.boards.get(name, {})}
        try:
            return BoardConfig.from_dict(values)
        except InputError as error:
            raise InputError(f"lab config, board {name}: {error}") from None


def _translate(section: object, where: str) -> dict[str, Any]:
    """Farm-file spellings to BoardConfig field names."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InputError(f"{where}: expected a mapping, got {type(section).__name__}")
    values = {str(k): v for k, v in section.items()}
    if "signing" in values:
        values["signed_updates"] = values.pop("signing")
    if "flash_size" in values:
        values["flash_size"] = parse_size(values["flash_size"], f"{where}.flash_size")
    return values


def parse_size(value: object, where: str) -> int:
    """4MB, 4M, 4096K, 0x400000 or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(str(value).strip().upper())
    if not match:
        raise InputError(f"{where}: {value!r} is not a size (use e.g. 4MB or 0x400000)")
    return int(match.group(1), 0) * _UNITS[match.group(2) or ""]


def parse_lab_config(data: object, where: str = "<lab config>") -> LabConfig:
    """Validate a loaded YAML document; every board section is checked now, not at boot."""
    if data is None:
        return LabConfig()
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - {"count", "throwaway", "defaults", "boards"})
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known: count, throwaway, defaults, boards)")
    throwaway = data.get("throwaway", False)
    if not isinstance(throwaway, bool):
        raise InputError(f"{where}.throwaway: expected true or false, got {throwaway!r}")
    count = data.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise InputError(f"{where}.count: expected a whole number >= 1, got {count!r}")
    boards_raw = data.get("boards") or {}
    if not isinstance(boards_raw, dict):
        raise InputError(f"{where}.boards: expected a mapping of board name to settings")
    config = LabConfig(
        count=count,
        throwaway=throwaway,
        defaults=_translate(data.get("defaults"), f"{where}.defaults"),
        boards={str(n): _translate(s, f"{where}.boards.{n}") for n, s in boards_raw.items()},
    )
    for name in [*config.boards, "(any other)"]:
        config.board_config(name)
    return config


def load_lab_config(path: Path | None) -> LabConfig:
    """Read a lab config file; None means all defaults."""
    if path is None:
        return LabConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"{path}: cannot read lab config ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{line}: {getattr(error, 'problem', None) or 'invalid YAML'}") from None
    return parse_lab_config(data, str(path))
