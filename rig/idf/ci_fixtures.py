"""What ESP-IDF's root conftest.py gives Espressif's example tests, for a run on the rig.

`rig idf-tests` writes a conftest.py at the root of its view of the checkout that imports
this module, so Espressif's pytest files run unmodified beside it: `config` (the CI config,
parametrized by the tests), `build_dir` (`build_<target>_<config>`, as their CI names build
directories), `port` (the farm board that holds that build) and the skips, each with the
reason a lab or farm cannot run the test. The rig's fast RFC2217 client is switched on for
esptool and the console, as in every rig process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rig.esp.example_image import STOCK_PROJECTS
from rig.idf.catalog import BUILDABLE, MARKERS, LabBoard, skip_reason
from rig.serialio import enable_fast_rfc2217

PORTS_ENV = "RIG_IDF_PORTS"  # JSON: lab board role (or "*", one farm board) -> serial URL
ANY_BOARD = "*"

enable_fast_rfc2217()


def _ports() -> dict[str, str]:
    try:
        ports = json.loads(os.environ.get(PORTS_ENV, "{}"))
    except ValueError:
        ports = {}
    return ports if isinstance(ports, dict) else {}


def _project_of(path: Path) -> str | None:
    for project, directory in STOCK_PROJECTS.items():
        if path.parent.as_posix().endswith(directory):
            return project
    return None


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", f"{marker}: Espressif CI runner label")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with its reason, every test the boards at hand cannot run."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        build = str(params.get("config", "default"))
        target = params.get("target")
        project = _project_of(item.path)
        markers = frozenset(mark.name for mark in item.iter_markers())
        reason = skip_reason(project or "", build, target, markers) if project else None
        if reason is None and project is not None:
            folder = item.path.parent / f"build_{target or 'esp32'}_{build}"
            if not folder.is_dir():
                reason = f"no build directory {folder.name} beside {item.path.name}"
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def config(request: pytest.FixtureRequest) -> str:
    """The CI config a test asks for (`sdkconfig.ci.<config>`), "default" otherwise."""
    return str(getattr(request, "param", None) or "default")


@pytest.fixture
def build_dir(target: str | None, config: str) -> str:
    return f"build_{target or 'esp32'}_{config}"


@pytest.fixture
def port(config: str, request: pytest.FixtureRequest) -> str | None:
    """The board holding this build: the lab's board for its bootloader, or the farm's one board."""
    ports = _ports()
    if ANY_BOARD in ports:
        return ports[ANY_BOARD]
    project = _project_of(Path(str(request.node.path)))
    built = BUILDABLE.get(project or "", {}).get(config)
    role = built.board if built is not None else LabBoard.PLAIN
    return ports.get(role.value)
