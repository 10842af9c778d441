"""junit.xml, summary.md and the `rig report` command on a small database."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rig.cli import main
from rig.report.build import write_report
from rig.report.data import collect
from rig.report.junit import render_junit
from rig.report.summary import render_summary
from rig.results import OutcomeClass, ResultsStore
from rig.results.from_pytest import ending_of
from rig.results.synthetic import make_outcome, make_sweep

from .conftest import run_info


def test_junit_maps_infra_to_error_and_bricks_to_failures(db: Path) -> None:
    store = ResultsStore(db)
    root = ET.fromstring(render_junit(store.run("bad"), store.outcomes("bad")))
    suite = root.find("testsuite")
    assert suite is not None
    counts = [suite.get(name) for name in ("tests", "failures", "errors", "skipped")]
    assert counts == ["8", "2", "1", "1"]
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert len(cases) == 8
    brick = cases[("power_cut.board-a", "test_cut_during_download[0.5]")].find("failure")
    assert brick is not None and brick.get("type") == "BRICK"
    assert brick.get("message") == "no app after 3 boots"
    infra = cases[("signature.board-b", "test_bad_signatures_rejected")]
    assert infra.find("error") is not None and infra.find("failure") is None
    assert cases[("happy_path.board-b", "test_three_generations")].find("skipped") is not None
    passed = cases[("happy_path.board-a", "test_three_generations")]
    assert [child.tag for child in passed] == ["system-out"]


def test_summary_lists_the_worst_outcomes_first(db: Path) -> None:
    text = render_summary(collect(ResultsStore(db), "bad"))
    assert "| 1 | 4 | 1 | 1 | 0 | 1 | 2 |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| BRICK", "| FAIL", "| INFRA"))]
    assert [row.split("|")[1].strip() for row in rows] == ["BRICK", "FAIL", "INFRA"]
    assert "stayed on \\| new app" in text


def test_report_files_land_in_the_run_folder_with_relative_artifact_links(db: Path, tmp_path: Path) -> None:
    files = write_report(ResultsStore(db), "bad", tmp_path / "out")
    assert files.html == tmp_path / "out" / "bad" / "index.html"
    page = files.html.read_text(encoding="utf-8")
    assert 'href="artifacts/power_cut-board-a/serial.log"' in page
    assert 'href="artifacts/power_cut-board-a/otadata.bin"' in page
    assert "http://" not in page and "https://" not in page
    assert files.junit.is_file() and files.summary.is_file()


def test_rig_report_cli_defaults_to_the_latest_run_next_to_the_db(db: Path) -> None:
    assert main(["report", "--db", str(db)]) == 0
    assert (db.parent / "bad" / "index.html").is_file()
    assert not (db.parent / "good").exists()
    assert main(["report", "--db", str(db), "--last", "2"]) == 0
    assert (db.parent / "good" / "summary.md").is_file()


def test_rig_report_unknown_run_is_one_line_exit_2(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "missing", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"rig: error: no run 'missing' in {db} (last runs: bad, good)"


def test_inconclusive_is_a_skip_with_its_reason_in_junit_and_its_own_badge_in_the_report(
    db: Path, tmp_path: Path
) -> None:
    store = ResultsStore(db)
    with store:
        store.start_run(run_info("missed", 9))
        store.record(make_outcome(
            run_id="missed", scenario="test_cut_during_download", scenario_group="power_cut",
            outcome=OutcomeClass.INCONCLUSIVE, message="fault landed after the switch",
        ))
        store.finish_run("missed", "finished")
    root = ET.fromstring(render_junit(store.run("missed"), store.outcomes("missed")))
    skipped = next(root.iter("testcase")).find("skipped")
    assert skipped is not None and skipped.get("message") == "INCONCLUSIVE: fault landed after the switch"
    assert "| 0 | 0 | 0 | 0 | 1 | 0 |" in render_summary(collect(store, "missed"))
    html = write_report(store, "missed", tmp_path).html.read_text(encoding="utf-8")
    assert '<span class="INCONCLUSIVE">1 inconclusive</span>' in html


def test_a_skip_whose_reason_says_inconclusive_is_classed_inconclusive() -> None:
    report = pytest.TestReport(
        "scenarios/test_power_cut.py::test_cut_during_download[b1]", ("x", 1, "t"), {}, "skipped",
        ("x", 1, "Skipped: INCONCLUSIVE: fault landed after the switch on 3 tries"), "call",
    )
    ending = ending_of(report)
    assert ending.outcome is OutcomeClass.INCONCLUSIVE
    assert ending.message == "fault landed after the switch on 3 tries"


def test_names_and_messages_are_text_in_every_output(db: Path, tmp_path: Path) -> None:
    """A `$` in a scenario name is not mathtext in the plots, serial garbage in a message does
    not make junit.xml unreadable, and both still show."""
    store = ResultsStore(db)
    with store:
        store.start_run(run_info("odd", 10))
        store.record(make_outcome(
            run_id="odd", scenario="test_cost_$\\undefined{x}$", scenario_group="power_cut",
            outcome=OutcomeClass.FAIL, message="serial said \x00\x07\x1b[31mboom\ufffe", cut_point=0.5,
        ))
        store.finish_run("odd", "finished")
    files = write_report(store, "odd", tmp_path)
    root = ET.fromstring(files.junit.read_bytes())
    failure = next(root.iter("testcase")).find("failure")
    assert failure is not None and failure.get("message") == "serial said [31mboom"
    assert "test_cost_$\\undefined{x}$" in files.html.read_text(encoding="utf-8")


def test_a_dollar_in_a_scenario_name_does_not_break_the_plots() -> None:
    import pandas as pd

    from rig.report.plots import cut_point_plot

    cuts = pd.DataFrame({"scenario": ["test_$\\undefined{x}$"], "cut_point": [0.5], "outcome": ["PASS"]})
    with pytest.raises(ValueError):  # what matplotlib does with it when left to parse math
        cut_point_plot.__wrapped__(cuts)  # type: ignore[attr-defined]
    assert cut_point_plot(cuts).startswith(b"\x89PNG")


def test_a_sweep_gets_its_strip_its_windows_with_repro_lines_and_the_first_unsafe_boot_log(
    db: Path, tmp_path: Path
) -> None:
    with ResultsStore(db) as store:
        store.record_sweep("bad", make_sweep())
    files = write_report(ResultsStore(db), "bad", tmp_path / "out")
    page = files.html.read_text(encoding="utf-8")
    assert "<h2>Sweep https (switch-before-verify, next, replay)</h2>" in page
    assert 'alt="sweep https outcome strip"' in page
    assert "rig repro --sweep reports/run-1/sweep --op 33" in page
    assert "<summary>All 3 unsafe cut points</summary>" in page and "op 33 torn 0.5" in page
    assert "ready version=1.0.1 running=ota_1 state=PENDING_VERIFY" in page
    assert make_sweep().headline() in files.summary.read_text(encoding="utf-8")


def test_the_report_shows_quarantine_this_runs_checks_and_infra_per_board(db: Path, tmp_path: Path) -> None:
    from rig.health.policy import apply_check
    from rig.health.records import HealthCheck, Step, StepResult, Trigger

    store = ResultsStore(db)
    failed = (StepResult(Step.READ_MAC, 1.02, False, "serial port: connection refused"),)
    healthy = tuple(StepResult(step, 0.5, True, "") for step in Step)
    at = "2024-05-02T02:00:00+00:00"
    store.record_health(HealthCheck("board-a", at, Trigger.BEFORE_RUN, healthy, "bad"))
    infra_check = HealthCheck("board-b", "2024-05-02T02:09:00+00:00", Trigger.AFTER_INFRA, failed, "bad")
    apply_check(store, infra_check, 1, may_return=False)
    html = write_report(store, "bad", tmp_path / "out").html.read_text(encoding="utf-8")
    section = html[html.index("<h2>Board health</h2>") :]
    assert "<h3>Quarantined" in section
    assert "<td>board-b</td><td>2024-05-02T02:09:00+00:00</td><td>1</td><td>read-mac: serial port" in section
    assert "<td>board-a</td><td>before-run</td><td>healthy</td><td>0.50 s</td>" in section
    assert "<td>board-b</td><td>after-infra</td><td>FAILED</td><td>1.02 s ✗</td><td>–</td>" in section
    assert 'alt="INFRA outcomes per board and run"' in section  # run "bad" had an INFRA on board-b
    summary = render_summary(collect(store, "bad"))
    assert "**board board-b quarantined since 2024-05-02T02:09:00+00:00: read-mac: serial port" in summary


def test_a_run_without_health_data_has_no_health_section(db: Path, tmp_path: Path) -> None:
    html = write_report(ResultsStore(db), "good", tmp_path / "out").html.read_text(encoding="utf-8")
    assert "Board health" not in html
