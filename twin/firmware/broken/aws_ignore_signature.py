"""`aws-ota-ignore-signature`: the AWS OTA demo with a PAL whose otaPal_CloseFile() never
checks the code signature (a port that stubbed out CRYPTO_SignatureVerification*): any
file that is a sound app image is activated, signed or not, by whoever."""

from __future__ import annotations

from pathlib import Path

from twin.cpu import LogLevel
from twin.firmware import register
from twin.firmware.aws_ota import AwsOtaFirmware
from twin.firmware.aws_pal import TAG, EspPal, PalStatus


class TrustingPal(EspPal):
    def close_file(self, signature: bytes | None, codesign_cert: Path) -> PalStatus:
        if self.file is None or self.file.written == 0:
            return PalStatus.FILE_CLOSE
        self.rt.log(LogLevel.INFO, TAG, "Signature verification succeeded.")
        self.file.valid_image = True
        return PalStatus.SUCCESS


@register
class AwsOtaIgnoreSignature(AwsOtaFirmware):
    name = "aws-ota-ignore-signature"
    pal_class = TrustingPal
