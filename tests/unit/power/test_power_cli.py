"""`rig power probe` against the virtual PSU: parameters typed from the driver, errors as one line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rig.cli import main
from twin.instruments import VirtualPsu


@pytest.fixture
def psu() -> Iterator[VirtualPsu]:
    with VirtualPsu() as instrument:
        yield instrument


def test_probe_switches_on_and_reports(psu: VirtualPsu, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["power", "probe", "--driver", "scpi-psu", "--param", f"resource={psu.resource}"]
    argv += ["--param", "channel=2", "--param", "volts=5", "--param", "check_errors=yes", "--switch", "on"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("scpi-psu rigol-dp8xx channel 2")
    assert out[1:] == ["cuts power: yes", "output: on", "current: 0.0000 A"]
    assert psu.channel(2).output and psu.channel(2).volts == 5.0


def test_probe_reports_bad_parameters_as_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["power", "probe", "--driver", "lcus-relay", "--param", "port=loop://", "--param", "channel=x"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "rig: error: power driver 'lcus-relay': parameter 'channel': input should be a valid integer, "
        "unable to parse string as an integer, got 'x'\n"
    )
    assert main(["power", "probe", "--driver", "lcus-relay", "--param", "baud=9600"]) == 2
    assert "parameter 'baud': unknown parameter (known: port, channel, baudrate" in capsys.readouterr().err


def test_probe_reports_a_dead_instrument_as_infrastructure(capsys: pytest.CaptureFixture[str]) -> None:
    psu = VirtualPsu()
    resource = psu.resource
    psu.close()
    argv = ["power", "probe", "--driver", "scpi-psu", "--param", f"resource={resource}"]
    assert main(argv) == 3
    assert capsys.readouterr().err.startswith(f"rig: error: PSU at {resource}")
