"""`lexical-version`: compares versions as strings, so `1.0.10` looks older than `1.0.9` and
the fleet never leaves x.9 (and a later x.9 build could replace x.10)."""

from __future__ import annotations

from twin.firmware import register
from twin.firmware.reference import ReferenceFirmware


@register
class LexicalVersion(ReferenceFirmware):
    name = "lexical-version"

    @staticmethod
    def _order(new: str, running: str) -> int | None:
        return (new > running) - (new < running)
