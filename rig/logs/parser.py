"""Turn raw serial output into `LogLine`s and typed events.

The vocabulary is ESP-IDF's exact message text (v5.5.5: bootloader_support, esp_https_ota, app_update,
esp_app_format) plus the rig_agent
markers of PROTOCOL.md. Anything else becomes `OtherLine`: a serial port that
spits noise during a power cut must never stop the run.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rig.logs import events as ev

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_IDF_LINE_RE = re.compile(r"^([EWIDV]) \((\d+|[\d:.]+)\) ([^:]+): ?(.*)$", re.DOTALL)
_DRAM_LINE_RE = re.compile(r"^([EWIDV]) ([A-Za-z0-9_.\-]+): (.*)$", re.DOTALL)

Extract = Callable[["re.Match[str]"], dict[str, Any]]


def strip_ansi(text: str) -> str:
    """Remove colour codes and carriage returns (CONFIG_LOG_COLORS differs across IDF versions)."""
    return ANSI_RE.sub("", text).replace("\r", "")


def split_line(raw: str) -> ev.LogLine:
    """Split one line into level/timestamp/tag/message; ROM and noise lines keep only `message`."""
    clean = strip_ansi(raw)
    match = _IDF_LINE_RE.match(clean)
    if match:
        return ev.LogLine(match[1], match[2], match[3].strip(), match[4], raw)
    match = _DRAM_LINE_RE.match(clean)
    if match:
        return ev.LogLine(match[1], None, match[2], match[3], raw)
    return ev.LogLine(None, None, None, clean, raw)


def _hex(text: str) -> int:
    return int(text, 16)


def _signed_hex(text: str) -> int:
    return -int(text[1:], 16) if text.startswith("-") else int(text, 16)


@dataclass(frozen=True)
class _Rule:
    """A message pattern, the event class it yields and how to pull its fields out."""

    pattern: re.Pattern[str]
    cls: type[ev.Event]
    extract: Extract
    search: bool = False


def _rule(
    pattern: str, cls: type[ev.Event], extract: Extract | None = None, *, search: bool = False
) -> _Rule:
    return _Rule(re.compile(pattern), cls, extract or (lambda _m: {}), search)


def _const(**values: Any) -> Extract:
    return lambda _m: values


def _numbers(*convert: Callable[[str], int], **fixed: Any) -> Extract:
    """`fixed` plus `values`: each group of the match read by its converter (int or _hex)."""
    return lambda m: {**fixed, "values": tuple(c(g) for c, g in zip(convert, m.groups(), strict=True))}


_BOOT_RULES = [
    _rule(r"^ESP-IDF (.+) 2nd stage bootloader", ev.BootloaderStart, lambda m: {"idf_version": m[1]}),
    _rule(
        r"^chip revision: v(\d+)\.(\d+)", ev.ChipRevision, lambda m: {"major": int(m[1]), "minor": int(m[2])}
    ),
    _rule(
        r"^\s*(\d+) (\S+)\s+(.+?)\s+([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{8}) ([0-9a-f]{8})\s*$",
        ev.PartitionRow,
        lambda m: {
            "index": int(m[1]),
            "label": m[2],
            "usage": m[3],
            "type": _hex(m[4]),
            "subtype": _hex(m[5]),
            "offset": _hex(m[6]),
            "length": _hex(m[7]),
        },
    ),
    _rule(r"^End of partition table", ev.PartitionTableEnd),
    *(_rule("^" + re.escape(d.value), ev.BootSelection, _const(decision=d)) for d in ev.BootDecision),
    _rule(
        r"^Loaded app from partition at offset 0x([0-9a-fA-F]+)",
        ev.SlotLoaded,
        lambda m: {"offset": _hex(m[1])},
    ),
    _rule(r"^Set actual ota_seq=(\d+) in otadata\[0\]", ev.OtaSeqSet, lambda m: {"seq": int(m[1])}),
    _rule(
        r"^OTA app partition slot (\d+) is not bootable",
        ev.SlotNotBootable,
        lambda m: {"slot": int(m[1]), "app": "ota"},
    ),
    _rule(r"^Factory app partition is not bootable", ev.SlotNotBootable, _const(slot=None, app="factory")),
    _rule(r"^Factory test app partition is not bootable", ev.SlotNotBootable, _const(slot=None, app="test")),
    _rule(r"^No bootable app partitions in the partition table", ev.NoBootableApp),
]

_R = ev.ImageErrorReason
_IMAGE_RULES = [
    _rule(
        r"^segment (\d+): paddr=([0-9a-fA-F]+) vaddr=([0-9a-fA-F]+) size=([0-9a-fA-F]+)h \(\s*\d+\) ?(\w*)",
        ev.Segment,
        lambda m: {
            "index": int(m[1]),
            "paddr": _hex(m[2]),
            "vaddr": _hex(m[3]),
            "size": _hex(m[4]),
            "suffix": m[5],
        },
    ),
    _rule(
        r"^image at 0x([0-9a-fA-F]+) has invalid magic byte",
        ev.ImageError,
        _numbers(_hex, reason=_R.INVALID_MAGIC),
    ),
    _rule(
        r"^image at 0x([0-9a-fA-F]+) segment count (\d+) exceeds max (\d+)",
        ev.ImageError,
        _numbers(_hex, int, int, reason=_R.SEGMENT_COUNT),
    ),
    _rule(
        r"^invalid segment length 0x([0-9a-fA-F]+)",
        ev.ImageError,
        _numbers(_hex, reason=_R.SEGMENT_LENGTH),
    ),
    _rule(
        r"^Segment (\d+) 0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+) invalid",
        ev.ImageError,
        _numbers(int, _hex, _hex, reason=_R.SEGMENT_INVALID),
    ),
    _rule(
        r"^Segment (\d+) load address 0x([0-9a-fA-F]+), doesn't match data 0x([0-9a-fA-F]+)",
        ev.ImageError,
        _numbers(int, _hex, _hex, reason=_R.SEGMENT_ADDRESS),
    ),
    _rule(
        r"^partition size 0x([0-9a-fA-F]+) invalid, larger than 16MB",
        ev.ImageError,
        _numbers(_hex, reason=_R.PARTITION_TOO_LARGE),
    ),
    _rule(
        r"^Checksum failed\. Calculated 0x([0-9a-fA-F]+) read 0x([0-9a-fA-F]+)",
        ev.ImageError,
        _numbers(_hex, _hex, reason=_R.CHECKSUM),
    ),
    _rule(r"^Image hash failed - image is corrupt", ev.ImageError, _const(reason=_R.HASH)),
    _rule(
        r"^Image length (\d+) doesn't fit in partition length (\d+)",
        ev.ImageError,
        _numbers(int, int, reason=_R.LENGTH),
    ),
]

_S = ev.SignatureStep
_SIGNATURE_RULES = [
    _rule(r"^Verifying image signature\.\.\.", ev.SignatureEvent, _const(step=_S.VERIFYING)),
    _rule(
        r"^Secure boot signature verification failed", ev.SignatureEvent, _const(step=_S.VERIFICATION_FAILED)
    ),
    _rule(
        r"^Calculating simple hash to check for corruption", ev.SignatureEvent, _const(step=_S.SIMPLE_HASH)
    ),
    _rule(r"^image valid, signature bad", ev.SignatureEvent, _const(step=_S.VALID_SIGNATURE_BAD)),
    _rule(r"^image corrupted on flash", ev.SignatureEvent, _const(step=_S.IMAGE_CORRUPTED)),
    _rule(
        r"^Take trusted digest key\(s\) from running app",
        ev.SignatureEvent,
        _const(step=_S.TRUSTED_KEY_FROM_APP),
    ),
    _rule(
        r"^Take trusted digest key\(s\) from eFuse block",
        ev.SignatureEvent,
        _const(step=_S.TRUSTED_KEY_FROM_EFUSE),
    ),
    _rule(
        r"^#\d+ app key digest == #\d+ trusted key digest",
        ev.SignatureEvent,
        _const(step=_S.KEY_DIGEST_MATCH),
    ),
    _rule(r"^Verifying with RSA-PSS\.\.\.", ev.SignatureEvent, _const(step=_S.VERIFYING_RSA_PSS)),
    _rule(r"^Signature verified successfully!", ev.SignatureEvent, _const(step=_S.VERIFIED)),
    _rule(
        r"^Failed mbedtls_rsa_rsassa_pss_verify, err: (-?\d+)",
        ev.SignatureEvent,
        lambda m: {"step": _S.RSA_PSS_FAILED, "code": int(m[1])},
    ),
    _rule(
        r"signing scheme selected but signature block generated for",
        ev.SignatureEvent,
        _const(step=_S.SCHEME_MISMATCH),
        search=True,
    ),
    _rule(
        r"^image has invalid signature version field 0x([0-9a-fA-F]+)",
        ev.SignatureEvent,
        lambda m: {"step": _S.V1_INVALID_VERSION, "code": _hex(m[1])},
    ),
]

_H = ev.HttpsOtaStep
_HTTPS_OTA_RULES = [
    _rule(r"^Starting OTA\.\.\.", ev.HttpsOtaEvent, _const(step=_H.STARTING)),
    _rule(
        r"^Writing to <([^>]*)> partition at offset 0x([0-9a-fA-F]+)",
        ev.HttpsOtaEvent,
        lambda m: {"step": _H.WRITING, "partition": m[1], "offset": _hex(m[2])},
    ),
    _rule(
        r"^Writing to partition subtype (\d+) at offset 0x([0-9a-fA-F]+)",
        ev.HttpsOtaEvent,
        lambda m: {"step": _H.WRITING, "subtype": int(m[1]), "offset": _hex(m[2])},
    ),
    _rule(
        r"^Mismatch chip id, expected (\d+), found (\d+)",
        ev.HttpsOtaEvent,
        _numbers(int, int, step=_H.CHIP_ID_MISMATCH),
    ),
    _rule(r"^Incorrect app descriptor magic", ev.HttpsOtaEvent, _const(step=_H.BAD_DESCRIPTOR_MAGIC)),
    _rule(r"^Complete headers were not received", ev.HttpsOtaEvent, _const(step=_H.HEADERS_INCOMPLETE)),
    _rule(
        r"^Connection closed before complete data was received!",
        ev.HttpsOtaEvent,
        _const(step=_H.CONNECTION_CLOSED_EARLY),
    ),
    _rule(
        r"^data read (-?\d+), errno (-?\d+)",
        ev.HttpsOtaEvent,
        _numbers(int, int, step=_H.DATA_READ_ERROR),
    ),
    _rule(
        r"^Failed to open HTTP connection: ?(.*)$",
        ev.HttpsOtaEvent,
        lambda m: {"step": _H.OPEN_FAILED, "detail": m[1]},
    ),
    _rule(r"^Failed to establish HTTP connection", ev.HttpsOtaEvent, _const(step=_H.ESTABLISH_FAILED)),
    _rule(
        r"^File not found\((\d+)\)",
        ev.HttpsOtaEvent,
        _numbers(int, step=_H.FILE_NOT_FOUND),
    ),
    _rule(
        r"^Client error \((\d+)\)",
        ev.HttpsOtaEvent,
        _numbers(int, step=_H.CLIENT_ERROR),
    ),
    _rule(
        r"^Server error \((\d+)\)",
        ev.HttpsOtaEvent,
        _numbers(int, step=_H.SERVER_ERROR),
    ),
    _rule(
        r"^esp_ota_begin failed \((.*)\)",
        ev.HttpsOtaEvent,
        lambda m: {"step": _H.OTA_BEGIN_FAILED, "detail": m[1]},
    ),
    _rule(
        r"^Error: esp_ota_write failed! err=0x([0-9a-fA-F]+)",
        ev.HttpsOtaEvent,
        _numbers(_hex, step=_H.WRITE_FAILED),
    ),
    _rule(
        r"^esp_ota_set_boot_partition failed! err=0x([0-9a-fA-F]+)",
        ev.HttpsOtaEvent,
        _numbers(_hex, step=_H.SET_BOOT_FAILED),
    ),
    _rule(
        r"^No option for server verification is enabled",
        ev.HttpsOtaEvent,
        _const(step=_H.NO_SERVER_VERIFICATION),
    ),
    _rule(r"^Server ignored the requested Range header", ev.HttpsOtaEvent, _const(step=_H.RANGE_IGNORED)),
    _rule(r"^Falling back to OTA without resumption", ev.HttpsOtaEvent, _const(step=_H.RESUME_FALLBACK)),
]

_O = ev.OtaOpsStep
_OTA_OPS_RULES = [
    _rule(
        r"^OTA image has invalid magic byte \(expected 0xE9, saw 0x([0-9a-fA-F]+)\)",
        ev.OtaOpsEvent,
        lambda m: {"step": _O.INVALID_MAGIC, "value": _hex(m[1])},
    ),
    _rule(r"^New image failed verification", ev.OtaOpsEvent, _const(step=_O.VERIFY_FAILED)),
    _rule(r"^Running app has not confirmed state", ev.OtaOpsEvent, _const(step=_O.UNCONFIRMED_RUNNING_APP)),
    _rule(
        r"secure version is lower than stored in efuse",
        ev.OtaOpsEvent,
        _const(step=_O.SECURE_VERSION_LOWER),
        search=True,
    ),
    _rule(r"^Rollback is not possible", ev.OtaOpsEvent, _const(step=_O.ROLLBACK_IMPOSSIBLE)),
    _rule(r"^Rollback to previously worked partition\.", ev.OtaOpsEvent, _const(step=_O.ROLLBACK)),
    _rule(r"^Running firmware is factory", ev.OtaOpsEvent, _const(step=_O.RUNNING_FACTORY)),
]

_T = ev.TlsStep
_TLS_RULES = [
    _rule(
        r"^mbedtls_ssl_handshake returned (-?0x[0-9a-fA-F]+)",
        ev.TlsEvent,
        lambda m: {"step": _T.HANDSHAKE_FAILED, "code": _signed_hex(m[1])},
    ),
    _rule(r"^Failed to verify peer certificate!", ev.TlsEvent, _const(step=_T.PEER_CERT_UNVERIFIED)),
    _rule(r"^Failed to open new connection", ev.TlsEvent, _const(step=_T.NEW_CONNECTION_FAILED)),
    _rule(r"^Failed to open a new connection", ev.TlsEvent, _const(step=_T.TRANSPORT_CONNECT_FAILED)),
    _rule(r"^Connection failed, sock < 0", ev.TlsEvent, _const(step=_T.HTTP_CONNECT_FAILED)),
    _rule(r"^(?:transport_read: error|esp_tls_conn_read error)", ev.TlsEvent, _const(step=_T.READ_ERROR)),
]

_APP_RULES = [
    _rule(
        r"^(" + "|".join(re.escape(f.value) for f in ev.AppInfoField) + r"):\s+(.*?)\s*$",
        ev.AppInfo,
        lambda m: {"field": ev.AppInfoField(m[1]), "value": m[2]},
    ),
    _rule(r"^Calling app_main\(\)", ev.AppMainCalled),
]

_EFUSE_RULES = [
    _rule(
        r"^Anti-rollback is set\. eFuse field is updated\((\d+)\)",
        ev.EfuseAntiRollback,
        lambda m: {"updated": True, "value": int(m[1])},
    ),
    _rule(
        r"^Anti-rollback is not set\. secure_version of app is lower that eFuse field\((\d+)\)",
        ev.EfuseAntiRollback,
        lambda m: {"updated": False, "value": int(m[1])},
    ),
]

_EXAMPLE_RULES = [
    _rule("^" + re.escape(msg.value), ev.ExampleEvent, _const(message=msg)) for msg in ev.ExampleMessage
]


def _status_fields(match: re.Match[str]) -> dict[str, Any]:
    pairs = tuple(tuple(item.split("=", 1)) for item in match[1].split() if "=" in item)
    return {"fields": pairs}


_RIG_RULES = [
    _rule(
        r"^ready version=(\S+) running=(\S+) state=(\S+)",
        ev.RigReady,
        lambda m: {"version": m[1], "running": m[2], "state": m[3]},
    ),
    _rule(
        r"^ota begin url=(\S+) resume_from=(\d+)",
        ev.RigOtaBegin,
        lambda m: {"url": m[1], "resume_from": int(m[2])},
    ),
    _rule(
        r"^ota image version=(\S+) secure_version=(\d+) project=(\S+)",
        ev.RigOtaImage,
        lambda m: {"version": m[1], "secure_version": int(m[2]), "project": m[3]},
    ),
    _rule(
        r"^ota rejected reason=(\S+) new=(\S+) running=(\S+)",
        ev.RigOtaRejected,
        lambda m: {"reason": m[1], "new": m[2], "running": m[3]},
    ),
    _rule(
        r"^ota progress bytes=(\d+) total=(\d+)",
        ev.RigOtaProgress,
        lambda m: {"bytes": int(m[1]), "total": int(m[2])},
    ),
    _rule(r"^ota saved bytes=(\d+)", ev.RigOtaSaved, lambda m: {"bytes": int(m[1])}),
    _rule(r"^ota complete bytes=(\d+)", ev.RigOtaComplete, lambda m: {"bytes": int(m[1])}),
    _rule(
        r"^ota failed err=0x([0-9a-fA-F]+) reason=(.*?)\s*$",
        ev.RigOtaFailed,
        lambda m: {"err": _hex(m[1]), "reason": m[2]},
    ),
    _rule(r"^ota restarting\s*$", ev.RigOtaRestarting),
    _rule(
        r"^selftest begin behaviour=(\S+)",
        ev.RigSelftest,
        lambda m: {"step": ev.SelftestStep.BEGIN, "behaviour": m[1]},
    ),
    _rule(r"^selftest (passed|failed)\s*$", ev.RigSelftest, lambda m: {"step": ev.SelftestStep(m[1])}),
    _rule(r"^app confirmed valid\s*$", ev.RigAppConfirmed),
    _rule(r"^status (.*)$", ev.RigStatus, _status_fields),
    _rule(r"^ok (\S+) ?(.*?)\s*$", ev.RigReply, lambda m: {"ok": True, "command": m[1], "details": m[2]}),
    _rule(r"^error (\S+) ?(.*?)\s*$", ev.RigReply, lambda m: {"ok": False, "command": m[1], "details": m[2]}),
]

# Rules per tag; tags are matched exactly as ESP-IDF prints them.
_TAG_RULES: dict[str, list[_Rule]] = {
    "boot": _BOOT_RULES + _EFUSE_RULES,
    "boot.esp32": _BOOT_RULES,
    "esp_image": _IMAGE_RULES + _SIGNATURE_RULES,
    "boot_comm": [
        _rule(
            r"^mismatch chip ID, expected (\d+), found (\d+)",
            ev.ImageError,
            _numbers(int, int, reason=_R.CHIP_ID),
        ),
        _rule(
            r"^chip revision check failed\. Required ([<>]=) v(\d+)\.(\d+), found v(\d+)\.(\d+)",
            ev.ImageError,
            lambda m: {"reason": _R.CHIP_REVISION, "values": (int(m[2]), int(m[3]), int(m[4]), int(m[5]))},
        ),
    ],
    "secure_boot_v2": _SIGNATURE_RULES,
    "secure_boot_v2_rsa": _SIGNATURE_RULES,
    "secure_boot_v2_ecdsa": _SIGNATURE_RULES,
    "secure_boot_v1": _SIGNATURE_RULES,
    "secure_boot": _SIGNATURE_RULES,
    "esp_https_ota": _HTTPS_OTA_RULES,
    "esp_ota_ops": _OTA_OPS_RULES,
    "esp-tls-mbedtls": _TLS_RULES,
    "esp-tls": _TLS_RULES,
    "transport_base": _TLS_RULES,
    "HTTP_CLIENT": _TLS_RULES,
    "app_init": _APP_RULES,
    "cpu_start": _APP_RULES,
    "main_task": _APP_RULES,
    "efuse": _EFUSE_RULES,
    "rig_agent": _RIG_RULES,
}

# Lines without an ESP-IDF prefix (ROM, panic handler) -- or glued onto a line cut by a power loss.
_ANYWHERE_RULES = [
    _rule(
        r"rst:0x([0-9a-fA-F]+) \(([^)]*)\),boot:0x([0-9a-fA-F]+) \((.*)\)\s*$",
        ev.RomReset,
        lambda m: {
            "reason_code": _hex(m[1]),
            "reason": m[2],
            "boot_mode": _hex(m[3]),
            "boot_mode_name": m[4],
        },
        search=True,
    ),
    _rule(r"\bets ([A-Z][a-z]{2} +\d+ \d{4} [\d:]+)", ev.RomBanner, lambda m: {"build": m[1]}, search=True),
    _rule(r"ESP-ROM:(\S+)", ev.RomBanner, lambda m: {"build": m[1]}, search=True),
    _rule(r"^waiting for download", ev.RomWaitingForDownload),
    _rule(
        r"Guru Meditation Error: Core\s+(\d+) panic'ed \((.*)\)",
        ev.Panic,
        lambda m: {"core": int(m[1]), "reason": m[2]},
        search=True,
    ),
    _rule(
        r"abort\(\) was called at PC 0x[0-9a-fA-F]+ on core (\d+)",
        ev.Panic,
        lambda m: {"core": int(m[1]), "reason": "abort()"},
        search=True,
    ),
    _rule(r"Brownout detector was triggered", ev.Brownout, search=True),
    _rule(r"Task watchdog got triggered", ev.TaskWatchdog, search=True),
    _rule(r"^Rebooting\.\.\.", ev.Rebooting),
]

# Example apps use many tags (ota_example, simple_ota_example, …): matched on message text for any tag.
_ANY_TAG_RULES = _EXAMPLE_RULES


def _apply(rules: list[_Rule], text: str) -> tuple[_Rule, re.Match[str]] | None:
    for rule in rules:
        match = rule.pattern.search(text) if rule.search else rule.pattern.match(text)
        if match:
            return rule, match
    return None


def classify(line: ev.LogLine, line_no: int, t: float | None = None) -> ev.Event:
    """The typed event for one split line; `OtherLine` when no rule knows it. Never raises."""
    found = None
    if line.tag is not None:
        found = _apply(_TAG_RULES.get(line.tag, []), line.message) or _apply(_ANY_TAG_RULES, line.message)
    if found is None:
        found = _apply(_ANYWHERE_RULES, line.message if line.tag is None else strip_ansi(line.raw))
    if found is None:
        return ev.OtherLine(line=line, line_no=line_no, t=t)
    rule, match = found
    try:
        return rule.cls(line=line, line_no=line_no, t=t, **rule.extract(match))
    except ValueError:  # a field that looked numeric but is not (serial noise)
        return ev.OtherLine(line=line, line_no=line_no, t=t)


class LogParser:
    """Incremental parser: feed chunks as they arrive, get events for every completed line.

    `partitions` (offset -> label) names the slot in `SlotLoaded` when the boot did
    not print its own partition table (the table printed in the same boot wins).
    """

    def __init__(self, partitions: Mapping[int, str] | None = None, *, max_line: int = 65536) -> None:
        self._partitions = dict(partitions or {})
        self._boot_table: dict[int, str] = {}
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._line_no = 0

    def feed(self, data: str | bytes, t: float | None = None) -> list[ev.Event]:
        """Parse a chunk; a trailing partial line waits for the next chunk (or `flush`)."""
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        self._pending += text
        out: list[ev.Event] = []
        while True:
            cut = self._pending.find("\n")
            if cut < 0:
                if len(self._pending) > self._max_line:
                    out.append(self._line(self._pending, t))
                    self._pending = ""
                return out
            raw, self._pending = self._pending[:cut], self._pending[cut + 1 :]
            out.append(self._line(raw, t))

    def flush(self, t: float | None = None) -> list[ev.Event]:
        """Parse whatever partial line is left (end of log)."""
        self._pending += self._decoder.decode(b"", final=True)
        if not self._pending:
            return []
        raw, self._pending = self._pending, ""
        return [self._line(raw, t)]

    def parse_text(self, text: str | bytes, t: float | None = None) -> list[ev.Event]:
        """Parse a whole log at once (feed + flush)."""
        return self.feed(text, t) + self.flush(t)

    def line(self, raw: str, t: float | None = None) -> ev.Event:
        """The event of one complete line (no newline), as a console reading live has it."""
        return self._line(raw, t)

    def _line(self, raw: str, t: float | None) -> ev.Event:
        self._line_no += 1
        event = classify(split_line(raw.replace("\r", "")), self._line_no, t)
        return self._track_partitions(event)

    def _track_partitions(self, event: ev.Event) -> ev.Event:
        if isinstance(event, ev.RomReset):
            self._boot_table = {}
        elif isinstance(event, ev.PartitionRow):
            self._boot_table[event.offset] = event.label
        elif isinstance(event, ev.SlotLoaded):
            name = self._boot_table.get(event.offset) or self._partitions.get(event.offset)
            if name is not None:
                return ev.SlotLoaded(
                    line=event.line, line_no=event.line_no, t=event.t, offset=event.offset, partition=name
                )
        return event


def parse_text(text: str | bytes, partitions: Mapping[int, str] | None = None) -> list[ev.Event]:
    """Parse a complete log with a fresh parser."""
    return LogParser(partitions).parse_text(text)
