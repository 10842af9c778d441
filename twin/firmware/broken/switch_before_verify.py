"""`switch-before-verify`: points otadata at the new slot before `esp_ota_end` verifies the
image, so an image that fails verification is still what the next boot picks (and, with
signed updates and no secure boot, boots: the bootloader does not check signatures)."""

from __future__ import annotations

from rig.esp.otadata import plan_set_boot
from twin.bootloader import read_otadata, write_otadata
from twin.firmware import register
from twin.firmware.https_ota import HttpsOta
from twin.firmware.reference import Agent, ReferenceFirmware
from twin.ota_ops import Err, EspError


@register
class SwitchBeforeVerify(ReferenceFirmware):
    name = "switch-before-verify"

    def _finish(self, agent: Agent, ota: HttpsOta) -> None:
        rt = agent.rt
        otadata_part, slot = rt.table.otadata, ota.partition.ota_index
        if ota.handle is None or otadata_part is None or slot is None:
            raise EspError(Err.ESP_ERR_INVALID_ARG)
        otadata = read_otadata(rt.cpu, otadata_part)
        sector, entry = plan_set_boot(otadata, slot, len(rt.table.ota_slots), rt.config.rollback)
        write_otadata(rt.cpu, otadata_part, sector, entry)
        ota.close()
        rt.ota.end(ota.handle)
