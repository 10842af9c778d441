"""Fold a stream of log events into one `BootRecord` per boot.

A boot starts at the ROM `rst:` line and ends at the next one (or the end of the
log). The record answers what scenarios ask: which slot ran, which version, did
the app come up, and how did the boot end (panic, watchdog, power lost, ...).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rig.logs import events as ev

# ROM reset reasons meaning "a watchdog reset the chip" (esp_rom ets_main reset-reason names, as the ROM
# prints them).
_WATCHDOG_RESETS = frozenset(
    {
        "OWDT_RESET",
        "TG0WDT_SYS_RESET",
        "TG1WDT_SYS_RESET",
        "RTCWDT_SYS_RESET",
        "TGWDT_CPU_RESET",
        "RTCWDT_CPU_RESET",
        "RTCWDT_RTC_RESET",
        "TG0WDT_SYS_RST",
        "TG1WDT_SYS_RST",
        "RTCWDT_SYS_RST",
        "TG0WDT_CPU_RST",
        "TG1WDT_CPU_RST",
        "RTCWDT_CPU_RST",
        "RTCWDT_RTC_RST",
        "SUPER_WDT_RST",
    }
)
_BROWNOUT_RESETS = frozenset({"RTCWDT_BROWN_OUT_RESET", "RTCWDT_BROWN_OUT_RST"})


class BootOutcome(enum.Enum):
    """How one boot ended."""

    APP_RUNNING = "app_running"
    PANIC = "panic"
    WATCHDOG = "watchdog"
    BROWNOUT = "brownout"
    NO_BOOTABLE_APP = "no_bootable_app"
    DOWNLOAD_MODE = "download_mode"
    POWER_LOST = "power_lost"
    INCOMPLETE = "incomplete"


class SelftestResult(enum.Enum):
    """The rig_agent first-boot self-test as seen in this boot."""

    NONE = "none"
    BEGUN = "begun"
    PASSED = "passed"
    FAILED = "failed"


class OtaOutcome(enum.Enum):
    """How one OTA attempt inside a boot ended."""

    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


_OTA_SUCCESS = frozenset(
    {ev.ExampleMessage.ADVANCED_SUCCESS, ev.ExampleMessage.SIMPLE_SUCCESS, ev.ExampleMessage.NATIVE_RESTART}
)
_OTA_FAILURE = frozenset(
    {
        ev.ExampleMessage.ADVANCED_FAILED,
        ev.ExampleMessage.SIMPLE_FAILED,
        ev.ExampleMessage.IMAGE_CORRUPTED,
        ev.ExampleMessage.INCOMPLETE_DATA,
        ev.ExampleMessage.GET_IMG_DESC_FAILED,
        ev.ExampleMessage.NATIVE_LENGTH,
    }
)
_OTA_REJECTION = {
    ev.ExampleMessage.SAME_VERSION: "same_version",
    ev.ExampleMessage.SECURE_VERSION_LOWER: "lower_secure_version",
    ev.ExampleMessage.NATIVE_SAME_AS_INVALID: "same_as_invalid_version",
}


@dataclass
class OtaAttempt:
    """One OTA download seen in a boot, from `ota begin` / `Starting OTA...` to its end."""

    start: ev.Event
    url: str | None = None
    resume_from: int = 0
    partition: str | None = None
    image_version: str | None = None
    image_secure_version: int | None = None
    outcome: OtaOutcome = OtaOutcome.IN_PROGRESS
    reason: str | None = None
    bytes: int = 0
    total: int | None = None
    errors: list[ev.Event] = field(default_factory=list)

    def finish(self, outcome: OtaOutcome, reason: str | None) -> None:
        """Close the attempt; a failure without its own reason quotes the first error line."""
        self.outcome = outcome
        if reason is None and self.errors and outcome is not OtaOutcome.COMPLETE:
            reason = self.errors[0].line.message
        self.reason = reason


@dataclass
class BootRecord:
    """Everything one boot told us; `events` keeps every line for evidence."""

    index: int
    reset: ev.RomReset | None = None
    partition_table: list[ev.PartitionRow] = field(default_factory=list)
    slot_offset: int | None = None
    slot_name: str | None = None
    project: str | None = None
    app_version: str | None = None
    secure_version: int | None = None
    idf_version: str | None = None
    outcome: BootOutcome = BootOutcome.INCOMPLETE
    app_reached: ev.Event | None = None
    terminal: ev.Event | None = None
    ended_by: ev.RomReset | None = None
    selftest: SelftestResult = SelftestResult.NONE
    ota_attempts: list[OtaAttempt] = field(default_factory=list)
    errors: list[ev.Event] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)

    @property
    def reset_reason(self) -> str | None:
        """The ROM reset reason name (`POWERON_RESET`, `SW_CPU_RESET`, …); None if the log began mid-boot."""
        return self.reset.reason if self.reset else None

    @property
    def download_mode(self) -> bool:
        """The chip came up in the ROM download loader."""
        return self.reset is not None and self.reset.download_mode

    @property
    def power_on(self) -> bool:
        """The boot started from power-on (a cut and restore, or first power)."""
        return self.reset is not None and self.reset.reason.startswith("POWERON")

    @property
    def t_start(self) -> float | None:
        """Host receive time of the boot's first line, when the capture provided times."""
        return self.events[0].t if self.events else None

    def find(self, kind: type[ev.Event]) -> list[ev.Event]:
        """All events of one class in this boot."""
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class BootTimeline:
    """The boots of one capture, oldest first."""

    boots: list[BootRecord] = field(default_factory=list)

    def __iter__(self) -> Iterator[BootRecord]:
        return iter(self.boots)

    def __len__(self) -> int:
        return len(self.boots)

    def __getitem__(self, index: int) -> BootRecord:
        return self.boots[index]

    @property
    def last(self) -> BootRecord | None:
        """The newest boot, None for an empty log."""
        return self.boots[-1] if self.boots else None

    def slots(self) -> list[str | None]:
        """The slot each boot loaded (label, or `0x…` offset when no table named it)."""
        return [
            b.slot_name if b.slot_name else (hex(b.slot_offset) if b.slot_offset is not None else None)
            for b in self.boots
        ]

    def versions(self) -> list[str | None]:
        """The app version each boot ran (None where no app came up)."""
        return [b.app_version for b in self.boots]

    def last_power_on(self) -> BootRecord | None:
        """The newest boot that started from power-on."""
        return next((b for b in reversed(self.boots) if b.power_on), None)


class _Folder:
    def __init__(self) -> None:
        self.boots: list[BootRecord] = []
        self.current: BootRecord | None = None
        self.attempt: OtaAttempt | None = None

    def add(self, event: ev.Event) -> None:
        if isinstance(event, ev.RomReset):
            self._close(ended_by=event)
            self.current = BootRecord(index=len(self.boots), reset=event)
            self.boots.append(self.current)
        elif self.current is None:
            if isinstance(event, (ev.OtherLine, ev.RomBanner)):
                return
            self.current = BootRecord(index=0)
            self.boots.append(self.current)
        boot = self.current
        boot.events.append(event)
        if event.is_error:
            boot.errors.append(event)
        self._boot_facts(boot, event)
        self._ota(boot, event)

    def _boot_facts(self, boot: BootRecord, event: ev.Event) -> None:
        if isinstance(event, ev.PartitionRow):
            boot.partition_table.append(event)
        elif isinstance(event, ev.SlotLoaded):
            boot.slot_offset, boot.slot_name = event.offset, event.partition
        elif isinstance(event, ev.BootloaderStart):
            boot.idf_version = event.idf_version
        elif isinstance(event, ev.AppInfo):
            if event.field is ev.AppInfoField.PROJECT:
                boot.project = event.value
            elif event.field is ev.AppInfoField.VERSION:
                boot.app_version = event.value
            elif event.field is ev.AppInfoField.SECURE_VERSION and event.value.isdigit():
                boot.secure_version = int(event.value)
        elif isinstance(event, (ev.AppMainCalled, ev.RigReady)):
            if boot.app_reached is None:
                boot.app_reached = event
            if isinstance(event, ev.RigReady) and boot.app_version is None:
                boot.app_version = event.version
        elif isinstance(event, ev.RigSelftest):
            boot.selftest = {
                ev.SelftestStep.BEGIN: SelftestResult.BEGUN,
                ev.SelftestStep.PASSED: SelftestResult.PASSED,
                ev.SelftestStep.FAILED: SelftestResult.FAILED,
            }[event.step]
        elif (
            isinstance(event, (ev.Panic, ev.TaskWatchdog, ev.Brownout, ev.NoBootableApp))
            and boot.terminal is None
        ):
            boot.terminal = event

    def _ota(self, boot: BootRecord, event: ev.Event) -> None:
        attempt = self.attempt
        if isinstance(event, ev.RigOtaBegin) or (
            isinstance(event, ev.HttpsOtaEvent) and event.step is ev.HttpsOtaStep.STARTING and attempt is None
        ):
            attempt = OtaAttempt(start=event)
            if isinstance(event, ev.RigOtaBegin):
                attempt.url, attempt.resume_from = event.url, event.resume_from
            boot.ota_attempts.append(attempt)
            self.attempt = attempt
            return
        if attempt is None:
            return
        if isinstance(event, ev.HttpsOtaEvent) and event.step is ev.HttpsOtaStep.WRITING:
            attempt.partition = event.partition
        elif isinstance(event, ev.RigOtaImage):
            attempt.image_version, attempt.image_secure_version = event.version, event.secure_version
        elif isinstance(event, ev.RigOtaProgress):
            attempt.bytes, attempt.total = event.bytes, event.total
        elif isinstance(event, ev.RigOtaComplete):
            attempt.bytes = event.bytes
            self._finish(OtaOutcome.COMPLETE, None)
        elif isinstance(event, ev.RigOtaFailed):
            self._finish(OtaOutcome.FAILED, event.reason)
        elif isinstance(event, ev.RigOtaRejected):
            self._finish(OtaOutcome.REJECTED, event.reason)
        elif isinstance(event, ev.ExampleEvent):
            if event.message in _OTA_SUCCESS:
                self._finish(OtaOutcome.COMPLETE, None)
            elif event.message in _OTA_FAILURE:
                self._finish(OtaOutcome.FAILED, event.line.message)
            elif event.message in _OTA_REJECTION:
                self._finish(OtaOutcome.REJECTED, _OTA_REJECTION[event.message])
        elif event.is_error or (isinstance(event, ev.SignatureEvent) and event.failed):
            attempt.errors.append(event)

    def _finish(self, outcome: OtaOutcome, reason: str | None) -> None:
        if self.attempt is not None:
            self.attempt.finish(outcome, reason)
            self.attempt = None

    def _close(self, *, ended_by: ev.RomReset | None, final: bool = False) -> None:
        boot = self.current
        if boot is None:
            return
        closed = ended_by is not None or final
        if closed:
            self._finish(OtaOutcome.INTERRUPTED, None)
        boot.ended_by = ended_by
        boot.outcome = _outcome(boot, closed=closed)


def _outcome(boot: BootRecord, *, closed: bool) -> BootOutcome:
    terminal = boot.terminal
    if isinstance(terminal, ev.Panic):
        return BootOutcome.PANIC
    if isinstance(terminal, ev.TaskWatchdog):
        return BootOutcome.WATCHDOG
    if isinstance(terminal, ev.Brownout):
        return BootOutcome.BROWNOUT
    if isinstance(terminal, ev.NoBootableApp):
        return BootOutcome.NO_BOOTABLE_APP
    if boot.download_mode:
        return BootOutcome.DOWNLOAD_MODE
    next_reason = boot.ended_by.reason if boot.ended_by else None
    if next_reason in _BROWNOUT_RESETS:
        return BootOutcome.BROWNOUT
    if next_reason in _WATCHDOG_RESETS:
        return BootOutcome.WATCHDOG
    if boot.app_reached is not None:
        return BootOutcome.APP_RUNNING
    return BootOutcome.POWER_LOST if closed else BootOutcome.INCOMPLETE


def fold_boots(events: Iterable[ev.Event], *, final: bool = False) -> BootTimeline:
    """Group events into boots.

    The last boot of a log that simply stops is INCOMPLETE unless `final` says the
    capture ended because power was removed, which makes it POWER_LOST.
    """
    folder = _Folder()
    for event in events:
        folder.add(event)
    folder._close(ended_by=None, final=final)
    return BootTimeline(folder.boots)
