"""A fresh 2-board virtual lab per test, as `python -m twin serve` runs it for `rig run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml


def _serve(tmp_path: Path, config: dict[str, object] | None) -> Iterator[Path]:
    lab = tmp_path / "lab"
    command = [sys.executable, "-m", "twin", "serve", "--dir", str(lab), "--boards", "2"]
    if config is not None:
        config_path = tmp_path / "lab-config.yaml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        command += ["--config", str(config_path)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    farm = lab / "farm.yaml"
    deadline = time.monotonic() + 60
    while not farm.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert farm.exists(), "the virtual lab did not write its farm file"
        yield farm
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def lab_config() -> dict[str, object] | None:
    """The lab config (twin/labconfig.py's file, as a dict); a module overrides it to build
    its boards differently. None: the lab's defaults."""
    return None


@pytest.fixture
def lab_farm(tmp_path: Path, lab_config: dict[str, object] | None) -> Iterator[Path]:
    """The farm file of a fresh lab."""
    yield from _serve(tmp_path, lab_config)
