"""Where the installed suite and its fixtures are: found as packages (`importlib.resources`),
so a wheel install and a checkout resolve them the same way, whatever the working folder."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder(package: str) -> Path:
    # Both packages are plain folders on disk (a wheel or a checkout), never zipped: pytest
    # needs a real path to collect the scenarios from.
    return Path(str(files(package)))


def scenarios_dir() -> Path:
    return _folder("scenarios")


def fixture(*parts: str) -> Path:
    """A file under fixtures/, e.g. `fixture("partitions", "two_ota_large.csv")`."""
    return _folder("fixtures").joinpath(*parts)
