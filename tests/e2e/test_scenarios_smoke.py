"""Three standard scenarios through pytest on a fresh 2-board virtual lab.

The suite is run as QA runs it (`pytest scenarios/ --farm ... -n 2 --dist loadgroup`),
in a child process, so the rig's plugin, xdist grouping and skips are exercised as a
nightly run exercises them. The lab is fresh, so its eFuses may be burnt here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SMOKE = [
    "scenarios/test_happy_path.py",
    "scenarios/test_power_cut.py::test_cut_during_first_boot",
    "scenarios/test_anti_rollback.py::test_bump_burns_efuse_and_blocks_downgrade",
]


def _burnable(farm: Path, out: Path) -> Path:
    """The lab's farm file with every board offered up for eFuse burning (a fresh lab)."""
    data = yaml.safe_load(farm.read_text(encoding="utf-8"))
    for board in data["boards"]:
        board["tags"] = [*board.get("tags", []), "efuse-burnable"]
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def test_smoke_scenarios_pass_on_the_lab(lab_farm: Path, tmp_path: Path) -> None:
    farm = _burnable(lab_farm, tmp_path / "farm.yaml")
    env = {**os.environ, "RIG_RUN_ID": "smoke", "RIG_SEED": "7"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *SMOKE, "--farm", str(farm),
         "--report-dir", str(tmp_path / "reports"), "-n", "2", "--dist", "loadgroup",
         "-q", "-rs", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary
    # b1 and b2 each: 1 happy path, 1 first-boot cut, 1 eFuse burn; none may be skipped.
    assert "6 passed" in summary and "skipped" not in summary, summary
    artifacts = tmp_path / "reports" / "smoke" / "artifacts"
    assert len([p for p in artifacts.iterdir() if (p / "serial.log").exists()]) == 6
