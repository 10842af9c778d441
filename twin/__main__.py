"""`python -m twin serve --dir LABDIR [--boards N] [--config lab.yaml]`: the lab daemon;
`python -m twin sweep …`: a flash trace replayed at every cut point (twin/sweep/cli.py).

The rig starts this as a separate process (`rig lab up`) so that `rig/` never
imports `twin/`; run it by hand to watch a lab in the foreground.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.errors import InputError, RigError
from twin.lab import serve
from twin.labconfig import DEFAULT_BOARD_COUNT, load_lab_config
from twin.sweep import cli as sweep_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin", description="The virtual ESP32 lab.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run a lab in the foreground until SIGTERM/SIGINT")
    run.add_argument("--dir", type=Path, required=True, help="lab state directory (flash, eFuses, farm file)")
    run.add_argument("--boards", type=int, default=None, help=f"twin boards (default {DEFAULT_BOARD_COUNT})")
    run.add_argument("--config", type=Path, default=None, help="lab config YAML (per-board firmware traits)")
    sweep_cli.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            return sweep_cli.run(args)
        config = load_lab_config(args.config)
        count = args.boards if args.boards is not None else config.count or DEFAULT_BOARD_COUNT
        if count < 1:
            raise InputError(f"--boards must be at least 1, not {count}")
        return serve(args.dir.resolve(), count, config)
    except RigError as error:
        print(f"twin: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
