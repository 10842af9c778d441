"""`no-resume`: ignores the progress saved in NVS and always downloads from byte 0, so a
link that drops every connection part-way never delivers a large image."""

from __future__ import annotations

from twin.firmware import register
from twin.firmware.reference import Agent, ReferenceFirmware


@register
class NoResume(ReferenceFirmware):
    name = "no-resume"

    def _resume_from(self, agent: Agent, url: str) -> int:
        return 0
