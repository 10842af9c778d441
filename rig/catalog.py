"""The standard suite's scenario and group names, as results and the release gate name them.

Read from the scenario files themselves (their `test_*` functions and family markers), not
from a run: a policy that names a scenario the suite does not have is a typo to refuse at
once, while a scenario the run skipped is a missing result the gate must block on.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from rig.resources import scenarios_dir

MARKERS = {
    "power_cut": "cuts the board's power (needs a power driver that really cuts power)",
    "brownout": "sags the supply voltage (needs a PSU)",
    "network": "injects network faults through the fault proxy",
    "mqtt": "AWS IoT OTA over MQTT jobs and streams (needs the farm's mqtt broker and a thing per board)",
    "signature": "needs signed-update firmware (board firmware.signing != none)",
    "anti_rollback": "needs anti-rollback firmware (board firmware.anti_rollback)",
    "rollback": "exercises ESP-IDF app rollback",
    "gate": "part of the release gate",
    "burns_efuse": "raises the board's eFuse secure_version for good; runs after everything else",
}
# Test families a scenario_group is named after; the first the test carries wins.
FAMILIES = tuple(name for name in MARKERS if name not in ("gate", "burns_efuse"))


@dataclass(frozen=True)
class Catalog:
    """Scenario function names and the groups they fall into."""

    scenarios: frozenset[str]
    groups: frozenset[str]


def load_catalog(folder: Path | None = None) -> Catalog:
    scenarios: set[str] = set()
    groups: set[str] = set()
    for path in sorted((folder or scenarios_dir()).glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module_marks = _marks(next((node.value for node in tree.body if _is_pytestmark(node)), None))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                scenarios.add(node.name)
                marks = [m for d in node.decorator_list for m in _marks(d)] + module_marks
                groups.add(next((m for m in marks if m in FAMILIES), path.stem.removeprefix("test_")))
    return Catalog(frozenset(scenarios), frozenset(groups))


def _is_pytestmark(node: ast.stmt) -> TypeGuard[ast.Assign]:
    targets = node.targets if isinstance(node, ast.Assign) else []
    return any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)


def _marks(node: ast.expr | None) -> list[str]:
    """`pytest.mark.X` names in a decorator or a `pytestmark` value (a mark or a list of marks)."""
    if node is None:
        return []
    if isinstance(node, ast.List | ast.Tuple):
        return [m for item in node.elts for m in _marks(item)]
    if isinstance(node, ast.Call):
        return _marks(node.func)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
        return [node.attr] if node.value.attr == "mark" else []
    return []
