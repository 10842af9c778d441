"""ota-rig: hardware-in-the-loop proof that ESP32 OTA updates survive the field."""

__version__ = "0.1.0"
