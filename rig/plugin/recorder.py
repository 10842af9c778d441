"""The controller's results writer: starts the run, commits each test's outcomes the moment
its report arrives, closes the run and writes its report."""

from __future__ import annotations

import re
import shlex

import pytest

from rig import __version__
from rig.errors import RigError
from rig.plugin.items import board_of, group_of, scenario_of
from rig.plugin.run import FARM_KEY, RUN_KEY, RunSettings, report_dir, selected
from rig.results.from_pytest import TEST_KEY, git_revision, outcomes_of, summary_line
from rig.results.model import RunInfo
from rig.results.store import ResultsStore, utc_now


def artifact_folder(nodeid: str) -> str:
    return "artifacts/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)


def test_facts(item: pytest.Item) -> dict[str, str]:
    run_dir = report_dir(item.config) / item.config.stash[RUN_KEY].run_id
    artifacts = artifact_folder(item.nodeid)
    return {
        "scenario": scenario_of(item),
        "group": group_of(item),
        "board": board_of(item),
        "artifacts": artifacts if (run_dir / artifacts).is_dir() else "",
    }


class Recorder:
    """The controller's results writer: starts the run, commits each test's outcomes the
    moment its report arrives, closes the run and writes its report."""

    def __init__(self, config: pytest.Config, store: ResultsStore, settings: RunSettings) -> None:
        self.config = config
        self.store = store
        self.settings = settings
        self.line: str | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        farm = self.config.stash[FARM_KEY]
        info = RunInfo(
            run_id=self.settings.run_id,
            started_at=utc_now(),
            farm=farm.name if farm is not None else "none",
            boards=tuple(spec.name for spec in selected(self.config)),
            seed=self.settings.seed,
            rig_version=__version__,
            git_revision=git_revision(self.config.rootpath),
            command=shlex.join(["pytest", *self.config.invocation_params.args]),
            finished_at=None,
            status="running",
        )
        self.store.start_run(info)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recordable = report.when == "call" or (report.when == "setup" and not report.passed)
        if recordable and any(key == TEST_KEY for key, _ in report.user_properties):
            for outcome in outcomes_of(report, self.settings.run_id):
                self.store.record(outcome)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.store.finish_run(self.settings.run_id, "interrupted" if interrupted else "finished")
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.settings.done:
            session.exitstatus = pytest.ExitCode.OK  # a resume of a complete run: nothing left to do
        # Imported here: pandas and matplotlib would slow every pytest start that loads the plugin.
        from rig.report.build import write_report

        try:
            files = write_report(self.store, self.settings.run_id, report_dir(self.config))
        except RigError as error:
            self.line = f"ota-rig report: not written: {error}"
            return
        self.line = summary_line(self.store, self.settings.run_id, files.html)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.line is not None:
            terminalreporter.write_line(self.line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.store.close()
