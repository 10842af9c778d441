"""External power commands: exit status decides, stderr explains, nothing goes through a shell."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from rig.errors import InfraError
from rig.power import create_driver


def test_true_and_false() -> None:
    driver = create_driver({"driver": "command", "on_command": "true", "off_command": "false"})
    driver.on()
    assert driver.is_on() is None
    with pytest.raises(InfraError, match=r"power command 'false' exited with status 1$"):
        driver.off()


def test_commands_run_with_their_arguments_and_cycle_uses_its_own(tmp_path: Path) -> None:
    script = tmp_path / "pdu.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')\n")
    log = tmp_path / "log with space.txt"
    base = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(log))}"
    driver = create_driver(
        {
            "driver": "command",
            "on_command": f"{base} port3 on",
            "off_command": f"{base} port3 off",
            "cycle_command": f"{base} port3 'cycle 2s'",
        }
    )
    driver.on()
    driver.off()
    driver.cycle()
    driver.cycle(off_seconds=0.0)  # an explicit off time: off, wait, on
    expected = ["port3 on", "port3 off", "port3 cycle 2s", "port3 off", "port3 on"]
    assert log.read_text().splitlines() == expected


def test_failure_reports_the_last_stderr_line(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\nprint('connecting', file=sys.stderr)\nsys.exit('PDU 10.0.0.9: login refused')\n"
    )
    driver = create_driver(
        {"driver": "command", "on_command": f"{sys.executable} {script}", "off_command": "true"}
    )
    with pytest.raises(InfraError, match=r"exited with status 1: PDU 10\.0\.0\.9: login refused$"):
        driver.on()


def test_missing_program_and_timeout(tmp_path: Path) -> None:
    missing = create_driver(
        {"driver": "command", "on_command": str(tmp_path / "nope"), "off_command": "true"}
    )
    with pytest.raises(InfraError, match="not found"):
        missing.on()
    slow = create_driver(
        {"driver": "command", "on_command": "sleep 30", "off_command": "true", "timeout_s": 0.2}
    )
    with pytest.raises(InfraError, match=r"did not finish within 0\.2 s"):
        slow.on()
