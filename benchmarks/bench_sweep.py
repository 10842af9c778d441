"""`rig sweep` of a 1 MiB update on the virtual lab (2-core machine), both ways.

- replay: the whole sweep as shipped — every flash operation of the recorded update, cut
  before and torn half-way through, each state run to steady state (retries included);
  target >= 200 cut points/s;
- re-run on the lab: what a cut point costs when the whole OTA is run again per point on
  a lab board (`rig sweep --farm`: restore the known state with esptool, the OTA with the
  cut through the PSU, recovery, the retry); target: replay >= 50x faster per point;
- re-run on the twin: the same cut points re-run inside the twin's replay process with the
  cut armed by operation index (`rig repro --sweep`), on a stratified sample — no esptool,
  no serial link, virtual time: the floor of what re-running can cost. The sampled
  points' verdicts must agree both ways, or the replay is not what it claims.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

from rig.cli import main as rig
from rig.keyfiles import private_folder
from rig.net.certs import ensure_bundle
from rig.net.ota_server import OtaServer
from rig.resources import scenarios_dir
from rig.results.store import ResultsStore
from rig.sweep.judge import Judge
from rig.sweep.model import SweepResult
from rig.sweep.replay_client import replay
from rig.sweep.repro import NEW_IMAGE, TRACE, SweepMeta, replay_args

SCENARIOS = ("https", "https-resume")
IMAGE_SIZE = "1MiB"
MIN_POINTS_PER_S = 200.0
MIN_SPEEDUP = 50.0
SAMPLE = 24


def _sweep(scenario: str, root: Path) -> SweepResult:
    spec = root / f"{scenario}-1m.yaml"
    text = (scenarios_dir() / "sweeps" / f"{scenario}.yaml").read_text(encoding="utf-8")
    spec.write_text(text + f"image_size: {IMAGE_SIZE}\n", encoding="utf-8")
    reports = root / scenario
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = rig(["sweep", str(spec), "--report-dir", str(reports)])
    store = ResultsStore(reports / "results.db")
    sweeps = store.sweeps(store.latest_run().run_id)
    if code != 0 or not sweeps:
        raise SystemExit(f"sweep {scenario} ended with exit {code}")
    return sweeps[0]


def _rerun_sample(sweep: SweepResult) -> tuple[float, int, int]:
    """Seconds per re-run point over a stratified sample, and how many verdicts agree."""
    points = sweep.points
    step = max(1, len(points) // SAMPLE)
    sample = [p.judged for p in points[::step]][:SAMPLE]
    by_key = {(p.op, p.torn): p for p in sample}
    folder = Path(sweep.folder)
    meta = SweepMeta.read(folder)
    only = ",".join(f"{p.op}" if p.torn is None else f"{p.op}:{p.torn:g}" for p in sample)
    certs = ensure_bundle(private_folder(folder.parent.parent, folder.parent.name) / "certs")
    with OtaServer(certs, {meta.update: (folder / NEW_IMAGE).read_bytes()}) as server:
        started = time.monotonic()
        replayed = replay(
            ["--trace", str(folder / TRACE), *replay_args(folder, meta), "--only", only, "--rerun",
             "--url", server.url_for(meta.update)],
            lambda _done, _total: None,
        )  # fmt: skip
        took = time.monotonic() - started
    assert replayed.facts is not None
    judge = Judge(replayed.facts, accepted=meta.accepted, retry=meta.retry)
    agree = 0
    for point in replayed.points:
        again = judge.judge(point, replayed.runs[point.run])
        want = by_key[(point.op, point.torn)]
        agree += (again.safe, again.settled, again.final) == (want.safe, want.settled, want.final)
    return took / max(1, len(replayed.points)), agree, len(sample)


def _lab_seconds_per_point(root: Path) -> float:
    """Seconds per cut point of a timed sweep of the same update on a lab board."""
    from rig.lab_cli import running_lab

    spec = root / "timed.yaml"
    text = (scenarios_dir() / "sweeps" / "https.yaml").read_text(encoding="utf-8")
    spec.write_text(text + f"image_size: {IMAGE_SIZE}\n", encoding="utf-8")
    with running_lab(root / "lab", 1) as farm:
        reports = root / "timed"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            argv = ["sweep", str(spec), "--farm", str(farm), "--points", "2", "--report-dir", str(reports)]
            code = rig(argv)
    store = ResultsStore(reports / "results.db")
    sweeps = store.sweeps(store.latest_run().run_id)
    if code != 0 or not sweeps:
        raise SystemExit(f"timed sweep ended with exit {code}")
    return sweeps[0].seconds / len(sweeps[0].points)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lab_per_point = _lab_seconds_per_point(root)
        for scenario in SCENARIOS:
            sweep = _sweep(scenario, root)
            name = scenario.replace("-", "_")
            rate = sweep.rate
            print(
                f"sweep_{name}_1mib_points_per_s: measured={rate:.0f} target>={MIN_POINTS_PER_S:g} "
                f"ratio={MIN_POINTS_PER_S / rate:.2f} ({len(sweep.points)} cut points, "
                f"{sweep.runs} device runs, {sweep.seconds:.1f} s, {len(sweep.unsafe)} unsafe)"
            )
            per_point = sweep.seconds / len(sweep.points)
            speedup = lab_per_point / per_point
            print(
                f"sweep_{name}_1mib_replay_vs_lab_rerun: measured={speedup:.0f}x target>={MIN_SPEEDUP:g}x "
                f"ratio={MIN_SPEEDUP / speedup:.2f} (lab re-run {lab_per_point:.2f} s/point, "
                f"replay {per_point * 1000:.2f} ms/point)"
            )
            per_rerun, agree, sampled = _rerun_sample(sweep)
            floor = per_rerun / per_point
            print(
                f"sweep_{name}_1mib_replay_vs_twin_rerun: measured={floor:.0f}x target>={MIN_SPEEDUP:g}x "
                f"ratio={MIN_SPEEDUP / floor:.2f} (twin re-run {per_rerun * 1000:.0f} ms/point over "
                f"{sampled} sampled points; verdicts agree on {agree}/{sampled})"
            )


if __name__ == "__main__":
    main()
