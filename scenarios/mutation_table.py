"""Mutation table for the suite: which scenarios catch each deliberately broken firmware model.

For every broken twin model (twin/README.md) this brings up a fresh virtual lab whose boards
all run that model, runs the whole suite against it, and prints a Markdown table of the
scenarios that failed. A break no scenario catches is a blind spot of the suite. Not part
of the test suite (it runs the suite once per model, minutes each). A model counts as caught only when a
scenario's failure names its own deviation (`OWN_REASON`); it exits 1 otherwise:

    python -m scenarios.mutation_table [--models no-resume,...] [--boards 2] [--reference]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# Each broken model and what a failure must name to have caught it for its own reason (not
# through an unrelated line the bug happened to disturb).
OWN_REASON: dict[str, re.Pattern[str]] = {
    "confirm-before-selftest": re.compile(r"before its self-test passed|ended on new .*correct is old"),
    "switch-before-verify": re.compile(r"ended on new firmware .*correct is old|otadata"),
    "no-version-check": re.compile(r"same_version|older_version|lower_secure_version|running version"),
    "ignore-signature": re.compile(r"ended on new firmware .*correct is old|[Ss]ignature|secure_boot"),
    "no-resume": re.compile(r"resume_from|Range|bytes served for a resumed"),
    "resume-ahead": re.compile(r"resumed from byte \d+, past what the device saved"),
    "lexical-version": re.compile(r"ended on old firmware .*correct is new|reason=older_version"),
    "erase-past-slot": re.compile(r"flash written where it must not be"),
}
BROKEN_MODELS = tuple(OWN_REASON)
LAB_START_S = 60.0
SUITE_TIMEOUT_S = 1800.0
_BOARD_PARAM = re.compile(r"\[(?:b\d+-)?(?P<rest>[^\]]*?)(?:-?b\d+)?\]$")


@dataclass(frozen=True)
class MutantRun:
    """One model's suite run: the scenarios that failed (or errored) and the totals."""

    model: str
    caught: tuple[str, ...]
    for_its_reason: tuple[str, ...]
    passed: int
    failed: int
    skipped: int
    seconds: float


def scenario_name(classname: str, name: str) -> str:
    """`test_power_cut.py::test_cut_during_first_boot` from a junit test case (board dropped)."""
    module = classname.rsplit(".", 1)[-1]
    match = _BOARD_PARAM.search(name)
    base = name[: match.start()] if match else name
    rest = match["rest"] if match else ""
    return f"{module}.py::{base}" + (f"[{rest}]" if rest else "")


def read_junit(path: Path) -> tuple[dict[str, str], int, int, int]:
    """Failed scenarios with their failure text, and pass/fail/skip counts, from pytest's junit XML."""
    failed: dict[str, str] = {}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            name = scenario_name(case.get("classname", ""), case.get("name", ""))
            texts = [f"{c.get('message', '')}\n{c.text or ''}" for c in case if c.tag in ("failure", "error")]
            failed[name] = failed.get(name, "") + "\n".join(texts)
            counts["failed"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return failed, counts["passed"], counts["failed"], counts["skipped"]


def _farm_for_suite(lab_farm: Path, out: Path, model: str) -> Path:
    """The lab's farm file under a name of its own: board locks are per farm name and board.

    Boards are not offered for eFuse burning: a burnt secure_version outlives the test and
    makes every later known state (the base image) unbootable.
    """
    data = yaml.safe_load(lab_farm.read_text(encoding="utf-8"))
    data["name"] = f"mutant-{model}-{os.getpid()}"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def run_model(model: str, boards: int, work: Path) -> MutantRun:
    """Bring up a lab running `model` on every board, run the suite, take the lab down."""
    folder = work / model
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "lab.yaml"
    config.write_text(yaml.safe_dump({"defaults": {"firmware": model}}), encoding="utf-8")
    lab = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--dir", str(folder / "lab"), "--boards", str(boards),
         "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
    )
    lab_farm = folder / "lab" / "farm.yaml"
    try:
        deadline = time.monotonic() + LAB_START_S
        while not lab_farm.exists() and lab.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not lab_farm.exists():
            raise SystemExit(f"{model}: the lab did not come up (see {folder / 'lab'})")
        farm = _farm_for_suite(lab_farm, folder / "farm.yaml", model)
        junit = folder / "junit.xml"
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "pytest", "scenarios", "--farm", str(farm), "-n", str(boards),
             "--dist", "loadgroup", "-p", "no:cacheprovider", "-q", "-W", "ignore",
             "--report-dir", str(folder / "reports"), "--junitxml", str(junit)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=SUITE_TIMEOUT_S,
            check=False,
        )
        seconds = time.monotonic() - started
        caught, passed, failed, skipped = read_junit(junit)
        reason = OWN_REASON.get(model)
        own = tuple(sorted(name for name, text in caught.items() if reason and reason.search(text)))
        return MutantRun(model, tuple(sorted(caught)), own, passed, failed, skipped, seconds)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)


def table(runs: list[MutantRun]) -> str:
    lines = ["| Break (twin model) | Scenarios that caught it (**bold**: for its own reason) "
             "| passed / failed / skipped |", "|---|---|---|"]
    for run in runs:
        names = (f"**`{name}`**" if name in run.for_its_reason else f"`{name}`" for name in run.caught)
        caught = "<br>".join(names)
        lines.append(f"| `{run.model}` | {caught or '**none: blind spot**'} "
                     f"| {run.passed} / {run.failed} / {run.skipped} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(BROKEN_MODELS), help="comma-separated twin models")
    parser.add_argument("--boards", type=int, default=2, help="boards per lab (one xdist worker each)")
    parser.add_argument("--reference", action="store_true", help="also run the reference model (control)")
    parser.add_argument("--work", type=Path, default=None, help="where labs and reports go (default: temp)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if args.reference:
        models.insert(0, "reference")
    work = args.work or Path(tempfile.mkdtemp(prefix="mutation-table-"))
    runs = []
    for model in models:
        run = run_model(model, args.boards, work)
        print(f"{model}: {len(run.caught)} scenario(s) failed in {run.seconds:.0f} s", file=sys.stderr)
        runs.append(run)
    print(table(runs))
    blind = [run.model for run in runs if run.model != "reference" and not run.for_its_reason]
    if blind:
        print(f"not caught for their own reason: {', '.join(blind)}", file=sys.stderr)
    return 1 if blind else 0


if __name__ == "__main__":
    sys.exit(main())
