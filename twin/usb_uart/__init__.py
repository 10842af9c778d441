"""The twin's UART as a USB-UART bridge would show it to a host: a device node (a pty)
whose DTR/RTS still reach the auto-reset circuit (see modem_lines.c for why a pty alone
loses them)."""

from twin.usb_uart.bridge import ModemLineSocket, modem_shim

__all__ = ["ModemLineSocket", "modem_shim"]
