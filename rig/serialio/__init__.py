"""Serial transports the rig uses to reach boards (real or twin).

`enable_fast_rfc2217()` makes every `serial.serial_for_url("rfc2217://…")` in this
process (esptool run in-process, pytest-embedded) use `fast_rfc2217.Serial`, the
standard RFC2217 client minus its fixed per-setting sleeps.
"""

from __future__ import annotations

import sys

import serial

from rig.serialio import fast_rfc2217

__all__ = ["enable_fast_rfc2217"]


def enable_fast_rfc2217() -> None:
    """Route `rfc2217://` URLs to `rig.serialio.fast_rfc2217` (idempotent).

    pyserial resolves scheme `X` to module `<package>.protocol_X` for each package
    in `serial.protocol_handler_packages`, first match wins; this package is put
    first and answers `protocol_rfc2217` with the fast module.
    """
    sys.modules.setdefault(f"{__name__}.protocol_rfc2217", fast_rfc2217)
    packages: list[str] = serial.protocol_handler_packages
    if __name__ in packages:
        packages.remove(__name__)
    packages.insert(0, __name__)
