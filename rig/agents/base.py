"""How the rig talks to a board's firmware, and what that firmware prints at the OTA
milestones the verdicts read.

Two kinds of firmware are first-class: the reference agent (firmware_under_test/PROTOCOL.md,
console commands and `rig_agent` markers) and Espressif's stock OTA examples, which know no
commands: the URL goes to the console after their prompt and the outcome is read from
ESP-IDF's and the example's own lines plus the otadata read-back. A board's farm entry says
which (`firmware.protocol`); the session and the verdicts ask its `Agent`, never the log
vocabulary of one firmware.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.logs import events as ev

if TYPE_CHECKING:
    from rig.board import Board, Ready
    from rig.net.certs import CertBundle

EventTest = Callable[[ev.Event], bool]
# The otadata state of the running app when its firmware does not print it.
UNKNOWN_STATE = "UNKNOWN"


@dataclass(frozen=True)
class Milestones:
    """Which console events mark an OTA's milestones on one kind of firmware.

    `complete`: the image is written, verified and the boot partition switched (a restart
    follows). `gave_up`: the OTA ended without a switch and the old app keeps running.
    `confirmed`: the new image marked itself valid. `selftest_passed`: its own health check
    passed (the stock examples' checkpoint is the confirmation itself). `progress`: bytes
    written and the total, when the firmware reports them.
    """

    complete: EventTest
    gave_up: EventTest
    confirmed: EventTest
    selftest_passed: EventTest
    progress: Callable[[ev.Event], tuple[int, int] | None]

    def ended(self, event: ev.Event) -> bool:
        """The OTA is over for the rig: completed, given up, or the chip reset under it."""
        return self.complete(event) or self.gave_up(event) or isinstance(event, ev.RomReset)


@dataclass(frozen=True)
class Sayings:
    """Lines (substrings) a scenario looks for in an OTA's log on this firmware."""

    failed: str  # the OTA failed and the firmware said so
    complete: str  # the download is verified and the boot partition switched
    confirmed: str | None  # the new image marked itself valid (None: this firmware never does)
    wrote: tuple[str, ...]  # lines that only appear once image bytes were written
    secure_version_refused: str  # an image below the eFuse's secure version was refused
    size_refused: str  # a write past the end of the target slot was refused
    read_failed: str  # a read from a dead connection failed


class Agent(ABC):
    """The console conversation with one board's firmware."""

    milestones: Milestones
    says: Sayings
    # A scenario that needs something this firmware lacks skips with the reason.
    lacks: Mapping[str, str] = {}
    # Whether the firmware prints how much of the image it has written (cut points by fraction).
    reports_progress: bool = True

    @abstractmethod
    def is_ready(self, event: ev.Event) -> bool:
        """The event is this firmware's "ready for an update" line."""

    def proof_lines(self, lines: tuple[str, ...]) -> tuple[str, ...]:
        """The manifest's proof lines ("L tag: message") this firmware can print."""
        return lines

    @abstractmethod
    def wait_ready(self, board: Board, timeout: float, since: int) -> Ready | None:
        """The app's "ready for an update" point after console mark `since`, or None."""

    @abstractmethod
    def status(self, board: Board, timeout: float = 5.0) -> dict[str, str]:
        """At least `version`, `running` and `state` of the running app."""

    @abstractmethod
    def setup(self, board: Board, certs: CertBundle, settings: Mapping[str, str]) -> None:
        """After a prepare: trust `certs` and apply the scenario's agent `settings`."""

    @abstractmethod
    def start_ota(self, board: Board, url: str) -> int:
        """Start an update from `url`; returns the console mark its lines come after."""

    def attach(self, board: Board) -> None:  # noqa: B027 - optional hook
        """Called once when the board opens (e.g. to answer prompts as lines arrive)."""

    def ready_description(self) -> str:
        """What `wait_ready` waits for, in an error message."""
        return "the app's ready line"
