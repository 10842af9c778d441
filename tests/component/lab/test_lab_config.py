"""How the lab wires boards to instruments and turns its config file into twin builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.errors import InputError
from rig.esp.flashimage import placeholder_bootloader
from rig.farm import parse_farm
from twin.chip import BOOTLOADER_OFFSET
from twin.config import SignedUpdates
from twin.lab import Lab, Wire, factory_fresh, plan_wiring
from twin.labconfig import LabConfig, load_lab_config, parse_lab_config


def test_default_lab_has_one_psu_board_and_one_relay_board() -> None:
    assert plan_wiring(2) == [Wire("psu1", 1), Wire("relay1", 1)]


def test_seven_boards_fill_one_psu_and_one_relay_then_a_second_psu_joins() -> None:
    wires = plan_wiring(9)
    assert wires[:7] == [
        Wire("psu1", 1),
        Wire("relay1", 1),
        Wire("psu1", 2),
        Wire("relay1", 2),
        Wire("psu1", 3),
        Wire("relay1", 3),
        Wire("relay1", 4),
    ]
    assert wires[7:] == [Wire("psu2", 1), Wire("psu2", 2)]
    assert len(set(wires)) == len(wires)


def test_zero_boards_is_refused() -> None:
    with pytest.raises(InputError, match="at least one board"):
        plan_wiring(0)


def test_lab_defaults_are_rollback_anti_rollback_rsa_and_short_timeouts() -> None:
    config = LabConfig().board_config("b1")
    assert config.rollback and config.anti_rollback
    assert config.signed_updates is SignedUpdates.RSA3072
    assert config.http_timeout_ms == 1500
    assert config.keepalive.give_up_s == 3.0


def test_per_board_overrides_use_farm_file_spellings(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "count: 3\n"
        "defaults: {signing: none, flash_size: 8MB}\n"
        "boards:\n"
        "  b2: {anti_rollback: false, signing: ecdsa256-v1, firmware: no-resume,\n"
        "       firmware_overrides: {ota-rig-aws: aws-ota-corrupt-write}}\n"
    )
    config = load_lab_config(path)
    assert config.count == 3
    b1, b2 = config.board_config("b1"), config.board_config("b2")
    assert (b1.signed_updates, b1.anti_rollback, b1.flash_size) == (SignedUpdates.NONE, True, 8 << 20)
    assert (b2.signed_updates, b2.anti_rollback) == (SignedUpdates.ECDSA256_V1, False)
    assert b2.firmware == "no-resume"
    # A board's own project overrides add to the lab's: the other AWS builds keep their model.
    assert b2.model_for("ota-rig-aws") == "aws-ota-corrupt-write"
    min_block = "ota-rig-aws-min-block"
    assert b2.model_for(min_block) == b1.model_for(min_block) == "aws-ota-min-block"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"boards": {"b1": {"rollback": False}}}, "anti_rollback needs rollback"),
        ({"defaults": {"colour": "blue"}}, "colour"),
        ({"count": 0}, "count"),
        ({"board": {}}, "board: unknown key"),
        ({"boards": {"b1": {"flash_size": "3 lots"}}}, "boards.b1.flash_size: '3 lots' is not a size"),
        ({"defaults": {"flash_size": "lots"}}, "not a size"),
        ({"boards": {"b2": {"firmware": "acme"}}}, "boards.b2: unknown firmware model 'acme'"),
        ({"defaults": {"firmware_overrides": {"x": "nope"}}}, "unknown firmware model 'nope'"),
    ],
)
def test_bad_lab_configs_are_one_line_errors(document: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_lab_config(document)


def test_factory_fresh_flash_holds_only_the_placeholder_bootloader(tmp_path: Path) -> None:
    config = LabConfig().board_config("b1")
    assert factory_fresh(tmp_path, config, 0)
    flash = (tmp_path / "flash.bin").read_bytes()
    bootloader = placeholder_bootloader(config.flash_size)
    assert len(flash) == config.flash_size
    assert flash[BOOTLOADER_OFFSET : BOOTLOADER_OFFSET + len(bootloader)] == bootloader
    rest = flash[:BOOTLOADER_OFFSET] + flash[BOOTLOADER_OFFSET + len(bootloader) :]
    assert rest == b"\xff" * len(rest)
    (tmp_path / "flash.bin").write_bytes(b"\x00" * config.flash_size)
    assert not factory_fresh(tmp_path, config, 0)
    assert (tmp_path / "flash.bin").read_bytes()[:4] == b"\x00" * 4


def test_farm_document_of_an_in_process_lab_parses_as_a_farm(tmp_path: Path) -> None:
    config = parse_lab_config({"boards": {"b3": {"signing": "none", "anti_rollback": False}}})
    lab = Lab(tmp_path, 3, config)
    lab.start()
    try:
        farm = parse_farm(yaml.safe_load((tmp_path / "farm.yaml").read_text()))
    finally:
        lab.stop()
    assert [b.power["instrument"] for b in farm.boards] == ["psu1", "relay1", "psu1"]
    assert farm.power_spec(farm.board("b3"))["channel"] == 2
    assert farm.board("b3").firmware.signing == "none"
    assert not farm.board("b3").firmware.anti_rollback
    assert not (tmp_path / "farm.yaml").exists()


@pytest.mark.parametrize("throwaway", [False, True])
def test_only_a_throwaway_lab_lets_scenarios_burn_efuses(tmp_path: Path, throwaway: bool) -> None:
    """A kept lab's burnt eFuse would refuse the next run's base image, as a real board would."""
    lab = Lab(tmp_path, 1, parse_lab_config({"throwaway": throwaway}))
    lab.start()
    try:
        farm = parse_farm(yaml.safe_load((tmp_path / "farm.yaml").read_text()))
    finally:
        lab.stop()
    assert ("efuse-burnable" in farm.board("b1").tags) is throwaway
