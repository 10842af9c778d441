"""`confirm-before-selftest`: marks the app valid before the self-test runs, so a first boot
that crashes, hangs or fails its self-test can no longer be rolled back."""

from __future__ import annotations

from rig.esp.otadata import OtaState
from twin.cpu import LogLevel
from twin.firmware import register
from twin.firmware.reference import Agent, ReferenceFirmware, state_name


@register
class ConfirmBeforeSelftest(ReferenceFirmware):
    name = "confirm-before-selftest"

    def _first_boot(self, agent: Agent) -> None:
        if state_name(agent.rt) == OtaState.PENDING_VERIFY.name:
            agent.rt.ota.mark_app_valid_cancel_rollback()
            agent.log(LogLevel.INFO, "app confirmed valid")
        super()._first_boot(agent)
