"""AWS IoT OTA over MQTT through pytest on a fresh 2-board lab: b1 runs the faithful
`aws-ota` model, b2 a port whose PAL never checks the code signature. The same scenarios
must pass on b1 and catch b2 — for the reason the scenario names, not another."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SELECTED = (
    "test_greater_version or test_disconnect_resume or test_power_cut_mid_stream"
    " or (test_refused_signature and unsigned) or test_corrupt_block_refused"
)
BROKEN = "aws-ota-ignore-signature"


@pytest.fixture
def lab_config() -> dict[str, object]:
    overrides = {"ota-rig-aws": BROKEN}
    return {"boards": {"b2": {"firmware_overrides": overrides}}}


def _outcomes(junit: Path, board: str) -> dict[str, str]:
    """Scenario -> passed / failed / skipped on `board`, from the run's junit file (one
    testcase per judged OTA, classname `<group>.<board>`)."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.attrib["classname"].rsplit(".", 1)[-1] != board:
            continue
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = {"failure": "failed", "error": "failed", "skipped": "skipped"}[child.tag]
        found[case.attrib["name"]] = state
    return found


def test_aws_ota_scenarios_pass_on_the_faithful_agent_and_catch_the_broken_one(
    lab_farm: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "RIG_RUN_ID": "mqtt", "RIG_SEED": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/test_aws_ota.py", "-k", SELECTED, "--farm", str(lab_farm),
         "--report-dir", str(tmp_path / "reports"), "-n", "2", "--dist", "loadgroup",
         "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    junit = tmp_path / "reports" / "mqtt" / "junit.xml"
    b1, b2 = _outcomes(junit, "b1"), _outcomes(junit, "b2")
    assert len(b1) == len(b2) == 5, (b1, b2)
    assert set(b1.values()) == {"passed"}, done.stdout[-3000:]
    caught = {name for name, state in b2.items() if state == "failed"}
    assert caught == {"test_refused_signature[unsigned]"}, done.stdout[-3000:]
    failure = done.stdout
    assert "ended SUCCEEDED; correct is FAILED or REJECTED" in failure, failure[-3000:]
    assert "ended on new firmware 1.1.0" in failure, failure[-3000:]
    assert done.returncode == 1
