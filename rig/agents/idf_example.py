"""Espressif's stock OTA examples as they ship (ESP-IDF v5.5.5 examples/system/ota/
{advanced_https_ota,simple_ota_example,native_ota_example}), driven the way Espressif's own
pytest files drive them: the URL written to the console after the example's prompt
(`CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL="FROM_STDIN"`), Wi-Fi credentials when
example_connect() asks, and the outcome read from the example's own lines.

The examples take no commands. What the reference agent's `status` says comes from the
boot's own lines instead: `App version:` (app_init), `Loaded app from partition at offset`
(the bootloader), and the example's confirmation line when rollback is built in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from rig.agents.base import UNKNOWN_STATE, Agent, EventTest, Milestones, Sayings
from rig.errors import InfraError
from rig.farm import BoardSpec
from rig.logs import events as ev

if TYPE_CHECKING:
    from rig.board import Board, Ready
    from rig.console import ConsoleLine
    from rig.net.certs import CertBundle

M = ev.ExampleMessage
PROMPTS = frozenset({M.ADVANCED_START, M.SIMPLE_START})  # then fgets(url, stdin)
COMPLETE = frozenset({M.ADVANCED_SUCCESS, M.SIMPLE_SUCCESS, M.NATIVE_RESTART})
GAVE_UP = frozenset({M.ADVANCED_FAILED, M.BEGIN_FAILED, M.SIMPLE_FAILED, M.NATIVE_FATAL, M.NATIVE_WAITING})
CONFIRMED = frozenset({M.ROLLBACK_CANCELLED, M.DIAGNOSTICS_OK})
PROMPT_TIMEOUT_S = 30.0
# The lab's access point takes any credentials; a real farm's come from the farm file.
LAB_WIFI = ("otarig-lab", "otarig-lab-password")


def wifi_of(spec: BoardSpec) -> tuple[str, str]:
    """What the board answers `Please input ssid password:` with: the farm's Wi-Fi, else the lab's."""
    return (spec.wifi_ssid, spec.wifi_password or "") if spec.wifi_ssid else LAB_WIFI


def _example(messages: frozenset[ev.ExampleMessage]) -> EventTest:
    return lambda e: isinstance(e, ev.ExampleEvent) and e.message in messages


MILESTONES = Milestones(
    complete=_example(COMPLETE),
    gave_up=_example(GAVE_UP),
    confirmed=_example(CONFIRMED),
    selftest_passed=_example(CONFIRMED),
    progress=lambda _: None,
)

# esp_https_ota.c:_ota_write() when esp_ota_write() refuses a range past the partition
# (ESP_ERR_INVALID_SIZE), esp_ota_ops.c:esp_ota_set_boot_partition() under anti-rollback, and
# esp_https_ota_perform()'s failed read on a connection lwIP aborted (ECONNABORTED 113).
WRITE_PAST_SLOT = "esp_https_ota: Error: esp_ota_write failed! err=0x104"
SECURE_VERSION_AT_SWITCH = "secure version is lower than stored in efuse"
HTTPS_READ_FAILED = "esp_https_ota: data read -1, errno 113"
SAYINGS = MappingProxyType(
    {
        "advanced_https_ota": Sayings(
            failed=M.ADVANCED_FAILED.value, complete=M.ADVANCED_SUCCESS.value,
            confirmed=M.ROLLBACK_CANCELLED.value, wrote=(),
            secure_version_refused=M.SECURE_VERSION_LOWER.value, size_refused=WRITE_PAST_SLOT,
            read_failed=HTTPS_READ_FAILED,
        ),
        "simple_ota": Sayings(
            failed=M.SIMPLE_FAILED.value, complete=M.SIMPLE_SUCCESS.value, confirmed=None, wrote=(),
            secure_version_refused=SECURE_VERSION_AT_SWITCH, size_refused=WRITE_PAST_SLOT,
            read_failed=HTTPS_READ_FAILED,
        ),
        "native_ota": Sayings(
            failed=M.NATIVE_FATAL.value, complete=M.NATIVE_RESTART.value, confirmed=M.DIAGNOSTICS_OK.value,
            wrote=(), secure_version_refused=SECURE_VERSION_AT_SWITCH, size_refused=M.NATIVE_FATAL.value,
            read_failed="native_ota_example: Error: SSL data read error",
        ),
    }
)  # fmt: skip
_LACKS = {
    "behaviour": "a stock example has no first-boot behaviour to provoke (no PROTOCOL.md §4 marker): "
    "it cannot be made to crash, hang or fail a self-test on purpose",
    "agent-settings": "a stock example's OTA settings are compiled in (Kconfig), not set over the console",
    "pinning": "a stock example's server certificate is compiled in (server_certs/ca_cert.pem): "
    "nothing to re-pin at run time",
    "resume-markers": "a stock example prints no resume point or progress (no `ota begin resume_from=`)",
}
# Checks only some of the examples make before writing anything.
_EARLY_ANTI_ROLLBACK = (
    "{} checks the secure version only when it switches (esp_ota_set_boot_partition()), after "
    "the whole image is written; only advanced_https_ota refuses it from the descriptor first"
)
_NEVER_CONFIRMS = (
    "simple_ota never marks an update valid (no esp_ota_mark_app_valid_cancel_rollback()): built "
    "with rollback, every update rolls back at the next reset"
)
_VERSION_CHECKS = {
    "advanced_https_ota": "advanced_https_ota refuses only an identical version string "
    "(validate_image_header() compares with memcmp); PROTOCOL.md §6 ordering does not apply",
    "simple_ota": "simple_ota checks no version at all (one esp_https_ota() call)",
    "native_ota": "native_ota refuses only an identical version or the last invalid one "
    "(memcmp); PROTOCOL.md §6 ordering does not apply",
}


class IdfExampleAgent(Agent):
    """One of the three stock examples, by project name."""

    milestones = MILESTONES
    reports_progress = False

    def __init__(self, example: str, wifi: tuple[str, str]) -> None:
        self.example = example
        self.says = SAYINGS[example]
        lacks = {**_LACKS, "ordered-version-check": _VERSION_CHECKS[example]}
        if example != "advanced_https_ota":
            lacks["early-anti-rollback"] = _EARLY_ANTI_ROLLBACK.format(example)
        if example == "simple_ota":
            lacks["confirmation"] = _NEVER_CONFIRMS
        self.lacks: Mapping[str, str] = lacks
        self.wifi = wifi
        self._url_sent_at: int | None = None  # console mark of the last URL written

    def attach(self, board: Board) -> None:
        """Answer example_connect()'s `Please input ssid password:` as soon as it is printed."""

        def on_line(line: ConsoleLine) -> None:
            if isinstance(line.event, ev.ExampleEvent) and line.event.message is M.WIFI_PROMPT:
                text = f"{self.wifi[0]} {self.wifi[1]}"
                threading.Thread(target=board.console.send_line, args=(text,), daemon=True).start()

        board.console.add_listener(on_line)

    def is_ready(self, event: ev.Event) -> bool:
        return _example(PROMPTS)(event)

    def proof_lines(self, lines: tuple[str, ...]) -> tuple[str, ...]:
        """ESP-IDF's own lines only: the reference agent's `rig_agent` markers are not printed,
        and native_ota drives esp_http_client and esp_ota_* itself (no esp_https_ota lines)."""
        foreign = (" rig_agent: ", " esp_https_ota: ") if self.example == "native_ota" else (" rig_agent: ",)
        return tuple(line for line in lines if not any(tag in line for tag in foreign))

    def ready_description(self) -> str:
        return f"{self.example}'s URL prompt ('{' or '.join(sorted(p.value for p in PROMPTS))}')"

    def wait_ready(self, board: Board, timeout: float, since: int) -> Ready | None:
        found = board.console.wait_event(_example(PROMPTS), timeout, since)
        return None if found is None else self._ready(board, found.index)

    def _ready(self, board: Board, index: int) -> Ready:
        """Version, slot and (when the example said so) state of the boot that printed line `index`."""
        from rig.board import Ready

        version, running, state = "?", "?", UNKNOWN_STATE
        for line in reversed(board.console.lines(0)[: index + 1]):
            event = line.event
            if isinstance(event, ev.RomReset):
                break
            if isinstance(event, ev.AppInfo) and event.field is ev.AppInfoField.VERSION and version == "?":
                version = event.value
            elif isinstance(event, ev.SlotLoaded) and running == "?":
                running = event.partition or f"0x{event.offset:x}"
            elif MILESTONES.confirmed(event):
                state = "VALID"
        return Ready(version, running, state, index)

    def status(self, board: Board, timeout: float = 5.0) -> dict[str, str]:
        """The running app as its last boot described it (the examples take no `status`)."""
        lines = board.console.lines(0)
        last_boot = _last(lines, lambda e: isinstance(e, ev.RomReset))
        if last_boot is None or not any(isinstance(line.event, ev.AppInfo) for line in lines[last_boot:]):
            raise InfraError(f"board {board.name}: no app boot on its console to tell what runs")
        ready = self._ready(board, len(lines) - 1)
        return {"version": ready.version, "running": ready.running, "state": ready.state}

    def setup(self, board: Board, certs: CertBundle, settings: Mapping[str, str]) -> None:
        """Nothing to send: the example's certificate and OTA settings are compiled in."""

    def start_ota(self, board: Board, url: str) -> int:
        """Write the URL once the example waits for it. An example reads one URL per boot: one
        that already took it (or ended without a prompt) is reset and its prompt awaited."""
        console = board.console
        lines = console.lines(0)
        prompt = _last(lines, _example(PROMPTS))
        boot = _last(lines, lambda e: isinstance(e, ev.RomReset))
        taken = prompt is not None and self._url_sent_at is not None and self._url_sent_at > prompt
        waiting = prompt is not None and (boot is None or prompt > boot) and not taken
        if not waiting and (taken or self.wait_ready(board, PROMPT_TIMEOUT_S, boot or 0) is None):
            mark = board.reset()
            if self.wait_ready(board, PROMPT_TIMEOUT_S, mark) is None:
                raise InfraError(f"board {board.name}: no {self.ready_description()} within "
                                 f"{PROMPT_TIMEOUT_S:.0f} s of a reset")  # fmt: skip
        mark = console.mark()
        console.send_line(url)
        self._url_sent_at = mark
        return mark


def _last(lines: list[ConsoleLine], test: EventTest) -> int | None:
    return max((i for i, line in enumerate(lines) if test(line.event)), default=None)
