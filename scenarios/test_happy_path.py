"""Happy path: three generations of updates, ota_0 -> ota_1 -> ota_0."""

from __future__ import annotations

import pytest

from rig.session import OtaSession
from scenarios._support import ended_on, slot_name, slot_states

pytestmark = [pytest.mark.gate]


def test_three_generations(ota: OtaSession) -> None:
    """Field failure: a fleet that updates once but not twice (the second OTA writes the
    running slot, or otadata's sequence number does not advance).

    Fault: none. Correct outcome (ESP-IDF): each update boots the other slot, confirms
    (`rig_agent: app confirmed valid`, `ready ... state=VALID`), and otadata's active
    entry points at that slot, VALID.
    """
    ota.prepare()
    images = ota.images
    for generation, (image, slot) in enumerate((("next", 1), ("next2", 0)), start=1):
        result = ota.ok(image)
        ended_on(result, images.entry(image).version)
        assert result.final_ready is not None and result.final_ready.running == slot_name(ota, slot), (
            f"generation {generation}: {result.summary()}")
        assert "VALID" in slot_states(result, ota, slot_name(ota, slot)), result.otadata
