"""Property tests over every parser of user input: whatever arrives, the answer is a value or
one InputError line, never another exception (which the CLI would have to call a bug)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.catalog import load_catalog
from rig.cutspec import parse_cut
from rig.errors import InputError
from rig.esp.image import parse
from rig.esp.otadata import OtaData
from rig.esp.partitions import PartitionTable
from rig.gate import load_policy
from rig.results.store import ResultsStore
from rig.yamlfile import parse_yaml
from twin.labconfig import load_lab_config

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

CUT_PIECES = st.sampled_from(
    [
        "power",
        "net",
        "brownout",
        "@",
        "bytes",
        "fraction",
        "random",
        "log",
        "wire",
        "=",
        ":",
        "..",
        "rst",
        "fin",
        "dead",
        "stall",
        "throttle",
        "off",
        "delay",
        "hold",
        "volts",
        "seed",
        "0",
        "1",
        "0.5",
        "-1",
        "nan",
        "inf",
        "1e9",
        "2s",
        "200ms",
        '"',
        "/",
        "x",
        "(",
        "",
    ]
)


def one_line(error: InputError) -> None:
    assert "\n" not in str(error) and str(error)


@SETTINGS
@given(st.lists(CUT_PIECES, max_size=12).map("".join) | st.text(max_size=40))
def test_cut_specs(text: str) -> None:
    try:
        spec = parse_cut(text)
    except InputError as error:
        one_line(error)
    else:
        spec.condition(seed=1)  # a parsed cut can always be armed


CSV_FIELDS = st.sampled_from(
    [
        "nvs",
        "ota_0",
        "app",
        "data",
        "ota",
        "factory",
        "0x9000",
        "0x10000",
        "1M",
        "64K",
        "-1",
        "",
        "x",
        "0x",
        "encrypted",
        "readonly",
        "255",
        "0xFFFFFFFFFF",
        "16M",
    ]
)


@SETTINGS
@given(
    st.lists(st.lists(CSV_FIELDS, max_size=7).map(",".join), max_size=6).map("\n".join) | st.text(max_size=80)
)
def test_partition_csvs(text: str) -> None:
    try:
        PartitionTable.from_csv(text, source="p.csv")
    except InputError as error:
        one_line(error)


@SETTINGS
@given(st.binary(max_size=0x2100))
def test_otadata_dumps(data: bytes) -> None:
    try:
        OtaData.from_bytes(data).describe(["ota_0", "ota_1"])
    except InputError as error:
        one_line(error)


@SETTINGS
@given(st.binary(max_size=4096) | st.binary(max_size=64).map(lambda b: b"\xe9" + b))
def test_app_images(data: bytes) -> None:
    try:
        parse(data)
    except InputError as error:
        one_line(error)


YAML_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
GATE_KEYS = st.sampled_from(
    [
        "bricks",
        "max_fails",
        "max_infra",
        "max_inconclusive",
        "min_boards",
        "groups",
        "flake_rate_max",
        "flake_window",
        "required_scenarios",
        "require_finished",
        "x",
    ]
)


@SETTINGS
@given(st.dictionaries(GATE_KEYS, YAML_VALUES, max_size=4))
def test_gate_policies(tmp_path: Path, document: object) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_policy(path, CATALOG)
    except InputError as error:
        one_line(error)


LAB_KEYS = st.sampled_from(["count", "throwaway", "defaults", "boards", "x"])
BOARD_KEYS = st.sampled_from(
    ["rollback", "anti_rollback", "signing", "flash_size", "http_timeout_ms", "firmware", "y"]
)


@SETTINGS
@given(
    st.dictionaries(
        LAB_KEYS,
        YAML_VALUES
        | st.dictionaries(BOARD_KEYS, YAML_SCALARS, max_size=3)
        | st.dictionaries(
            st.sampled_from(["b1", "b2"]), st.dictionaries(BOARD_KEYS, YAML_SCALARS, max_size=3)
        ),
        max_size=4,
    )
)
def test_lab_configs(tmp_path: Path, document: object) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_lab_config(path)
    except InputError as error:
        one_line(error)


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_is_yaml_or_one_error(text: str) -> None:
    try:
        parse_yaml(text, "f.yaml")
    except InputError as error:
        one_line(error)


@SETTINGS
@given(st.text(max_size=12), st.text(max_size=12) | st.integers(), st.text(max_size=20))
def test_results_databases_someone_edited(tmp_path: Path, outcome: str, boards: object, status: str) -> None:
    path = tmp_path / "results.db"
    if not path.exists():
        store = ResultsStore(path)
        from tests.unit.test_bad_inputs import _db

        _db(tmp_path)
        store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE outcomes SET outcome = ?", (outcome,))
        db.execute("UPDATE runs SET boards = ?, status = ?", (str(boards), status))
    with ResultsStore(path) as store:
        try:
            [store.run(run.run_id) for run in store.runs()]
            store.outcomes("r1")
        except InputError as error:
            one_line(error)


CATALOG = load_catalog()
