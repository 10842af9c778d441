"""Open a generated report in headless Chromium: the matrix and the plots must really render."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from filelock import FileLock

from rig.report.build import ReportFiles, write_report
from rig.results import ResultsStore
from rig.results.synthetic import HistoryShape, synthetic_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed on demand when running as root (as CI does)."""
    with FileLock(Path(tempfile.gettempdir()) / "ota-rig-chromium-install.lock"):
        found = shutil.which("chromium")
        if found:
            return found
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and installing it needs root (apt-get install chromium)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                pytest.skip(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        found = shutil.which("chromium")
        if not found:
            pytest.skip("apt-get installed chromium but it is not on PATH")
        return found


@pytest.fixture
def report(tmp_path: Path) -> ReportFiles:
    store = ResultsStore(tmp_path / "reports" / "results.db")
    last = ""
    for info, outcomes in synthetic_history(HistoryShape(outcomes=176, runs=4, boards=4, seed=3)):
        store.start_run(info)
        for outcome in outcomes:
            store.record(outcome)
        last = info.run_id
    return write_report(store, last, tmp_path / "reports")


class _Dom(HTMLParser):
    """Collects the tables' ids, image sources and matrix cell classes of the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.table_ids: list[str] = []
        self.images: list[str] = []
        self.cell_classes: list[str] = []
        self._in_matrix = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.table_ids.append(values.get("id") or "")
            self._in_matrix = values.get("id") == "matrix"
        elif tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "td" and self._in_matrix:
            self.cell_classes.append(values.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_matrix_and_plots_in_chromium(
    chromium: str, report: ReportFiles, tmp_path: Path
) -> None:
    url = report.html.resolve().as_uri()
    dumped = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert "matrix" in dom.table_ids
    assert len(dom.cell_classes) == 11 * 4
    assert set(dom.cell_classes) <= {"PASS", "FAIL", "BRICK", "INFRA", "SKIP", "none"}
    assert len(dom.images) == 4  # cut points, recovery, trend, INFRA per board (the runs have INFRA)
    for source in dom.images:
        header, _, payload = source.partition(",")
        assert header == "data:image/png;base64"
        assert base64.b64decode(payload).startswith(PNG_MAGIC)

    screenshot = tmp_path / "report.png"
    window = "--window-size=1400,2000"
    shot = _chromium(chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}", window, url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2000)
