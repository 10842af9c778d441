"""The virtual lab: Python twins of ESP32 boards, a SCPI bench PSU and a USB relay.

The rig reaches everything here only through hardware seams (RFC2217/pty serial,
SCPI over TCP, relay serial, TCP/TLS); `rig/` never imports this package.
"""
