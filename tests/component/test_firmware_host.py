"""The reference firmware's portable C core, built with gcc and unit-tested on the host.

The ESP-IDF build needs a toolchain these machines lack; the core holds the protocol
rules (commands, marker texts, behaviour marker, version order, resume bookkeeping),
so running its tests here is what keeps the firmware honest against PROTOCOL.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_under_test"
PROTOCOL = FIRMWARE / "PROTOCOL.md"
CORE = FIRMWARE / "core"


def _protocol_table_cells(section: str) -> list[str]:
    """First-column code spans of the tables in one `## <section>` of PROTOCOL.md."""
    text = PROTOCOL.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (?:[EW] )?`([^`]+)`", body, flags=re.MULTILINE)


@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None,
    reason="gcc and make are needed to build the C core",
)
def test_core_unit_tests_pass(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-C", str(FIRMWARE / "host_tests"), f"BUILD_DIR={tmp_path}", "CC=gcc"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = re.search(r"(\d+) checks, (\d+) failed", result.stdout)
    assert summary is not None, output
    assert int(summary.group(1)) > 300
    assert summary.group(2) == "0"
    assert not (FIRMWARE / "host_tests" / "build").exists(), "build artefacts leaked into the repository"


def test_every_protocol_command_is_in_the_dispatch_table() -> None:
    commands = {cell.split()[0] for cell in _protocol_table_cells("1. Console")}
    assert commands == {"status", "cert", "ota", "ota-abort", "ota-config", "wifi", "restart"}
    source = (CORE / "rig_cmd.c").read_text(encoding="utf-8")
    for word in commands:
        assert f'{{"{word}", RIG_CMD_' in source, word


def test_every_protocol_marker_is_a_literal_in_the_core() -> None:
    markers = _protocol_table_cells("2. Log markers")
    assert len(markers) == 13
    source = (CORE / "rig_format.c").read_text(encoding="utf-8")
    literals = re.findall(r'"((?:[^"\\]|\\.)*)"', source)
    for marker in markers:
        # `ota failed err=0x<hex> reason=<text>` -> "ota failed err=0x%x reason=%s"
        pattern = re.escape(marker.replace("\\|", "|"))
        pattern = re.sub(r"<[^>]*>", "%[a-z]+", pattern.replace(r"\<", "<").replace(r"\>", ">"))
        assert any(re.fullmatch(pattern, lit) for lit in literals), marker
