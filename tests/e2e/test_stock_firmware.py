"""Stock ESP-IDF example firmware end to end: the standard scenarios on a lab board running
advanced_https_ota, and the pytest-embedded route (`rig idf-tests`, `rig embedded`).

`rig idf-tests` runs here on a small ESP-IDF-shaped checkout whose pytest files (in
tests/support/idf_checkout, the project's own words) drive the examples the way Espressif's
example tests do: the URL after the prompt, Wi-Fi credentials from EnvConfig.yml, the
servers on 0.0.0.0 inside the run's network namespace, the outcome from the console.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rig.esp.example_image import STOCK_PROJECTS
from rig.esp.signing import SigningKey, SigningScheme
from rig.net.certs import ensure_bundle
from rig.net.netns import unavailable

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support" / "idf_checkout"
APPLICABLE = [
    "scenarios/test_happy_path.py",
    "scenarios/test_bad_images.py::test_broken_images_rejected",
    "scenarios/test_power_cut.py::test_cut_during_download",
    "scenarios/test_power_cut.py::test_cut_after_confirm",
    "scenarios/test_network.py::test_link_cut_mid_transfer",
    "scenarios/test_rollback.py",
    "scenarios/test_resume.py::test_resume_after_reset",
    "scenarios/test_tls_pinning.py",
]


@pytest.fixture
def lab_config() -> dict[str, object]:
    return {"boards": {"b1": {"firmware": "advanced_https_ota"}}}


def test_scenarios_run_on_a_stock_example_or_say_why_not(lab_farm: Path, tmp_path: Path) -> None:
    """On the stock example the verdicts come from ESP-IDF's and the example's own lines plus
    the otadata read-back; scenarios needing the reference agent skip with the reason."""
    env = {**os.environ, "RIG_RUN_ID": "stock", "RIG_SEED": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *APPLICABLE, "--farm", str(lab_farm), "--boards", "b1",
         "--report-dir", str(tmp_path / "reports"), "-q", "-rs", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    summary = done.stdout[-4000:]
    assert done.returncode == 0, summary
    assert "5 passed, 3 skipped" in summary, summary
    for reason in ("no first-boot behaviour to provoke", "prints no resume point",
                   "server certificate is compiled in"):  # fmt: skip
        assert reason in summary, summary
    log = (tmp_path / "reports" / "stock" / "artifacts").glob("*happy_path*/serial.log")
    text = next(log).read_text(errors="replace")
    assert "rig_agent" not in text and "ESP_HTTPS_OTA upgrade successful. Rebooting ..." in text


def _checkout(root: Path) -> Path:
    """An ESP-IDF-shaped tree: the three example directories with our pytest files, their
    certificates and signing keys, and a common_test_methods module."""
    shutil.copytree(SUPPORT / "tools", root / "tools")
    (root / "components").mkdir()
    bundle = ensure_bundle(root / ".certs")
    for project, relative in STOCK_PROJECTS.items():
        example = root / relative
        (example / "server_certs").mkdir(parents=True)
        (example / "test_certs").mkdir()
        (example / "test").mkdir()
        shutil.copy(bundle.ca_pem, example / "server_certs" / "ca_cert.pem")
        shutil.copy(bundle.cert_pem, example / "test_certs" / "server_cert.pem")
        shutil.copy(bundle.key_pem, example / "test_certs" / "server_key.pem")
        shutil.copy(SUPPORT / f"pytest_{project}.py", example / f"pytest_{project}.py")
    keys = root / STOCK_PROJECTS["simple_ota"] / "test"
    SigningKey.generate(keys / "secure_boot_signing_key.pem", SigningScheme.RSA3072_SBV2)
    SigningKey.generate(keys / "secure_boot_signing_key_ecdsa.pem", SigningScheme.ECDSA256_V1)
    return root


@pytest.mark.skipif(unavailable() is not None, reason=f"no network namespace here: {unavailable()}")
def test_idf_tests_runs_example_tests_on_lab_builds(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "esp-idf")
    done = subprocess.run(
        [sys.executable, "-m", "rig.cli", "idf-tests", str(root), "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, out
    assert "rig idf-tests: 4 passed, 0 failed, 2 cannot run here" in out, out
    summary = next((tmp_path / "reports").glob("idf-tests-*/summary.md")).read_text()
    assert "| `test_native_refuses_a_short_image[esp32]` | passed |" in summary, summary
    assert "target esp32c3: the lab's boards are esp32" in summary
    assert "needs flash encryption" in summary
    assert not any(root.rglob("build_esp32_*")), "the checkout itself must stay untouched"


def test_embedded_hands_a_lab_board_to_pytest_embedded(tmp_path: Path) -> None:
    """`rig embedded -- …`: the board is pytest-embedded's `dut` (port, flash, reset, expect)."""
    from rig.idf.builds import BuildSpec, write_build

    ca = ensure_bundle(tmp_path / "certs").ca_pem.read_bytes()
    write_build(tmp_path / "app", BuildSpec("advanced_https_ota", "default", {}), version="v5.5.5", ca_pem=ca)
    (tmp_path / "test_dut.py").write_text(
        "def test_boot_and_reset(dut):\n"
        "    dut.expect('Loaded app from partition at offset 0x20000')\n"
        "    dut.expect('Starting Advanced OTA example')\n"
        "    dut.serial.hard_reset()\n"
        "    dut.expect('rst:0x1 ')\n"
        "    dut.expect('advanced_https_ota_example: OTA example app_main start')\n"
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "rig.cli", "embedded", "--", "test_dut.py", "--embedded-services", "esp,idf",
         "--app-path", str(tmp_path / "app"), "--build-dir", "build_esp32_default", "-q",
         "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_lab_farm_file_names_the_example(lab_farm: Path) -> None:
    board = yaml.safe_load(lab_farm.read_text())["boards"][0]
    assert board["firmware"]["protocol"] == "idf-example"
    assert board["firmware"]["example"] == "advanced_https_ota"
