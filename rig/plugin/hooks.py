"""The plugin's hooks: options, one test item per selected board, and reports that say
when a failure was the rig's (INFRA) or when a fault missed its window (INCONCLUSIVE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pluggy
import pytest

from rig.catalog import MARKERS
from rig.errors import InfraError, RigError, WindowMissed
from rig.farm import load_farm
from rig.plugin.health import INFRA_SEEN
from rig.plugin.items import board_of, board_spec_of, scenario_of
from rig.plugin.recorder import Recorder, test_facts
from rig.plugin.run import (
    DEFAULT_REPORT_DIR,
    FARM_KEY,
    RUN_KEY,
    WIRE_KEY,
    RunSettings,
    decide,
    is_rig_run,
    results_db,
    selected,
)
from rig.results.from_pytest import INCONCLUSIVE_PREFIX, INFRA_PREFIX, INFRA_TAG, TEST_KEY
from rig.results.store import ResultsStore


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ota-rig")
    group.addoption("--farm", help="farm file (YAML) describing the boards and instruments")
    group.addoption("--boards", default="", help="comma-separated board names (default: all)")
    group.addoption("--board-tags", default="", help="comma-separated tags a board must have")
    group.addoption("--seed", type=int, default=None, help="seed for random cut points (default: random)")
    group.addoption(
        "--report-dir", default=None, help=f"where run folders are written (default: {DEFAULT_REPORT_DIR})"
    )
    group.addoption("--run-id", default=None, help="run identifier (default: UTC timestamp)")
    group.addoption("--results-db", default=None, help="results database (default: <report-dir>/results.db)")
    group.addoption(
        "--resume", default=None, metavar="RUN_ID", help="continue RUN_ID: run only what it has not recorded"
    )
    group.addoption("--base-image", default=None, help="the firmware build to derive the image set from")
    group.addoption("--signing-key", default=None, help="PEM key that signed the base image")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    farm_path = config.getoption("--farm")
    if farm_path and config.pluginmanager.has_plugin("labgrid"):
        raise pytest.UsageError(
            "labgrid's pytest plugin is loaded and its `target` fixture takes over pytest-embedded's: "
            "run the rig's scenarios with -p no:labgrid (the repository's pytest addopts and `rig run` do)"
        )
    try:
        config.stash[FARM_KEY] = load_farm(Path(farm_path)) if farm_path else None
    except RigError as error:
        raise pytest.UsageError(str(error)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        settings = RunSettings.from_wire(workerinput[WIRE_KEY])
    else:
        store = ResultsStore(results_db(config)) if is_rig_run(config) else None
        settings = decide(config, store)
        if store is not None and not config.option.collectonly:
            config.pluginmanager.register(Recorder(config, store, settings), "ota_rig_recorder")
    config.stash[RUN_KEY] = settings
    # Fixtures and the header read the options; give them the decided values.
    config.option.run_id = settings.run_id
    config.option.seed = settings.seed


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's run id, seed and resume keys to a worker."""
    node.workerinput[WIRE_KEY] = node.config.stash[RUN_KEY].to_wire()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "board_spec" in metafunc.fixturenames:
        specs = selected(metafunc.config)
        metafunc.parametrize("board_spec", specs, ids=[s.name for s in specs], scope="function")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` on a farm: one worker per board (rig/plugin/scheduling.py)."""
    if config.getvalue("dist") != "loadgroup" or config.stash[FARM_KEY] is None:
        return None
    from rig.plugin.scheduling import BoardScheduling

    return BoardScheduling(config, log, [spec.name for spec in selected(config)])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    done = config.stash[RUN_KEY].done
    quarantined = config.stash[RUN_KEY].quarantined
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        spec = board_spec_of(item)
        if spec is not None and spec.name in quarantined:
            item.add_marker(pytest.mark.skip(reason=quarantined[spec.name]))
        (deselected if (scenario_of(item), board_of(item)) in done else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    # A burnt eFuse makes the base image unbootable on that board for good, so such tests go
    # last (a stable sort: the same order on every xdist worker).
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("burns_efuse") is not None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    farm = config.stash[FARM_KEY]
    if farm is None:
        return ["ota-rig: no --farm given (rig scenarios will be skipped)"]
    boards = ", ".join(b.name for b in selected(config))
    return [
        f"ota-rig: farm {farm.name} ({boards}), run {config.getoption('--run-id')}, "
        f"seed {config.getoption('--seed')}"
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Tag infrastructure failures so reports never count them as firmware failures, and
    carry what the controller's recorder needs to know about the item on the report."""
    outcome = yield
    report = cast("pluggy.Result[pytest.TestReport]", outcome).get_result()
    if call.excinfo is not None and isinstance(call.excinfo.value, WindowMissed):
        # Not a verdict either way: pytest shows it skipped, the store keeps INCONCLUSIVE.
        report.outcome = "skipped"
        report.longrepr = (
            str(item.path),
            item.reportinfo()[1] or 0,
            f"Skipped: {INCONCLUSIVE_PREFIX}{call.excinfo.value}",
        )
    elif call.excinfo is not None and isinstance(call.excinfo.value, InfraError):
        report.user_properties.append(INFRA_TAG)
        item.stash[INFRA_SEEN] = True
        report.longrepr = f"{INFRA_PREFIX}{call.excinfo.value}"
    elif call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    if is_rig_run(item.config):
        report.user_properties.append((TEST_KEY, test_facts(item)))
