"""`rig rollout`: one update to a group of boards at once, paced, with abort thresholds, faults
spread by seed and late joiners; the result goes to the results store and the run's report.

Without --farm a throwaway virtual lab of --lab-boards boards comes up, with the twins the
policy builds broken (`firmware:` faults) running that model.
"""

from __future__ import annotations

import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import click
import yaml
from rich.console import Console as RichConsole
from rich.table import Table

from rig import __version__
from rig.board import Board
from rig.errors import InfraError, InputError
from rig.farm import Farm, FirmwareProtocol, load_farm
from rig.imageset import prepare_image_set
from rig.keyfiles import private_folder
from rig.labgrid.acquire import farm_in_hand
from rig.labstate import lab_board_name
from rig.mqtt.images import LAB_PROJECT, AwsImages
from rig.mqtt.pki import MqttPki
from rig.resources import scenarios_dir
from rig.results.from_pytest import OutcomeRecorder, git_revision, summary_line
from rig.results.model import OutcomeClass, RunInfo, RunStatus
from rig.results.store import ResultsStore, utc_now
from rig.rollout.engine import Fleet, RolloutEngine
from rig.rollout.fleet import HttpsFleet, MqttFleet
from rig.rollout.model import RolloutResult
from rig.rollout.plan import RolloutPlan, draw_plan
from rig.rollout.policy import RolloutPolicy, Transport, check_group, load_rollout_policy

DEFAULT_POLICY = "rollouts/staged.yaml"
PROVISION_WORKERS = 4
GROUP = "rollout"


def _lab_config(policy: RolloutPolicy, plan: RolloutPlan) -> str:
    """The throwaway lab's config: boards the plan builds broken run that firmware model."""
    boards: dict[str, dict[str, object]] = {}
    for board, model in plan.firmware_swaps.items():
        if policy.transport is Transport.MQTT:
            boards[board] = {"firmware_overrides": {LAB_PROJECT: model}}
        else:
            boards[board] = {"firmware": model}
    return yaml.safe_dump({"throwaway": True, "boards": boards} if boards else {"throwaway": True})


def _echo(board: str, what: str, t0: float) -> None:
    click.echo(f"{time.monotonic() - t0:7.1f} s  {board:>8}  {what}", err=True)


@click.command()
@click.option(
    "--policy", "policy_file", default=None, help=f"rollout policy (default: scenarios/{DEFAULT_POLICY})"
)
@click.option("--farm", help="farm file (default: a virtual lab brought up for this rollout)")
@click.option("--lab-boards", default=8, show_default=True, help="boards of the virtual lab (without --farm)")
@click.option("--boards", default="", help="comma-separated board names of the group (default: all)")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="spreads the faults (unless the policy sets one)"
)
@click.option("--report-dir", default="reports", show_default=True)
def rollout(
    policy_file: str | None, farm: str | None, lab_boards: int, boards: str, seed: int, report_dir: str
) -> None:
    """Roll one update out to a group of boards and judge every board and the rollout.

    Exits 0 when the rollout ran to its end and every board's device did the correct thing,
    1 when it aborted or a device did the wrong thing, 3 when the rig lost a board.
    """
    policy_path = Path(policy_file) if policy_file else scenarios_dir() / DEFAULT_POLICY
    policy = load_rollout_policy(policy_path)
    if farm is None and lab_boards < 2:
        raise InputError(f"--lab-boards {lab_boards}: a rollout needs a group of at least 2 boards")
    if farm is None and boards:
        raise InputError("--boards picks boards of a --farm; a virtual lab's group is --lab-boards")
    run_id = f"rollout-{policy.name}-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    reports = Path(report_dir)
    out = reports / run_id
    with ExitStack() as stack:
        if farm is not None:
            parsed = load_farm(stack.enter_context(farm_in_hand(Path(farm), out)))
            specs = parsed.select([b for b in boards.split(",") if b], [])
            names = [spec.name for spec in specs]
            check_group(policy, len(names), own_lab=False, where=str(policy_path))
            plan = draw_plan(policy, names, seed)
        else:
            names = [lab_board_name(i) for i in range(lab_boards)]
            check_group(policy, len(names), own_lab=True, where=str(policy_path))
            plan = draw_plan(policy, names, seed)
            parsed = load_farm(_lab(stack, out, lab_boards, _lab_config(policy, plan)))
        if policy.transport is Transport.MQTT and parsed.mqtt is None:
            raise InputError(f"{policy_path}: transport mqtt needs the farm file's mqtt sections")
        result = _roll(stack, policy, plan, parsed, seed, reports, run_id)
    files = _report(reports, run_id)
    _print(result, files)
    sys.exit(_exit_code(result))


def _lab(stack: ExitStack, out: Path, count: int, config: str) -> Path:
    from rig.lab_cli import running_lab

    out.mkdir(parents=True, exist_ok=True)
    (out / "lab.yaml").write_text(config, encoding="utf-8")
    return stack.enter_context(running_lab(out / "lab", count, out / "lab.yaml"))


def _roll(
    stack: ExitStack,
    policy: RolloutPolicy,
    plan: RolloutPlan,
    farm: Farm,
    seed: int,
    reports: Path,
    run_id: str,
) -> RolloutResult:
    """Open every board and its session, provision the initial group, run the rollout."""
    out = reports / run_id
    db = reports / "results.db"
    store = stack.enter_context(ResultsStore(db))
    store.start_run(
        RunInfo(
            run_id=run_id, started_at=utc_now(), farm=farm.name,
            boards=tuple(a.board for a in plan.assignments), seed=plan.seed, rig_version=__version__,
            git_revision=git_revision(Path.cwd()),
            command=shlex.join(["rig", *sys.argv[1:]]), finished_at=None, status="running",
        )
    )  # fmt: skip
    status: RunStatus = "interrupted"
    try:
        recorder = OutcomeRecorder(db, run_id, f"rollout[{policy.name}]", GROUP, out)
        fleet = _fleet(stack, policy, plan, farm, seed, reports, run_id, recorder)
        click.echo(f"rig rollout {run_id}: provisioning {len(plan.initial)} boards", err=True)
        with ThreadPoolExecutor(PROVISION_WORKERS, thread_name_prefix="provision") as pool:
            list(pool.map(fleet.provision, plan.initial))
        click.echo(f"rig rollout {run_id}: {policy.name} over {policy.transport.value} → {out}/", err=True)
        t0 = time.monotonic()
        result = RolloutEngine(policy, plan, fleet, listener=lambda b, what: _echo(b, what, t0)).run()
        store.record_rollout(run_id, result)
        status = "finished"
        return result
    finally:
        store.finish_run(run_id, status)


def _fleet(
    stack: ExitStack, policy: RolloutPolicy, plan: RolloutPlan, farm: Farm, seed: int, reports: Path,
    run_id: str, recorder: OutcomeRecorder,
) -> Fleet:  # fmt: skip
    out = reports / run_id
    private = private_folder(reports, run_id)
    specs = {spec.name: spec for spec in farm.boards}
    missing = [a.board for a in plan.assignments if a.board not in specs]
    if missing:
        raise InputError(f"the farm has no board {', '.join(missing)}")
    stock = [a.board for a in plan.assignments if specs[a.board].firmware.protocol != FirmwareProtocol.RIG]
    if stock:
        # A rollout is judged from the reference agent's own reports (rejections, job status).
        raise InputError(f"rollouts drive reference-agent boards; {', '.join(stock)} run a stock "
                         "ESP-IDF example (firmware.protocol: idf-example): leave them out")  # fmt: skip
    images = prepare_image_set(
        out / "images", base=None, key=None, seed=seed, private=private,
        signing={specs[a.board].firmware.signing for a in plan.assignments},
    )  # fmt: skip
    boards = {
        a.board: stack.enter_context(Board(farm, specs[a.board], out / a.board)) for a in plan.assignments
    }
    seeds = {a.board: a.seed for a in plan.assignments}
    if policy.transport is Transport.HTTPS:
        return HttpsFleet(stack, farm, boards, images, policy.release, private, seeds, recorder)
    assert farm.mqtt is not None, "checked by the caller"
    aws = AwsImages(
        images.data("base"), images.key, MqttPki(farm.mqtt.pki).codesign, private / "mqtt",
        project=LAB_PROJECT if farm.virtual else None,
    )  # fmt: skip
    return MqttFleet(stack, farm, boards, aws, policy.release, seeds, recorder)


def _report(reports: Path, run_id: str) -> str:
    from rig.report.build import write_report

    with ResultsStore(reports / "results.db") as store:
        files = write_report(store, run_id, reports)
        return summary_line(store, run_id, files.html)


def _print(result: RolloutResult, summary: str) -> None:
    console = RichConsole(markup=False, width=max(120, RichConsole().width))
    table = Table(
        title=f"rollout {result.name} ({result.transport}, release {result.release}, seed {result.seed})"
    )
    for column in (
        "board",
        "fault",
        "joined",
        "offered",
        "finished",
        "state",
        "verdict",
        "to update",
        "runs",
    ):
        table.add_column(column)

    def at(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds:.1f} s"

    for b in result.boards:
        table.add_row(
            b.board + (" (late)" if b.late else ""), b.fault, at(b.joined_s), at(b.dispatched_s),
            at(b.finished_s), b.state.value, b.verdict.value, at(b.time_to_update_s), b.version or "-",
        )  # fmt: skip
    console.print(table)
    console.print(result.headline())
    console.print(summary)


def _exit_code(result: RolloutResult) -> int:
    verdicts = [b.verdict for b in result.boards]
    if result.abort is not None or any(v.is_firmware_failure for v in verdicts):
        return 1
    if any(v is OutcomeClass.INFRA for v in verdicts) or result.abort_timing() is not None:
        raise InfraError(
            "the rollout lost a board (infrastructure) or misjudged its abort; see the table above"
        )
    return 0
