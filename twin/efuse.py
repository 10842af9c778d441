"""The twin's eFuses: MAC, chip revision and the anti-rollback secure_version field.

eFuses are one-time programmable: bits can only ever go from 0 to 1, and they
survive everything, so they live in a small JSON file beside the flash image.
esptool reads them as BLK0 words at 0x3FF5A000 + 4n (esptool/targets/esp32.py EFUSE_RD_REG_BASE).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

EFUSE_BLK0_BASE = 0x3FF5A000
APB_CTL_DATE = 0x3FF6607C
DEFAULT_MAC = bytes.fromhex("240ac4123456")
SECURE_VERSION_BITS = 32
# ESP32-D0WD package (pkg version 1 in BLK0 word 3 bits 9–11).
_PKG_D0WD = 1
_CK8M_FREQ = 100

# Major revision -> (word3 bit 15, word5 bit 20, APB_CTL_DATE bit 31), esptool's decoding.
_REVISION_BITS = {0: (0, 0, 0), 1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1)}


@dataclass
class _EfuseState:
    mac: str
    major: int
    minor: int
    secure_version_bits: int


class Efuse:
    """File-backed eFuse block; `burn_secure_version` only ever sets bits."""

    def __init__(self, path: Path, mac: bytes = DEFAULT_MAC, major: int = 3, minor: int = 0) -> None:
        if major not in _REVISION_BITS or not 0 <= minor <= 3:
            raise ValueError(f"unsupported ESP32 revision v{major}.{minor}")
        if len(mac) != 6:
            raise ValueError("a MAC address has 6 bytes")
        self.path = path
        # Told the new bits after every burn (a `twin.trace.FlashTrace` records it).
        self.on_burn: Callable[[int], None] | None = None
        if path.exists():
            self._state = _EfuseState(**json.loads(path.read_text()))
        else:
            self._state = _EfuseState(mac.hex(), major, minor, 0)
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(asdict(self._state)))

    @property
    def mac(self) -> bytes:
        return bytes.fromhex(self._state.mac)

    @property
    def revision(self) -> tuple[int, int]:
        return self._state.major, self._state.minor

    @property
    def chip_description(self) -> str:
        """What esptool prints as "Chip is …" for these fuses."""
        major, minor = self.revision
        name = "ESP32-D0WD-V3" if major == 3 else "ESP32-D0WD"
        return f"{name} (revision v{major}.{minor})"

    @property
    def secure_version(self) -> int:
        """Anti-rollback counter: the number of burnt bits (ESP-IDF's popcount rule)."""
        return self._state.secure_version_bits.bit_count()

    @property
    def secure_version_bits(self) -> int:
        return self._state.secure_version_bits

    def burn_secure_version(self, value: int) -> None:
        """Raise the counter to `value` by burning more bits; lowering is impossible."""
        if not 0 <= value <= SECURE_VERSION_BITS:
            raise ValueError(f"secure_version {value} does not fit {SECURE_VERSION_BITS} eFuse bits")
        bits = self._state.secure_version_bits
        bit = 0
        while bits.bit_count() < value:
            bits |= 1 << bit
            bit += 1
        if bits != self._state.secure_version_bits:
            self._state.secure_version_bits = bits
            self._save()
            if self.on_burn is not None:
                self.on_burn(bits)

    def word(self, n: int) -> int:
        """BLK0 read word n as esptool decodes it."""
        major, minor = self.revision
        bit0, bit1, _ = _REVISION_BITS[major]
        mac = self.mac
        words = {
            1: int.from_bytes(mac[2:6], "big"),
            2: int.from_bytes(mac[0:2], "big"),
            3: (_PKG_D0WD << 9) | (bit0 << 15),
            4: _CK8M_FREQ,
            5: (bit1 << 20) | (minor << 24),
        }
        return words.get(n, 0)

    def register(self, address: int) -> int | None:
        """The value of an eFuse-derived register, or None if `address` is not one."""
        if EFUSE_BLK0_BASE <= address < EFUSE_BLK0_BASE + 0x80 and address % 4 == 0:
            return self.word((address - EFUSE_BLK0_BASE) // 4)
        if address == APB_CTL_DATE:
            return _REVISION_BITS[self.revision[0]][2] << 31
        return None
