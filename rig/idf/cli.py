"""`rig idf-tests IDF_PATH`: Espressif's own OTA example tests, unmodified, on the farm's boards;
`rig embedded -- PYTEST ARGS`: any pytest-embedded test with a farm board as its `dut`.

Both hand pytest-embedded a board exactly as a bench does (its serial URL; reset through the
port's RTS; power switched on through the board's driver first). On the virtual lab,
`idf-tests` brings up one board per bootloader build Espressif's configs need (plain, RSA-
and ECDSA-signed updates) and runs everything inside a private network namespace: their
servers bind 0.0.0.0, which there is the namespace's loopback only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click

from rig.agents.idf_example import wifi_of
from rig.errors import InfraError, InputError
from rig.farm import BoardSpec, Farm, load_farm
from rig.idf.catalog import OTHER_SUITES, LabBoard
from rig.idf.checkout import Checkout, build_view, child_environment
from rig.labgrid.acquire import farm_in_hand
from rig.power import create_driver

NAMESPACE_ENV = "RIG_IDF_NETNS"
# One lab board per bootloader build (lab board names are b1, b2, ...).
LAB_ROLES = (LabBoard.PLAIN, LabBoard.RSA, LabBoard.ECDSA)
LAB_CONFIG = """\
# rig idf-tests: boards built like Espressif's example CI builds (v5.5.5 sdkconfig.defaults:
# no rollback, no anti-rollback), erasing at a real NOR flash's pace so their timing holds.
count: 3
defaults:
  rollback: false
  anti_rollback: false
  signing: none
  sector_erase_ms: 45
  keepalive: {idle_s: 5, interval_s: 5, count: 3}
boards:
  b2: {signing: rsa3072, table_offset: 0xC000}
  b3: {signing: ecdsa256-v1, table_offset: 0xC000}
"""


@dataclass(frozen=True)
class TestRow:
    """One of Espressif's tests and what became of it."""

    name: str
    outcome: str  # passed, failed, skipped
    detail: str


def _boards(stack: ExitStack, farm: str | None, board: str | None, run_folder: Path) -> dict[str, BoardSpec]:
    """Role -> powered board: the lab's three (up until `stack` closes), or the farm's one (`*`)."""
    if farm is None:
        from rig.lab_cli import running_lab

        config = run_folder / "lab.yaml"
        config.write_text(LAB_CONFIG, encoding="utf-8")
        parsed = load_farm(stack.enter_context(running_lab(run_folder / "lab", None, config)))
        specs = {role.value: parsed.boards[index] for index, role in enumerate(LAB_ROLES)}
    else:
        parsed = load_farm(stack.enter_context(farm_in_hand(Path(farm), run_folder)))
        chosen = parsed.select([board] if board else [])
        specs = {"*": chosen[0]}
    for spec in specs.values():
        _power_on(parsed, spec)
    return specs


def _power_on(farm: Farm, spec: BoardSpec) -> None:
    """A known supply state before pytest-embedded opens the port (lab boards start unpowered)."""
    power = farm.power_spec(spec)
    if not power:
        return
    driver = create_driver(power)
    try:
        driver.on()
    finally:
        driver.close()


def _in_namespace(argv: Sequence[str]) -> int:
    """Run this command again in a new network namespace with only `lo`, up."""
    from rig.net.netns import unavailable

    missing = unavailable() or (None if shutil.which("unshare") else "unshare (util-linux) is not installed")
    if missing:
        raise InfraError(f"a private network namespace for Espressif's servers is not available: {missing} "
                         "(or pass --host-network to let them bind this host's interfaces)")  # fmt: skip
    script = 'ip link set lo up && exec "$@"'
    command = ["unshare", "--net", "--", "sh", "-c", script, "sh", sys.executable, "-m", "rig.cli", *argv]
    from rig.run_cli import run_child

    return run_child(command, {**os.environ, NAMESPACE_ENV: "1"})


def _rows(junit: Path) -> list[TestRow]:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as error:
        raise InfraError(f"no test results from pytest ({junit}: {error})") from None
    rows = []
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                detail = (found.get("message") or "").splitlines()[0][:200] if found.get("message") else ""
                break
        rows.append(TestRow(name, outcome, detail.removeprefix("Skipped: ")))
    return rows


def _summary(rows: Sequence[TestRow], out: Path, checkout: Checkout) -> None:
    lines = ["| Espressif test | result | why not run / what failed |", "|---|---|---|"]
    lines += [f"| `{r.name}` | {r.outcome} | {r.detail} |" for r in rows]
    for suite, reason in OTHER_SUITES.items():
        for path in sorted((checkout.root / suite).glob("pytest_*.py")):
            lines.append(f"| `{suite}/{path.name}` (every test) | not run | {reason} |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = {k: sum(1 for r in rows if r.outcome == k) for k in ("passed", "failed", "skipped")}
    click.echo(f"rig idf-tests: {counts['passed']} passed, {counts['failed']} failed, "
               f"{counts['skipped']} cannot run here; table in {out}")  # fmt: skip
    for row in rows:
        if row.outcome != "passed":
            click.echo(f"  {row.outcome:7s} {row.name}: {row.detail}")


@click.command("idf-tests")
@click.argument("idf_path", type=click.Path(path_type=Path))
@click.option("--farm", help="farm file of real boards (default: a virtual lab with lab builds)")
@click.option("--board", help="the farm board to use (default: its first)")
@click.option("-k", "keyword", default=None, help="only tests matching this pytest -k expression")
@click.option("--report-dir", default="reports", show_default=True)
@click.option(
    "--host-network", is_flag=True, help="let the tests' servers bind this host (no private namespace)"
)
def idf_tests(
    idf_path: Path,
    farm: str | None,
    board: str | None,
    keyword: str | None,
    report_dir: str,
    host_network: bool,
) -> None:
    """Run ESP-IDF's own OTA example tests (examples/system/ota/*/pytest_*.py) unmodified.

    On the virtual lab the rig provides lab builds of each CI config; on a real farm it uses
    the build_esp32_<config> directories idf.py left beside each example. Exits 0 when no
    test failed (tests that cannot run here are skipped with the reason).
    """
    checkout = Checkout.at(idf_path)
    if board is not None and farm is None:
        raise InputError("--board needs --farm (the virtual lab picks its boards itself)")
    if farm is None and not host_network and os.environ.get(NAMESPACE_ENV) != "1":
        argv = ["idf-tests", str(checkout.root), "--report-dir", str(Path(report_dir).resolve())]
        argv += ["-k", keyword] if keyword else []
        sys.exit(_in_namespace(argv))
    run_id = time.strftime("idf-tests-%Y%m%dT%H%M%SZ", time.gmtime())
    run_folder = (Path(report_dir) / run_id).resolve()
    run_folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        specs = _boards(stack, farm, board, run_folder)
        ports = {role: spec.serial for role, spec in specs.items()}
        wifi = wifi_of(next(iter(specs.values())))
        tests = build_view(checkout, run_folder / "idf", lab_builds=farm is None, wifi=wifi)
        junit = run_folder / "junit.xml"
        args = [sys.executable, "-m", "pytest", *map(str, tests), "--rootdir", str(run_folder / "idf"),
                "-p", "no:labgrid", "-p", "no:ota_rig", "-p", "no:cacheprovider",
                "--embedded-services", "esp,idf", "--junitxml", str(junit), "-rs", "-v"]  # fmt: skip
        args += ["-k", keyword] if keyword else []
        click.echo(
            f"rig idf-tests: {checkout.root} on {'the virtual lab' if farm is None else farm} → {run_folder}/"
        )
        from rig.run_cli import run_child

        env = child_environment(checkout, run_folder / "idf", json.dumps(ports))
        code = run_child(args, env)
    if code not in (0, 1, 5):
        raise InfraError(f"Espressif's tests did not complete (pytest exit {code}); see the output above")
    rows = _rows(junit)
    _summary(rows, run_folder / "summary.md", checkout)
    sys.exit(1 if any(r.outcome == "failed" for r in rows) else 0)


@click.command()
@click.option("--farm", help="farm file (default: a virtual lab)")
@click.option("--board", help="the farm board to hand over as `dut` (default: the first)")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def embedded(farm: str | None, board: str | None, pytest_args: tuple[str, ...]) -> None:
    """Run pytest-embedded tests with a farm board as their `dut`: `rig embedded -- tests/ -k x`.

    The board is powered on first and given to pytest-embedded by its serial URL
    (`--port`), so `dut.expect`, `dut.write` and `dut.serial.hard_reset()` reach it as they
    would on a bench. Exits with pytest's code.
    """
    if not pytest_args:
        raise InputError("give pytest's arguments after `--` (test files, -k, --app-path, ...)")
    from rig.run_cli import farm_or_lab, run_child

    with ExitStack() as stack:
        parsed = load_farm(farm_or_lab(stack, farm, 2))
        spec = parsed.select([board] if board else [])[0]
        _power_on(parsed, spec)
        args = [sys.executable, "-m", "pytest", "-p", "rig.idf.embedded_plugin", "-p", "no:labgrid",
                "-p", "no:ota_rig", "--embedded-services", "esp", "--port", spec.serial,
                "--target", spec.chip, *pytest_args]  # fmt: skip
        click.echo(f"rig embedded: {spec.name} ({spec.serial}) as dut")
        code = run_child(args, dict(os.environ))
    sys.exit(code)
