"""Virtual bench instruments reached only through the seams real ones use (SCPI on TCP,
a serial pty, HTTP)."""

from twin.instruments.pdu import VirtualPdu
from twin.instruments.psu import VirtualPsu
from twin.instruments.relay import VirtualRelay

__all__ = ["VirtualPdu", "VirtualPsu", "VirtualRelay"]
