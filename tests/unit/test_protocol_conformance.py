"""PROTOCOL.md is the contract between the rig, the reference firmware and the twin.

Every command and log marker it defines must be implemented by BOTH the C firmware
core and the twin's reference model, and the rig and scenarios may only rely on what
it defines — otherwise a suite that passes on the virtual lab could fail on boards.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "firmware_under_test" / "PROTOCOL.md"
C_CORE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "firmware_under_test" / "core").glob("*.c"))
TWIN = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "twin" / "firmware").glob("*.py"))


def _first_column(section: str) -> list[str]:
    text = PROTOCOL.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (?:[EWI] )?`([^`]+)`", body, flags=re.MULTILINE)


COMMANDS = [cell.split()[0] for cell in _first_column("1. Console")]
MARKERS = _first_column("2. Log markers")


def _literal_pieces(marker: str) -> list[str]:
    """The fixed text of a marker: everything between its `<placeholder>`s."""
    return [piece for piece in re.split(r"<[^>]+>", marker.replace("\\|", "|")) if piece.strip()]


def test_protocol_tables_are_found() -> None:
    assert {"status", "cert", "ota", "ota-config", "restart"} <= set(COMMANDS)
    assert any(m.startswith("ready ") for m in MARKERS) and len(MARKERS) >= 12


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize("source_name", ["C core", "twin reference model"])
def test_every_marker_is_implemented(marker: str, source_name: str) -> None:
    source = C_CORE if source_name == "C core" else TWIN
    missing = [piece for piece in _literal_pieces(marker) if piece not in source]
    assert not missing, f"{source_name} lacks {missing} of marker {marker!r}"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("source_name", ["C core", "twin reference model"])
def test_every_command_is_dispatched(command: str, source_name: str) -> None:
    source = C_CORE if source_name == "C core" else TWIN
    assert f'"{command}"' in source, f"{source_name} has no dispatch entry for {command!r}"


def test_rig_and_scenarios_use_only_documented_markers() -> None:
    """Every `rig_agent: <word>` the rig or a scenario waits for is defined in PROTOCOL.md."""
    documented = {m.split()[0] for m in MARKERS} | {"ok", "error", "status"}
    documented |= {" ".join(m.split()[:2]) for m in MARKERS}
    used: dict[str, str] = {}
    for path in [*(ROOT / "rig").rglob("*.py"), *(ROOT / "scenarios").rglob("*.py")]:
        for found in re.finditer(r"rig_agent: (\w+)(?: (\w+))?", path.read_text(encoding="utf-8")):
            used.setdefault(found[1], str(path.relative_to(ROOT)))
            if found[1] in ("ota", "selftest", "app") and found[2]:
                used.setdefault(f"{found[1]} {found[2]}", str(path.relative_to(ROOT)))
    undocumented = {word: where for word, where in used.items() if word not in documented}
    assert not undocumented, f"markers used but not in PROTOCOL.md: {undocumented}"
