"""Derived image sets: one ESP-IDF build in, every image an OTA test needs out."""
