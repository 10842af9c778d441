"""The reference agent: firmware_under_test/PROTOCOL.md (console commands, `rig_agent` markers)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rig.agents.base import Agent, Milestones, Sayings
from rig.errors import InfraError, InputError
from rig.logs import events as ev

if TYPE_CHECKING:
    from rig.board import Board, Ready
    from rig.net.certs import CertBundle


def _progress(event: ev.Event) -> tuple[int, int] | None:
    return (event.bytes, event.total) if isinstance(event, ev.RigOtaProgress) else None


MILESTONES = Milestones(
    complete=lambda e: isinstance(e, ev.RigOtaComplete),
    gave_up=lambda e: isinstance(e, ev.RigOtaFailed | ev.RigOtaRejected),
    confirmed=lambda e: isinstance(e, ev.RigAppConfirmed),
    selftest_passed=lambda e: isinstance(e, ev.RigSelftest) and e.step is ev.SelftestStep.PASSED,
    progress=_progress,
)


class RigAgent(Agent):
    """PROTOCOL.md v1: `ready`, `status`, `cert`, `ota-config`, `ota <url>`."""

    milestones = MILESTONES
    says = Sayings(
        failed="rig_agent: ota failed",
        complete="rig_agent: ota complete",
        confirmed="rig_agent: app confirmed valid",
        wrote=("rig_agent: ota saved", "rig_agent: ota progress"),
        secure_version_refused="rig_agent: ota rejected reason=lower_secure_version",
        size_refused="rig_agent: ota failed err=0x104",
        read_failed="esp_https_ota: data read -1, errno 113",
    )

    def is_ready(self, event: ev.Event) -> bool:
        return isinstance(event, ev.RigReady)

    def wait_ready(self, board: Board, timeout: float, since: int) -> Ready | None:
        from rig.board import Ready

        found = board.console.wait_event(ev.RigReady, timeout, since)
        if found is None:
            return None
        assert isinstance(found.event, ev.RigReady)
        return Ready(found.event.version, found.event.running, found.event.state, found.index)

    def ready_description(self) -> str:
        return "'rig_agent: ready'"

    def command(self, board: Board, text: str, timeout: float = 5.0) -> str:
        """Send a command; returns its `ok` details. An `error` reply raises InputError."""
        word = text.split()[0]
        mark = board.console.send_line(text)
        found = board.console.wait_event(
            lambda e: isinstance(e, ev.RigReply) and e.command == word, timeout, mark
        )  # this command's reply, not an earlier one's
        if found is None:
            raise InfraError(f"board {board.name}: no reply to {word!r} within {timeout:.0f} s")
        reply = found.event
        assert isinstance(reply, ev.RigReply)
        if not reply.ok:
            raise InputError(f"board {board.name}: {word} refused: {reply.details}")
        return reply.details

    def status(self, board: Board, timeout: float = 5.0) -> dict[str, str]:
        """The status line's key=value fields (PROTOCOL.md §1)."""
        mark = board.console.send_line("status")
        found = board.console.wait_event(ev.RigStatus, timeout, mark)
        if found is None:
            raise InfraError(f"board {board.name}: no status line within {timeout:.0f} s")
        assert isinstance(found.event, ev.RigStatus)
        return dict(found.event.fields)

    def setup(self, board: Board, certs: CertBundle, settings: Mapping[str, str]) -> None:
        self.pin(board, certs)
        if settings:
            self.command(board, "ota-config " + " ".join(f"{k}={v}" for k, v in settings.items()))

    def pin(self, board: Board, certs: CertBundle) -> None:
        self.command(board, "cert " + base64.b64encode(certs.ca_der()).decode())

    def start_ota(self, board: Board, url: str) -> int:
        mark = board.console.mark()
        self.command(board, f"ota {url}")
        return mark
