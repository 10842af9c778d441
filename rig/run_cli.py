"""`rig run`, `rig repro` and `rig farm check`: the commands QA and engineers type.

`rig run` without `--farm` brings up a 2-board virtual lab, runs the standard suite
into reports/ and tears the lab down: the same command a nightly job points at a
real farm with `--farm bench.yaml`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from rich.console import Console as RichConsole
from rich.table import Table

from rig.cutspec import AtBytes, Brownout, CutSpec
from rig.errors import InfraError, InputError, NotReproduced, RigError
from rig.farm import BoardSpec, Farm, load_farm
from rig.health.cli import farm_health
from rig.inputs import read_input
from rig.labgrid.acquire import farm_in_hand
from rig.phase import Phase
from rig.power.scpi_psu import DEFAULT_SUPPLY_VOLTS
from rig.resources import scenarios_dir
from rig.results.model import check_run_id

if TYPE_CHECKING:
    from rig.mqtt.images import AwsImages, OtaFile

LAB_DIR = Path(".lab")


def farm_or_lab(stack: ExitStack, farm: str | None, boards: int) -> Path:
    """The farm file to use: the user's (its labgrid places acquired until the stack closes),
    or a virtual lab brought up for this command."""
    if farm is not None:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rig-farm-")))
        return stack.enter_context(farm_in_hand(Path(farm), workdir))
    from rig.lab_cli import running_lab

    return stack.enter_context(running_lab(LAB_DIR, boards))


def _throwaway_lab(stack: ExitStack, run_folder: Path, boards: int) -> Path:
    """A fresh virtual lab for this invocation, kept with its report: its eFuses may be burnt.

    Fresh also on `--resume`: a lab whose eFuses an earlier attempt burnt would refuse the
    base image."""
    from rig.lab_cli import running_lab

    run_folder.mkdir(parents=True, exist_ok=True)
    config = run_folder / "lab.yaml"
    config.write_text("throwaway: true\n", encoding="utf-8")
    lab = run_folder / ("lab-" + time.strftime("%H%M%S", time.gmtime()))
    return stack.enter_context(running_lab(lab, boards, config))


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@click.command()
@click.option("--farm", help="farm file (default: a virtual lab brought up for this run)")
@click.option("--lab-boards", default=2, show_default=True, help="boards of the virtual lab (without --farm)")
@click.option("--boards", default="", help="comma-separated board names to use (default: all)")
@click.option("--board-tags", default="", help="comma-separated tags a board must have")
@click.option("--seed", type=int, default=None, help="seed for random cut points")
@click.option("--report-dir", default="reports", show_default=True)
@click.option("--base-image", default=None, help="a real ESP-IDF app build to derive the image set from")
@click.option("--signing-key", default=None, help="the PEM key that signed --base-image")
@click.option("-k", "keyword", default=None, help="only scenarios matching this pytest -k expression")
@click.option("--resume", "resume", default=None, metavar="RUN_ID", help="continue RUN_ID: run what it lacks")
def run(
    farm: str | None,
    lab_boards: int,
    boards: str,
    board_tags: str,
    seed: int | None,
    report_dir: str,
    base_image: str | None,
    signing_key: str | None,
    keyword: str | None,
    resume: str | None,
) -> None:
    """Run the standard OTA resilience suite and write a report.

    Exits 0 only when every scenario passed (or a resumed run had nothing left to run).
    """
    run_id = check_run_id(resume) if resume else time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if resume:  # an unknown run is bad input, said before any board or place is touched
        from rig.results.store import ResultsStore

        ResultsStore(Path(report_dir) / "results.db").run(resume)
    with ExitStack() as stack:
        run_folder = Path(report_dir) / run_id
        farm_path = (
            stack.enter_context(farm_in_hand(Path(farm), run_folder))
            if farm is not None
            else _throwaway_lab(stack, run_folder, lab_boards)
        )
        parsed = load_farm(farm_path)
        chosen = parsed.select([b for b in boards.split(",") if b], [t for t in board_tags.split(",") if t])
        out_of_service = _quarantined(Path(report_dir), chosen)
        # Quarantined boards' scenarios are skipped at collection: they need no worker.
        workers = max(1, len(chosen) - len(out_of_service))
        args = [
            sys.executable,
            "-m",
            "pytest",
            str(scenarios_dir()),
            "--farm",
            str(farm_path),
            "--resume" if resume else "--run-id",
            run_id,
            "--report-dir",
            report_dir,
            "-n",
            str(workers),
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:labgrid",
            "-o",
            "addopts=",
            "-q",
            "-rs",
        ]
        for flag, value in (
            ("--boards", boards),
            ("--board-tags", board_tags),
            ("--seed", seed),
            ("--base-image", base_image),
            ("--signing-key", signing_key),
            ("-k", keyword),
        ):
            if value:
                args += [flag, str(value)]
        click.echo(f"rig run {run_id}: {farm_path} ({workers} boards) → {report_dir}/{run_id}/")
        started = time.monotonic()
        code = run_child(args, env={**os.environ, "RIG_RUN_ID": run_id})
        click.echo(
            f"rig run {run_id}: suite finished in {time.monotonic() - started:.1f} s (pytest exit {code})"
        )
    _echo_summary(Path(report_dir), run_id)
    if code not in (0, 1):
        if code == pytest.ExitCode.USAGE_ERROR:
            raise InputError("the scenario run refused its options (pytest exit 4); see the output above")
        raise InfraError(f"the scenario run did not complete (pytest exit {code}); see the output above")
    sys.exit(code)


def _quarantined(reports: Path, chosen: Sequence[BoardSpec]) -> list[str]:
    """Boards of this run that are out of service, each said on one line."""
    from rig.results.store import ResultsStore

    entries = ResultsStore(reports / "results.db").quarantined()
    names = [spec.name for spec in chosen if spec.name in entries]
    for name in names:
        entry = entries[name]
        click.echo(f"rig run: skipping {name}: quarantined since {entry.since} ({entry.reason})", err=True)
    return names


def _echo_summary(reports: Path, run_id: str) -> None:
    """The report's one-line summary, when the run got as far as the results store."""
    from rig.results.from_pytest import summary_line
    from rig.results.store import ResultsStore

    db = reports / "results.db"
    if not db.exists():
        return
    store = ResultsStore(db)
    try:
        store.run(run_id)
    except RigError:
        return
    click.echo(summary_line(store, run_id, reports / run_id / "index.html"))


@click.command()
@click.option("--farm", help="farm file (default: a virtual lab brought up for this command)")
@click.option("--board", "board_name", default=None, help="board to use (default: the farm's first)")
@click.option(
    "--base",
    "base",
    default="base",
    show_default=True,
    help="image the board is flashed with first: a mutant name of the lab set or a .bin file",
)
@click.option(
    "--image", "image", default="next", show_default=True, help="the update: a mutant name or a .bin file"
)
@click.option("--key", default=None, help="signing key of --base/--image files (for signed-update boards)")
@click.option(
    "--cut", "cut_text", default=None, help="the fault, e.g. power@bytes=400000 or net@fraction=0.4:stall=20s"
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--report-dir", default="reports", show_default=True)
@click.option(
    "--transport",
    type=click.Choice(["https", "mqtt"]),
    default="https",
    show_default=True,
    help="https: the rig agent's `ota <url>`; mqtt: an AWS IoT OTA job the device takes itself",
)
@click.option("--sweep", "sweep_folder", default=None, help="a `rig sweep` folder: re-run one cut point")
@click.option("--op", type=click.IntRange(min=0), default=None, help="with --sweep: cut before this op")
@click.option("--torn", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="with --sweep: cut this far into the operation instead")  # fmt: skip
def repro(
    farm: str | None,
    board_name: str | None,
    base: str,
    image: str,
    key: str | None,
    cut_text: str | None,
    seed: int,
    report_dir: str,
    transport: str,
    sweep_folder: str | None,
    op: int | None,
    torn: float | None,
) -> None:
    """Reproduce one field failure: one OTA with one fault, judged against ESP-IDF's rules.

    With --transport mqtt the update is an AWS IoT OTA job; --image then names one of
    greater, same_version, previous_version, unsigned, untrusted_certificate,
    corrupt_after_signing, corrupt_signature, corrupt_before_signing, single_byte,
    incorrect_platform, or a .bin file to code-sign and send.

    Exits 0 when the device did the ESP-IDF-correct thing, 1 when it did not, 4 when the
    fault never fired (not reproduced: the verdict would say nothing about the fault).

    With --sweep FOLDER --op N [--torn F] it re-runs one cut point of a `rig sweep` on a twin,
    power cut by flash operation index, and prints that boot's serial log and verdict.
    """
    if sweep_folder is not None or op is not None or torn is not None:
        from rig.sweep.repro import repro_point

        if sweep_folder is None or op is None:
            raise click.UsageError("--sweep FOLDER and --op N go together (--torn F optional)")
        if cut_text or farm:
            raise click.UsageError("--sweep re-runs a recorded cut on a twin; it takes no --cut or --farm")
        sys.exit(repro_point(Path(sweep_folder), op, torn))
    from rig.board import Board
    from rig.builder import Services, server_identity
    from rig.cutspec import parse_cut
    from rig.imageset import example_lab_app, prepare_image_set, reference_lab_app
    from rig.keyfiles import private_folder

    cut = parse_cut(cut_text) if cut_text else None
    run_id = "repro-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(report_dir) / run_id
    if transport == "mqtt":
        _repro_mqtt(farm, board_name, image, key, cut, seed, Path(report_dir), run_id)
        return
    with ExitStack() as stack:
        farm_path = farm_or_lab(stack, farm, 2)
        parsed = load_farm(farm_path)
        spec = parsed.board(board_name) if board_name else parsed.boards[0]
        private = private_folder(Path(report_dir), run_id)
        example = spec.firmware.example
        images = prepare_image_set(
            out / "images",
            base=_file_or_none(base),
            key=Path(key) if key else None,
            signing={spec.firmware.signing},
            seed=seed,
            extra=_extra(image),
            private=private,
            # a stock example board on the lab: a lab build of its example, trusting the server
            lab_app=reference_lab_app if example is None
            else example_lab_app(example, server_identity(parsed, private).ca_pem.read_bytes()),
        )
        base_name = "base"
        image_name = image if _file_or_none(image) is None else "candidate"
        image_size = images.entry(image_name).path.stat().st_size
        if cut is not None:
            _check_reachable(cut, image_size)
            _check_supply(cut, parsed.power_spec(spec))
        services = stack.enter_context(
            Services.open(parsed, private, images, seed=seed, server_log=out / "server.log")
        )
        proxy = stack.enter_context(services.proxy())
        board = stack.enter_context(Board(parsed, spec, out / spec.name))
        session = stack.enter_context(services.session(board, proxy))
        status = RichConsole(stderr=True, markup=False)
        with status.status(f"{spec.name}: flashing {base_name} into a known state"):
            session.prepare(base_name)
        with status.status(f"{spec.name}: OTA {image_name} with cut {cut_text or 'none'}"):
            result = session.run(image_name, cut)
    _print_result(result, out)
    if cut is not None and result.phase is Phase.NO_FAULT:
        raise NotReproduced(f"not reproduced: {cut.point.unmet(image_size)}; artifacts: {out}")
    sys.exit(0 if result.passed else 1)


def _repro_mqtt(
    farm: str | None, board_name: str | None, image: str, key: str | None, cut: CutSpec | None, seed: int,
    report_dir: Path, run_id: str,
) -> None:  # fmt: skip
    """`rig repro --transport mqtt`: one judged AWS IoT OTA job on one board."""
    from rig.board import Board
    from rig.builder import mqtt_session
    from rig.imageset import prepare_image_set
    from rig.keyfiles import private_folder
    from rig.mqtt.images import LAB_PROJECT, AwsImages
    from rig.mqtt.pki import MqttPki
    from rig.phase import Final

    out = report_dir / run_id
    with ExitStack() as stack:
        parsed = load_farm(farm_or_lab(stack, farm, 2))
        spec = parsed.board(board_name) if board_name else parsed.boards[0]
        if parsed.mqtt is None or spec.mqtt is None:
            raise InputError(f"board {spec.name}: no AWS IoT thing (the farm file's mqtt sections)")
        private = private_folder(report_dir, run_id)
        images = prepare_image_set(
            out / "images", base=None, key=Path(key) if key else None, signing={spec.firmware.signing},
            seed=seed, private=private,
        )  # fmt: skip
        aws = AwsImages(images.data("base"), images.key, MqttPki(parsed.mqtt.pki).codesign, private / "mqtt",
                        project=LAB_PROJECT if parsed.virtual else None)  # fmt: skip
        file, expect = _mqtt_file(aws, image)
        board = stack.enter_context(Board(parsed, spec, out / spec.name))
        session = stack.enter_context(mqtt_session(parsed, board, aws, out / spec.name, seed=seed))
        status = RichConsole(stderr=True, markup=False)
        with status.status(f"{spec.name}: flashing the AWS IoT base image, waiting for it online"):
            session.prepare()
        with status.status(f"{spec.name}: OTA job {file.name} with cut {cut.text if cut else 'none'}"):
            result = session.run(file, cut, expect=Final.NEW if expect else Final.OLD)
    _print_result(result, out)
    if cut is not None and result.phase is Phase.NO_FAULT:
        raise NotReproduced(f"not reproduced: {cut.point.unmet(len(file.data))}; artifacts: {out}")
    sys.exit(0 if result.passed else 1)


def _mqtt_file(aws: AwsImages, image: str) -> tuple[OtaFile, bool]:
    """The named AWS OTA case (or a .bin file, code-signed) and whether it must be accepted."""
    path = _file_or_none(image)
    if path is not None:
        return aws.file(path.name, read_input(path, "image"), aws.greater_version), True
    try:
        return aws.case(image)
    except InputError as error:
        raise InputError(f"--image {image!r}: {error} or a .bin file") from None


def run_child(args: list[str], env: Mapping[str, str]) -> int:
    """Run the suite in a child process that ends with this one: a `rig run` killed by SIGKILL
    (a CI timeout) takes its pytest with it (PR_SET_PDEATHSIG) instead of leaving it cutting
    power on the boards, and a SIGTERM or SIGHUP sent to `rig run` alone reaches pytest too."""
    child = subprocess.Popen(args, env=env, preexec_fn=_die_with_parent)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _check_reachable(cut: CutSpec, image_size: int) -> None:
    """An image byte the update never reaches is bad input, refused before anything is flashed."""
    if isinstance(cut.point, AtBytes) and cut.point.count > image_size:
        raise InputError(
            f"--cut {cut.text}: the image is {image_size} bytes, so byte {cut.point.count} is never written"
        )


def _check_supply(cut: CutSpec, power: Mapping[str, object]) -> None:
    """A sag above the board's nominal supply (or below 0) is refused before anything is flashed."""
    nominal = power.get("volts", DEFAULT_SUPPLY_VOLTS) if power.get("driver") == "scpi-psu" else None
    if isinstance(cut, Brownout) and isinstance(nominal, int | float) and not 0.0 <= cut.volts <= nominal:
        raise InputError(f"--cut {cut.text}: {cut.volts:g} V is outside 0..{nominal:g} V, the board's supply")


def _file_or_none(value: str) -> Path | None:
    return Path(value) if value.endswith(".bin") or os.sep in value else None


def _extra(image: str) -> dict[str, Path]:
    path = _file_or_none(image)
    return {"candidate": path} if path is not None else {}


def _print_result(result: object, out: Path) -> None:
    from rig.outcome import OtaResult

    assert isinstance(result, OtaResult)
    console = RichConsole(markup=False)  # farm names and paths are text, not markup
    table = Table(title=f"boot records — {result.board}")
    for column in ("#", "reset", "slot", "version", "outcome"):
        table.add_column(column)
    for boot in result.timeline.boots:
        table.add_row(
            str(boot.index),
            boot.reset_reason or "-",
            boot.slot_name or "-",
            boot.app_version or "-",
            boot.outcome.value,
        )
    console.print(table)
    for firing in result.firings:
        console.print(
            f"fault {firing.trigger}: fired at {firing.observed} (latency {firing.latency_ms:.2f} ms)"
        )
    if result.otadata is not None:
        console.print(result.otadata.describe(["ota_0", "ota_1"]))
    console.print(result.summary())
    console.print(f"artifacts: {out}")


@click.group()
def farm() -> None:
    """Inspect a farm file and the hardware it names."""


farm.add_command(farm_health)


@dataclass(frozen=True)
class BoardCheck:
    """What `rig farm check` found for one board."""

    name: str
    serial: str
    mac: str
    power: str
    supply: str  # on / off / unknown, as the power driver reads it back
    problems: tuple[RigError, ...]

    @property
    def result(self) -> str:
        return "\n".join(str(p).removeprefix(f"{self.name}: ") for p in self.problems) or "ok"


def _check_board(parsed: Farm, spec: BoardSpec, progress: RichConsole) -> BoardCheck:
    """esptool read-mac on the board's port, then open its power driver and read its state."""
    from rig.flashing import FlashTarget, read_mac
    from rig.power import create_driver

    mac = power = supply = "-"
    problems: list[RigError] = []
    # The supply first: a board a killed run left unpowered does not answer esptool, and the
    # table should say why.
    with progress.status(f"{spec.name}: asking its power driver"):
        try:
            with create_driver(parsed.power_spec(spec) or {"driver": "dtr-rts", "port": spec.serial}) as drv:
                power = drv.describe()
                state = drv.is_on()
                supply = {True: "on", False: "off", None: "unknown"}[state]
        except RigError as error:
            problems.append(error)
    if supply == "off":
        why = "a run killed mid-cut leaves it so; the next run powers it on"
        problems.append(InfraError(f"supply is off ({why})"))
    with progress.status(f"{spec.name}: esptool read-mac on {spec.serial}"):
        try:
            mac = read_mac(FlashTarget(spec.name, spec.serial, spec.baud, spec.reset, spec.chip))
        except RigError as error:
            problems.append(error)
    return BoardCheck(spec.name, spec.serial, mac, power, supply, tuple(problems))


def _check_mqtt(parsed: Farm) -> str:
    """The broker side of an AWS IoT farm: its identities, and mosquitto when the rig runs it
    (a line for the report; a missing piece raises)."""
    if parsed.mqtt is None:
        return ""
    from rig.mqtt.broker import mosquitto_binary
    from rig.mqtt.pki import MqttPki

    pki = MqttPki(parsed.mqtt.pki)
    embedded = parsed.mqtt.broker == "embedded"
    pki.check(embedded=embedded)
    where = f"mosquitto {mosquitto_binary()}" if embedded else f"{parsed.mqtt.host}:{parsed.mqtt.port}"
    return f"mqtt: {parsed.mqtt.broker} broker ({where}), identities in {pki.directory}: ok"


@farm.command("check")
@click.argument("farm_file", required=False)
def farm_check(farm_file: str | None) -> None:
    """Reach every board (esptool read-mac) and its power driver (*IDN? / relay state).

    The table goes to stdout and progress to stderr. Exit 3 when anything did not answer.
    """
    with ExitStack() as stack:
        path = farm_or_lab(stack, farm_file, 2)
        parsed = load_farm(path)
        progress = RichConsole(stderr=True, markup=False)
        mqtt = _check_mqtt(parsed)
        checks = [_check_board(parsed, spec, progress) for spec in parsed.boards]
    table = Table(title=f"farm {parsed.name}")
    for column in ("board", "serial", "MAC", "power", "supply", "result"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.name, check.serial, check.mac, check.power, check.supply, check.result)
    RichConsole(markup=False).print(table)
    if mqtt:
        click.echo(mqtt)
    failed = [check for check in checks if check.problems]
    if not failed:
        return
    summary = f"{len(failed)} of {len(checks)} boards failed the check: {', '.join(c.name for c in failed)}"
    if any(isinstance(p, InfraError) for check in failed for p in check.problems):
        raise InfraError(f"{summary} (infrastructure, see the table)")
    raise InputError(f"{summary} (bad power settings, see the table)")
