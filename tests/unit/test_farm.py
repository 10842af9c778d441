"""Farm file validation: every mistake is one line that names file:key and what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.errors import InputError
from rig.farm import Farm, load_farm, parse_farm

GOOD: dict[str, Any] = {
    "name": "bench",
    "instruments": {
        "psu1": {"kind": "scpi-psu", "resource": "TCPIP::10.0.0.5::5025::SOCKET", "volts": 3.3},
    },
    "boards": [
        {
            "name": "b1",
            "serial": "/dev/ttyUSB0",
            "power": {"instrument": "psu1", "channel": 2, "volts": 3.0},
            "tags": ["psu", "signed"],
        },
        {"name": "b2", "serial": "rfc2217://127.0.0.1:4000", "tags": ["relay"]},
        {"name": "b3", "serial": "socket://127.0.0.1:4001", "power": {"driver": "dtr-rts"}},
    ],
}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def error_of(tmp_path: Path, document: object) -> str:
    path = write(tmp_path, document)
    with pytest.raises(InputError) as caught:
        load_farm(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    return message[len(str(path)) :]


def with_board(**changes: object) -> dict[str, Any]:
    """GOOD with its first board changed (a value of None deletes the key)."""
    board = {**GOOD["boards"][0], **changes}
    return {**GOOD, "boards": [{k: v for k, v in board.items() if v is not None}, *GOOD["boards"][1:]]}


@pytest.fixture
def farm(tmp_path: Path) -> Farm:
    return load_farm(write(tmp_path, GOOD))


def test_a_good_farm_loads_with_defaults(farm: Farm) -> None:
    b1 = farm.board("b1")
    assert (b1.chip, b1.baud, b1.flash_baud, b1.reset) == ("esp32", 115200, 460800, "default-reset")
    assert b1.flash_size == 4 * 1024 * 1024
    assert b1.firmware.rollback and b1.firmware.signing == "none"
    assert b1.power_driver == "scpi-psu"  # taken from the instrument's kind
    assert farm.board("b2").power_driver is None
    assert farm.network.bind == "127.0.0.1" and not farm.virtual
    assert farm.network.fault_path == "none"  # a real farm has no namespace path unless it says so


MISTAKES: list[tuple[object, str]] = [
    ({**GOOD, "boards": []}, "boards: the farm has no boards"),
    ({"name": "x"}, "boards: missing (required)"),
    ({**GOOD, "boards": "b1"}, "boards: expected a list, got 'b1'"),
    (
        {**GOOD, "boards": [GOOD["boards"][0], GOOD["boards"][0]]},
        "boards[1].name: board name 'b1' is used twice",
    ),
    (
        {**GOOD, "boards": [GOOD["boards"][0], {**GOOD["boards"][0], "name": "b9"}]},
        "boards[1].serial: serial port '/dev/ttyUSB0' is used twice (also board b1)",
    ),
    ({**GOOD, "colour": "red"}, "colour: unknown key"),
    ({**GOOD, "network": {"bind": "0.0.0.0", "port": 1}}, "network.port: unknown key"),
    ({**GOOD, "network": {"bind": "0.0.0.0"}}, "network: bind 0.0.0.0 needs board_facing_address"),
    ({**GOOD, "network": {"bind": "999.1.1.1"}}, "network.bind: '999.1.1.1' is not an IP address"),
    (
        {**GOOD, "network": {"fault_path": "veth"}},
        "network.fault_path: input should be 'none' or 'namespace'",
    ),
    (with_board(speed=9600), "boards[0].speed: unknown key"),
    (with_board(firmware={"rollback": True, "secure": 1}), "boards[0].firmware.secure: unknown key"),
    (with_board(name=None), "boards[0].name: missing (required)"),
    (with_board(serial="ttyUSB0"), "boards[0].serial: 'ttyUSB0' is not a serial port"),
    (with_board(serial="http://host:80"), "boards[0].serial: 'http://host:80' is not a serial port"),
    (with_board(power={"instrument": "psu9"}), "boards[0].power.instrument: no instrument named 'psu9'"),
    (with_board(power={"channel": 1}), "boards[0].power: needs 'driver' or 'instrument'"),
    (with_board(power={"instrument": "psu1", "volts": "high"}), "boards[0].power.volts: expected a number"),
    (with_board(power={"driver": "scpi-psu"}), "boards[0].power.resource: missing (required)"),
    (
        with_board(power={"driver": "lcus-relay", "port": "/dev/ttyUSB9", "channel": 300}),
        "boards[0].power.channel: input should be less than or equal to 254",
    ),
    (with_board(flash_size="4 GiB"), "boards[0].flash_size: '4 GiB' is not a size"),
    (with_board(flash_size="3MB"), "boards[0].flash_size: '3MB' is not an ESP32 flash size"),
    (with_board(chip="esp8266"), "boards[0].chip: input should be 'esp32', got 'esp8266'"),
    (with_board(reset="hard"), "boards[0].reset: input should be 'default-reset', 'no-reset' or 'usb-reset'"),
    (with_board(baud="fast"), "boards[0].baud: expected a whole number, got 'fast'"),
    (with_board(baud=True), "boards[0].baud: expected a whole number, got True"),
    (with_board(baud=-9600), "boards[0].baud: input should be greater than or equal to 300"),
    (with_board(baud=10**9), "boards[0].baud: input should be less than or equal to 5000000"),
    (with_board(name=["b1"]), "boards[0].name: expected text"),
    (with_board(tags="psu"), "boards[0].tags: expected a list, got 'psu'"),
    (
        with_board(firmware={"rollback": "yes"}),
        "boards[0].firmware.rollback: expected true or false, got 'yes'",
    ),
    (with_board(firmware={"signing": "md5"}), "boards[0].firmware.signing: input should be 'none'"),
    (with_board(network={"wifi": ["ssid"]}), "boards[0].network.wifi: expected a mapping"),
    ({**GOOD, "instruments": {"psu1": {"resource": "x"}}}, "instruments.psu1.kind: missing (required)"),
    ({**GOOD, "virtual": "no"}, "virtual: expected true or false, got 'no'"),
    (["boards"], "expected a mapping of name, network, instruments and boards"),
    (None, "expected a mapping of name, network, instruments and boards"),
]


@pytest.mark.parametrize("document, expected", MISTAKES, ids=[expected for _, expected in MISTAKES])
def test_each_mistake_is_one_line_naming_the_line_and_key(
    tmp_path: Path, document: object, expected: str
) -> None:
    message = error_of(tmp_path, document)
    assert re.match(r":\d+: ", message), message
    assert message.split(": ", 1)[1].startswith(expected), message


@pytest.mark.parametrize(
    "text, size",
    [("4MB", 4 << 20), ("8M", 8 << 20), ("4096K", 4 << 20), ("0x400000", 4 << 20), (2097152, 2 << 20)],
)
def test_flash_sizes_are_written_as_in_esp_idf(tmp_path: Path, text: object, size: int) -> None:
    assert load_farm(write(tmp_path, with_board(flash_size=text))).board("b1").flash_size == size


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nboards:\n  - name: b1\n    serial: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_farm(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:5: ") and "\n" not in message, message


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: farm file not found$"):
        load_farm(tmp_path / "nope.yaml")


def test_a_directory_is_not_a_farm_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="farm file is not a regular file"):
        load_farm(tmp_path)


def test_select_by_names_tags_or_both(farm: Farm) -> None:
    assert [b.name for b in farm.select()] == ["b1", "b2", "b3"]
    assert [b.name for b in farm.select(names=["b3", "b1"])] == ["b3", "b1"]
    assert [b.name for b in farm.select(tags=["relay"])] == ["b2"]
    assert [b.name for b in farm.select(tags=["psu", "signed"])] == ["b1"]
    assert [b.name for b in farm.select(names=["b1", "b2"], tags=["psu"])] == ["b1"]


def test_select_errors_name_the_farm_and_the_choices(farm: Farm) -> None:
    with pytest.raises(InputError, match=r"bench\.yaml: no board named 'b9' \(boards: b1, b2, b3\)"):
        farm.select(names=["b9"])
    with pytest.raises(InputError, match=r"no board matches names=\['b2'\] tags=\['psu'\]"):
        farm.select(names=["b2"], tags=["psu"])


def test_power_spec_merges_the_instrument_and_lets_the_board_override(farm: Farm) -> None:
    assert farm.power_spec(farm.board("b1")) == {
        "driver": "scpi-psu",
        "resource": "TCPIP::10.0.0.5::5025::SOCKET",
        "volts": 3.0,
        "channel": 2,
    }
    # the board's own section is left as written
    assert "resource" not in farm.board("b1").power


def test_power_spec_dtr_rts_defaults_to_the_boards_own_port(farm: Farm) -> None:
    assert farm.power_spec(farm.board("b3")) == {"driver": "dtr-rts", "port": "socket://127.0.0.1:4001"}
    assert farm.power_spec(farm.board("b2")) == {}


def test_parse_farm_without_a_path_says_farm(farm: Farm) -> None:
    with pytest.raises(InputError, match=r"^<farm>: boards: the farm has no boards$"):
        parse_farm({"boards": []})


@pytest.mark.parametrize(
    "document, expected",
    [
        (
            with_board(network={"wifi": {"ssid": "lab", "pasword": "x"}}),
            "boards[0].network.wifi.pasword: unknown",
        ),
        (with_board(network={"wlan": {}}), "boards[0].network.wlan: unknown key"),
        (with_board(power={"driver": "scpi-pus"}), "boards[0].power.driver: 'scpi-pus' is not"),
        ({**GOOD, "instruments": {"psu1": {"kind": "psu"}}}, "instruments.psu1.kind: 'psu' is not a power"),
    ],
    ids=["wifi-typo", "network-typo", "driver-typo", "instrument-kind-typo"],
)
def test_typos_below_the_board_are_caught_when_the_file_loads(
    tmp_path: Path, document: object, expected: str
) -> None:
    assert error_of(tmp_path, document).split(": ", 1)[1].startswith(expected)


def test_keys_written_empty_are_not_unknown(tmp_path: Path) -> None:
    document = with_board(partition_table=None, network={"wifi": {"ssid": "lab", "password": None}})
    document["boards"][0]["partition_table"] = None
    board = load_farm(write(tmp_path, document)).board("b1")
    assert (board.partition_table, board.wifi_ssid, board.wifi_password) == (None, "lab", None)


MQTT = {"pki": "mqtt-pki"}


def with_things(*things: dict[str, object], mqtt: dict[str, object] | None = None) -> dict[str, Any]:
    """GOOD with an mqtt section and one `mqtt` entry per board, in board order."""
    boards = [{**board, "mqtt": thing} for board, thing in zip(GOOD["boards"], things, strict=False)]
    return {**GOOD, "boards": [*boards, *GOOD["boards"][len(things) :]], "mqtt": mqtt or MQTT}


def test_an_mqtt_farm_names_its_broker_pki_and_things(tmp_path: Path) -> None:
    farm = load_farm(write(tmp_path, with_things({"thing": "b1", "port": 8884}, {"thing": "lab:b-2"})))
    assert farm.mqtt is not None and farm.mqtt.broker == "embedded" and farm.mqtt.port == 8883
    assert farm.mqtt.pki == tmp_path / "mqtt-pki"  # relative to the farm file
    assert farm.board("b1").mqtt is not None and farm.board("b1").mqtt.port == 8884
    assert farm.board("b3").mqtt is None


@pytest.mark.parametrize(
    "document, expected",
    [
        (
            {**with_board(mqtt={"thing": "b1"})},
            "boards[0].mqtt: a board with a thing needs the farm's mqtt section",
        ),
        (with_things({"thing": "b 1"}), "boards[0].mqtt.thing: string should match pattern"),
        (
            with_things({"thing": "b1", "port": 70000}),
            "boards[0].mqtt.port: input should be less than or equal",
        ),
        (with_things({"thing": "b1"}, {"thing": "b2"}), "boards[1].mqtt.port: port 8883 is also board b1's"),
        (
            with_things({"thing": "b1", "port": 1}, {"thing": "b1", "port": 2}),
            "boards[1].mqtt.thing: thing 'b1'",
        ),
        (
            with_things(mqtt={"pki": "p", "host": "10.0.0.5"}),
            "mqtt.host: an embedded broker listens on loopback",
        ),
        (
            with_things(mqtt={"pki": "p", "broker": "aws"}),
            "mqtt.broker: input should be 'embedded' or 'external'",
        ),
        (with_things(mqtt={"broker": "external"}), "mqtt.pki: missing (required)"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_mqtt_mistakes_are_one_line(tmp_path: Path, document: object, expected: str) -> None:
    message = error_of(tmp_path, document)
    assert message.split(": ", 1)[1].startswith(expected), message


def test_an_external_broker_may_be_anywhere_and_share_a_port(tmp_path: Path) -> None:
    document = with_things(
        {"thing": "b1"},
        {"thing": "b2"},
        mqtt={"broker": "external", "host": "iot.example", "port": 8883, "pki": "/etc/aws"},
    )
    farm = load_farm(write(tmp_path, document))
    assert farm.mqtt is not None and farm.mqtt.host == "iot.example"


@pytest.mark.parametrize(
    "firmware, message",
    [
        ("{protocol: idf-example}", "idf-example needs `example`"),
        ("{example: simple_ota}", "`example` is only for protocol idf-example"),
        ("{protocol: idf-example, example: hello_world}", "example"),
        ("{protocol: tcp}", "protocol"),
    ],
)
def test_a_stock_example_board_names_its_example(tmp_path: Path, firmware: str, message: str) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(f"name: f\nboards:\n  - name: b1\n    serial: /dev/ttyUSB0\n    firmware: {firmware}\n")
    with pytest.raises(InputError, match=message) as error:
        load_farm(path)
    assert "\n" not in str(error.value)


def test_a_stock_example_board_is_driven_by_its_prompts(tmp_path: Path) -> None:
    from rig.agents import agent_for
    from rig.agents.idf_example import IdfExampleAgent

    path = tmp_path / "farm.yaml"
    path.write_text("name: f\nboards:\n  - name: b1\n    serial: /dev/ttyUSB0\n"
                    "    firmware: {protocol: idf-example, example: native_ota}\n")  # fmt: skip
    agent = agent_for(load_farm(path).boards[0])
    assert isinstance(agent, IdfExampleAgent) and agent.example == "native_ota"
    assert "behaviour" in agent.lacks and "confirmation" not in agent.lacks


def test_the_server_identity_stock_firmware_trusts_comes_from_the_farm(tmp_path: Path) -> None:
    """An example build pins server_certs/ca_cert.pem: the rig's server must present it."""
    from rig.builder import server_identity
    from rig.net.certs import ensure_bundle

    bundle = ensure_bundle(tmp_path / "certs")
    path = tmp_path / "farm.yaml"
    path.write_text("name: f\nnetwork: {server_cert: certs/server.pem, server_key: certs/server.key}\n"
                    "boards:\n  - name: b1\n    serial: /dev/ttyUSB0\n")  # fmt: skip
    farm = load_farm(path)
    assert farm.network.server_cert == bundle.cert_pem
    assert server_identity(farm, tmp_path / "private").key_pem == bundle.key_pem
    boards = "boards:\n  - name: b1\n    serial: /dev/x\n"
    path.write_text("name: f\nnetwork: {server_cert: certs/server.pem}\n" + boards)
    with pytest.raises(InputError, match="server_cert and server_key go together"):
        load_farm(path)
    path.write_text("name: f\nnetwork: {server_cert: nope.pem, server_key: nope.key}\n"
                    "boards:\n  - name: b1\n    serial: /dev/x\n")  # fmt: skip
    with pytest.raises(InputError, match=r"nope\.pem cannot be read as a PEM file"):
        load_farm(path)
