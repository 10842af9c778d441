"""Power switching through external commands (a PDU CLI, uhubctl, a vendor tool).

The same escape hatch LAVA (power_on_command) and labgrid (ExternalPowerDriver)
offer: any switch the rig has no driver for still works. Commands run without a
shell (shlex.split), with a timeout; a failing command is the lab's problem, so it
becomes InfraError carrying the last line the command wrote to stderr.
"""

from __future__ import annotations

import shlex
import subprocess

from rig.errors import InfraError, InputError
from rig.power import register
from rig.power.base import DEFAULT_OFF_SECONDS, PowerDriver, Seconds


@register("command")
class CommandPowerDriver(PowerDriver):
    """Runs `on_command` / `off_command` (and `cycle_command`, if given, for cycle())."""

    def __init__(
        self,
        *,
        on_command: str,
        off_command: str,
        cycle_command: str | None = None,
        timeout_s: Seconds = 30.0,
        off_seconds: Seconds = DEFAULT_OFF_SECONDS,
    ) -> None:
        super().__init__(off_seconds)
        self.on_command = _argv("on_command", on_command)
        self.off_command = _argv("off_command", off_command)
        self.cycle_command = None if cycle_command is None else _argv("cycle_command", cycle_command)
        self.timeout_s = timeout_s

    def on(self) -> None:
        self._run(self.on_command)

    def off(self) -> None:
        self._run(self.off_command)

    def cycle(self, off_seconds: float | None = None) -> None:
        if self.cycle_command is None or off_seconds is not None:
            super().cycle(off_seconds)
        else:
            self._run(self.cycle_command)

    def is_on(self) -> bool | None:
        return None

    def describe(self) -> str:
        on, off = shlex.join(self.on_command), shlex.join(self.off_command)
        return f"command: on {on!r}, off {off!r}: cuts power"

    def close(self) -> None:
        """Nothing is held open between commands."""

    def _run(self, argv: list[str]) -> None:
        shown = shlex.join(argv)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise InfraError(f"power command {shown!r}: {argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise InfraError(f"power command {shown!r} did not finish within {self.timeout_s:g} s") from None
        except OSError as error:
            raise InfraError(f"power command {shown!r} cannot run: {error}") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            detail = f": {lines[-1].strip()}" if lines else ""
            raise InfraError(f"power command {shown!r} exited with status {done.returncode}{detail}")


def _argv(key: str, command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise InputError(f"power driver command: {key} cannot be split: {error}") from None
    if not argv:
        raise InputError(f"power driver command: {key} is empty")
    return argv
