"""One board's health check: can the rig still do everything a scenario needs with it?

The steps are what every scenario relies on, cheapest first: esptool reaches the ROM
loader (read-mac, the supply switched on first), the known base image flashes, the app
boots to `ready` from ota_0, the power driver really power-cycles it (the app comes
back), and the agent answers `status`. The first step that fails ends the check; its
reason is one line. Nothing here is a firmware verdict: a board that fails its check is
the farm's problem.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rig.board import Board
from rig.errors import RigError
from rig.farm import BoardSpec, Farm
from rig.flashing import read_mac
from rig.health.records import HealthCheck, Step, StepResult, Trigger

READY_TIMEOUT_S = 20.0


def check_board(
    farm: Farm, spec: BoardSpec, base_app: bytes, artifacts: Path, trigger: Trigger, *,
    full_reflash: bool = False, run_id: str | None = None,
) -> HealthCheck:  # fmt: skip
    """Run the steps on `spec`; `full_reflash` (recovery) erases every OTA slot whole
    instead of just the head of the inactive ones."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    steps: list[StepResult] = []
    started = time.monotonic()
    try:
        board = Board(farm, spec, artifacts).open()
    except RigError as error:
        failed = StepResult(Step.READ_MAC, time.monotonic() - started, False, f"serial port: {error}")
        return HealthCheck(spec.name, at, trigger, (failed,), run_id)
    try:

        def timed(step: Step, action: Callable[[], str]) -> bool:
            started = time.monotonic()
            try:
                detail, ok = action(), True
            except RigError as error:
                detail, ok = str(error), False
            steps.append(StepResult(step, time.monotonic() - started, ok, detail))
            return ok

        def mac() -> str:
            if farm.power_spec(spec):
                # A known power state first: a run killed mid-cut leaves the supply off.
                board.power.on()
            with board.console.released():
                return read_mac(board.flash_target, board.esptool_log)

        def flash() -> str:
            blank = max(s.size for s in board.table.ota_slots) if full_reflash else 0x1000
            board.flash_known_state(base_app, blank_bytes=blank)
            return "whole slots erased" if full_reflash else ""

        def boot() -> str:
            ready = board.reset_and_wait_ready(READY_TIMEOUT_S)
            if ready.running != board.table.ota_slots[0].name:
                raise RigError(f"booted {ready.running}, not {board.table.ota_slots[0].name}")
            return f"version {ready.version}"

        def power_cycle() -> str:
            mark = board.console.mark()
            board.power.cycle()
            if board.wait_ready(READY_TIMEOUT_S, mark) is None:
                raise RigError(f"no 'ready' within {READY_TIMEOUT_S:.0f} s after {board.power.describe()}")
            return ""

        def status() -> str:
            fields = board.status()
            return f"running={fields.get('running', '?')} state={fields.get('state', '?')}"

        (
            timed(Step.READ_MAC, mac)
            and timed(Step.FLASH_BASE, flash)
            and timed(Step.BOOT_READY, boot)
            and timed(Step.POWER_CYCLE, power_cycle)
            and timed(Step.STATUS, status)
        )
    finally:
        board.close()
    return HealthCheck(spec.name, at, trigger, tuple(steps), run_id)
