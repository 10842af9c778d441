"""`erase-past-slot`: erases the whole download up front with the raw flash API
(`esp_flash_erase_region`, which knows no partition bounds) sized by Content-Length, so an
image bigger than its slot wipes whatever follows the slot — the running app, when the
update goes to ota_0 — before esp_ota_write refuses the overflow."""

from __future__ import annotations

from rig.esp.appdesc import AppDescriptor
from twin.firmware import register
from twin.firmware.reference import Agent, ReferenceFirmware

SECTOR = 0x1000


@register
class ErasePastSlot(ReferenceFirmware):
    name = "erase-past-slot"

    def _rejected(self, agent: Agent, desc: AppDescriptor) -> bool:
        if super()._rejected(agent, desc):
            return True
        ota = agent.ota
        if ota is not None and ota.image_length:
            flash, start = agent.rt.cpu.flash, ota.partition.offset
            length = -(-ota.image_length // SECTOR) * SECTOR
            flash.erase(start, min(length, flash.size - start))
        return False
