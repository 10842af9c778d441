"""One board of a 1-board virtual lab, driven the way scenarios drive it: flash into a known
state, read otadata back, talk PROTOCOL.md; and the plugin's per-board lock across processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rig.board import Board
from rig.errors import InputError
from rig.esp.otadata import OtaState
from rig.farm import Farm, load_farm
from rig.imageset import ImageSet, prepare_image_set
from rig.lab_cli import running_lab

WAIT_S = 60.0

HOLDER = '''
import os
import time
from pathlib import Path

import pytest

EVENTS = Path(os.environ["LOCK_EVENTS"])
WHO = os.environ["LOCK_WHO"]


def note(text):
    with EVENTS.open("a") as events:
        events.write(f"{WHO} {text}\\n")


@pytest.fixture
def announce():
    note("asks")


def test_hold(announce, board):
    note("in")
    release = Path(os.environ["LOCK_RELEASE"])
    deadline = time.monotonic() + 120
    while not release.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    note("out")
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with running_lab(tmp_path_factory.mktemp("lab"), boards=1) as farm:
        yield farm


@pytest.fixture(scope="module")
def farm(lab: Path) -> Farm:
    return load_farm(lab)


@pytest.fixture(scope="module")
def images(farm: Farm, tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    signing = {b.firmware.signing for b in farm.boards}
    return prepare_image_set(tmp_path_factory.mktemp("images"), base=None, key=None, signing=signing)


@pytest.fixture(scope="module")
def board(farm: Farm, images: ImageSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    """b1, flashed once into the known state every test here starts from."""
    with Board(farm, farm.board("b1"), tmp_path_factory.mktemp("b1")) as opened:
        opened.prepare(images.data("base"))
        yield opened


def test_prepare_reaches_a_known_state_from_a_virgin_otadata(board: Board, images: ImageSet) -> None:
    mark = board.console.mark()
    ready = board.prepare(images.data("base"))
    assert (ready.running, ready.version) == ("ota_0", images.base_version)
    log = board.console.text(since=mark)
    assert "Set actual ota_seq=1 in otadata[0]" in log  # otadata was erased: first boot writes it
    assert ready.line_index >= mark


def test_read_otadata_shows_ota_0_selected_and_valid(board: Board) -> None:
    otadata = board.read_otadata()
    active = otadata.active_entry
    assert active is not None
    assert (active.seq, active.state) == (1, OtaState.VALID)
    assert otadata.boot_slot(2) == 0
    assert (board.artifacts / "otadata.bin").stat().st_size == board.table.find("otadata").size
    # esptool left the board in download mode; a reset runs the app again, unchanged
    assert board.reset_and_wait_ready(20.0).running == "ota_0"
    assert board.read_otadata() == otadata
    board.reset_and_wait_ready(20.0)


def test_status_and_commands_round_trip(board: Board) -> None:
    fields = board.status()
    assert fields["running"] == fields["boot"] == "ota_0"
    assert fields["state"] == "VALID" and fields["ota"] == "idle"
    assert board.command("wifi lab-ap secret") == "ssid=lab-ap"
    settings = board.command("ota-config timeout_ms=7000 resume=off")
    assert "timeout_ms=7000" in settings.split() and "resume=off" in settings.split()
    with pytest.raises(InputError, match=r"^board b1: ota-config refused: bad setting colour=red$"):
        board.command("ota-config colour=red")


def test_an_unknown_command_is_refused_with_the_devices_reason(board: Board) -> None:
    with pytest.raises(InputError, match=r"^board b1: bogus refused: unknown command$"):
        board.command("bogus")


def run_holder(tmp_path: Path, farm_path: Path, who: str, release: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOCK_EVENTS": str(tmp_path / "events"),
        "LOCK_WHO": who,
        "LOCK_RELEASE": str(release),
    }
    argv = [sys.executable, "-m", "pytest", "test_holder.py", "--farm", str(farm_path), "-q"]
    argv += ["-p", "no:cacheprovider", "-p", "no:labgrid", "--report-dir", str(tmp_path / f"reports-{who}")]
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events"
    return path.read_text().splitlines() if path.exists() else []


def wait_for_event(tmp_path: Path, event: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while event not in events(tmp_path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_second_run_waits_for_the_board_until_the_first_releases_it(
    board: Board, lab: Path, tmp_path: Path
) -> None:
    board.console.close()  # this module's own handle on b1 steps aside for the two runs
    try:
        document = yaml.safe_load(lab.read_text(encoding="utf-8"))
        document["name"] = f"locktest-{uuid.uuid4().hex[:8]}"  # a lock of its own in the shared lock dir
        farm_path = tmp_path / "farm.yaml"
        farm_path.write_text(yaml.safe_dump(document), encoding="utf-8")
        (tmp_path / "test_holder.py").write_text(HOLDER, encoding="utf-8")
        (tmp_path / "released-now").touch()
        first = run_holder(tmp_path, farm_path, "A", tmp_path / "release-A")
        assert wait_for_event(tmp_path, "A in", WAIT_S), first.communicate()[0].decode()
        second = run_holder(tmp_path, farm_path, "B", tmp_path / "released-now")
        assert wait_for_event(tmp_path, "B asks", WAIT_S), second.communicate()[0].decode()
        assert not wait_for_event(tmp_path, "B in", 1.0)  # B is held at the lock
        (tmp_path / "release-A").touch()
        outputs = [process.communicate(timeout=WAIT_S)[0].decode() for process in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], outputs
        assert events(tmp_path) == ["A asks", "A in", "B asks", "A out", "B in", "B out"]
    finally:
        board.console.open()


def test_prepare_erases_the_other_slot_and_read_state_hashes_regions_on_the_chip(
    board: Board, images: ImageSet
) -> None:
    """Stale bytes in the target slot could hide a wrong resume offset: prepare blanks them, and
    the read-back's on-chip MD5 shows both the running image and the blank slot as they are."""
    base = images.data("base")
    board.prepare(base, blank_bytes=len(base))
    ota_0, ota_1 = board.table.ota_slots
    blank = -(-len(base) // 0x1000) * 0x1000
    state = board.read_state([(ota_0.offset, len(base)), (ota_1.offset, blank)])
    assert state.md5[(ota_0.offset, len(base))] == hashlib.md5(base).hexdigest()
    assert state.md5[(ota_1.offset, blank)] == hashlib.md5(b"\xff" * blank).hexdigest()
    assert state.otadata.boot_slot(2) == 0
    board.reset_and_wait_ready(20.0)


def test_prepare_powers_a_board_a_killed_run_left_off(board: Board, images: ImageSet) -> None:
    """A run killed mid-cut leaves the supply off; the next known state starts by powering up."""
    board.power.off()
    assert board.power.is_on() is False
    ready = board.prepare(images.data("base"), blank_bytes=images.largest_size())
    assert board.power.is_on() is True
    assert ready.running == "ota_0" and ready.state == "VALID"
