"""`python -m twin sweep`: replay a board's flash trace at every cut point, one JSON record per
line on stdout (`rig.sweep.records`). The rig runs this as a separate process (`rig sweep`)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from rig.errors import InputError
from rig.sweep.records import Record, encode
from twin.lab import BOARDS_DIR
from twin.labconfig import load_lab_config
from twin.sweep.replay import Point, Sweep, SweepInputs
from twin.trace import TRACE_DIR


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = commands.add_parser("sweep", help="replay a flash trace at every power-cut point")
    source = sweep.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, help="a trace directory kept by --save-trace")
    source.add_argument("--lab", type=Path, help="a lab directory: sweep its board's current trace")
    sweep.add_argument("--save-trace", type=Path, default=None, help="keep the lab board's trace here first")
    sweep.add_argument("--config", type=Path, default=None, help="lab config the board was built with")
    sweep.add_argument("--board", default="b1", help="the board's name in the lab (config)")
    sweep.add_argument("--old-image", type=Path, required=True, help="the image the board ran before")
    sweep.add_argument("--new-image", type=Path, required=True, help="the update's image")
    sweep.add_argument("--retry", action="store_true", help="type the update again if the old image idles")
    sweep.add_argument("--fractions", default="0.5", help="comma-separated: where torn operations are cut")
    sweep.add_argument("--url", default=None, help="the update's URL now (its server may have moved)")
    sweep.add_argument("--only", default=None, help="points OP or OP:FRACTION, comma-separated")
    sweep.add_argument("--rerun", action="store_true", help="re-run the whole update per point (slow)")


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        raise InputError(f"--fractions {text!r}: expected numbers like 0.25,0.75") from None
    if not values or any(not 0.0 < v < 1.0 for v in values):
        raise InputError(f"--fractions {text!r}: each must lie strictly between 0 and 1")
    return values


def parse_points(text: str) -> tuple[Point, ...]:
    points: list[Point] = []
    for part in text.split(","):
        op, _, fraction = part.partition(":")
        try:
            points.append((int(op), float(fraction) if fraction else None))
        except ValueError:
            raise InputError(f"--only {part!r}: expected OP or OP:FRACTION") from None
    return tuple(points)


def run(args: argparse.Namespace) -> int:
    config = load_lab_config(args.config).board_config(args.board)
    try:
        old, new = args.old_image.read_bytes(), args.new_image.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read an image: {error.strerror}: {error.filename}") from None
    trace = args.trace or args.lab / BOARDS_DIR / args.board / TRACE_DIR
    if args.save_trace is not None:
        if not trace.is_dir():
            raise InputError(f"{args.lab}: board {args.board} has no flash trace (lab without trace_flash?)")
        shutil.copytree(trace, args.save_trace, dirs_exist_ok=True)
        trace = args.save_trace
    inputs = SweepInputs(
        trace_dir=trace, config=config, old_image=old, new_image=new, retry=args.retry,
        fractions=_fractions(args.fractions), url=args.url,
        only=parse_points(args.only) if args.only else None, rerun=args.rerun,
    )  # fmt: skip

    def emit(record: Record) -> None:
        sys.stdout.write(encode(record) + "\n")
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="ota-rig-sweep-", dir=_fast_tmp()) as work:
        Sweep(inputs, Path(work), emit).run()
    return 0


def _fast_tmp() -> str | None:
    """Memory-backed when the host has it: the working flash is rewritten point after point."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
