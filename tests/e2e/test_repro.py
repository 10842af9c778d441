"""`rig repro` end to end on a virtual lab: one OTA, one fault, the ESP-IDF-correct outcome.

The lab runs as its own process (`python -m twin serve`), reached only through its farm
file's seams, exactly as `rig repro --farm` reaches a real bench.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.cli import main


@pytest.fixture(scope="module")
def lab_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab = tmp_path_factory.mktemp("lab")
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--dir", str(lab), "--boards", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    farm = lab / "farm.yaml"
    deadline = time.monotonic() + 60
    while not farm.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert farm.exists(), "the virtual lab did not write its farm file"
    yield farm
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.mark.parametrize(
    "cut, phase",
    [
        ("power@fraction=0.5", "before the boot partition switch"),
        ("net@bytes=60000:rst", "before the boot partition switch"),
        ('power@log="esp_https_ota: Writing to"', "before the boot partition switch"),
    ],
    ids=["power-bytes", "net-rst", "power-log"],
)
def test_repro_ends_in_the_esp_idf_correct_state(
    lab_farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: str, phase: str
) -> None:
    code = main(
        ["repro", "--farm", str(lab_farm), "--board", "b1", "--cut", cut, "--report-dir", str(tmp_path)]
    )
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 0, out
    assert "PASS b1" in out, out
    assert phase in out, out
    assert "ended on old firmware" in out, out


def test_repro_rejects_a_bad_cut_with_one_line(lab_farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["repro", "--farm", str(lab_farm), "--cut", "power@bites=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rig: error: --cut power@bites=1") and err.count("\n") == 1


def test_a_cut_past_the_end_of_the_image_is_refused_before_flashing(
    lab_farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lab's image is 131 KiB: byte 200000 is never written, so nothing is flashed or judged."""
    code = main(["repro", "--farm", str(lab_farm), "--board", "b1", "--cut", "power@bytes=200000",
                 "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "the image is 13" in err and "byte 200000 is never written" in err, err
    assert not list(tmp_path.glob("*/b1/esptool.log")), "the board was flashed for an impossible cut"


def test_a_fault_that_never_fires_is_not_reproduced_and_not_a_pass(
    lab_farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["repro", "--farm", str(lab_farm), "--board", "b1", "--cut",
                 'power@log="a line this firmware never prints"', "--report-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 4, captured.out + captured.err
    assert "not reproduced: the log line /a line this firmware never prints/ never appeared" in captured.err


@pytest.mark.parametrize(
    ("image", "cut", "ending"),
    [
        ("greater", "mqtt@fraction=0.5:kick", "ended on new firmware"),
        ("unsigned", None, "ended on old firmware"),
    ],
    ids=["kicked-and-resumed", "unsigned-refused"],
)
def test_repro_an_aws_iot_job(
    lab_farm: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image: str,
    cut: str | None,
    ending: str,
) -> None:
    """`--transport mqtt`: the same one-OTA reproduction, as an AWS IoT job the device takes."""
    args = ["repro", "--farm", str(lab_farm), "--board", "b1", "--transport", "mqtt", "--image", image]
    code = main([*args, *(["--cut", cut] if cut else []), "--report-dir", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert f"PASS b1: {image}" in out and ending in out, out


def test_repro_an_unknown_aws_case_is_one_line(lab_farm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["repro", "--farm", str(lab_farm), "--transport", "mqtt", "--image", "greatest"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--image 'greatest': not an AWS OTA case (corrupt_after_signing," in err, err
