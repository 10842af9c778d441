"""Loaded by `rig embedded` into the user's pytest: the rig's RFC2217 client for esptool and
the console (pyserial's sleeps 50 ms per setting; a lab or ser2net port answers at once)."""

from __future__ import annotations

from rig.serialio import enable_fast_rfc2217

enable_fast_rfc2217()
