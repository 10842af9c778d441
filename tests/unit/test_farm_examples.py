"""The farm files shipped as examples must load, and their power specs must be buildable."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.board import load_table
from rig.farm import Farm, load_farm
from rig.power import parameters, required_parameters

FARMS = Path(__file__).resolve().parents[2] / "fixtures" / "farms"
EXAMPLES = sorted(FARMS.glob("*.yaml"))


@pytest.fixture
def bench() -> Farm:
    return load_farm(FARMS / "real-bench.example.yaml")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_farm_loads_with_driver_ready_power_specs(path: Path) -> None:
    farm = load_farm(path)
    for board in farm.boards:
        spec = farm.power_spec(board)
        driver = str(spec.pop("driver"))
        assert set(spec) <= set(parameters(driver)), f"{board.name}: {sorted(spec)}"
        assert set(required_parameters(driver)) <= set(spec)
        load_table(board, farm)


def test_real_bench_mixes_a_psu_board_and_a_relay_board(bench: Farm) -> None:
    assert not bench.virtual
    assert bench.network.board_facing_address != "127.0.0.1"
    psu_board, relay_board = bench.boards
    assert psu_board.serial.startswith("/dev/serial/by-path/")
    assert bench.power_spec(psu_board)["driver"] == "scpi-psu"
    assert bench.power_spec(psu_board)["resource"].startswith("TCPIP::")
    assert bench.power_spec(relay_board)["driver"] == "lcus-relay"
    assert bench.select(tags=["relay"]) == (relay_board,)
    assert all(b.wifi_ssid and b.wifi_password for b in bench.boards)
