"""Deliberately broken variants of the reference and AWS OTA models, one bug each: mutation testing
for a test suite (a suite that passes against one of these misses that bug; twin/README.md).

Importing this package registers them; `twin.firmware.get_model` does so on first use.
"""

from twin.firmware.broken import (
    aws_ignore_signature,
    confirm_before_selftest,
    corrupt_write,
    erase_past_slot,
    ignore_signature,
    lexical_version,
    no_resume,
    no_version_check,
    resume_ahead,
    switch_before_verify,
)

__all__ = [
    "aws_ignore_signature",
    "confirm_before_selftest",
    "corrupt_write",
    "erase_past_slot",
    "ignore_signature",
    "lexical_version",
    "no_resume",
    "no_version_check",
    "resume_ahead",
    "switch_before_verify",
]
