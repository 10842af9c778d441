"""The parser on real ESP-IDF excerpts, colour/no colour, noise, and chunked feeding."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rig.logs import events as ev
from rig.logs.parser import LogParser, parse_text, split_line

EXCERPTS = Path(__file__).parent / "excerpts"


def excerpt(name: str) -> str:
    return (EXCERPTS / name).read_text()


def kinds(events: list[ev.Event]) -> list[type[ev.Event]]:
    return [type(e) for e in events if not isinstance(e, ev.OtherLine)]


def of(events: list[ev.Event], cls: type[ev.Event]) -> list[ev.Event]:
    return [e for e in events if isinstance(e, cls)]


def test_idf_line_is_split_into_level_time_tag_message() -> None:
    line = split_line("\x1b[0;32mI (287) boot: Loaded app from partition at offset 0x20000\x1b[0m\r")
    assert (line.level, line.timestamp, line.tag, line.message) == (
        "I",
        "287",
        "boot",
        "Loaded app from partition at offset 0x20000",
    )
    assert line.ms == 287


def test_rom_and_dram_lines_are_recognised() -> None:
    rom = split_line("rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)")
    assert rom.level is None and rom.tag is None
    dram = split_line("E boot: OTA app partition slot 1 is not bootable")
    assert (dram.level, dram.timestamp, dram.tag) == ("E", None, "boot")
    system_time = split_line("I (10:15:31.123) rig_agent: ota saved bytes=4096")
    assert system_time.timestamp == "10:15:31.123" and system_time.ms is None


def test_normal_boot_excerpt() -> None:
    events = parse_text(excerpt("normal_boot.log"))
    reset = of(events, ev.RomReset)[0]
    assert isinstance(reset, ev.RomReset)
    assert (reset.reason_code, reset.reason, reset.boot_mode, reset.download_mode) == (
        1,
        "POWERON_RESET",
        0x13,
        False,
    )
    start = of(events, ev.BootloaderStart)[0]
    assert isinstance(start, ev.BootloaderStart) and start.idf_version == "v5.1.3-dirty"
    chip = of(events, ev.ChipRevision)[0]
    assert isinstance(chip, ev.ChipRevision) and (chip.major, chip.minor) == (3, 1)
    rows = [e for e in of(events, ev.PartitionRow) if isinstance(e, ev.PartitionRow)]
    assert [(r.label, r.usage, r.type, r.subtype, r.offset, r.length) for r in rows][3:] == [
        ("ota_0", "OTA app", 0, 0x10, 0x20000, 0x1A9000),
        ("ota_1", "OTA app", 0, 0x11, 0x1D0000, 0x1A9000),
    ]
    assert rows[0].usage == "WiFi data"
    segments = [e for e in of(events, ev.Segment) if isinstance(e, ev.Segment)]
    assert next((s.index, s.paddr, s.size, s.suffix) for s in segments) == (0, 0x20020, 0xB2F4, "map")
    loaded = of(events, ev.SlotLoaded)[0]
    assert isinstance(loaded, ev.SlotLoaded) and (loaded.offset, loaded.partition) == (0x20000, "ota_0")
    info = {e.field: e.value for e in events if isinstance(e, ev.AppInfo)}
    assert info[ev.AppInfoField.PROJECT] == "ota_rig_fut"
    assert info[ev.AppInfoField.VERSION] == "1.0.0"
    assert info[ev.AppInfoField.IDF] == "v5.1.3-dirty"
    assert of(events, ev.AppMainCalled)
    ready = of(events, ev.RigReady)[0]
    assert isinstance(ready, ev.RigReady) and (ready.version, ready.running, ready.state) == (
        "1.0.0",
        "ota_0",
        "VALID",
    )


def test_first_boot_after_ota_with_colours() -> None:
    events = parse_text(excerpt("first_boot_after_ota.log"))
    assert isinstance(of(events, ev.BootSelection)[0], ev.BootSelection)
    seq = of(events, ev.OtaSeqSet)[0]
    assert isinstance(seq, ev.OtaSeqSet) and seq.seq == 1
    writing = [e for e in events if isinstance(e, ev.HttpsOtaEvent) and e.step is ev.HttpsOtaStep.WRITING]
    assert (writing[0].partition, writing[0].offset) == ("ota_1", 0x1D0000)
    steps = [e.step for e in events if isinstance(e, ev.SignatureEvent)]
    assert steps == [
        ev.SignatureStep.VERIFYING,
        ev.SignatureStep.TRUSTED_KEY_FROM_APP,
        ev.SignatureStep.KEY_DIGEST_MATCH,
        ev.SignatureStep.VERIFYING_RSA_PSS,
        ev.SignatureStep.VERIFIED,
    ]
    loaded = [e for e in events if isinstance(e, ev.SlotLoaded)]
    assert [(e.offset, e.partition) for e in loaded] == [(0x20000, "ota_0"), (0x1D0000, "ota_1")]
    resets = [e for e in events if isinstance(e, ev.RomReset)]
    assert [r.reason for r in resets] == ["POWERON", "RTC_SW_CPU_RST"]
    assert any(
        isinstance(e, ev.ExampleEvent) and e.message is ev.ExampleMessage.SIMPLE_SUCCESS for e in events
    )
    assert all("\x1b" not in e.line.message for e in events)


def test_colour_and_plain_give_the_same_events() -> None:
    coloured = excerpt("first_boot_after_ota.log")
    plain = coloured.replace("\x1b[0;32m", "").replace("\x1b[0m", "")
    assert kinds(parse_text(coloured)) == kinds(parse_text(plain))


def test_signature_failure_sequence() -> None:
    events = parse_text(excerpt("signature_failure.log"))
    failed = [e for e in events if isinstance(e, ev.SignatureEvent) and e.failed]
    assert [e.step for e in failed] == [
        ev.SignatureStep.VERIFICATION_FAILED,
        ev.SignatureStep.VALID_SIGNATURE_BAD,
    ]
    ops = [e for e in events if isinstance(e, ev.OtaOpsEvent)]
    assert [o.step for o in ops] == [ev.OtaOpsStep.VERIFY_FAILED]
    failure = of(events, ev.RigOtaFailed)[0]
    assert isinstance(failure, ev.RigOtaFailed) and (failure.err, failure.reason) == (
        0x1503,
        "ESP_ERR_OTA_VALIDATE_FAILED",
    )


def test_tls_failure_chain() -> None:
    events = parse_text(excerpt("tls_failure.log"))
    tls = [e for e in events if isinstance(e, ev.TlsEvent)]
    assert [t.step for t in tls] == [
        ev.TlsStep.HANDSHAKE_FAILED,
        ev.TlsStep.PEER_CERT_UNVERIFIED,
        ev.TlsStep.NEW_CONNECTION_FAILED,
        ev.TlsStep.TRANSPORT_CONNECT_FAILED,
        ev.TlsStep.HTTP_CONNECT_FAILED,
    ]
    assert tls[0].code == -0x2700
    https = [e.step for e in events if isinstance(e, ev.HttpsOtaEvent)]
    assert https == [ev.HttpsOtaStep.OPEN_FAILED, ev.HttpsOtaStep.ESTABLISH_FAILED]


def test_panic_watchdog_brownout_no_bootable() -> None:
    panic = of(parse_text(excerpt("rollback.log")), ev.Panic)[0]
    assert isinstance(panic, ev.Panic) and (panic.core, panic.reason) == (0, "LoadProhibited")
    wdt = parse_text(excerpt("watchdog.log"))
    assert of(wdt, ev.TaskWatchdog) and of(wdt, ev.Rebooting)
    assert of(parse_text(excerpt("brownout.log")), ev.Brownout)
    dead = parse_text(excerpt("no_bootable_app.log"))
    assert [e.reason for e in dead if isinstance(e, ev.ImageError)] == [
        ev.ImageErrorReason.INVALID_MAGIC,
        ev.ImageErrorReason.CHECKSUM,
    ]
    checksum = [e for e in dead if isinstance(e, ev.ImageError)][1]
    assert checksum.values == (0x5A, 0x3C)
    assert [e.slot for e in dead if isinstance(e, ev.SlotNotBootable)] == [0, 1]
    assert of(dead, ev.NoBootableApp)


def test_download_mode_banner() -> None:
    events = parse_text(excerpt("download_mode.log"))
    reset = of(events, ev.RomReset)[0]
    assert isinstance(reset, ev.RomReset) and reset.download_mode
    assert of(events, ev.RomWaitingForDownload)


def test_single_line_vocabulary() -> None:
    cases: dict[str, tuple[type[ev.Event], dict[str, object]]] = {
        "E (1) boot_comm: chip revision check failed. Required >= v3.0, found v1.0.": (
            ev.ImageError,
            {"reason": ev.ImageErrorReason.CHIP_REVISION, "values": (3, 0, 1, 0)},
        ),
        "E (1) boot_comm: mismatch chip ID, expected 0, found 9": (
            ev.ImageError,
            {"reason": ev.ImageErrorReason.CHIP_ID},
        ),
        "E (1) esp_image: Image hash failed - image is corrupt": (
            ev.ImageError,
            {"reason": ev.ImageErrorReason.HASH},
        ),
        "E (1) esp_image: Image length 1900000 doesn't fit in partition length 1769472": (
            ev.ImageError,
            {"reason": ev.ImageErrorReason.LENGTH, "values": (1900000, 1769472)},
        ),
        "I (1) esp_https_ota: Writing to partition subtype 17 at offset 0x1d0000": (
            ev.HttpsOtaEvent,
            {"step": ev.HttpsOtaStep.WRITING, "subtype": 17, "offset": 0x1D0000},
        ),
        "E (1) esp_https_ota: Mismatch chip id, expected 0, found 5": (
            ev.HttpsOtaEvent,
            {"step": ev.HttpsOtaStep.CHIP_ID_MISMATCH, "values": (0, 5)},
        ),
        "E (1) esp_https_ota: data read -1, errno 104": (
            ev.HttpsOtaEvent,
            {"step": ev.HttpsOtaStep.DATA_READ_ERROR, "values": (-1, 104)},
        ),
        "E (1) esp_https_ota: File not found(404)": (
            ev.HttpsOtaEvent,
            {"step": ev.HttpsOtaStep.FILE_NOT_FOUND},
        ),
        "W (1) esp_https_ota: Server ignored the requested Range header": (
            ev.HttpsOtaEvent,
            {"step": ev.HttpsOtaStep.RANGE_IGNORED},
        ),
        "E (1) esp_ota_ops: OTA image has invalid magic byte (expected 0xE9, saw 0x00)": (
            ev.OtaOpsEvent,
            {"step": ev.OtaOpsStep.INVALID_MAGIC, "value": 0},
        ),
        "I (1) esp_ota_ops: Rollback to previously worked partition.": (
            ev.OtaOpsEvent,
            {"step": ev.OtaOpsStep.ROLLBACK},
        ),
        "E (1) esp_ota_ops: This a new partition can not be booted due to a secure version is lower than "
        "stored in efuse. Partition will be erased.": (
            ev.OtaOpsEvent,
            {"step": ev.OtaOpsStep.SECURE_VERSION_LOWER},
        ),
        "E (1) secure_boot_v2_rsa: Failed mbedtls_rsa_rsassa_pss_verify, err: -17280": (
            ev.SignatureEvent,
            {"step": ev.SignatureStep.RSA_PSS_FAILED, "code": -17280},
        ),
        "E (1) secure_boot_v1: image has invalid signature version field 0xffffffff "
        "(image without a signature?)": (
            ev.SignatureEvent,
            {"step": ev.SignatureStep.V1_INVALID_VERSION, "code": 0xFFFFFFFF},
        ),
        "I (1) efuse: Anti-rollback is set. eFuse field is updated(2).": (
            ev.EfuseAntiRollback,
            {"updated": True, "value": 2},
        ),
        "I (1) app_init: Secure version:   3": (
            ev.AppInfo,
            {"field": ev.AppInfoField.SECURE_VERSION, "value": "3"},
        ),
        "W (1) rig_agent: ota rejected reason=older_version new=0.9 running=1.0": (
            ev.RigOtaRejected,
            {"reason": "older_version", "new": "0.9"},
        ),
        "I (1) rig_agent: ota saved bytes=8192": (ev.RigOtaSaved, {"bytes": 8192}),
        "I (1) rig_agent: ok cert sha256=0123456789abcdef": (
            ev.RigReply,
            {"ok": True, "command": "cert", "details": "sha256=0123456789abcdef"},
        ),
        "E (1) rig_agent: error frob unknown command": (
            ev.RigReply,
            {"ok": False, "command": "frob", "details": "unknown command"},
        ),
        "E (1) rig_agent: selftest failed": (ev.RigSelftest, {"step": ev.SelftestStep.FAILED}),
        "I (1) advanced_https_ota_example: Current running version is the same as a new. "
        "We will not continue the update.": (ev.ExampleEvent, {"message": ev.ExampleMessage.SAME_VERSION}),
    }
    for text, (cls, fields) in cases.items():
        event = parse_text(text)[0]
        assert isinstance(event, cls), text
        for name, value in fields.items():
            assert getattr(event, name) == value, (text, name)


def test_status_line_fields_in_order() -> None:
    line = (
        "I (9) rig_agent: status running=ota_1 boot=ota_1 version=2.0.0 secure_version=1 "
        "efuse_secure_version=1 state=PENDING_VERIFY behaviour=never_confirm ota=idle"
    )
    status = parse_text(line)[0]
    assert isinstance(status, ev.RigStatus)
    assert [k for k, _ in status.fields][:3] == ["running", "boot", "version"]
    assert (status.running, status.state, status.ota, status.get("behaviour")) == (
        "ota_1",
        "PENDING_VERIFY",
        "idle",
        "never_confirm",
    )


def test_caller_table_names_the_slot_when_the_boot_printed_none() -> None:
    events = LogParser({0x1D0000: "ota_1"}).parse_text(
        "I (288) boot: Loaded app from partition at offset 0x1d0000"
    )
    assert isinstance(events[0], ev.SlotLoaded) and events[0].partition == "ota_1"
    unnamed = parse_text("I (288) boot: Loaded app from partition at offset 0x1d0000")[0]
    assert isinstance(unnamed, ev.SlotLoaded) and unnamed.partition is None


def test_unknown_lines_and_garbage_never_raise() -> None:
    noise = bytes(range(256)) * 3 + b"\n" + b"I (1) boot: " + b"x" * 10_000 + b"\nI (12) bo"
    events = LogParser().parse_text(noise)
    assert all(isinstance(e, ev.OtherLine) for e in events)
    assert [e.line_no for e in events] == list(range(1, len(events) + 1))
    assert isinstance(parse_text("I (5) rig_agent: ota progress bytes=12 total=")[0], ev.OtherLine)


def test_line_without_newline_is_cut_at_max_line() -> None:
    parser = LogParser(max_line=100)
    assert len(parser.feed(b"z" * 250)) == 1


def test_power_cut_mid_line_keeps_the_rom_reset() -> None:
    cut_line = "I (5142) esp_https_ota: Writing to <ota_1> par"
    text = cut_line + "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
    assert isinstance(parse_text(text)[0], ev.RomReset)


def test_host_time_is_attached() -> None:
    events = LogParser().feed("I (1) main_task: Calling app_main()\n", t=12.5)
    assert events[0].t == 12.5 and events[0].line_no == 1


def _canon(events: list[ev.Event]) -> list[tuple[object, ...]]:
    return [(type(e), e.line_no, e.line.raw, e.line.message) for e in events]


REFERENCE = (excerpt("first_boot_after_ota.log")[:1500] + "\xb5 noise \r\n").encode()
REFERENCE_EVENTS = _canon(LogParser().parse_text(REFERENCE))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(REFERENCE)), max_size=40))
def test_chunked_feeding_gives_the_same_events(cuts: list[int]) -> None:
    parser = LogParser()
    events: list[ev.Event] = []
    bounds = [0, *sorted(cuts), len(REFERENCE)]
    for lo, hi in itertools.pairwise(bounds):
        events += parser.feed(REFERENCE[lo:hi])
    events += parser.flush()
    assert _canon(events) == REFERENCE_EVENTS


def test_byte_at_a_time_feeding_gives_the_same_events() -> None:
    parser = LogParser()
    events: list[ev.Event] = []
    for i in range(len(REFERENCE)):
        events += parser.feed(REFERENCE[i : i + 1])
    events += parser.flush()
    assert _canon(events) == REFERENCE_EVENTS
