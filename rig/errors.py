"""The error classes the CLI turns into one clear line and an exit code.

Bad input and broken infrastructure are kept apart on purpose: a run must never
report "the port vanished" as "the firmware failed".
"""


class RigError(Exception):
    """A failure the user can act on; its message is a single line, no traceback."""

    exit_code = 2

    def __str__(self) -> str:
        # What the user typed may hold a newline or a control character: quote it, keep one line.
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in super().__str__())


class InputError(RigError):
    """Bad input: farm file, image, key, CSV, CLI argument."""

    exit_code = 2


class FormatError(InputError):
    """Bytes that are not what an ESP-IDF format says they must be."""


class NotReproduced(RigError):
    """`rig repro`: the requested fault never fired, so nothing was reproduced (and nothing judged)."""

    exit_code = 4


class InfraError(RigError):
    """The rig's own infrastructure failed: port gone, instrument silent, server down."""

    exit_code = 3


class WindowMissed(RigError):
    """The fault landed outside the phase the experiment targets on every try: the run says
    nothing about that phase (INCONCLUSIVE, neither a pass nor a firmware failure)."""

    exit_code = 4
