"""`rig farm health [FARM] [--recover]`: check every board now, try to recover the ones that
fail (or sit in quarantine) with a full reflash, and return the healthy ones to service.

Run it before a night's suite, after moving boards between hosts, or when a report shows
a board quarantined. Exit 0: every board checked is healthy; 3: some board still fails
(the table says which step and why); 2: bad input.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console as RichConsole
from rich.table import Table

from rig.errors import InfraError
from rig.farm import BoardSpec, Farm, load_farm
from rig.health.check import check_board
from rig.health.policy import apply_check
from rig.health.records import HealthCheck, Quarantine, Step, Trigger
from rig.results.store import ResultsStore


@click.command("health")
@click.argument("farm_file", required=False)
@click.option(
    "--recover",
    is_flag=True,
    help="reflash (every OTA slot erased whole) boards that fail or are quarantined",
)
@click.option("--boards", default="", help="comma-separated board names (default: all)")
@click.option(
    "--report-dir", default="reports", show_default=True, help="where results.db (the quarantine) lives"
)
@click.option(
    "--base-image", default=None, help="the farm's ESP-IDF app build (default: the rig's reference image)"
)
@click.option("--signing-key", default=None, help="the PEM key that signed --base-image")
def farm_health(
    farm_file: str | None, recover: bool, boards: str, report_dir: str, base_image: str | None,
    signing_key: str | None,
) -> None:  # fmt: skip
    """Health-check every board (read-mac, flash base, boot, power cycle, status)."""
    from rig.builder import server_identity
    from rig.imageset import ImageLibrary, prepare_image_set
    from rig.keyfiles import private_folder
    from rig.run_cli import farm_or_lab

    reports = Path(report_dir)
    store = ResultsStore(reports / "results.db")
    quarantined = store.quarantined()  # an unreadable store is said before any board is touched
    rows: list[tuple[BoardSpec, HealthCheck, HealthCheck | None, Quarantine | None]] = []
    with ExitStack() as stack:
        parsed = load_farm(farm_or_lab(stack, farm_file, 2))
        chosen = parsed.select([b for b in boards.split(",") if b])
        folder = reports / "health"
        private = private_folder(reports, "health")
        key = Path(signing_key) if signing_key else None
        signing = frozenset(b.firmware.signing for b in chosen)
        images = prepare_image_set(
            folder / "images", base=Path(base_image) if base_image else None, key=key, signing=signing,
            seed=0, private=private,
        )  # fmt: skip
        library = ImageLibrary(
            folder / "images", images, custom_base=base_image is not None, key=key, signing=signing, seed=0,
            private=private, ca_pem=lambda: server_identity(parsed, private).ca_pem.read_bytes(),
        )  # fmt: skip
        progress = RichConsole(stderr=True, markup=False)
        for spec in chosen:
            base = library.base_for(spec)
            with progress.status(f"{spec.name}: health check"):
                first = _check(store, parsed, spec, base, folder, Trigger.ON_DEMAND)
            retry = None
            if recover and (not first.passed or spec.name in quarantined):
                with progress.status(f"{spec.name}: full reflash and check"):
                    retry = _check(store, parsed, spec, base, folder, Trigger.RECOVERY, full=True)
            rows.append((spec, first, retry, store.quarantined().get(spec.name)))
    _print(rows, quarantined)
    failing = [spec.name for spec, first, retry, _ in rows if not (retry or first).passed]
    if failing:
        raise InfraError(
            f"{len(failing)} of {len(rows)} boards failed their health check: {', '.join(failing)}"
        )


def _check(
    store: ResultsStore, farm: Farm, spec: BoardSpec, base: bytes, folder: Path, trigger: Trigger, *,
    full: bool = False,
) -> HealthCheck:  # fmt: skip
    check = check_board(farm, spec, base, folder / f"{spec.name}-{trigger.value}", trigger, full_reflash=full)
    apply_check(store, check, farm.health.quarantine_after, may_return=True)
    return check


def _print(
    rows: list[tuple[BoardSpec, HealthCheck, HealthCheck | None, Quarantine | None]],
    before: dict[str, Quarantine],
) -> None:
    table = Table(title="board health")
    for column in ("board", "check", *(step.value for step in Step), "result", "service"):
        table.add_column(column, overflow="fold")
    for spec, first, retry, quarantine in rows:
        for check in (first, retry):
            if check is None:
                continue
            took = {s.step.value: f"{s.seconds:.2f}" + ("" if s.ok else " ✗") for s in check.steps}
            result = "healthy" if check.passed else f"FAILED {check.reason}"
            if quarantine is not None:
                service = f"quarantined since {quarantine.since}"
            else:
                service = "returned to service" if spec.name in before else "in service"
            table.add_row(
                spec.name, check.trigger.value, *(took.get(s.value, "–") for s in Step), result, service
            )
    RichConsole(markup=False).print(table)
    for spec, _, _, quarantine in rows:  # what changed, one greppable line each
        if quarantine is None and spec.name in before:
            click.echo(f"rig farm health: {spec.name} returned to service")
        elif quarantine is not None and spec.name not in before:
            click.echo(f"rig farm health: {spec.name} quarantined ({quarantine.reason})")
