"""A real board's time sweep: the windows measured from one update's log, the cuts placed in them."""

from __future__ import annotations

import pytest

from rig.console import ConsoleLine
from rig.cutspec import parse_cut
from rig.errors import InfraError
from rig.logs.events import OtherLine
from rig.sweep.judge import Band
from rig.sweep.timed import calibrate, plan_cuts

LOG = [
    (10.00, "I (100) rig_agent: ok ota url=https://x/next"),
    (10.01, "I (110) rig_agent: ota begin url=https://x/next resume_from=0"),
    (10.50, "I (600) rig_agent: ota progress bytes=65536 total=131072"),
    (11.00, "I (1100) rig_agent: ota progress bytes=131072 total=131072"),
    (11.20, "I (1300) rig_agent: ota complete bytes=131072"),
    (11.25, "I (1350) rig_agent: ota restarting"),
    (11.60, "I (40) rig_agent: selftest begin behaviour=healthy"),
    (11.70, "I (140) rig_agent: app confirmed valid"),
]


def lines() -> list[ConsoleLine]:
    return [
        ConsoleLine(index=i, t=t, text=text, event=OtherLine(line=text, line_no=i))
        for i, (t, text) in enumerate(LOG)
    ]


def test_windows_are_measured_from_the_update_log() -> None:
    calibration = calibrate(lines(), 131072)
    assert [(band, first) for band, first, _, _ in calibration.windows] == [
        (Band.DOWNLOAD, ""),
        (Band.OTADATA, "rig_agent: ota progress bytes=131072 total=131072"),
        (Band.FIRST_BOOT, "rig_agent: ota restarting"),
        (Band.CONFIRM, "rig_agent: selftest begin behaviour=healthy"),
    ]
    starts = [round(start, 2) for _, _, start, _ in calibration.windows]
    lengths = [round(length, 2) for _, _, _, length in calibration.windows]
    assert starts == [0.0, 0.99, 1.24, 1.59] and lengths == [1.19, 0.25, 0.35, 0.1]


def test_a_log_without_the_update_is_an_infrastructure_problem() -> None:
    with pytest.raises(InfraError, match="never logged `ota begin`"):
        calibrate(lines()[:1], 131072)


def test_cuts_are_stratified_seeded_and_parse() -> None:
    calibration = calibrate(lines(), 131072)
    cuts = plan_cuts(calibration, 3, seed=7)
    assert cuts == plan_cuts(calibration, 3, seed=7) != plan_cuts(calibration, 3, seed=8)
    assert [c.band for c in cuts] == [b for b, *_ in calibration.windows for _ in range(3)]
    for band, _, start, length in calibration.windows:
        aims = [c.at_s for c in cuts if c.band is band]
        for k, aim in enumerate(aims):  # one cut in each third of the window
            assert start + k * length / 3 <= aim <= start + (k + 1) * length / 3
    for cut in cuts:
        parse_cut(cut.cut)
    assert all(c.cut.startswith("power@bytes=") for c in cuts if c.band is Band.DOWNLOAD)
