"""A farm file's labgrid section: what it may say, which reservations it becomes, and how
an acquired place's resources become a board."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.errors import InfraError, InputError
from rig.farm import load_farm, parse_farm
from rig.labgrid.acquire import Wanted, _document, board_section, plan
from rig.labgrid.coordinator import ExportedResource, PlaceInfo

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def farm_with(labgrid: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "f", "labgrid": {"coordinator": "127.0.0.1:20408", **labgrid}, **extra}


def places(**tags: dict[str, str]) -> dict[str, PlaceInfo]:
    return {name: PlaceInfo(name, t, None) for name, t in tags.items()}


def test_a_farm_may_be_all_labgrid_places_and_validates_their_settings_at_load() -> None:
    farm = parse_farm(
        farm_with({"places": [{"match": {"host": "rack-1"}, "firmware": {"signing": "rsa3072"}, "limit": 2}]})
    )
    assert farm.boards == ()
    assert farm.labgrid is not None and farm.labgrid.acquire_timeout_s == 60.0
    (entry,) = farm.labgrid.places
    assert entry.match == {"host": "rack-1"} and entry.limit == 2
    assert entry.board == {"firmware": {"signing": "rsa3072"}}


@pytest.mark.parametrize(
    ("labgrid", "message"),
    [
        ({"places": []}, "labgrid.places: the labgrid section names no places"),
        ({"places": [{"place": "a", "match": {"k": "v"}}]}, "give either 'place' (a place name) or 'match'"),
        ({"places": [{}]}, "give either 'place' (a place name) or 'match'"),
        ({"places": [{"place": "a", "limit": 2}]}, "'limit' goes with 'match', not with one named place"),
        (
            {"places": [{"place": "a", "serial": "/dev/x"}]},
            "labgrid.places[0].serial: unknown key",
        ),
        ({"coordinator": "coord.lab", "places": [{"place": "a"}]}, "labgrid.coordinator: "),
        ({"acquire_timeout": 0, "places": [{"place": "a"}]}, "labgrid.acquire_timeout: "),
        (
            {"places": [{"place": "a", "power": {"driver": "scpi-psu"}}]},
            "labgrid.places[0].power.resource: missing (required)",
        ),
    ],
)
def test_a_bad_labgrid_section_is_one_line_naming_the_key(labgrid: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_farm(farm_with(labgrid))
    assert message.lower() in str(error.value).lower()
    assert "\n" not in str(error.value)


def test_a_farm_with_neither_boards_nor_places_is_refused() -> None:
    with pytest.raises(InputError, match="boards: missing \\(required\\)"):
        parse_farm({"name": "empty"})


def test_named_places_and_every_match_become_one_reservation_each_without_duplicates() -> None:
    farm = parse_farm(farm_with({"places": [{"place": "rack-1-b02"}, {"match": {"host": "rack-1"}}]}))
    assert farm.labgrid is not None
    found = places(
        **{"rack-1-b01": {"host": "rack-1"}, "rack-1-b02": {"host": "rack-1"}, "x": {"host": "rack-2"}}
    )
    wanted = plan(farm.labgrid, found)
    assert [w.filters for w in wanted] == [{"name": "rack-1-b02"}, {"name": "rack-1-b01"}]


def test_a_limited_match_lets_the_coordinator_choose_by_tags() -> None:
    farm = parse_farm(farm_with({"places": [{"match": {"host": "rack-2"}, "limit": 3}]}))
    assert farm.labgrid is not None
    found = places(a={"host": "rack-2"}, b={"host": "rack-2", "chip": "esp32"})
    assert [w.filters for w in plan(farm.labgrid, found)] == [{"host": "rack-2"}] * 2  # only two exist


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"place": "gone"}, "has no place 'gone' (places: a, b)"),
        ({"match": {"host": "rack-9"}}, "no place matches places tagged host=rack-9"),
    ],
)
def test_a_place_the_coordinator_does_not_have_is_bad_input(entry: dict[str, Any], message: str) -> None:
    farm = parse_farm(farm_with({"places": [entry]}))
    assert farm.labgrid is not None
    with pytest.raises(InputError, match=message.replace("(", "\\(").replace(")", "\\)")):
        plan(farm.labgrid, places(a={"host": "rack-1"}, b={}))


SERIAL = ExportedResource(
    "rack-1/b01/RawSerialPort", "NetworkSerialPort", {"host": "rack-1", "port": 4001, "speed": 115200}, True
)
POWER = ExportedResource(
    "rack-1/b01/NetworkPowerPort", "NetworkPowerPort", {"model": "gude24", "host": "pdu", "index": 3}, True
)


def spec(**board: Any) -> Wanted:
    return Wanted(
        {"name": "rack-1-b01"},
        parse_farm(farm_with({"places": [{"place": "rack-1-b01", **board}]})).labgrid.places[0],
    )  # type: ignore[union-attr]


def test_an_acquired_place_becomes_a_board_on_its_ser2net_port_and_pdu() -> None:
    board = board_section("rack-1-b01", spec(tags=["nightly"]).spec, [SERIAL, POWER])
    assert board == {
        "name": "rack-1-b01",
        "serial": "rfc2217://rack-1:4001",
        "baud": 115200,
        "tags": ["nightly", "labgrid"],
        "power": {"driver": "labgrid-power", "model": "gude24", "host": "pdu", "index": 3},
    }
    parse_farm({"name": "resolved", "boards": [board]})  # a valid board section


def test_the_farm_files_own_power_driver_wins_over_the_places() -> None:
    power = {"driver": "dtr-rts", "port": "rfc2217://rack-1:4001"}
    board = board_section("rack-1-b01", spec(power=power).spec, [SERIAL])
    assert board["power"] == power


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            [POWER],
            "labgrid place rack-1-b01 has no serial port (NetworkSerialPort); it holds NetworkPowerPort",
        ),
        ([SERIAL], "labgrid place rack-1-b01 has no power resource (NetworkPowerPort) and the farm file"),
        (
            [ExportedResource("x", "NetworkSerialPort", {"host": "h", "port": None}, True), POWER],
            "no serial port",
        ),
    ],
)
def test_an_exporter_without_the_needed_resources_is_infra(
    resources: list[ExportedResource], message: str
) -> None:
    with pytest.raises(InfraError) as error:
        board_section("rack-1-b01", spec().spec, resources)
    assert message in str(error.value)


def test_the_acquired_farm_keeps_local_boards_and_an_absolute_pki(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    local = {"name": "desk", "serial": "/dev/ttyUSB0"}
    path.write_text(
        yaml.safe_dump(farm_with({"places": [{"place": "p"}]}, boards=[local], mqtt={"pki": "pki"}))
    )
    document = _document(path, [{"name": "p", "serial": "rfc2217://h:1"}])
    assert "labgrid" not in document
    assert [b["name"] for b in document["boards"]] == ["desk", "p"]
    assert document["mqtt"]["pki"] == str((tmp_path / "pki").resolve())


def test_the_three_host_example_loads() -> None:
    farm = load_farm(FIXTURES / "farms" / "labgrid-three-hosts.example.yaml")
    assert farm.labgrid is not None and len(farm.labgrid.places) == 3
    assert farm.labgrid.places[2].board["power"]["driver"] == "scpi-psu"


def test_the_exporter_example_is_a_config_labgrids_exporter_accepts() -> None:
    from labgrid.remote.config import ResourceConfig
    from labgrid.remote.exporter import exports

    config = ResourceConfig(str(FIXTURES / "labgrid" / "exporter-rack.example.yaml"))
    for group, resources in config.data.items():
        assert set(resources) <= set(exports) | {"NetworkPowerPort"}, group
