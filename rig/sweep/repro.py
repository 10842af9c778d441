"""`rig repro --sweep FOLDER --op N [--torn F]`: one cut point of a finished sweep, re-run on a
twin exactly (the whole recorded update again, power cut by operation index), with its serial
log and its verdict.

The sweep's folder keeps the trace, the lab config and both images; the run's certificates
are reused so the pinned CA the device stored during the recording still matches."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from rig.errors import InfraError, InputError
from rig.keyfiles import private_folder
from rig.net.certs import ensure_bundle
from rig.net.ota_server import OtaServer
from rig.sweep.judge import Judge, infra_reason
from rig.sweep.replay_client import replay

META = "sweep.json"
TRACE = "trace"
OLD_IMAGE = "old.bin"
NEW_IMAGE = "new.bin"
LAB_CONFIG = "lab.yaml"


@dataclass(frozen=True)
class SweepMeta:
    """What a sweep folder must remember to re-run one of its points."""

    update: str
    accepted: bool
    retry: bool

    def write(self, folder: Path) -> None:
        (folder / META).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> SweepMeta:
        try:
            data = json.loads((folder / META).read_text(encoding="utf-8"))
            return cls(str(data["update"]), bool(data["accepted"]), bool(data["retry"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{folder}: not a sweep folder (no readable {META}); pass the folder "
                             "`rig sweep` printed in its repro lines") from None  # fmt: skip


def replay_args(folder: Path, meta: SweepMeta) -> list[str]:
    """The twin replay's arguments for this folder's trace, images and build."""
    return [
        "--config", str(folder / LAB_CONFIG), "--old-image", str(folder / OLD_IMAGE),
        "--new-image", str(folder / NEW_IMAGE), *(["--retry"] if meta.retry and meta.accepted else []),
    ]  # fmt: skip


def repro_point(folder: Path, op: int, torn: float | None) -> int:
    """Re-run one point; 0 when it is safe, 1 when not (exit codes of `rig repro`)."""
    meta = SweepMeta.read(folder)
    certs = ensure_bundle(private_folder(folder.parent.parent, folder.parent.name) / "certs")
    point = f"{op}" if torn is None else f"{op}:{torn:g}"
    fractions = ["--fractions", f"{torn:g}"] if torn is not None else []
    with OtaServer(certs, {meta.update: (folder / NEW_IMAGE).read_bytes()}) as server:
        replayed = replay(
            ["--trace", str(folder / TRACE), *replay_args(folder, meta), "--only", point, "--rerun",
             "--url", server.url_for(meta.update), *fractions],
            lambda _done, _total: None,
        )  # fmt: skip
    if not replayed.points or replayed.facts is None:
        last = len(replayed.facts.ops) if replayed.facts else 0
        what = f"op {op}" + ("" if torn is None else f" torn {torn:g}")
        raise InputError(f"no cut point {what} in this sweep (operations 0..{last}; eFuse burns tear not)")
    facts_point = replayed.points[0]
    run = replayed.runs[facts_point.run]
    judged = Judge(replayed.facts, accepted=meta.accepted, retry=meta.retry).judge(facts_point, run)
    click.echo(run.log, nl=False)
    click.echo(f"--- {judged.label} ({judged.band.value}), cut on the way through a re-run of the update")
    infra = infra_reason(run)
    if infra:
        raise InfraError(f"{judged.label}: {infra}")
    if judged.safe:
        click.echo(f"{judged.label}: safe ({judged.settled.value if judged.settled else '-'} image settled)")
        return 0
    for problem, detail in judged.problems:
        click.echo(f"{judged.label}: UNSAFE {problem.value}: {detail}")
    return 1
