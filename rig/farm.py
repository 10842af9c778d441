"""The farm file: which boards exist, how to reach them, and what powers them.

One YAML file describes a bench of real boards or a virtual lab alike; the rig
never needs to know which. Every error names the file, the key and what is wrong,
because a farm file is edited by hand at 2 a.m. before a nightly run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig.errors import InputError
from rig.power import driver_names

SERIAL_URL = re.compile(r"^(rfc2217://|socket://|/dev/|COM\d+$|loop://)")
CHIPS = ("esp32",)
RESET_METHODS = ("default-reset", "no-reset", "usb-reset")
SIGNING_SCHEMES = ("none", "rsa3072", "ecdsa256-v1")


@dataclass(frozen=True)
class FirmwareTraits:
    """What the firmware build on a board was configured with (its sdkconfig)."""

    rollback: bool = True
    anti_rollback: bool = False
    signing: str = "none"
    version_check: bool = True


@dataclass(frozen=True)
class BoardSpec:
    """One board of the farm, as the farm file describes it."""

    name: str
    chip: str
    serial: str
    baud: int = 115200
    flash_baud: int = 460800
    reset: str = "default-reset"
    flash_size: int = 4 * 1024 * 1024
    partition_table: str | None = None
    power: Mapping[str, Any] = field(default_factory=dict)
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    firmware: FirmwareTraits = FirmwareTraits()
    tags: tuple[str, ...] = ()

    @property
    def power_driver(self) -> str | None:
        driver = self.power.get("driver")
        return str(driver) if driver is not None else None


FAULT_PATHS = ("none", "namespace")


@dataclass(frozen=True)
class NetworkSpec:
    """Where the rig's OTA server listens and the address boards use to reach it."""

    bind: str = "127.0.0.1"
    board_facing_address: str = "127.0.0.1"
    # "namespace": the fault proxy listens in a network namespace the rig creates, so a dead
    # path (packets dropped both ways) is a real fault (rig/net/netns.py). Boards must reach
    # that namespace's address: a virtual lab's twins do; a real farm leaves this "none".
    fault_path: str = "none"


@dataclass(frozen=True)
class Farm:
    """A parsed, validated farm file."""

    name: str
    path: Path | None
    boards: tuple[BoardSpec, ...]
    instruments: Mapping[str, Mapping[str, Any]]
    network: NetworkSpec
    virtual: bool = False

    def board(self, name: str) -> BoardSpec:
        for spec in self.boards:
            if spec.name == name:
                return spec
        known = ", ".join(b.name for b in self.boards) or "none"
        raise InputError(f"{self._where()}: no board named {name!r} (boards: {known})")

    def select(self, names: Sequence[str] = (), tags: Sequence[str] = ()) -> tuple[BoardSpec, ...]:
        """Boards by name and/or tag; all boards when neither is given."""
        chosen = [self.board(n) for n in names] if names else list(self.boards)
        if tags:
            chosen = [b for b in chosen if set(tags) <= set(b.tags)]
        if not chosen:
            raise InputError(f"{self._where()}: no board matches names={list(names)} tags={list(tags)}")
        return tuple(chosen)

    def power_spec(self, board: BoardSpec) -> dict[str, Any]:
        """The board's power section with its instrument's settings merged in."""
        spec = dict(board.power)
        instrument = spec.pop("instrument", None)
        if instrument is not None:
            merged = dict(self.instruments[str(instrument)])
            merged.pop("kind", None)
            merged.update(spec)
            spec = merged
        if spec.get("driver") == "dtr-rts" and "port" not in spec:
            spec["port"] = board.serial
        return spec

    def _where(self) -> str:
        return str(self.path) if self.path else "<farm>"


def parse_size(value: object, where: str) -> int:
    """Sizes as in ESP-IDF: 4MB, 4M, 4096K, 0x400000 or a plain number."""
    text = str(value).strip().upper()
    match = re.fullmatch(r"(0X[0-9A-F]+|\d+)\s*(MB|M|KB|K)?", text)
    if not match:
        raise InputError(f"{where}: {value!r} is not a size (use e.g. 4MB, 4096K or 0x400000)")
    number = int(match.group(1), 0)
    unit = match.group(2) or ""
    return number * {"": 1, "K": 1024, "KB": 1024, "M": 1 << 20, "MB": 1 << 20}[unit]


class _Reader:
    """Typed access to one YAML mapping, with errors that say file:key."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key)

    def text(self, key: str, default: str | None = None, choices: Sequence[str] = ()) -> str:
        value = self._get(key)
        if value is None:
            if default is None:
                raise InputError(f"{self.where}.{key}: missing (required)")
            return default
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InputError(f"{self.where}.{key}: expected text, got {type(value).__name__}")
        text = str(value)
        if choices and text not in choices:
            raise InputError(f"{self.where}.{key}: {text!r} is not one of {', '.join(choices)}")
        return text

    def opt_text(self, key: str) -> str | None:
        return None if self._get(key) is None else self.text(key)

    def integer(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{self.where}.{key}: expected a whole number, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InputError(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    def mapping(self, key: str) -> _Reader:
        value = self._get(key)
        return _Reader({} if value is None else value, f"{self.where}.{key}")

    def items(self, key: str) -> list[object]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InputError(f"{self.where}.{key}: expected a list, got {type(value).__name__}")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise InputError(f"{self.where}: unknown key {unknown[0]!r}")


def _board(data: object, where: str, instruments: Mapping[str, Any]) -> BoardSpec:
    r = _Reader(data, where)
    name = r.text("name")
    serial = r.text("serial")
    if not SERIAL_URL.match(serial):
        raise InputError(
            f"{where}.serial: {serial!r} is not a serial port (use /dev/..., rfc2217://host:port or socket://)"
        )
    power = dict(r.mapping("power").data)
    if power:
        instrument = power.get("instrument")
        if instrument is not None and str(instrument) not in instruments:
            raise InputError(f"{where}.power.instrument: no instrument named {instrument!r}")
        if "driver" not in power and instrument is None:
            raise InputError(f"{where}.power: needs 'driver' or 'instrument'")
        if "driver" not in power:
            power["driver"] = instruments[str(instrument)].get("kind")
        _check_driver(power["driver"], f"{where}.power.driver")
    net = r.mapping("network")
    wifi = net.mapping("wifi")
    wifi_ssid, wifi_password = wifi.opt_text("ssid"), wifi.opt_text("password")
    wifi.reject_unknown()
    net.reject_unknown()
    fw = r.mapping("firmware")
    traits = FirmwareTraits(
        rollback=fw.flag("rollback", True),
        anti_rollback=fw.flag("anti_rollback", False),
        signing=fw.text("signing", "none", SIGNING_SCHEMES),
        version_check=fw.flag("version_check", True),
    )
    fw.reject_unknown()
    tags = r.items("tags")
    spec = BoardSpec(
        name=name,
        chip=r.text("chip", "esp32", CHIPS),
        serial=serial,
        baud=r.integer("baud", 115200),
        flash_baud=r.integer("flash_baud", 460800),
        reset=r.text("reset", "default-reset", RESET_METHODS),
        flash_size=parse_size(r.text("flash_size", "4MB"), f"{where}.flash_size"),
        partition_table=r.opt_text("partition_table"),
        power=power,
        wifi_ssid=wifi_ssid,
        wifi_password=wifi_password,
        firmware=traits,
        tags=tuple(str(t) for t in tags),
    )
    r.reject_unknown()
    return spec


def _check_driver(name: object, where: str) -> None:
    """A typo in a driver name is caught here, naming the key, not when power is first cut."""
    if name not in driver_names():
        raise InputError(f"{where}: {name!r} is not a power driver (one of: {', '.join(driver_names())})")


def parse_farm(data: object, path: Path | None = None) -> Farm:
    """Validate a farm document already loaded from YAML."""
    where = str(path) if path else "<farm>"
    root = _Reader(data, where)
    instruments_raw = root.mapping("instruments")
    instruments: dict[str, Mapping[str, Any]] = {}
    for inst_name, inst in instruments_raw.data.items():
        inst_reader = _Reader(inst, f"{where}.instruments.{inst_name}")
        _check_driver(inst_reader.text("kind"), f"{where}.instruments.{inst_name}.kind")
        instruments[str(inst_name)] = dict(inst_reader.data)
    net = root.mapping("network")
    network = NetworkSpec(
        bind=net.text("bind", "127.0.0.1"),
        board_facing_address=net.text("board_facing_address", net.data.get("bind") or "127.0.0.1"),
        fault_path=net.text("fault_path", "none", FAULT_PATHS),
    )
    net.reject_unknown()
    boards_raw = root.items("boards")
    if not boards_raw:
        raise InputError(f"{where}.boards: the farm has no boards")
    boards = tuple(_board(b, f"{where}.boards[{i}]", instruments) for i, b in enumerate(boards_raw))
    names = [b.name for b in boards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{where}.boards: board name {duplicates[0]!r} is used twice")
    farm = Farm(
        name=root.text("name", path.stem if path else "farm"),
        path=path,
        boards=boards,
        instruments=instruments,
        network=network,
        virtual=root.flag("virtual", False),
    )
    root.reject_unknown()
    return farm


def load_farm(path: Path) -> Farm:
    """Read and validate a farm file; every problem is one InputError line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: farm file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read farm file ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise InputError(f"{path}{line}: {problem}") from None
    return parse_farm(data, path)
