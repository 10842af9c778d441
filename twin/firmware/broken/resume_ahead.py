"""`resume-ahead`: resumes 8 KiB past the progress it saved (an off-by-a-buffer in the resume
bookkeeping), so the bytes between were never written. On a slot that still holds an older
copy of the same image the update even verifies; in the field it bricks or fails."""

from __future__ import annotations

from twin.firmware import register
from twin.firmware.reference import Agent, ReferenceFirmware

SKIPPED = 8 * 1024


@register
class ResumeAhead(ReferenceFirmware):
    name = "resume-ahead"

    def _resume_from(self, agent: Agent, url: str) -> int:
        saved = super()._resume_from(agent, url)
        return saved + SKIPPED if saved else 0
