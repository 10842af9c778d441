"""The virtual lab as the rig sees it: a separate process reached only through a farm file,
RFC2217 serial ports, a SCPI PSU and a relay pty."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import esptool
import pytest
import pyvisa
import serial

from rig.cli import main
from rig.farm import Farm, load_farm
from rig.lab_cli import LabHealth, lab_status, start_lab, stop_lab
from rig.labstate import LabStateFile
from rig.power import create_driver
from rig.serialio import enable_fast_rfc2217

POWER_ON_BANNER = b"rst:0x1 (POWERON_RESET)"
CONSOLE_WAIT_S = 20.0
QUIET_S = 0.5
MARKER_OFFSET = 0x300000


@dataclass(frozen=True)
class RunningLab:
    directory: Path
    farm: Farm


def esptool_run(url: str, *args: str) -> str:
    """Real esptool in-process over the rig's fast RFC2217 client; its output as text."""
    enable_fast_rfc2217()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        esptool.main(["--port", url, *args])
    return out.getvalue()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    directory = tmp_path_factory.mktemp("lab")
    out = directory.parent / f"{directory.name}-farm.yaml"
    assert main(["lab", "up", "--dir", str(directory), "--out", str(out)]) == 0
    yield RunningLab(directory, load_farm(out))
    stop_lab(directory)


def test_farm_file_describes_a_psu_board_and_a_relay_board(lab: RunningLab) -> None:
    farm = lab.farm
    assert farm.virtual
    assert [b.name for b in farm.boards] == ["b1", "b2"]
    assert all(b.serial.startswith("rfc2217://127.0.0.1:") for b in farm.boards)
    assert farm.power_spec(farm.board("b1"))["driver"] == "scpi-psu"
    assert farm.power_spec(farm.board("b2"))["driver"] == "lcus-relay"
    assert farm.select(tags=["relay"]) == (farm.board("b2"),)
    traits = farm.board("b1").firmware
    assert (traits.rollback, traits.anti_rollback, traits.signing) == (True, True, "rsa3072")


def test_esptool_reads_a_distinct_mac_from_every_board(lab: RunningLab) -> None:
    macs = []
    for board in lab.farm.boards:
        text = esptool_run(board.serial, "read-mac")
        found = re.search(r"MAC:\s+([0-9a-f:]{17})", text)
        assert found, text
        macs.append(found.group(1))
    assert macs == ["24:0a:c4:12:34:56", "24:0a:c4:12:34:57"]
    assert "ESP32 has no chip ID" in esptool_run(lab.farm.boards[0].serial, "chip-id")


def test_psu_answers_idn_through_pyvisa(lab: RunningLab) -> None:
    resource = lab.farm.instruments["psu1"]["resource"]
    manager = pyvisa.ResourceManager("@py")
    try:
        psu = manager.open_resource(resource, read_termination="\n", write_termination="\n", timeout=5000)
        assert isinstance(psu, pyvisa.resources.MessageBasedResource)
        assert psu.query("*IDN?").startswith("RIGOL TECHNOLOGIES,DP832,")
        assert psu.query(":OUTP? CH1") == "ON"
    finally:
        manager.close()


def drain_until_quiet(console: serial.Serial) -> None:
    """Read until the console stays silent for one read timeout; fails if it never does."""
    for _ in range(int(CONSOLE_WAIT_S / QUIET_S)):
        if not console.read(4096):
            return
    raise AssertionError("the console kept printing with the power off")


@pytest.mark.parametrize("name", ["b1", "b2"])
def test_power_driver_from_the_farm_cuts_and_restores_a_board(lab: RunningLab, name: str) -> None:
    board = lab.farm.board(name)
    with (
        create_driver(lab.farm.power_spec(board)) as power,
        serial.serial_for_url(board.serial, baudrate=board.baud, timeout=QUIET_S) as console,
    ):
        power.off()
        assert power.is_on() is False
        drain_until_quiet(console)
        power.on()
        console.timeout = CONSOLE_WAIT_S
        assert console.read_until(POWER_ON_BANNER).endswith(POWER_ON_BANNER)
        assert power.is_on() is True


def test_status_and_idempotent_up(lab: RunningLab) -> None:
    status = lab_status(lab.directory)
    assert status.health is LabHealth.RUNNING
    assert all(b.listening for b in status.boards)
    assert [i.name for i in status.instruments if i.answering] == ["psu1", "relay1"]
    assert main(["lab", "status", "--dir", str(lab.directory)]) == 0
    assert start_lab(lab.directory, boards=2) == lab.directory / "farm.yaml"
    assert lab_status(lab.directory).pid == status.pid
    assert main(["lab", "up", "--dir", str(lab.directory), "--boards", "3"]) == 2


def test_restart_keeps_flash_and_ports_and_down_leaves_no_process(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    marker = os.urandom(4096)
    (tmp_path / "marker.bin").write_bytes(marker)
    board = load_farm(start_lab(directory, boards=1)).boards[0]
    first_pid = lab_status(directory).pid
    assert first_pid is not None
    try:
        esptool_run(board.serial, "write-flash", hex(MARKER_OFFSET), str(tmp_path / "marker.bin"))
    finally:
        assert stop_lab(directory) == first_pid
    assert not process_exists(first_pid)
    assert lab_status(directory).health is LabHealth.STOPPED
    assert not (directory / "farm.yaml").exists()

    again = load_farm(start_lab(directory, boards=1)).boards[0]
    pid = lab_status(directory).pid
    assert pid is not None and pid != first_pid
    try:
        assert again.serial == board.serial
        readback = tmp_path / "readback.bin"
        esptool_run(again.serial, "read-flash", hex(MARKER_OFFSET), str(len(marker)), str(readback))
        assert readback.read_bytes() == marker
    finally:
        assert main(["lab", "down", "--dir", str(directory)]) == 0
    assert not process_exists(pid)
    assert main(["lab", "down", "--dir", str(directory)]) == 0


def test_a_lab_that_dies_on_start_reports_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text("defaults: {signing: rsa1024}\n")
    code = main(["lab", "up", "--dir", str(tmp_path / "lab"), "--config", str(config)])
    assert code == 2  # a bad lab config is the user's to fix
    error = capsys.readouterr().err
    assert "the lab exited with code 2" in error
    assert "rsa1024" in error


def test_stock_esptool_flashes_a_lab_board_by_hand_through_its_download_port(
    lab: RunningLab, tmp_path: Path
) -> None:
    """README "Flashing a lab board by hand": the unmodified esptool CLI, in its own process, over
    the board's raw download port; connecting resets into the ROM loader, closing back into the app."""
    state = LabStateFile.read(lab.directory)
    assert state is not None
    entry = state.boards[1]
    assert entry.download_port is not None
    status = {b.name: b.by_hand for b in lab_status(lab.directory).boards}
    assert status[entry.name] == f"socket://127.0.0.1:{entry.download_port}"
    data = os.urandom(64 * 1024)
    (tmp_path / "blob.bin").write_bytes(data)
    enable_fast_rfc2217()
    with serial.serial_for_url(entry.serial, baudrate=115200, timeout=CONSOLE_WAIT_S) as console:
        cli = [sys.executable, "-m", "esptool", "--port", status[entry.name], "--before", "no-reset",
               "--after", "no-reset", "--baud", "921600"]  # fmt: skip
        for command in (
            ["write-flash", hex(MARKER_OFFSET), "blob.bin"],
            ["verify-flash", hex(MARKER_OFFSET), "blob.bin"],
        ):
            done = subprocess.run([*cli, *command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "verification successful" in done.stdout.lower() or "verified" in done.stdout.lower()
        # The connection reset the chip into its ROM loader, closing it reset the chip to boot from flash.
        assert console.read_until(b"(DOWNLOAD_BOOT").endswith(b"(DOWNLOAD_BOOT")
        assert console.read_until(b"SPI_FAST_FLASH_BOOT").endswith(b"SPI_FAST_FLASH_BOOT")
