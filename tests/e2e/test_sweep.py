"""`rig sweep` end to end: a traced throwaway twin records one update, every cut point of it is
replayed and judged; what it finds on the broken firmware models; `rig repro --sweep`; and the
calibrated time sweep a real farm gets (here a lab's farm file, which the rig cannot tell apart)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rig.cli import main
from rig.lab_cli import running_lab
from rig.results.store import ResultsStore
from rig.sweep.judge import Band, Problem
from rig.sweep.model import SweepMode, SweepResult
from rig.sweep.records import Image

pytestmark = pytest.mark.timeout(600)


def sweep(reports: Path, *args: str) -> tuple[int, SweepResult]:
    code = main(["sweep", *args, "--report-dir", str(reports)])
    store = ResultsStore(reports / "results.db")
    (result,) = store.sweeps(store.latest_run().run_id)
    return code, result


ROLLBACK_BANDS = {Band.DOWNLOAD, Band.OTADATA, Band.FIRST_BOOT, Band.CONFIRM}


@pytest.mark.parametrize(
    ("scenario", "bands"),
    [
        ("https", ROLLBACK_BANDS),
        ("anti-rollback", ROLLBACK_BANDS),
        ("rollback-off", {Band.DOWNLOAD, Band.OTADATA}),  # no self-test, nothing to confirm
    ],
)
def test_the_reference_firmware_is_safe_at_every_cut_point(
    tmp_path: Path, scenario: str, bands: set[Band]
) -> None:
    code, result = sweep(tmp_path, scenario)
    assert code == 0 and not result.unsafe and not result.infra
    assert result.mode is SweepMode.REPLAY and len(result.points) > 400
    assert bands <= {p.judged.band for p in result.points}
    settled = {p.judged.settled for p in result.points}
    assert settled == {Image.OLD, Image.NEW}  # both sides of the switch were cut
    assert all(p.judged.final is Image.NEW for p in result.points)  # and every retry landed
    html = (tmp_path / result.folder).parent.joinpath("index.html").read_text(encoding="utf-8")
    assert f"<h2>Sweep {scenario} (reference" in html and f'alt="sweep {scenario} outcome strip"' in html


def test_switch_before_verify_runs_a_refused_image_after_a_cut_and_repro_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = sweep(tmp_path, "unsigned-refused", "--firmware", "switch-before-verify")
    assert code == 1
    first = result.unsafe[0]
    assert first.judged.band is Band.OTADATA
    assert {p for p, _ in first.judged.problems} == {Problem.WRONG_IMAGE, Problem.REFUSED_BOOTED}
    assert "ready version=1.0.1" in result.first_unsafe_log
    capsys.readouterr()
    assert main(first.twin_repro.split()[1:]) == 1
    out = capsys.readouterr().out
    assert re.search(r"ready version=1\.0\.1 running=ota_1", out) and "UNSAFE refused image booted" in out


def test_resume_ahead_never_lands_a_retried_update_and_the_reference_does(tmp_path: Path) -> None:
    code, broken = sweep(tmp_path / "broken", "https-resume", "--firmware", "resume-ahead")
    assert code == 1
    kinds = {problem for p in broken.unsafe for problem, _ in p.judged.problems}
    assert kinds == {Problem.RETRY_FAILED}
    assert {p.judged.band for p in broken.unsafe} == {Band.DOWNLOAD}
    code, reference = sweep(tmp_path / "reference", "https-resume")
    assert code == 0 and not reference.unsafe


def test_a_farm_gets_a_calibrated_time_sweep(tmp_path: Path) -> None:
    with running_lab(tmp_path / "lab", 1) as farm:
        code, result = sweep(
            tmp_path / "reports", "https", "--farm", str(farm), "--points", "1", "--seed", "3"
        )
    assert code == 0 and result.mode is SweepMode.TIMED
    assert [p.judged.band for p in result.points] == [
        Band.DOWNLOAD,
        Band.OTADATA,
        Band.FIRST_BOOT,
        Band.CONFIRM,
    ]
    assert result.calibration.startswith("download 0.000+")
    assert not result.unsafe and not result.infra


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no sweep scenario 'nope'"),
        (["https", "--firmware", "aws-ota"], "not AWS jobs"),
        (["https", "--points", "3"], "need a --farm"),
        (["https", "--firmware", "no-such-model"], "unknown firmware model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["sweep", *args, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_repro_of_a_folder_that_is_no_sweep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repro", "--sweep", str(tmp_path), "--op", "3"]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
