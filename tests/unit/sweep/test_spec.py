"""Sweep scenarios: the shipped ones load, and every mistake is one line naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.errors import InputError
from rig.resources import scenarios_dir
from rig.sweep.spec import find_sweep, load_sweep_spec, must_land

SHIPPED = sorted(p.stem for p in (scenarios_dir() / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_sweep_loads(name: str) -> None:
    spec = load_sweep_spec(find_sweep(name))
    assert spec.name == name and spec.fractions and spec.image_size >= 16 * 1024


def test_the_default_sweep_is_https() -> None:
    assert find_sweep(None).stem == "https"


def test_an_unknown_sweep_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"no sweep scenario 'nope' \(known: .*https"):
        find_sweep("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nretries: 2\n", r"x.yaml:2: retries: unknown key"),
        ("name: x\nagent: {resume_from: '1'}\n", r"x.yaml:2: agent.resume_from: unknown agent setting"),
        ("name: x\nboard: {rollbak: false}\n", r"x.yaml:2: board.rollbak: unknown board setting"),
        ("name: x\nimage_size: 8MiB\n", r"x.yaml:2: image_size: must lie between"),
        ("name: x\nimage_size: lots\n", r"x.yaml:2: image_size: "),
        (
            "name: x\nfractions: [0.5, 1.0]\n",
            r"x.yaml:2: fractions\[1\]: 1.0 must lie strictly between 0 and 1",
        ),
        ("- name\n", r"x.yaml:1: a sweep scenario must be a mapping"),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        load_sweep_spec(path)
    assert "\n" not in str(caught.value)


def test_an_update_must_land_or_be_refused_not_roll_back() -> None:
    assert must_land("accept", "next") is True
    assert must_land("reject_at_verify", "unsigned") is False
    with pytest.raises(InputError, match="must boot once and roll back"):
        must_land("roll_back", "crasher")
