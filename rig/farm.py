"""The farm file: which boards exist, how to reach them, and what powers them.

One YAML file describes a bench of real boards or a virtual lab alike; the rig
never needs to know which. Every error names the file, the key and what is wrong,
because a farm file is edited by hand at 2 a.m. before a nightly run.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from rig.errors import InputError
from rig.power import driver_names, validate_parameters
from rig.units import parse_size
from rig.yamlfile import YamlDocument, load_yaml, validate

SERIAL_URL = re.compile(r"^(rfc2217://|socket://|/dev/|COM\d+$|loop://)")
# ESP32 flash chips come in powers of two from 1 MB (esptool's --flash-size choices).
FLASH_SIZES = tuple(1 << n for n in range(20, 28))
# The ESP32 UART runs up to 5 Mbaud; below 300 nothing useful gets through.
BAUD_RANGE = (300, 5_000_000)


class FirmwareProtocol(Enum):
    """How the rig drives a board's firmware (rig/agents/): the reference agent's console
    protocol (firmware_under_test/PROTOCOL.md) or a stock ESP-IDF OTA example's prompts."""

    RIG = "rig"
    IDF_EXAMPLE = "idf-example"


@dataclass(frozen=True)
class FirmwareTraits:
    """What the firmware build on a board was configured with (its sdkconfig), and how it is
    driven: `example` names the stock example (its project name) of an `idf-example` board."""

    rollback: bool = True
    anti_rollback: bool = False
    signing: str = "none"
    version_check: bool = True
    protocol: FirmwareProtocol = FirmwareProtocol.RIG
    example: str | None = None


@dataclass(frozen=True)
class BoardMqtt:
    """An AWS IoT board: its thing name (its MQTT client id and certificate) and, with an
    embedded broker, the port its firmware was built to connect to."""

    thing: str
    port: int | None = None


@dataclass(frozen=True)
class MqttSpec:
    """The farm's MQTT broker: `embedded` (the rig starts mosquitto on `host`) or `external`
    (a site broker; the rig plays only Jobs + Streams on it). `pki` holds the CA,
    the rig's service identity and the code-signing key in rig.mqtt.pki's layout."""

    broker: str
    host: str
    port: int
    pki: Path


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
    mqtt: BoardMqtt | None = None

    @property
    def power_driver(self) -> str | None:
        driver = self.power.get("driver")
        return str(driver) if driver is not None else None


@dataclass(frozen=True)
class PlaceSpec:
    """Labgrid places the farm uses: one by name, or every place whose tags match (at most
    `limit`). `board` holds the farm-file settings each such board gets (a board section
    without name and serial, which come from the acquired place)."""

    place: str | None
    match: Mapping[str, str]
    limit: int | None
    board: Mapping[str, Any]

    def describe(self) -> str:
        if self.place is not None:
            return f"place {self.place}"
        return "places tagged " + ", ".join(f"{k}={v}" for k, v in sorted(self.match.items()))


@dataclass(frozen=True)
class LabgridSpec:
    """A labgrid coordinator and the places to reserve on it (rig/labgrid)."""

    coordinator: str
    places: tuple[PlaceSpec, ...]
    acquire_timeout_s: float = 60.0


@dataclass(frozen=True)
class HealthSpec:
    """Board health checks (rig/health): before a run's first scenario on each board, and
    quarantine after this many failed checks in a row."""

    before_run: bool = True
    quarantine_after: int = 3


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
    # The certificate (and key) the OTA server presents instead of the rig's own CA-signed one:
    # what stock firmware trusts is compiled in (an example's server_certs/ca_cert.pem).
    server_cert: Path | None = None
    server_key: Path | None = None


@dataclass(frozen=True)
class Farm:
    """A parsed, validated farm file."""

    name: str
    path: Path | None
    boards: tuple[BoardSpec, ...]
    instruments: Mapping[str, Mapping[str, Any]]
    network: NetworkSpec
    virtual: bool = False
    mqtt: MqttSpec | None = None
    labgrid: LabgridSpec | None = None
    health: HealthSpec = HealthSpec()

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


Text = Annotated[str, StringConstraints(min_length=1)]
Baud = Annotated[int, Field(ge=BAUD_RANGE[0], le=BAUD_RANGE[1])]


class _Section(BaseModel):
    """Farm-file sections: unknown keys are typos, and no type is coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Firmware(_Section):
    rollback: bool = True
    anti_rollback: bool = False
    signing: Literal["none", "rsa3072", "ecdsa256-v1"] = "none"
    version_check: bool = True
    protocol: Literal["rig", "idf-example"] = "rig"
    example: Literal["advanced_https_ota", "simple_ota", "native_ota"] | None = None

    @model_validator(mode="after")
    def _example_named(self) -> _Firmware:
        if self.protocol == "idf-example" and self.example is None:
            raise ValueError("idf-example needs `example`: advanced_https_ota, simple_ota or native_ota")
        if self.protocol == "rig" and self.example is not None:
            raise ValueError("`example` is only for protocol idf-example")
        return self


class _Wifi(_Section):
    ssid: Text | None = None
    password: str | None = None


class _BoardNetwork(_Section):
    wifi: _Wifi = _Wifi()


class _BoardMqttSection(_Section):
    thing: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:_-]{1,64}$")]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None


class _BoardSettings(_Section):
    """What a board section says besides its name and port (a labgrid place gets these too)."""

    chip: Literal["esp32"] = "esp32"
    baud: Baud = 115200
    flash_baud: Baud = 460800
    reset: Literal["default-reset", "no-reset", "usb-reset"] = "default-reset"
    flash_size: str | int = "4MB"
    partition_table: Text | None = None
    power: dict[str, Any] = Field(default_factory=dict)
    network: _BoardNetwork = _BoardNetwork()
    firmware: _Firmware = _Firmware()
    tags: list[Text] = Field(default_factory=list)

    @field_validator("flash_size")
    @classmethod
    def _an_esp32_flash_size(cls, value: str | int) -> str | int:
        size = parse_size(value)
        if size not in FLASH_SIZES:
            sizes = ", ".join(f"{s >> 20}MB" for s in FLASH_SIZES)
            raise ValueError(f"{value!r} is not an ESP32 flash size ({sizes})")
        return value


class _Board(_BoardSettings):
    name: Text
    serial: Text
    mqtt: _BoardMqttSection | None = None

    @field_validator("serial")
    @classmethod
    def _a_serial_port(cls, value: str) -> str:
        if not SERIAL_URL.match(value):
            raise ValueError(
                f"{value!r} is not a serial port (use /dev/..., rfc2217://host:port or socket://)"
            )
        return value


TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Place(_BoardSettings):
    place: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None
    match: dict[TagValue, TagValue] | None = None
    limit: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> _Place:
        if (self.place is None) == (self.match is None):
            raise ValueError("give either 'place' (a place name) or 'match' (tags a place must have)")
        if self.place is not None and self.limit is not None:
            raise ValueError("'limit' goes with 'match', not with one named place")
        return self


class _Labgrid(_Section):
    coordinator: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.\[\]:_-]+:\d{1,5}$")]
    acquire_timeout: Annotated[float | int, Field(gt=0, le=24 * 3600)] = 60.0
    places: list[_Place]

    @field_validator("places")
    @classmethod
    def _some_places(cls, value: list[_Place]) -> list[_Place]:
        if not value:
            raise ValueError("the labgrid section names no places")
        return value


def _server_file(document: YamlDocument, farm: Path | None, key: str, value: str | None) -> Path | None:
    """A PEM file of the server identity, relative to the farm file; it must be readable now."""
    if value is None:
        return None
    file = Path(value)
    if not file.is_absolute() and farm is not None:
        file = farm.parent / file
    try:
        text = file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise document.error(("network", key), f"{file} cannot be read as a PEM file") from None
    if "-----BEGIN " not in text:
        raise document.error(("network", key), f"{file} is not PEM")
    return file


def _an_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


class _Network(_Section):
    bind: str = "127.0.0.1"
    board_facing_address: str | None = None
    fault_path: Literal["none", "namespace"] = "none"
    server_cert: Text | None = None
    server_key: Text | None = None

    _bind_is_an_address = field_validator("bind")(_an_address)

    @field_validator("board_facing_address")
    @classmethod
    def _facing_is_an_address(cls, value: str | None) -> str | None:
        return None if value is None else _an_address(value)

    @model_validator(mode="after")
    def _boards_can_reach_the_server(self) -> _Network:
        if self.board_facing_address is None and ipaddress.ip_address(self.bind).is_unspecified:
            raise ValueError(
                f"bind {self.bind} needs board_facing_address: the address boards fetch images from"
            )
        if (self.server_cert is None) != (self.server_key is None):
            raise ValueError("server_cert and server_key go together (the OTA server's certificate and key)")
        return self


class _Mqtt(_Section):
    broker: Literal["embedded", "external"] = "embedded"
    host: Text = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8883
    pki: Text


class _Health(_Section):
    before_run: bool = True
    quarantine_after: Annotated[int, Field(ge=1, le=100)] = 3


class _FarmFile(_Section):
    name: Text | None = None
    virtual: bool = False
    network: _Network = _Network()
    instruments: dict[Text, dict[str, Any]] = Field(default_factory=dict)
    boards: list[_Board] = Field(default_factory=list)
    mqtt: _Mqtt | None = None
    labgrid: _Labgrid | None = None
    health: _Health = _Health()


def parse_farm(data: object, path: Path | None = None) -> Farm:
    """Validate a farm document (plain YAML values); every problem is one InputError line."""
    where = str(path) if path else "<farm>"
    return _farm(YamlDocument(where, data, {}), path)


def load_farm(path: Path) -> Farm:
    """Read and validate a farm file; every problem is one InputError line with its line number."""
    return _farm(load_yaml(path, "farm file"), path)


def _farm(document: YamlDocument, path: Path | None) -> Farm:
    if not isinstance(document.data, dict):
        raise document.error((), "expected a mapping of name, network, instruments and boards")
    parsed = validate(_FarmFile, document)
    if not parsed.boards and parsed.labgrid is None:  # boards are optional only beside labgrid places
        missing = "the farm has no boards" if "boards" in document.data else "missing (required)"
        raise document.error(("boards",), missing)
    instruments = {name: _instrument(document, name, spec) for name, spec in parsed.instruments.items()}
    boards = tuple(
        _board(document, ("boards", index), board, instruments) for index, board in enumerate(parsed.boards)
    )
    labgrid = _labgrid(document, parsed.labgrid, instruments) if parsed.labgrid is not None else None
    for field_name in ("name", "serial"):
        seen: dict[str, str] = {}
        for index, board in enumerate(boards):
            value = str(getattr(board, field_name))
            if value in seen:
                what = "board name" if field_name == "name" else "serial port"
                raise document.error(
                    ("boards", index, field_name),
                    f"{what} {value!r} is used twice (also board {seen[value]})",
                )
            seen[value] = board.name
    network = parsed.network
    mqtt = _mqtt(document, parsed, path, boards)
    return Farm(
        name=parsed.name or (path.stem if path else "farm"),
        path=path,
        boards=boards,
        instruments=instruments,
        network=NetworkSpec(
            bind=network.bind,
            board_facing_address=network.board_facing_address or network.bind,
            fault_path=network.fault_path,
            server_cert=_server_file(document, path, "server_cert", network.server_cert),
            server_key=_server_file(document, path, "server_key", network.server_key),
        ),
        virtual=parsed.virtual,
        mqtt=mqtt,
        labgrid=labgrid,
        health=HealthSpec(parsed.health.before_run, parsed.health.quarantine_after),
    )


def _labgrid(document: YamlDocument, section: _Labgrid, instruments: Mapping[str, Any]) -> LabgridSpec:
    """Each place's board settings are checked now (power parameters too), before any place
    is acquired; names and ports come from the coordinator later."""
    places = []
    for index, place in enumerate(section.places):
        where = ("labgrid", "places", index)
        settings = place.model_dump(exclude={"place", "match", "limit"}, exclude_unset=True)
        _board(document, where, _Board(name="place", serial="rfc2217://place:1", **settings), instruments)
        places.append(PlaceSpec(place.place, dict(place.match or {}), place.limit, settings))
    return LabgridSpec(section.coordinator, tuple(places), float(section.acquire_timeout))


def _mqtt(
    document: YamlDocument, parsed: _FarmFile, path: Path | None, boards: Sequence[BoardSpec]
) -> MqttSpec | None:
    """The broker section; an embedded broker binds where the farm's network says it may,
    and each of its boards needs a port of its own (one mosquitto per board's worker)."""
    section = parsed.mqtt
    things = [(i, b) for i, b in enumerate(boards) if b.mqtt is not None]
    if section is None:
        if things:
            raise document.error(
                ("boards", things[0][0], "mqtt"), "a board with a thing needs the farm's mqtt section"
            )
        return None
    pki = Path(section.pki)
    if not pki.is_absolute() and path is not None:
        pki = path.parent / pki
    if section.broker == "embedded":
        if section.host not in (parsed.network.bind, "127.0.0.1", "::1", "localhost"):
            raise document.error(("mqtt", "host"), f"an embedded broker listens on loopback or network.bind "
                                 f"({parsed.network.bind}), not {section.host}")  # fmt: skip
        seen: dict[int, str] = {}
        for index, board in things:
            assert board.mqtt is not None
            port = board.mqtt.port or section.port
            if port in seen:
                raise document.error(
                    ("boards", index, "mqtt", "port"),
                    f"port {port} is also board {seen[port]}'s broker: each board needs its own",
                )
            seen[port] = board.name
    seen_things: dict[str, str] = {}
    for index, board in things:
        assert board.mqtt is not None
        if board.mqtt.thing in seen_things:
            raise document.error(
                ("boards", index, "mqtt", "thing"),
                f"thing {board.mqtt.thing!r} is also board {seen_things[board.mqtt.thing]}",
            )
        seen_things[board.mqtt.thing] = board.name
    return MqttSpec(section.broker, section.host, section.port, pki)


def _instrument(document: YamlDocument, name: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
    kind = spec.get("kind")
    if kind is None:
        raise document.error(("instruments", name, "kind"), "missing (required)")
    if kind in driver_names():
        params = {key: value for key, value in spec.items() if key != "kind"}
        problem = validate_parameters(str(kind), params, partial=True)
        if problem is not None:
            key, message = problem
            raise document.error(("instruments", name, *((key,) if key else ())), message)
    else:
        raise document.error(
            ("instruments", name, "kind"),
            f"{kind!r} is not a power driver (one of: {', '.join(driver_names())})",
        )
    return dict(spec)


def _board(
    document: YamlDocument, section: tuple[str | int, ...], board: _Board, instruments: Mapping[str, Any]
) -> BoardSpec:
    where = (*section, "power")
    power = dict(board.power)
    if power:
        instrument = power.get("instrument")
        if instrument is not None and str(instrument) not in instruments:
            raise document.error((*where, "instrument"), f"no instrument named {instrument!r}")
        if "driver" not in power and instrument is None:
            raise document.error(where, "needs 'driver' or 'instrument'")
        merged = dict(instruments[str(instrument)]) if instrument is not None else {}
        driver = power.get("driver", merged.pop("kind", None))
        if driver not in driver_names():
            raise document.error(
                (*where, "driver"), f"{driver!r} is not a power driver (one of: {', '.join(driver_names())})"
            )
        merged.pop("kind", None)
        params = {**merged, **{k: v for k, v in power.items() if k not in ("instrument", "driver")}}
        if driver == "dtr-rts":
            params.setdefault("port", board.serial)
        problem = validate_parameters(str(driver), params)
        if problem is not None:
            key, message = problem
            from_instrument = instrument is not None and key in merged and key not in power
            origin = ("instruments", str(instrument)) if from_instrument else where
            raise document.error((*origin, key) if key is not None else origin, message)
        power.setdefault("driver", driver)
    wifi = board.network.wifi
    firmware = board.firmware
    return BoardSpec(
        name=board.name,
        chip=board.chip,
        serial=board.serial,
        baud=board.baud,
        flash_baud=board.flash_baud,
        reset=board.reset,
        flash_size=parse_size(board.flash_size),
        partition_table=board.partition_table,
        power=power,
        wifi_ssid=wifi.ssid,
        wifi_password=wifi.password,
        firmware=FirmwareTraits(
            firmware.rollback, firmware.anti_rollback, firmware.signing, firmware.version_check,
            FirmwareProtocol(firmware.protocol), firmware.example,
        ),
        tags=tuple(board.tags),
        mqtt=BoardMqtt(board.mqtt.thing, board.mqtt.port) if board.mqtt is not None else None,
    )
