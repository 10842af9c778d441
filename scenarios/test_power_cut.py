"""Power cuts at every stage of an OTA: download, erase, switch, first boot, after confirm."""

from __future__ import annotations

import pytest

from rig.phase import Final, Phase
from rig.session import OtaSession
from scenarios._support import (
    add_slow_selftest,
    ended_on,
    need_agent,
    need_power_cut,
    need_rollback,
    slot_name,
    slot_states,
)

pytestmark = [pytest.mark.power_cut, pytest.mark.gate]


def test_cut_during_download(ota: OtaSession) -> None:
    """Field failure: a device unplugged while it downloads an update.

    Fault: power cut once 10 %, 50 % and 90 % of the image bytes are written (the session
    counts the device's own `ota saved|progress bytes=<n>` markers: the server's count runs
    ahead of the device by whatever the socket buffers hold). Resumption is off, so each
    attempt starts from byte 0 (resuming has its own scenario). Correct outcome (ESP-IDF): otadata is
    only written by `esp_ota_set_boot_partition` after the whole image verified, so the
    old app boots (`boot: Loaded app from partition at offset 0x20000`, `ready
    version=<old>`); a retry then completes (`rig_agent: ota complete`) and the new app
    confirms itself.
    """
    need_power_cut(ota)
    ota.prepare(resume="off")
    old = ota.images.base_version
    for fraction in (0.1, 0.5, 0.9):
        result = ota.ok("next", f"power@fraction={fraction}", window=Phase.DOWNLOAD)
        ended_on(result, old)
    ended_on(ota.ok("next"), ota.images.entry("next").version)


def test_cut_during_erase(ota: OtaSession) -> None:
    """Field failure: power lost while the target slot is being erased.

    Fault: power cut on `esp_https_ota: Writing to <ota_1> partition` (esp_ota_begin has
    just started erasing). Correct outcome (ESP-IDF): the running slot and otadata are
    untouched, the old app boots.
    """
    need_power_cut(ota)
    ota.prepare()
    result = ota.ok("next", 'power@log="esp_https_ota: Writing to <"', window=Phase.DOWNLOAD)
    ended_on(result, ota.images.base_version)


def test_cut_after_switch_before_first_boot(ota: OtaSession) -> None:
    """Field failure: power lost between `esp_ota_set_boot_partition` and the restart.

    Fault: power cut on `rig_agent: ota complete`. Correct outcome (ESP-IDF,
    bootloader_utility.c:bootloader_utility_get_selected_boot_partition()):
    otadata already selects ota_1 in state NEW; at power-on the bootloader makes it
    PENDING_VERIFY and gives it its one boot attempt, the healthy image confirms itself
    (`rig_agent: app confirmed valid`) and stays; the otadata entry of ota_1 is VALID.
    (A cut inside the bootloader's own rewrite may also fall back to the old app.)
    """
    need_power_cut(ota)
    ota.prepare()
    result = ota.ok("next", f'power@log="{ota.says.complete}"', window=Phase.SWITCHED)
    if result.final is Final.NEW:
        assert "VALID" in slot_states(result, ota, slot_name(ota, 1)), result.otadata


def test_cut_during_first_boot(ota: OtaSession) -> None:
    """Field failure: power lost while the new image runs its first-boot self-test.

    Fault: power cut on `rig_agent: selftest begin` of a healthy image whose self-test
    takes 800 ms. Correct outcome (ESP-IDF rollback, bootloader_utility.c): the unconfirmed entry is
    PENDING_VERIFY at the cut, so the next boot marks it ABORTED and boots the old slot
    again (`ready version=<old> running=ota_0 state=VALID`).
    """
    need_power_cut(ota)
    need_rollback(ota)
    need_agent(ota, "behaviour")
    ota.prepare()
    image = add_slow_selftest(ota)
    result = ota.ok(image, 'power@log="rig_agent: selftest begin"', window=Phase.FIRST_BOOT)
    ended_on(result, ota.images.base_version)
    assert "ABORTED" in slot_states(result, ota, slot_name(ota, 1)), result.otadata


def test_cut_after_confirm(ota: OtaSession) -> None:
    """Field failure: power lost right after the new image confirmed itself.

    Fault: power cut on `rig_agent: app confirmed valid`. Correct outcome (ESP-IDF):
    `esp_ota_mark_app_valid_cancel_rollback` already wrote VALID, so the new app boots
    again after power returns and otadata's ota_1 entry is VALID.
    """
    need_power_cut(ota)
    ota.prepare()
    need_agent(ota, "confirmation")
    result = ota.ok("next", f'power@log="{ota.says.confirmed}"', window=Phase.CONFIRMED)
    ended_on(result, ota.images.entry("next").version)
    assert "VALID" in slot_states(result, ota, slot_name(ota, 1)), result.otadata
