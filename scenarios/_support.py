"""What every scenario shares: one OTA per fresh session, its outcome row, and the skips.

Each OTA runs in its own `OtaSession` with its own fault proxy, so a fault armed
for one attempt (and the firings and proxy records it leaves) never colours the
judgement of the retry that follows it in the same test. Every OTA attaches one
outcome row to the test item (`user_properties`, key `ota_result`); rows are
plain dicts so they cross xdist's wire unchanged, and the plugin feeds them to
the results store.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rig.board import Ready
from rig.cutspec import CutSpec, On, parse_cut
from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.esp.otadata import OtaData, OtaState, slot_for_seq
from rig.imageset import ImageSet
from rig.net.fault_proxy import FaultProxy
from rig.power.base import Capability
from rig.session import ROM_RESET, Final, OtaResult, OtaSession

ROW_KEY = "ota_result"
# A lab board answers in milliseconds; a dead link should be noticed in about a second.
LAB_AGENT = {"timeout_ms": "1200"}
_ENDED_IN_APP = re.compile(r"rig_agent: ota (failed|rejected)")
SAVE_STEP = 4096
_SAVED = re.compile(r"ota saved bytes=(\d+)")
# OtaSession._judge's problems that hold whatever the image was meant to do.
_STRUCTURAL = ("BRICK", "running version", "otadata entry", "log says")
# How long an app must stay up after `ready` to count as settled (no crash, no reset).
LAB_QUIET_S = 0.4
FARM_QUIET_S = 1.0
# The first-boot self-test window a "cut during the first boot" lands in (PROTOCOL §5).
SLOW_SELFTEST_MS = 800
SLOW_SELFTEST = "slow_selftest"


def agent_settings(ota: OtaSession) -> dict[str, str]:
    """Short agent timeouts on the virtual lab; the firmware's defaults on a real farm."""
    return dict(LAB_AGENT) if ota.board.farm.virtual else {}


def agent_config(ota: OtaSession) -> dict[str, str]:
    """The agent's settings as it reports them (`ota-config` without arguments)."""
    return dict(pair.split("=", 1) for pair in ota.board.command("ota-config").split() if "=" in pair)


def prepare(ota: OtaSession, image: str = "base", **settings: str) -> None:
    """Flash `image` into the known state and apply the suite's agent settings."""
    ota.prepare(image, **{**agent_settings(ota), **settings})


class _Session(OtaSession):
    """An OtaSession whose "stays up" window suits the farm: a twin boots in milliseconds."""

    def __init__(self, ota: OtaSession, proxy: FaultProxy) -> None:
        super().__init__(ota.board, ota.server, proxy, ota.certs, ota.images, ota.network, seed=ota.seed)
        self.quiet_s = LAB_QUIET_S if ota.board.farm.virtual else FARM_QUIET_S

    def settle(self, since: int, timeout: float, quiet_s: float | None = None) -> Ready | None:
        """As OtaSession.settle, but an OTA that failed or was refused without a reset
        settles at once: the app that ran keeps running and prints no new `ready`."""
        quiet = self.quiet_s if quiet_s is None else quiet_s
        console = self.board.console
        ended = console.wait_for(_ENDED_IN_APP, 0.0, since)
        if ended is not None and console.wait_for(ROM_RESET, quiet, since) is None:
            status = self.board.status()
            index = next((line.index for line in console.lines(since) if line.text == ended.string), since)
            get = status.get
            return Ready(get("version", "?"), get("running", "?"), get("state", "?"), index)
        return super().settle(since, timeout, quiet)


@contextlib.contextmanager
def _fresh(ota: OtaSession) -> Iterator[OtaSession]:
    proxy = FaultProxy((ota.server.host, ota.server.port), host=ota.network.bind, bus=ota.server.bus)
    with proxy:
        session = _Session(ota, proxy)
        try:
            yield session
        finally:
            session.close()


def run_ota(request: pytest.FixtureRequest, ota: OtaSession, image: str, cut: str | None = None,
            *, expect: Final | None = None, timeout: float = 60.0, via_proxy: bool = True) -> OtaResult:
    """One judged OTA of `image` (optionally with the fault `cut`), recorded on the test item.

    `expect` overrides the manifest's end state where the scenario changed the device's
    starting point (wrong pinned certificate, eFuse already burnt): the session's
    structural checks (brick, torn otadata, log vs otadata) still apply.
    """
    spec = parse_cut(cut) if cut is not None else None
    with _fresh(ota) as session:
        result = session.run(image, spec, timeout=timeout, via_proxy=via_proxy)
    if expect is not None:
        _rejudge(result, expect)
    record(request, result, spec, ota.images.entry(image).path.stat().st_size)
    return result


def _rejudge(result: OtaResult, expect: Final) -> None:
    kept = [p for p in result.problems if p.startswith(_STRUCTURAL)]
    if result.final is not None and result.final is not expect:
        kept.append(f"ended on {result.final.value} firmware; this scenario's correct end is {expect.value}")
    result.acceptable = frozenset({expect})
    result.problems[:] = kept


def ok(request: pytest.FixtureRequest, ota: OtaSession, image: str, cut: str | None = None,
       *, expect: Final | None = None, timeout: float = 60.0, via_proxy: bool = True) -> OtaResult:
    """`run_ota` that fails the test unless the device did the correct thing."""
    result = run_ota(request, ota, image, cut, expect=expect, timeout=timeout, via_proxy=via_proxy)
    assert result.passed, result.summary()
    return result


def record(request: pytest.FixtureRequest, result: OtaResult, cut: CutSpec | None,
           image_size: int) -> dict[str, Any]:
    """Attach `result` to the test item as one outcome row and return the row."""
    row = outcome_row(request.node.originalname or request.node.name, result, cut, image_size)
    request.node.user_properties.append((ROW_KEY, row))
    return row


def outcome_row(scenario: str, result: OtaResult, cut: CutSpec | None, image_size: int) -> dict[str, Any]:
    """The results store's fields for one OTA, as JSON-able values."""
    if result.problems and result.final is None and result.final_ready is None:
        outcome = "BRICK"
    else:
        outcome = "PASS" if result.passed else "FAIL"
    return {
        "scenario": scenario,
        "board": result.board,
        "image": result.image,
        "expect": result.expect,
        "firmware_old": result.old_version,
        "firmware_new": result.new_version,
        "fault": cut.kind.value if cut else "none",
        "cut": result.cut,
        "cut_point": _cut_point(cut, image_size),
        "phase": result.phase.name,
        "outcome": outcome,
        "final": result.final.value if result.final else None,
        "acceptable": sorted(f.value for f in result.acceptable),
        "problems": list(result.problems),
        "duration_s": round(result.duration_s, 3),
        "bytes_sent": result.bytes_sent,
        "boots": [
            {"index": b.index, "reset_reason": b.reset_reason or "", "slot": b.slot_name or "",
             "version": b.app_version or "", "outcome": b.outcome.value}
            for b in result.timeline
        ],
        "faults": [
            {"name": f.trigger, "condition": f.condition, "observed": str(f.observed),
             "latency_ms": round(f.latency_ms, 2), "error": f.error}
            for f in result.firings
        ],
    }


def saved_marker(ota: OtaSession, image: str, fraction: float) -> str:
    """A --cut log condition for the moment the device has written about `fraction` of `image`.

    The agent's `ota saved bytes=<n>` marker (PROTOCOL §2, every 4 KiB) is the device's own
    count; the server's byte count runs ahead of it by whatever the socket buffers hold.
    """
    size = ota.images.entry(image).path.stat().st_size
    saved = max(SAVE_STEP, min(size // SAVE_STEP, round(size * fraction / SAVE_STEP)) * SAVE_STEP)
    return f"/rig_agent: ota saved bytes={saved}$/"


def cut_at_bytes(ota: OtaSession, image: str, fraction: float) -> str:
    """A power cut once the device has written about `fraction` of `image`."""
    return f"power@log={saved_marker(ota, image, fraction)}"


def _cut_point(cut: CutSpec | None, image_size: int) -> float | None:
    """Where in the image the cut was aimed, as a fraction, when the spec says so."""
    if cut is not None and cut.on is On.FRACTION and isinstance(cut.at, float):
        return cut.at
    if cut is not None and cut.on is On.LOG and isinstance(cut.at, re.Pattern):
        saved = _SAVED.search(cut.at.pattern)
        return round(int(saved[1]) / image_size, 4) if saved and image_size else None
    return None


# -- reading the two sources -------------------------------------------------------------


def slot_states(result: OtaResult, ota: OtaSession, slot: str) -> list[str]:
    """State names of the CRC-valid otadata entries whose seq selects `slot`."""
    otadata = result.otadata
    assert otadata is not None, "no otadata read back"
    return states_of(otadata, ota, slot)


def states_of(otadata: OtaData, ota: OtaSession, slot: str) -> list[str]:
    labels = [p.name for p in ota.board.table.ota_slots]
    index = labels.index(slot)
    return [
        _state(e.state) for e in otadata.entries
        if not e.is_erased and e.crc_ok and slot_for_seq(e.seq, len(labels)) == index
    ]


def _state(value: int) -> str:
    try:
        return OtaState(value).name
    except ValueError:
        return f"0x{value:08x}"


def slot_name(ota: OtaSession, index: int) -> str:
    return ota.board.table.ota_slots[index].name


def log_text(ota: OtaSession, result: OtaResult) -> str:
    """The serial log of one OTA, from its start to now."""
    return ota.board.console.text(result.mark)


def assert_log(ota: OtaSession, result: OtaResult, *needles: str) -> None:
    """Every `needle` occurs in the OTA's serial log (the ESP-IDF proof lines)."""
    text = log_text(ota, result)
    missing = [n for n in needles if n not in text]
    assert not missing, f"log lacks {missing}\n{result.summary()}"


def assert_no_log(ota: OtaSession, result: OtaResult, *needles: str) -> None:
    text = log_text(ota, result)
    present = [n for n in needles if n in text]
    assert not present, f"log must not contain {present}\n{result.summary()}"


def ended_on(result: OtaResult, version: str) -> None:
    """The judged result passed and the device runs `version` (log) with otadata agreeing."""
    assert result.passed, result.summary()
    assert result.final_ready is not None and result.final_ready.version == version, result.summary()


# -- applicability: skip with the reason, never pass silently ----------------------------


def need_power_cut(ota: OtaSession) -> None:
    power = ota.board.power
    if not power.cuts_power:
        pytest.skip(f"board {ota.board.name}: power driver {power.name} only resets, it cannot cut power")


def need_voltage_ramp(ota: OtaSession) -> None:
    power = ota.board.power
    if Capability.VOLTAGE_RAMP not in power.capabilities:
        pytest.skip(f"board {ota.board.name}: power driver {power.name} cannot sag the voltage (no PSU)")


def need_rollback(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.rollback:
        pytest.skip(f"board {ota.board.name}: firmware built without app rollback")


def need_signing(ota: OtaSession) -> None:
    if ota.board.spec.firmware.signing == "none":
        pytest.skip(f"board {ota.board.name}: firmware does not verify update signatures (signing: none)")


def need_anti_rollback(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.anti_rollback:
        pytest.skip(f"board {ota.board.name}: firmware built without anti-rollback")


def need_version_check(ota: OtaSession) -> None:
    if not ota.board.spec.firmware.version_check:
        pytest.skip(f"board {ota.board.name}: firmware built without the version check")


def need_image(ota: OtaSession, name: str) -> None:
    reason = ota.images.skipped_reason(name)
    if reason is not None:
        pytest.skip(f"image {name} not in this run's set: {reason}")


def add_slow_selftest(ota: OtaSession, folder: Path) -> str:
    """Serve `next2` with a healthy self-test taking SLOW_SELFTEST_MS: a window to cut power in.

    The image joins this session's image set (written to `folder`, the test's artifacts)
    with next2's manifest expectations, so `OtaSession.run` judges it like any other.
    """
    like = ota.images.manifest.entry("next2")
    data = patch_image(ota.images.data("next2"), behaviour=Behaviour.HEALTHY,
                       behaviour_param=SLOW_SELFTEST_MS, key=ota.images.key)
    path = (folder / f"{SLOW_SELFTEST}.bin").resolve()
    path.write_bytes(data)
    # An absolute `file` wins over the set's directory when ImageSet joins the two.
    entry = replace(like, name=SLOW_SELFTEST, file=str(path), sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data), change=f"next2, healthy self-test of {SLOW_SELFTEST_MS} ms")
    manifest = replace(ota.images.manifest, entries=(*ota.images.manifest.entries, entry))
    ota.images = ImageSet(ota.images.directory, manifest, ota.images.key)
    ota.server.set_images(ota.images.source())
    return SLOW_SELFTEST
