"""The shipped release gate against real virtual-lab runs: a clean run ships, a run whose
firmware installs a badly signed image is blocked, for that reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.cli import main
from rig.lab_cli import running_lab

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "fixtures" / "gate.yaml"
# The shipped policy's required scenarios and one scenario of each group it names.
GATED = ("test_three_generations or test_bad_app_rolls_back or test_bad_signatures_rejected"
         " or test_cut_during_download or test_lower_secure_version_refused")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


def test_the_shipped_gate_passes_a_clean_run(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-k", GATED, "--report-dir", str(reports)]) == 0, capsys.readouterr().err
    assert main(["gate", "--policy", str(POLICY), "--db", str(reports / "results.db")]) == 0
    assert "gate: PASS" in capsys.readouterr().out


def test_the_shipped_gate_blocks_a_run_where_the_firmware_took_a_badly_signed_image(
    reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump({"defaults": {"firmware": "ignore-signature"}}), encoding="utf-8")
    with running_lab(tmp_path / "lab", boards=2, config=config) as farm:
        code = main(["run", "--farm", str(farm), "-k", "test_bad_signatures_rejected",
                     "--report-dir", str(reports)])
    assert code == 1
    capsys.readouterr()
    assert main(["gate", "--policy", str(POLICY), "--db", str(reports / "results.db")]) == 1
    rows = {line.split("│")[1].strip(): line.split("│")[4].strip()
            for line in capsys.readouterr().out.splitlines() if line.count("│") == 5}
    assert rows["group signature"] == "FAIL"
    assert rows["scenario test_bad_signatures_rejected"] == "FAIL"
    assert rows["bricks"] == "PASS"  # blocked for what the firmware did, not for a brick
