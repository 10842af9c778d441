"""A traced twin records one update; the replay cuts before and inside every operation of it,
and its verdicts match re-running the update with the cut armed (the slow, obvious way)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rig.esp.testimage import make_test_app
from rig.sweep.judge import Band, Judge, Judged
from rig.sweep.records import Image, PointFacts, Record, RunFacts, Stage, TraceFacts
from twin.config import SignedUpdates
from twin.sweep.replay import Sweep, SweepInputs
from twin.trace import TRACE_DIR, read_trace

from .conftest import Keys, Lab, Served, lab_config, start_ota

MakeLab = Callable[..., Lab]


def record(make_lab: MakeLab, served: Served, old: bytes, new: bytes, **config: object) -> tuple[Lab, Path]:
    lab = make_lab(old, lab_config(**config), trace=True)
    served.images["next"] = new
    start_ota(lab, served, "next")
    lab.console.expect(r"rig_agent: (ready version=1\.0\.1 .*state=VALID|ota failed .*)$")
    return lab, lab.board.state_dir / TRACE_DIR


def sweep(trace: Path, tmp_path: Path, served: Served, old: bytes, new: bytes, *, accepted: bool, **kw: object
          ) -> tuple[TraceFacts, list[Judged], dict[int, RunFacts]]:  # fmt: skip
    records: list[Record] = []
    config = lab_config(**kw.pop("config", {}))  # type: ignore[arg-type]
    inputs = SweepInputs(trace, config, old, new, retry=accepted, url=served.url("next"), **kw)  # type: ignore[arg-type]
    work = tmp_path / f"work{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    Sweep(inputs, work, records.append).run()
    facts = next(r for r in records if isinstance(r, TraceFacts))
    runs = {r.run: r for r in records if isinstance(r, RunFacts)}
    judge = Judge(facts, accepted=accepted, retry=accepted)
    judged = [judge.judge(p, runs[p.run]) for p in records if isinstance(p, PointFacts)]
    return facts, judged, runs


def test_the_trace_holds_the_update_from_the_known_state_on(make_lab: MakeLab, served: Served) -> None:
    old, new = make_test_app(version="1.0.0"), make_test_app(version="1.0.1")
    _, trace_dir = record(make_lab, served, old, new)
    trace = read_trace(trace_dir)
    kinds = [e.kind for e in trace.events]
    assert kinds[0] == "boot" and "console" in kinds and "program" in kinds
    programs = [e for e in trace.events if e.kind == "program"]
    assert all(len(e.data) == e.length for e in programs)
    assert any(e.line.startswith("ota https://") for e in trace.events if e.kind == "console")
    assert b"ready version=1.0.1" in trace.uart


def test_every_cut_point_of_a_good_update_is_safe_and_a_rerun_agrees(
    make_lab: MakeLab, served: Served, tmp_path: Path
) -> None:
    old, new = make_test_app(version="1.0.0"), make_test_app(version="1.0.1")
    _, trace_dir = record(make_lab, served, old, new)
    facts, judged, runs = sweep(trace_dir, tmp_path, served, old, new, accepted=True)
    flash_ops = [o for o in facts.ops if o.kind != "efuse"]
    assert len(judged) == len(facts.ops) + len(flash_ops) + 1  # before each, torn in each, after all
    assert all(p.safe for p in judged), [(p.label, p.problems) for p in judged if not p.safe][:3]
    assert len(runs) < len(judged) / 5  # most points shared a run: nothing about them differed
    switch = next(o.index for o in facts.ops if o.stage is Stage.UPDATE and o.selects is Image.NEW)
    before = next(p for p in judged if p.op == switch and p.torn is None)
    after = next(p for p in judged if p.op == switch + 1 and p.torn is None)
    assert (before.settled, before.final, after.settled) == (Image.OLD, Image.NEW, Image.NEW)
    assert {Band.DOWNLOAD, Band.OTADATA, Band.FIRST_BOOT, Band.CONFIRM} <= {p.band for p in judged}
    sample = tuple((p.op, p.torn) for p in judged[:: max(1, len(judged) // 12)])
    _, rerun, _ = sweep(trace_dir, tmp_path, served, old, new, accepted=True, only=sample, rerun=True)
    replayed = {(p.op, p.torn): p for p in judged}
    assert [(p.safe, p.settled, p.final) for p in rerun] == [
        (replayed[k].safe, replayed[k].settled, replayed[k].final) for k in sample
    ]


@pytest.mark.parametrize(("model", "unsafe"), [("reference", False), ("switch-before-verify", True)])
def test_a_switch_before_verify_is_found_and_the_reference_is_clean(
    make_lab: MakeLab, served: Served, keys: Keys, tmp_path: Path, model: str, unsafe: bool
) -> None:
    ours, other = keys
    old, new = make_test_app(version="1.0.0", key=ours), make_test_app(version="1.0.1", key=other)
    config = {"signed_updates": SignedUpdates.RSA3072, "firmware": model}
    _, trace_dir = record(make_lab, served, old, new, **config)
    facts, judged, _ = sweep(trace_dir, tmp_path, served, old, new, accepted=False, config=config)
    bad = [p for p in judged if not p.safe]
    assert bool(bad) is unsafe
    if unsafe:  # from the moment otadata points at the refused image
        switch = next(o.index for o in facts.ops if o.selects is Image.NEW)
        assert bad[0].op == switch + 1 and bad[0].settled is Image.NEW
