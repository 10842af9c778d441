"""The `rig` command line.

Each area owns its own click group in its own module; this file only lists them,
so a new command area is one module plus one line in COMMANDS. Subcommands are
imported lazily: `rig --help` stays fast and one broken area cannot hide the rest.

Exit codes: 0 success, 1 the device did the wrong thing (verdict/gate failed),
2 bad input, 3 infrastructure failure, or an internal error of the rig itself (its
traceback goes to a file, never to the user's terminal).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from rig.errors import InfraError, InputError, RigError

INTERNAL_ERROR_EXIT = InfraError.exit_code

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "partitions": "rig.esp.cli_tables:partitions",
    "otadata": "rig.esp.cli_tables:otadata",
    "flash-image": "rig.esp.cli_tables:flash_image",
    "image": "rig.esp.cli_image:image",
    "keys": "rig.esp.cli_image:keys",
    "images": "rig.images.cli:images",
    "power": "rig.power.cli:power",
    "lab": "rig.lab_cli:lab",
    "report": "rig.report.cli:report",
    "gate": "rig.gate:gate",
    "run": "rig.run_cli:run",
    "repro": "rig.run_cli:repro",
    "farm": "rig.run_cli:farm",
    "rollout": "rig.rollout.cli:rollout",
    "sweep": "rig.sweep.cli:sweep",
    "idf-tests": "rig.idf.cli:idf_tests",
    "embedded": "rig.idf.cli:embedded",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ota-rig")
def cli() -> None:
    """Prove ESP32 OTA updates survive power cuts, network faults and bad images."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every RigError becomes one line on stderr and its exit code."""
    try:
        cli.main(args=argv, prog_name="rig", standalone_mode=False)
    except RigError as error:
        click.echo(f"rig: error: {error}", err=True)
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("rig: aborted", err=True)
        return 130
    except click.UsageError as error:  # one line, like every other mistake
        command = error.ctx.command_path if error.ctx is not None else "rig"
        click.echo(f"rig: error: {error.format_message()} (see '{command} --help')", err=True)
        return InputError.exit_code
    except click.ClickException as error:
        click.echo(f"rig: error: {error.format_message()}", err=True)
        return error.exit_code
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except SystemExit as done:  # commands that end with a verdict exit code
        return done.code if isinstance(done.code, int) else 0
    except Exception as error:  # a bug in the rig: never exit 1, which means "the device failed"
        report = _save_traceback()
        click.echo(f"rig: internal error (a bug in ota-rig, not in the device): "
                   f"{type(error).__name__}: {error}; traceback in {report}", err=True)  # fmt: skip
        return INTERNAL_ERROR_EXIT
    return 0


def _save_traceback() -> str:
    """The traceback of the exception being handled, in a file named in the one-line error."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(tempfile.gettempdir()) / f"ota-rig-internal-error-{stamp}-{os.getpid()}.txt"
    try:
        path.write_text(traceback.format_exc(), encoding="utf-8")
    except OSError:
        return "(could not be written)"
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
