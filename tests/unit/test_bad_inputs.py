"""The bad-input corpus: what a new user types, as `rig` sees it.

Every case runs the real CLI (`rig.cli.main`) and must end in exactly one line on stderr and
exit 2 (bad input) — never a traceback, never exit 1 (which says the device or the release
failed), never 0 (accepted), and never 3: a mistake in what the user typed must be named as
such before any board or instrument is tried (where a farm's hardware is absent here, exit 3
would mean the mistake went unnoticed). Cases are built from a good example of
each input by changing one thing, so each row names the one mistake it makes.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rig.cli import main
from rig.esp.testimage import make_test_app
from rig.results.model import RunInfo
from rig.results.store import ResultsStore
from rig.results.synthetic import make_outcome

GOOD_FARM: dict[str, Any] = {
    "name": "bench",
    "network": {"bind": "127.0.0.1"},
    "instruments": {"psu1": {"kind": "scpi-psu", "resource": "TCPIP::127.0.0.1::9::SOCKET", "volts": 3.3}},
    "boards": [
        {"name": "b1", "serial": "/dev/ttyUSB0", "power": {"instrument": "psu1", "channel": 1}},
        {"name": "b2", "serial": "/dev/ttyUSB1", "power": {"driver": "lcus-relay", "port": "/dev/ttyUSB9"}},
    ],
}
GOOD_CSV = (
    "nvs,data,nvs,0x9000,0x6000,\notadata,data,ota,,0x2000,\n"
    "ota_0,app,ota_0,0x20000,1M,\nota_1,app,ota_1,,1M,\n"
)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # the command line, given the case's own folder


def _farm_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    farm = copy.deepcopy(GOOD_FARM)
    change(farm)
    return farm


def _set(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(farm: dict[str, Any]) -> None:
        node: Any = farm
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DELETE = object()
BAD_VALUES: dict[tuple[str | int, ...], list[object]] = {
    ("name",): [[1], {"a": 1}, ""],
    ("virtual",): ["no", 1, None if False else "yes"],
    ("network",): [[], "lan", 5],
    ("network", "bind"): ["999.1.1.1", "host name", "0.0.0.0", 5, ""],
    ("network", "board_facing_address"): ["nowhere", 10],
    ("network", "fault_path"): ["veth", True],
    ("network", "port"): [8443],
    ("instruments",): [[], "psu1"],
    ("instruments", "psu1"): ["scpi", []],
    ("instruments", "psu1", "kind"): ["psu", 5, _DELETE],
    ("instruments", "psu1", "volts"): ["high", -1, 22, 6.0, float("nan"), float("inf"), True],
    ("instruments", "psu1", "current_limit"): [0, -0.5, 50, "lots"],
    ("instruments", "psu1", "channel"): [0, "1", True, 1.5],
    ("instruments", "psu1", "resource"): [_DELETE, "", 7],
    ("instruments", "psu1", "timeout_ms"): [0, -5],
    ("instruments", "psu1", "colour"): ["red"],
    ("boards",): [[], "b1", {"b1": {}}, None],
    ("boards", 0): ["b1", [], 5],
    ("boards", 0, "name"): [_DELETE, "", ["b1"], "b2"],
    ("boards", 0, "serial"): [_DELETE, "ttyUSB0", "http://host:80", 5, "/dev/ttyUSB1"],
    ("boards", 0, "chip"): ["esp8266", "ESP32", 32],
    ("boards", 0, "baud"): ["fast", True, -9600, 0, 10**9, 115200.5],
    ("boards", 0, "flash_baud"): [100, "x", 10**8],
    ("boards", 0, "reset"): ["hard", 1],
    ("boards", 0, "flash_size"): ["3MB", "4 GiB", "lots", -4, "0x", "1KB"],
    ("boards", 0, "partition_table"): ["", 5],
    ("boards", 0, "power"): ["psu1", [], {"channel": 1}, {"instrument": "psu9"}, {"driver": "scpi-pus"}],
    ("boards", 0, "power", "channel"): [0, "two", None],
    ("boards", 0, "power", "off_seconds"): [0, -1, "soon", float("nan")],
    ("boards", 0, "power", "volts"): ["high", 30],
    ("boards", 0, "network"): [[], {"wlan": {}}, {"wifi": ["ssid"]}, {"wifi": {"pasword": "x"}}],
    ("boards", 0, "firmware"): [[], {"rollback": "yes"}, {"signing": "md5"}, {"secure": 1}],
    ("boards", 0, "tags"): ["psu", [1], [""]],
    ("boards", 0, "speed"): [9600],
    ("boards", 1, "power", "channel"): [300, 0, -1],
    ("boards", 1, "power", "baudrate"): [0, 10**7],
    ("boards", 1, "power", "port"): [_DELETE, ""],
    ("boards", 1, "power", "baud"): [9600],
}
FARM_TEXTS = {
    "duplicated-boards-key": "name: a\nboards: []\nboards:\n  - {name: b1, serial: /dev/ttyUSB0}\n",
    "duplicated-board-key": "boards:\n  - name: b1\n    name: b2\n    serial: /dev/ttyUSB0\n",
    "int-and-text-keys": "1: x\nname: a\nboards: [{name: b1, serial: /dev/ttyUSB0}]\n",
    "list-key": "? [a, b]\n: x\n",
    "scalar-document": "just text\n",
    "list-document": "- boards\n",
    "empty-file": "",
    "only-a-comment": "# nothing\n",
    "broken-yaml": "boards: [\n",
    "tab-indented": "boards:\n\t- name: b1\n",
    "anchor-to-nothing": "boards: *nope\n",
}


def _farm_cases() -> Iterator[Case]:
    for path, values in BAD_VALUES.items():
        for value in values:
            label = (
                "farm:" + ".".join(map(str, path)) + "=" + ("<deleted>" if value is _DELETE else repr(value))
            )
            document = _farm_with(_set(path, value))
            yield Case(label, lambda d, doc=document: ["farm", "check", _yaml(d, doc)])
    for label, text in FARM_TEXTS.items():
        yield Case(f"farm-text:{label}", lambda d, t=text: ["farm", "check", _text(d, "farm.yaml", t)])
    yield Case("farm:not-utf8", lambda d: ["farm", "check", _bytes(d, "farm.yaml", b"name: caf\xe9\n")])
    yield Case("farm:a-directory", lambda d: ["farm", "check", str(d)])
    yield Case("farm:missing", lambda d: ["farm", "check", str(d / "nope.yaml")])


GATE_TEXTS = {
    "negative-bricks": "bricks: -1\n",
    "text-bricks": "bricks: none\n",
    "unknown-key": "brick: 0\n",
    "duplicate-key": "bricks: 0\nbricks: 1\n",
    "group-rule-text": "groups: {rollback: sometimes}\n",
    "group-rate-above-1": "groups: {rollback: 1.5}\n",
    "group-unknown": "groups: {rolback: all_pass}\n",
    "group-with-markup": "groups: {'[bold]x[/]': all_pass}\n",
    "groups-list": "groups: [rollback]\n",
    "flake-rate-2": "flake_rate_max: 2\n",
    "flake-rate-nan": "flake_rate_max: .nan\n",
    "flake-window-0": "flake_window: 0\n",
    "flake-window-text": "flake_window: two weeks\n",
    "required-text": "required_scenarios: test_a\n",
    "required-unknown": "required_scenarios: [test_nope]\n",
    "required-markup": "required_scenarios: ['[red]x[/]']\n",
    "required-number": "required_scenarios: [5]\n",
    "require-finished-text": "require_finished: yes please\n",
    "min-boards-float": "min_boards: 1.5\n",
    "max-fails-bool": "max_fails: true\n",
    "list-document": "- bricks\n",
    "scalar-document": "strict\n",
    "broken-yaml": "bricks: [\n",
    "int-key": "1: 0\n",
    "max-infra-negative": "max_infra: -3\n",
}


def _gate_cases() -> Iterator[Case]:
    for label, text in GATE_TEXTS.items():
        yield Case(
            f"gate:{label}", lambda d, t=text: ["gate", "--policy", _text(d, "gate.yaml", t), "--db", _db(d)]
        )
    yield Case(
        "gate:not-utf8", lambda d: ["gate", "--policy", _bytes(d, "gate.yaml", b"\xff\xfe"), "--db", _db(d)]
    )
    yield Case("gate:missing-policy", lambda d: ["gate", "--policy", str(d / "nope.yaml"), "--db", _db(d)])
    yield Case(
        "gate:unknown-run",
        lambda d: ["gate", "--policy", _text(d, "g.yaml", "bricks: 0\n"), "--db", _db(d), "nope"],
    )
    yield Case(
        "gate:run-id-escape",
        lambda d: ["gate", "--policy", _text(d, "g.yaml", "bricks: 0\n"), "--db", _db(d), "../x"],
    )


CUTS = [
    "",
    "power",
    "power@",
    "power@bytes",
    "power@bytes=",
    "power@bytes=lots",
    "power@bytes=-5",
    "power@bytes=1.5",
    "power@bites=1",
    "zap@bytes=1",
    "power@fraction=1.5",
    "power@fraction=0",
    "power@fraction=-0.1",
    "power@fraction=nan",
    "power@fraction=inf",
    "power@random=0.5",
    "power@random=nan..nan",
    "power@random=inf..inf",
    "power@random=0.9..0.1",
    "power@random=0.5..5000",
    "power@random=a..b",
    "power@bytes=1:off=soon",
    "power@bytes=1:off=0s",
    "power@bytes=1:off=-1s",
    "power@bytes=1:delay=x",
    "power@bytes=1:rst",
    "power@bytes=1:seed=3",
    "power@random=0.1..0.9:seed=x",
    "net@bytes=1",
    "net@bytes=1:rst:fin",
    "net@bytes=1:rst=2",
    "net@bytes=1:stall",
    "net@bytes=1:stall=0s",
    "net@bytes=1:stall=nan",
    "net@bytes=1:throttle=0",
    "net@bytes=1:throttle=fast",
    "net@fraction=0:rst",
    "net@bytes=1:dead=1",
    "net@bytes=1:volts=2",
    "brownout@bytes=1",
    "brownout@bytes=1:volts=high",
    "brownout@bytes=1:volts=-1",
    "brownout@bytes=1:volts=inf",
    "brownout@bytes=1:volts=2:hold=0s",
    'power@log="abc',
    "power@log=/a(/",
    'power@log=""',
    "power@log=//",
    'power@log="x"y',
    "power@wire=1",
    "net@wire=x:rst",
    "power@bytes=1::",
    "power@bytes=1:off",
]


def _cut_cases() -> Iterator[Case]:
    for cut in CUTS:
        yield Case(f"cut:{cut!r}", lambda d, c=cut: ["repro", "--farm", str(d / "no-farm.yaml"), "--cut", c])
    yield Case(
        "repro:byte-past-the-image",
        lambda d: ["repro", "--farm", _yaml(d, _lab_like_farm()), "--cut", "power@bytes=99999999"],
    )
    yield Case(
        "repro:brownout-above-supply",
        lambda d: ["repro", "--farm", _yaml(d, _lab_like_farm()), "--cut", "brownout@bytes=1000:volts=22"],
    )
    yield Case(
        "repro:unknown-board", lambda d: ["repro", "--farm", _yaml(d, _lab_like_farm()), "--board", "b9"]
    )
    yield Case(
        "repro:image-missing",
        lambda d: ["repro", "--farm", _yaml(d, _lab_like_farm()), "--image", str(d / "no.bin")],
    )


CSVS = {
    "one-field": "nvs\n",
    "no-type": "nvs,,nvs,0x9000,0x6000,\n",
    "bad-type": "nvs,bogus,nvs,0x9000,0x6000\n",
    "bad-subtype": "app0,app,ota_99,0x10000,1M\n",
    "bad-offset": "nvs,data,nvs,0xZZ,0x6000\n",
    "bad-size": "nvs,data,nvs,0x9000,lots\n",
    "empty-size": "nvs,data,nvs,0x9000,\n",
    "overlap": "a,data,nvs,0x9000,0x6000\nb,data,nvs,0xA000,0x6000\n",
    "misaligned-app": "a,app,ota_0,0x10001,1M\n",
    "beyond-flash": "a,app,ota_0,0x10000,16M\n",
    "bad-flag": "a,data,nvs,0x9000,0x6000,fancy\n",
    "empty-file": "",
    "only-comments": "# name,type\n#\n",
    "duplicate-name": "a,data,nvs,0x9000,0x3000\na,data,nvs,,0x3000\n",
    "huge-number": "a,data,nvs,0x9000,0x1" + "0" * 40 + "\n",
    "name-too-long": "a" * 40 + ",data,nvs,0x9000,0x6000\n",
    "offset-in-table": "a,data,nvs,0x8000,0x1000\n",
    "binary-junk": "\x00\x01\x02,\x03\n",
}


def _csv_cases() -> Iterator[Case]:
    for label, text in CSVS.items():
        yield Case(f"csv:{label}", lambda d, t=text: ["partitions", "show", _text(d, "p.csv", t)])
    good = lambda d: _text(d, "good.csv", GOOD_CSV)  # noqa: E731
    for argv in (["--offset", "-1"], ["--offset", "eight"], ["--flash-size", "3MB"], ["--flash-size", "0"]):
        yield Case(f"csv-option:{' '.join(argv)}", lambda d, a=argv: ["partitions", "show", good(d), *a])
    yield Case(
        "csv:build-into-missing-folder",
        lambda d: ["partitions", "build", good(d), "-o", str(d / "no" / "pt.bin")],
    )
    yield Case("csv:a-directory", lambda d: ["partitions", "show", str(d)])


def _otadata_cases() -> Iterator[Case]:
    for size in (0, 22, 4096, 8191, 8193, 16384, 4 << 20):
        yield Case(
            f"otadata:{size}-bytes", lambda d, n=size: ["otadata", "show", _bytes(d, "ota.bin", b"\xff" * n)]
        )
    table = lambda d: _text(d, "good.csv", GOOD_CSV)  # noqa: E731
    for size in (100, 0xD000 + 10):
        yield Case(
            f"otadata-table:{size}-bytes",
            lambda d, n=size: ["otadata", "show", _bytes(d, "dump.bin", b"\xff" * n), "--table", table(d)],
        )
    yield Case(
        "otadata:table-without-otadata",
        lambda d: [
            "otadata",
            "show",
            _bytes(d, "o.bin", b"\xff" * 8192),
            "--table",
            _text(d, "t.csv", "a,app,ota_0,0x10000,1M\n"),
        ],
    )
    yield Case(
        "otadata:slots-0", lambda d: ["otadata", "show", _bytes(d, "o.bin", b"\xff" * 8192), "--slots", "x"]
    )


def _image_cases() -> Iterator[Case]:
    app = make_test_app(version="1.0.0", size=64 * 1024)
    for label, data in {
        "empty": b"",
        "one-byte": b"\xe9",
        "random": os.urandom(4096),
        "header-only": app[:24],
        "no-descriptor": app[:200],
        "zeros": bytes(4096),
        "text": b"hello world\n" * 100,
        "bad-magic": b"\x00" + app[1:],
        "segments-999": app[:1] + b"\xff" + app[2:4096],
    }.items():
        yield Case(f"image:{label}", lambda d, b=data: ["image", "info", _bytes(d, "app.bin", b)])
    yield Case("image:missing", lambda d: ["image", "info", str(d / "none.bin")])
    yield Case("image:a-directory", lambda d: ["image", "info", str(d)])
    yield Case("image:1TiB-sparse", lambda d: ["image", "info", _sparse(d, 1 << 40)])
    yield Case(
        "images:derive-from-random",
        lambda d: [
            "images",
            "derive",
            "--from",
            _bytes(d, "r.bin", os.urandom(2048)),
            "--out",
            str(d / "set"),
        ],
    )
    yield Case("keys:unknown-scheme", lambda d: ["keys", "generate", "--scheme", "md5", str(d / "k.pem")])
    yield Case(
        "keys:into-missing-folder",
        lambda d: ["keys", "generate", "--scheme", "rsa3072", str(d / "no" / "k.pem")],
    )


def _db_cases() -> Iterator[Case]:
    yield Case(
        "db:not-sqlite", lambda d: ["report", "--db", _bytes(d, "r.db", b"this is not a database" * 10)]
    )
    yield Case("db:empty-file", lambda d: ["report", "--db", _bytes(d, "r.db", b"")])
    yield Case("db:missing", lambda d: ["report", "--db", str(d / "none.db")])
    yield Case("db:other-sqlite", lambda d: ["report", "--db", _other_sqlite(d)])
    yield Case(
        "db:future-schema",
        lambda d: ["report", "--db", _db(d, lambda db: db.execute("PRAGMA user_version = 99"))],
    )
    yield Case(
        "db:bad-boards-json",
        lambda d: ["report", "--db", _db(d, lambda db: db.execute("UPDATE runs SET boards = '[not json'"))],
    )
    yield Case(
        "db:unknown-outcome-class",
        lambda d: ["report", "--db", _db(d, lambda db: db.execute("UPDATE outcomes SET outcome = 'MAYBE'"))],
    )
    yield Case(
        "db:unknown-status",
        lambda d: ["report", "--db", _db(d, lambda db: db.execute("UPDATE runs SET status = 'dancing'"))],
    )
    yield Case("db:unknown-run", lambda d: ["report", "--db", _db(d), "no-such-run"])
    yield Case("db:run-id-escape", lambda d: ["report", "--db", _db(d), "../../etc"])
    yield Case("db:last-and-run", lambda d: ["report", "--db", _db(d), "r1", "--last", "2"])


def _cli_cases() -> Iterator[Case]:
    for argv in (
        ["nope"],
        ["run", "--resume", "../x"],
        ["run", "--resume", "no-such-run", "--report-dir", "{d}"],
        ["run", "--farm", "{d}/none.yaml"],
        ["repro", "--seed", "x"],
        ["power", "probe", "--driver", "usb-hub"],
        ["power", "probe", "--driver", "lcus-relay", "--param", "channel"],
        ["power", "probe", "--driver", "lcus-relay"],
        ["power", "probe", "--driver", "lcus-relay", "--param", "port=loop://", "--param", "channel=300"],
        ["power", "probe", "--driver", "scpi-psu", "--param", "resource=x", "--param", "volts=22"],
        ["lab", "up", "--dir", "{d}/lab", "--out", "{d}/no/such/farm.yaml"],
        ["lab", "up", "--boards", "0", "--dir", "{d}/lab"],
        ["farm", "check", "--help-me"],
        ["gate"],
        ["flash-image", "build", "--table", "{d}/none.csv", "--app", "{d}/none.bin", "-o", "{d}/f.bin"],
    ):
        yield Case("cli:" + " ".join(argv), lambda d, a=argv: [part.replace("{d}", str(d)) for part in a])


CASES = [
    *_farm_cases(),
    *_gate_cases(),
    *_cut_cases(),
    *_csv_cases(),
    *_otadata_cases(),
    *_image_cases(),
    *_db_cases(),
    *_cli_cases(),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 250, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_bad_input_is_one_line_and_exit_2(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(case.argv(tmp_path))
    captured = capsys.readouterr()
    assert code == 2, f"exit {code}: {captured.err or captured.out}"
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "internal error" not in lines[0], lines[0]


# -- helpers: the files a case names ------------------------------------------------------------


def _text(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _bytes(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _yaml(folder: Path, document: object) -> str:
    return _text(folder, "farm.yaml", yaml.safe_dump(document, allow_unicode=True))


def _sparse(folder: Path, size: int) -> str:
    path = folder / "huge.bin"
    with path.open("wb") as handle:
        handle.truncate(size)
    return str(path)


def _lab_like_farm() -> dict[str, Any]:
    """Valid, but its board is not there: repro must refuse the bad part before touching it."""
    return {
        "name": "x",
        "boards": [
            {
                "name": "b1",
                "serial": "rfc2217://127.0.0.1:9",
                "power": {"driver": "scpi-psu", "resource": "TCPIP::127.0.0.1::9::SOCKET"},
            }
        ],
    }


def _db(folder: Path, corrupt: Callable[[sqlite3.Connection], object] | None = None) -> str:
    path = folder / "results.db"
    if not path.exists():
        with ResultsStore(path) as store:
            store.start_run(
                RunInfo(
                    "r1",
                    "2024-05-01T02:00:00+00:00",
                    "farm",
                    ("b1",),
                    1,
                    "0.1.0",
                    None,
                    "pytest",
                    None,
                    "running",
                )
            )
            store.record(make_outcome(run_id="r1"))
    if corrupt is not None:
        with sqlite3.connect(path) as db:
            corrupt(db)
    return str(path)


def _other_sqlite(folder: Path) -> str:
    path = folder / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    return str(path)


def test_the_corpus_files_are_what_they_say(tmp_path: Path) -> None:
    """Guard against a corpus that tests nothing: its good farm file and CSV are good."""
    assert main(["partitions", "show", _text(tmp_path, "good.csv", GOOD_CSV)]) == 0
    from rig.farm import load_farm

    assert load_farm(Path(_yaml(tmp_path, GOOD_FARM))).board("b2").power_driver == "lcus-relay"
    assert json.loads(json.dumps(GOOD_FARM)) == GOOD_FARM
