"""`no-version-check`: installs whatever the server offers — the same version, an older
one, a lower secure_version (the last one is still stopped by esp_ota_ops itself)."""

from __future__ import annotations

from rig.esp.appdesc import AppDescriptor
from twin.firmware import register
from twin.firmware.reference import Agent, ReferenceFirmware


@register
class NoVersionCheck(ReferenceFirmware):
    name = "no-version-check"

    def _rejected(self, agent: Agent, desc: AppDescriptor) -> bool:
        return False
