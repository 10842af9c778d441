"""What scenarios share beyond the `ota` fixture: reading the two sources, the skips, and
board-derived images.

One judged OTA is `ota.run(...)` (or `ota.ok(...)`, which also fails the test unless the
device did the correct thing); the fixture records every result on the test item itself.
"""

from __future__ import annotations

import pytest

from rig.esp.marker import Behaviour
from rig.esp.otadata import OtaData, OtaState, slot_for_seq
from rig.outcome import OtaResult
from rig.power.base import Capability
from rig.session import OtaSession

# The first-boot self-test window a "cut during the first boot" lands in (PROTOCOL §5).
SLOW_SELFTEST_MS = 800
SLOW_SELFTEST = "slow_selftest"


def agent_config(ota: OtaSession) -> dict[str, str]:
    """The agent's settings as it reports them (`ota-config` without arguments)."""
    need_agent(ota, "agent-settings")
    return dict(pair.split("=", 1) for pair in ota.board.command("ota-config").split() if "=" in pair)


# -- reading the two sources -------------------------------------------------------------


def slot_states(result: OtaResult, ota: OtaSession, slot: str) -> list[str]:
    """State names of the CRC-valid otadata entries whose seq selects `slot`."""
    otadata = result.otadata
    assert otadata is not None, "no otadata read back"
    return states_of(otadata, ota, slot)


def states_of(otadata: OtaData, ota: OtaSession, slot: str) -> list[str]:
    labels = [p.name for p in ota.board.table.ota_slots]
    index = labels.index(slot)
    return [
        _state(e.state) for e in otadata.entries
        if not e.is_erased and e.crc_ok and slot_for_seq(e.seq, len(labels)) == index
    ]


def _state(value: int) -> str:
    try:
        return OtaState(value).name
    except ValueError:
        return f"0x{value:08x}"


def slot_name(ota: OtaSession, index: int) -> str:
    return ota.board.table.ota_slots[index].name


def log_text(ota: OtaSession, result: OtaResult) -> str:
    """The serial log of one OTA, from its start to now."""
    return ota.board.console.text(result.mark)


def assert_log(ota: OtaSession, result: OtaResult, *needles: str) -> None:
    """Every `needle` occurs in the OTA's serial log (the ESP-IDF proof lines)."""
    text = log_text(ota, result)
    missing = [n for n in needles if n not in text]
    assert not missing, f"log lacks {missing}\n{result.summary()}"


def assert_no_log(ota: OtaSession, result: OtaResult, *needles: str) -> None:
    text = log_text(ota, result)
    present = [n for n in needles if n in text]
    assert not present, f"log must not contain {present}\n{result.summary()}"


def ended_on(result: OtaResult, version: str) -> None:
    """The judged result passed and the device runs `version` (log) with otadata agreeing."""
    assert result.passed, result.summary()
    assert result.final_ready is not None and result.final_ready.version == version, result.summary()


# -- applicability: skip with the reason, never pass silently ----------------------------


def need_power_cut(ota: OtaSession) -> None:
    power = ota.board.power
    if not power.cuts_power:
        pytest.skip(f"board {ota.board.name}: power driver {power.name} only resets, it cannot cut power")


def need_voltage_ramp(ota: OtaSession) -> None:
    power = ota.board.power
    if Capability.VOLTAGE_RAMP not in power.capabilities:
        pytest.skip(f"board {ota.board.name}: power driver {power.name} cannot sag the voltage (no PSU)")


def need_rollback(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.rollback:
        pytest.skip(f"board {ota.board.name}: firmware built without app rollback")


def need_signing(ota: OtaSession) -> None:
    if ota.board.spec.firmware.signing == "none":
        pytest.skip(f"board {ota.board.name}: firmware does not verify update signatures (signing: none)")


def need_anti_rollback(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.anti_rollback:
        pytest.skip(f"board {ota.board.name}: firmware built without anti-rollback")


def need_version_check(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.version_check:
        pytest.skip(f"board {ota.board.name}: firmware built without the version check")


def need_dead_path(ota: OtaSession) -> None:
    path = ota.path
    if path is None or path.namespace is None:
        why = path.unavailable if path is not None else "no fault path"
        pytest.skip(f"board {ota.board.name}: no dead-path fault here: {why}")


def need_agent(ota: OtaSession, capability: str) -> None:
    """Skip unless the board's firmware has `capability` (rig/agents/: what a stock example lacks)."""
    reason = ota.board.agent.lacks.get(capability)
    if reason is not None:
        pytest.skip(f"board {ota.board.name}: {reason}")


def need_image(ota: OtaSession, name: str) -> None:
    reason = ota.images.skipped_reason(name)
    if reason is not None:
        pytest.skip(f"image {name} not in this run's set: {reason}")


def add_slow_selftest(ota: OtaSession) -> str:
    """Serve `next2` with a healthy self-test taking SLOW_SELFTEST_MS: a window to cut power in."""
    return ota.add_behaviour(SLOW_SELFTEST, "next2", Behaviour.HEALTHY, SLOW_SELFTEST_MS,
                             change=f"next2, healthy self-test of {SLOW_SELFTEST_MS} ms")
