"""Virtual bench instruments reached only through the seams real ones use (SCPI on TCP, a serial pty)."""

from twin.instruments.psu import VirtualPsu
from twin.instruments.relay import VirtualRelay

__all__ = ["VirtualPsu", "VirtualRelay"]
