"""An ESP-IDF checkout and the rig's view of it for one run of Espressif's example tests.

The view is what Espressif's CI runner has: the example directories with their pytest files,
certificates and keys (symlinks to the checkout, never copies or edits), a build directory
per CI config beside each (lab builds on the virtual lab, the user's own `idf.py` builds on
a real farm), `EnvConfig.yml` with the farm's Wi-Fi for the tests that ask for it, and a
root conftest.py standing in for ESP-IDF's (rig/idf/ci_fixtures.py). The checkout itself is
only read: the tests write their mutated images into the view's build directories.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from rig.errors import InputError
from rig.esp.example_image import STOCK_PROJECTS
from rig.idf.builds import BuildSpec, write_build
from rig.idf.catalog import BUILDABLE, MARKERS

COMMON_TEST_METHODS = "tools/ci/python_packages/common_test_methods.py"
VERSION_HEADER = "components/esp_common/include/esp_idf_version.h"
# The env names Espressif's OTA tests read Wi-Fi credentials under (get_env_config_variable).
WIFI_ENVS = ("wifi_high_traffic", "flash_encryption_wifi_high_traffic")
CONFTEST = '''"""ota-rig's stand-in for ESP-IDF's root conftest.py (see rig/idf/ci_fixtures.py)."""

from rig.idf.ci_fixtures import *  # noqa: F403
from rig.idf.ci_fixtures import pytest_collection_modifyitems, pytest_configure  # noqa: F401
'''


@dataclass(frozen=True)
class Checkout:
    """A directory that holds ESP-IDF: its OTA examples and its CI's Python helpers."""

    root: Path

    @classmethod
    def at(cls, path: Path) -> Checkout:
        root = path.expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"{path}: no such directory (give the root of an ESP-IDF checkout)")
        if not (root / COMMON_TEST_METHODS).is_file():
            raise InputError(f"{path}: not an ESP-IDF checkout (no {COMMON_TEST_METHODS})")
        missing = [d for d in STOCK_PROJECTS.values() if not any((root / d).glob("pytest_*.py"))]
        if missing:
            raise InputError(f"{path}: no pytest file in {', '.join(missing)}")
        return cls(root)

    def version(self) -> str:
        """`v<major>.<minor>.<patch>` from esp_idf_version.h: a build's PROJECT_VER when the
        example has no version.txt (git describe of the checkout's tag)."""
        try:
            text = (self.root / VERSION_HEADER).read_text(encoding="utf-8")
        except OSError:
            return "v5.5.5"
        parts = [
            re.search(rf"#define ESP_IDF_VERSION_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR", "PATCH")
        ]
        if any(m is None for m in parts):
            return "v5.5.5"
        return "v" + ".".join(m[1] for m in parts if m is not None)

    def python_paths(self) -> list[Path]:
        """Where their pytest files import common_test_methods and idf_ci_utils from."""
        return [self.root / "tools" / "ci" / "python_packages", self.root / "tools" / "ci"]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    link.symlink_to(target, target_is_directory=target.is_dir())


def build_view(checkout: Checkout, view: Path, *, lab_builds: bool, wifi: tuple[str, str]) -> list[Path]:
    """Lay out the view in `view`; returns the pytest files to run (paths inside the view)."""
    view.mkdir(parents=True, exist_ok=True)
    for top in ("components", "tools"):
        _link(checkout.root / top, view / top)
    (view / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    markers = "".join(f"    {m}: Espressif CI runner label\n" for m in MARKERS)
    settings = "addopts =\njunit_family = xunit1\nfilterwarnings = ignore::DeprecationWarning\n"
    ini = f"[pytest]\n{settings}markers =\n{markers}"
    (view / "pytest.ini").write_text(ini, encoding="utf-8")
    ssid, password = wifi
    env = "".join(f"{name}:\n  ap_ssid: {ssid}\n  ap_password: {password}\n" for name in WIFI_ENVS)
    (view / "EnvConfig.yml").write_text(env, encoding="utf-8")
    tests: list[Path] = []
    for project, relative in STOCK_PROJECTS.items():
        source, target = checkout.root / relative, view / relative
        target.mkdir(parents=True, exist_ok=True)
        for entry in sorted(source.iterdir()):
            if entry.name.startswith("build"):
                if not lab_builds and entry.is_dir():
                    _link(entry, target / entry.name)  # the user's own idf.py build
                continue
            _link(entry, target / entry.name)
        if lab_builds:
            _write_lab_builds(checkout, project, source, target)
        tests += sorted(target.glob("pytest_*.py"))
    return tests


def _write_lab_builds(checkout: Checkout, project: str, source: Path, target: Path) -> None:
    ca_pem = _example_certificate(source)
    for config, ci in BUILDABLE[project].items():
        key = source / ci.signing_key if ci.signing_key else None
        if key is not None and not key.is_file():
            raise InputError(f"{source}: {ci.signing_key} (the signing key of config {config}) is missing")
        spec = BuildSpec(project, config, ci.choices, key, ci.table_offset)
        write_build(target, spec, version=checkout.version(), ca_pem=ca_pem)


def _example_certificate(source: Path) -> bytes:
    """server_certs/ca_cert.pem, which the example embeds and its test server presents."""
    path = source / "server_certs" / "ca_cert.pem"
    try:
        text = path.read_text(encoding="ascii")
        ssl.PEM_cert_to_DER_cert(text)
    except (OSError, ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: missing or not a PEM certificate") from None
    return text.encode()


def child_environment(checkout: Checkout, view: Path, ports_json: str) -> dict[str, str]:
    """The pytest child's environment: IDF_PATH is the view (EnvConfig.yml, gen_esp32part.py)."""
    paths = [str(p) for p in checkout.python_paths()]
    existing = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "IDF_PATH": str(view),
        "PYTHONPATH": os.pathsep.join([*paths, *([existing] if existing else [])]),
        "RIG_IDF_PORTS": ports_json,
        "ESPBAUD": os.environ.get("ESPBAUD", "921600"),
    }
