"""Bad new firmware: crash on first boot, failed self-test, hang, never confirms."""

from __future__ import annotations

import pytest

from rig.checks import rolled_back
from rig.session import OtaSession
from scenarios._support import ended_on, need_agent, need_rollback, slot_name, slot_states

pytestmark = [pytest.mark.rollback, pytest.mark.gate]
BAD_APPS = ("crash_on_boot", "selftest_fail", "hang", "never_confirm")


def test_bad_app_rolls_back(ota: OtaSession) -> None:
    """Field failure: a release that passes CI but dies on real devices bricks the fleet.

    Fault: `next` builds that panic at first boot, fail their self-test, hang (task
    watchdog) or never call `esp_ota_mark_app_valid_cancel_rollback`. Correct outcome
    (ESP-IDF app rollback, bootloader_utility.c and esp_ota_ops.c): the image boots once in
    PENDING_VERIFY; a panic,
    watchdog reset or the next reset without confirm makes the bootloader mark it ABORTED,
    `esp_ota_mark_app_invalid_rollback_and_reboot` marks it INVALID (`I esp_ota_ops:
    Rollback to previously worked partition.`); then the old slot boots (`ready
    version=<old> running=ota_0 state=VALID`).
    """
    need_rollback(ota)
    need_agent(ota, "behaviour")
    ota.prepare()
    old_slot, new_slot = slot_name(ota, 0), slot_name(ota, 1)
    for image in BAD_APPS:
        result = ota.ok(image)
        assert result.otadata is not None
        check = rolled_back(result.timeline, result.otadata, ota.board.table, from_slot=new_slot,
                              to_slot=old_slot)
        assert check.passed, f"{image}: {check.explain()}"
        states = slot_states(result, ota, new_slot)
        assert {"INVALID", "ABORTED"} & set(states), f"{image}: otadata {new_slot} entries {states}"
        ended_on(result, ota.images.base_version)
