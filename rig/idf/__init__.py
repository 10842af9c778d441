"""Espressif's own OTA example tests on the rig's boards (`rig idf-tests`), and any
pytest-embedded test with a farm board as its `dut` (`rig embedded`)."""
