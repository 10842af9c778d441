"""`corrupt-write` / `aws-ota-corrupt-write`: an agent that hands esp_ota_write() a receive
buffer it has already started to refill, so one byte of the image's second sector reaches
flash inverted. Every update such a board takes fails its check at the end — esp_ota_end()'s
image verification (reference agent) or otaPal_CloseFile()'s signature check over the bytes
read back from flash (AWS OTA agent) — and the board keeps its old firmware: the bug a fleet
rollout's abort threshold exists to catch before it reaches every device."""

from __future__ import annotations

from twin.firmware import register
from twin.firmware.aws_ota import AwsOtaFirmware
from twin.firmware.base import AppRuntime
from twin.firmware.reference import ReferenceFirmware
from twin.ota_ops import OtaHandle, OtaOps

# Inside the first segment's data of any app image (past the 0x20-byte headers and the app
# descriptor), so the SHA-256 over the image no longer matches.
CORRUPT_OFFSET = 0x1000


def _spoiled(data: bytes, start: int) -> bytes:
    """`data` destined for image offset `start`, with the byte at CORRUPT_OFFSET inverted."""
    if not start <= CORRUPT_OFFSET < start + len(data):
        return data
    at = CORRUPT_OFFSET - start
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


class CorruptingOtaOps(OtaOps):
    def write(self, handle: OtaHandle, data: bytes) -> None:
        super().write(handle, _spoiled(data, handle.written))

    def write_with_offset(self, handle: OtaHandle, data: bytes, offset: int) -> None:
        super().write_with_offset(handle, _spoiled(data, offset), offset)


def _corrupting(app: AppRuntime) -> None:
    app.ota = CorruptingOtaOps(app.cpu, app.config, app.table, app.app)


@register
class CorruptWrite(ReferenceFirmware):
    name = "corrupt-write"

    def run(self, app: AppRuntime) -> None:
        _corrupting(app)
        super().run(app)


@register
class AwsOtaCorruptWrite(AwsOtaFirmware):
    name = "aws-ota-corrupt-write"

    def run(self, app: AppRuntime) -> None:
        _corrupting(app)
        super().run(app)
