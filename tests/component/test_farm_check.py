"""`rig farm check` on a 1-board virtual lab: a table on stdout, progress on stderr,
and anything that does not answer reported as infrastructure (exit 3), not a traceback."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.cli import main
from rig.farm import load_farm
from rig.lab_cli import running_lab
from rig.power import create_driver

MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


@pytest.fixture(scope="module")
def lab_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_lab(tmp_path_factory.mktemp("lab"), boards=1) as farm:
        document = yaml.safe_load(farm.read_text(encoding="utf-8"))
        assert isinstance(document, dict)
        yield document


@pytest.fixture(autouse=True)
def wide_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so cells are not folded and the text can be searched."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def silent_instrument() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    for conn in held:
        conn.close()


def dead_port() -> int:
    """A port nobody listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def write_farm(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "farm.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def row(out: str, board: str) -> str:
    found = [line for line in out.splitlines() if line.startswith(f"│ {board} ")]
    assert len(found) == 1, out
    return found[0]


def test_a_healthy_lab_prints_each_boards_mac_and_power_driver(
    lab_farm: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["farm", "check", write_farm(tmp_path, lab_farm)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert err == ""
    line = row(out, "b1")
    assert MAC.search(line), line
    assert "scpi-psu" in line and "cuts power" in line
    assert line.rstrip(" │").endswith("ok"), line
    assert "mqtt: embedded broker (mosquitto " in out and "/mqtt: ok" in out, out


def test_an_mqtt_farm_without_its_identities_is_bad_input(
    lab_farm: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    farm = {**lab_farm, "mqtt": {**lab_farm["mqtt"], "pki": str(tmp_path / "nowhere")}}
    code = main(["farm", "check", write_farm(tmp_path, farm)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "ca.pem is missing (make the farm's identities with `rig keys mqtt" in err, err


def test_a_dead_serial_port_is_infrastructure_with_the_table_still_printed(
    lab_farm: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = dead_port()
    broken = {**lab_farm, "boards": [{**lab_farm["boards"][0], "serial": f"rfc2217://127.0.0.1:{port}"}]}
    code = main(["farm", "check", write_farm(tmp_path, broken)])
    out, err = capsys.readouterr()
    assert code == 3
    line = row(out, "b1")
    assert f"rfc2217://127.0.0.1:{port}" in line and "esptool read-mac failed" in line, line
    assert "scpi-psu" in line  # the PSU still answered
    assert err == "rig: error: 1 of 1 boards failed the check: b1 (infrastructure, see the table)\n"


def test_an_instrument_that_never_answers_is_infrastructure(
    lab_farm: dict[str, Any], tmp_path: Path, silent_instrument: int, capsys: pytest.CaptureFixture[str]
) -> None:
    resource = f"TCPIP::127.0.0.1::{silent_instrument}::SOCKET"
    instruments = {"psu1": {**lab_farm["instruments"]["psu1"], "resource": resource, "timeout_ms": 500}}
    code = main(["farm", "check", write_farm(tmp_path, {**lab_farm, "instruments": instruments})])
    out, err = capsys.readouterr()
    assert code == 3
    line = row(out, "b1")
    assert MAC.search(line), line  # the board itself answered
    assert f"PSU at {resource} did not answer *IDN? within 500 ms" in line, line
    assert err.count("\n") == 1 and err.endswith("(infrastructure, see the table)\n"), err
    assert "Traceback" not in out + err


def test_progress_goes_to_stderr_and_the_table_to_stdout(
    lab_farm: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich now treats both streams as terminals and animates
    monkeypatch.setenv("TERM", "xterm")
    assert main(["farm", "check", write_farm(tmp_path, lab_farm)]) == 0
    out, err = capsys.readouterr()
    assert "b1: esptool read-mac on rfc2217://" in err
    assert "b1: asking its power driver" in err
    assert "read-mac on" not in out and "farm virtual-lab" in out


def test_a_board_left_unpowered_is_reported_with_its_supply_off(
    lab_farm: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a run killed mid-cut leaves behind: the check says the supply is off, not only that
    esptool got no answer; the next run's board set-up powers it on."""
    farm_file = write_farm(tmp_path, lab_farm)
    farm = load_farm(Path(farm_file))
    spec = farm.power_spec(farm.boards[0])
    with create_driver(spec) as supply:
        supply.off()
        try:
            code = main(["farm", "check", farm_file])  # opens and closes its own driver meanwhile
        finally:
            supply.on()
    out, _ = capsys.readouterr()
    assert code == 3
    line = row(out, "b1")
    assert "│ off " in line and "supply is off" in line, line
    assert main(["farm", "check", farm_file]) == 0
    assert "│ on " in row(capsys.readouterr().out, "b1")
