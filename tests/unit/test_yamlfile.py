"""Every YAML input loads the same way: what YAML would silently accept is refused, on its line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.errors import InputError
from rig.farm import load_farm
from rig.yamlfile import load_yaml, parse_yaml


def error(text: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_yaml(text, "f.yaml")
    return str(caught.value)


def test_a_key_given_twice_is_refused_at_its_second_line() -> None:
    assert error("name: a\nboards: []\nboards: [x]\n") == "f.yaml:3: boards: given twice (first on line 2)"
    assert error("a:\n  b: 1\n  b: 2\n") == "f.yaml:3: a.b: given twice (first on line 2)"


def test_keys_must_be_text() -> None:
    assert error("1: x\nname: y\n") == "f.yaml:1: key 1 must be text"
    assert error("a:\n  [1, 2]: x\n") == "f.yaml:2: a.key 'sequence' must be text"


def test_lines_follow_keys_and_list_items() -> None:
    document = parse_yaml("a: 1\nb:\n  - x: 0x10\n    y: true\n  - z\n", "f.yaml")
    assert document.data == {"a": 1, "b": [{"x": 16, "y": True}, "z"]}
    assert document.line_of(("b",)) == 2 and document.line_of(("b", 0, "y")) == 4
    assert document.line_of(("b", 1, "nothing", "here")) == 5  # the closest enclosing entry


def test_a_file_that_is_not_utf8_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_bytes(b"name: bench\nboards:\n  - name: caf\xe9\n")
    with pytest.raises(InputError, match=r"farm.yaml:3: farm file is not UTF-8 text$"):
        load_yaml(path, "farm file")


def test_broken_yaml_names_its_line() -> None:
    assert error("a: [\n").startswith("f.yaml:2: ")


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)
FARM_KEYS = st.sampled_from(["name", "boards", "network", "instruments", "virtual", "x"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(FARM_KEYS, YAML_VALUES, max_size=4))
def test_any_mapping_is_a_farm_or_one_input_error(
    tmp_path_factory: pytest.TempPathFactory, document: object
) -> None:
    path = tmp_path_factory.mktemp("farm") / "farm.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_farm(path)
    except InputError as caught:
        assert "\n" not in str(caught) and str(caught).startswith(str(path))
