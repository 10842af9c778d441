"""An update that does not fit its OTA slot."""

from __future__ import annotations

import pytest

from rig.images.mutants import Expect, oversized
from rig.session import OtaSession
from scenarios._support import assert_log, ended_on

pytestmark = [pytest.mark.gate]
TOO_LARGE = "too_large"


def test_image_larger_than_slot_refused(ota: OtaSession) -> None:
    """Field failure: a release outgrew the app partitions of boards already in the field
    (the partition table cannot change over the air), and an agent that sizes its work by
    Content-Length writes or erases past the slot — into the next partition, the running
    app when the update goes to ota_0.

    Fault: `next2` padded to 64 KiB past the target slot (so it reaches the next app
    partition), served while the board runs ota_1, so the update targets ota_0 and ota_1
    (running) lies right behind it. Correct outcome (ESP-IDF): `esp_ota_write` erases each
    sector just before writing it and `esp_partition_erase_range` refuses one past the
    partition, so the write that would cross the slot's end fails with
    `E esp_https_ota: Error: esp_ota_write failed! err=0x104` (ESP_ERR_INVALID_SIZE) and the
    OTA fails; nothing past ota_0 is touched (the session's on-chip MD5 of the running slot
    proves it), otadata is unchanged and the running app keeps running.
    """
    ota.prepare()
    ended_on(ota.ok("next"), ota.images.entry("next").version)
    slot = ota.board.table.ota_slots[0]
    data = oversized(ota.images.data("next2"), slot.size)
    logs = ("E esp_https_ota: Error: esp_ota_write failed! err=0x104",)
    change = f"next2 padded to {len(data)} bytes, 64 KiB past {slot.name} ({slot.size} bytes)"
    ota.add_image(TOO_LARGE, data, like="next2", expect=Expect.REJECT_AT_WRITE,
              logs=logs, change=change)
    refused = ota.ok(TOO_LARGE)
    assert_log(ota, refused, ota.says.size_refused)
    ended_on(refused, ota.images.entry("next").version)
