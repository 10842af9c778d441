"""`ignore-signature`: a signed-update board whose app skips the signature check on update
(as if built without CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT): any image with a
sound hash is installed, whoever signed it."""

from __future__ import annotations

from dataclasses import replace

from twin.config import SignedUpdates
from twin.firmware import register
from twin.firmware.base import AppRuntime
from twin.firmware.reference import ReferenceFirmware
from twin.ota_ops import OtaOps


@register
class IgnoreSignature(ReferenceFirmware):
    name = "ignore-signature"

    def run(self, app: AppRuntime) -> None:
        unchecked = replace(app.config, signed_updates=SignedUpdates.NONE, signed_on_boot=False)
        app.ota = OtaOps(app.cpu, unchecked, app.table, app.app)
        super().run(app)
