"""The lab config file: how many twin boards, and how each one's firmware was "built".

A lab mixes builds on purpose (one board without anti-rollback, one signing with
ECDSA), so the file has lab-wide `defaults` and per-board overrides under `boards`:

    count: 3
    throwaway: true          # boards get the `efuse-burnable` tag
    labgrid: {coordinator: 127.0.0.1:20408, exporter: host-a}   # a labgrid exporter host
    defaults: {signing: rsa3072, http_timeout_ms: 1500}
    boards:
      b2: {anti_rollback: false, firmware: acme}

Keys are `twin.config.BoardConfig` fields, except that `signing` stands for
`signed_updates` (the farm file's word) and `flash_size` also takes 4MB/4096K.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rig.errors import InputError
from rig.units import parse_size
from rig.yamlfile import YamlDocument, load_yaml, validate
from twin.config import BoardConfig
from twin.firmware import get_model

# Shorter-than-real timeouts: a lab run should notice a dead link in seconds, not 20 s, and a
# hung first boot in 1 s (CONFIG_ESP_TASK_WDT_TIMEOUT_S=1, a valid build) instead of 5.
LAB_DEFAULTS: Mapping[str, Any] = {
    "rollback": True,
    "anti_rollback": True,
    "signed_updates": "rsa3072",
    "http_timeout_ms": 1500,
    "task_wdt_timeout_ms": 1000,
    "keepalive": {"idle_s": 1.0, "interval_s": 1.0, "count": 2},
    # AWS OTA agent: a lost block is asked again after 0.25 s, not 10 s; a self-test that
    # never gets its job ends in 2.5 s (16 s); the bootloader's RTC watchdog resets in 3 s (9 s).
    "aws_ota": {
        "request_wait_ms": 250,
        "self_test_wait_ms": 2500,
        "rtc_wdt_ms": 3000,
        "reconnect_backoff_ms": 200,
    },
    "firmware_overrides": {
        "ota-rig-aws": "aws-ota",
        "ota-rig-aws-min-block": "aws-ota-min-block",
        "ota-rig-aws-max-block": "aws-ota-max-block",
    },
}
DEFAULT_BOARD_COUNT = 2


@dataclass(frozen=True)
class LabgridHost:
    """The lab plays one labgrid exporter host: its boards on ptys behind the exporter's
    ser2net, their power on a network PDU, one place per board on the coordinator."""

    coordinator: str
    exporter: str


@dataclass(frozen=True)
class LabConfig:
    """Board count (None = let the command line decide) and per-board build settings."""

    count: int | None = None
    # A lab discarded after one run may have its eFuses burnt for good (anti-rollback).
    throwaway: bool = False
    # Every board records its flash operations for `rig sweep` (twin/trace.py).
    trace_flash: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    boards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    labgrid: LabgridHost | None = None

    def board_config(self, name: str) -> BoardConfig:
        """Lab defaults, then the file's defaults, then this board's overrides."""
        board = self.boards.get(name, {})
        values = {**LAB_DEFAULTS, **self.defaults, **board}
        # A board's own project overrides add to the lab's (the AWS OTA builds keep their model).
        values["firmware_overrides"] = {
            **LAB_DEFAULTS["firmware_overrides"],
            **self.defaults.get("firmware_overrides", {}),
            **board.get("firmware_overrides", {}),
        }
        try:
            return BoardConfig.from_dict(values)
        except InputError as error:
            raise InputError(f"lab config, board {name}: {error}") from None


def _translate(document: YamlDocument, where: tuple[str, ...], section: Mapping[str, Any]) -> dict[str, Any]:
    """Farm-file spellings to BoardConfig field names."""
    values = dict(section)
    if "signing" in values:
        values["signed_updates"] = values.pop("signing")
    if "flash_size" in values:
        try:
            values["flash_size"] = parse_size(values["flash_size"])
        except ValueError as error:
            raise document.error((*where, "flash_size"), str(error)) from None
    return values


class _LabgridSection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    coordinator: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.:\[\]_-]+:\d{1,5}$")]
    exporter: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class _LabFile(BaseModel):
    """The file's own keys; the board sections are BoardConfig's to check."""

    model_config = ConfigDict(extra="forbid", strict=True)

    count: Annotated[int, Field(ge=1)] | None = None
    throwaway: bool = False
    trace_flash: bool = False
    defaults: dict[str, Any] | None = None
    boards: dict[str, dict[str, Any] | None] | None = None
    labgrid: _LabgridSection | None = None


def parse_lab_config(data: object, where: str = "<lab config>") -> LabConfig:
    """Validate a loaded YAML document; every board section is checked now, not at boot."""
    return _lab_config(YamlDocument(where, data, {}))


def load_lab_config(path: Path | None) -> LabConfig:
    """Read a lab config file; None means all defaults. Errors name the line and key."""
    if path is None:
        return LabConfig()
    return _lab_config(load_yaml(path, "lab config"))


def _lab_config(document: YamlDocument) -> LabConfig:
    if document.data is None:
        return LabConfig()
    if not isinstance(document.data, dict):
        raise document.error(
            (), "expected a mapping of count, throwaway, trace_flash, defaults, boards and labgrid"
        )
    parsed = validate(_LabFile, document)
    sections: dict[tuple[str, ...], Mapping[str, Any]] = {("defaults",): parsed.defaults or {}}
    sections |= {("boards", name): section or {} for name, section in (parsed.boards or {}).items()}
    translated = {where: _translate(document, where, section) for where, section in sections.items()}
    config = LabConfig(
        count=parsed.count,
        throwaway=parsed.throwaway,
        trace_flash=parsed.trace_flash,
        defaults=translated[("defaults",)],
        boards={where[-1]: values for where, values in translated.items() if where[0] == "boards"},
        labgrid=LabgridHost(parsed.labgrid.coordinator, parsed.labgrid.exporter) if parsed.labgrid else None,
    )
    for name in config.boards:
        _check(document, ("boards", name), config, name)
    _check(document, ("defaults",), config, "(any other)")
    return config


def _check(document: YamlDocument, where: tuple[str, ...], config: LabConfig, name: str) -> None:
    try:
        board = config.board_config(name)
        for model in {board.firmware, *board.firmware_overrides.values()}:
            get_model(model)
    except InputError as error:
        raise document.error(where, str(error).removeprefix(f"lab config, board {name}: ")) from None
