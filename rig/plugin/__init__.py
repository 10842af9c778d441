"""The rig's pytest plugin: farm, boards, images, server, proxy and sessions as fixtures.

Registered through the `pytest11` entry point, so `pytest scenarios/ --farm F` works
in any checkout that installed ota-rig. One xdist worker per board (`-n <boards>
--dist loadgroup`, scheduled by `scheduling.py`), a file lock per board so two runs never share one, and one
artifact folder per test holding its serial log, server log and otadata dumps.

- `run.py`: what every process of a run agrees on (run id, seed, resume keys, folders);
- `hooks.py`: options, collection (one item per board), reports tagged INFRA/INCONCLUSIVE;
- `recorder.py`: the controller's single writer of the results store and the report;
- `fixtures.py`: the fixtures, all built through `rig.builder`.
- `health.py`: board health checks inside a run (before a board's first scenario, after INFRA).
"""

from rig.plugin.fixtures import (
    artifacts,
    aws_images,
    board,
    board_health,
    certs,
    farm,
    image_library,
    images,
    ota,
    ota_mqtt,
    private_dir,
    run_dir,
    seed,
    services,
    wrong_certs,
)
from rig.plugin.hooks import (
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_configure_node,
    pytest_generate_tests,
    pytest_report_header,
    pytest_runtest_makereport,
    pytest_xdist_make_scheduler,
)

__all__ = [
    "artifacts",
    "aws_images",
    "board",
    "board_health",
    "certs",
    "farm",
    "image_library",
    "images",
    "ota",
    "ota_mqtt",
    "private_dir",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_generate_tests",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_xdist_make_scheduler",
    "run_dir",
    "seed",
    "services",
    "wrong_certs",
]  # fmt: skip
