"""What every scenario shares: the known state, one judged OTA with its outcome row, and the skips.

`OtaSession.run` judges each OTA by its own fault firings and proxy records, settles at
once when the agent gives up, and cuts power at the device's own written-bytes markers,
so a scenario runs all its OTAs (fault, then retry) in the one session the plugin gives
it. Every OTA attaches one outcome row to the test item (`user_properties`, key
`ota_result`); rows are plain dicts so they cross xdist's wire unchanged, and the plugin
feeds them to the results store.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rig.cutspec import CutSpec, On, parse_cut
from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.esp.otadata import OtaData, OtaState, slot_for_seq
from rig.images.mutants import Expect
from rig.imageset import ImageSet
from rig.phase import Final, Phase
from rig.power.base import Capability
from rig.session import OtaResult, OtaSession

ROW_KEY = "ota_result"
# A lab board answers in milliseconds; a dead link should be noticed in about a second.
LAB_AGENT = {"timeout_ms": "1200"}
# How long an app must stay up after `ready` to count as settled: a twin boots in ~60 ms.
LAB_QUIET_S = 0.15
# The session's problems that only say "not the manifest's end state" (see `run_ota`'s expect).
_MANIFEST_ONLY = ("ended on ", "expected log line not seen")
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
    """Flash `image` into the known state and apply the suite's agent settings.

    The session remembers how, so an OTA whose fault missed its window can be retried
    from the same known state (`ok(..., window=...)`).
    """
    if ota.board.farm.virtual:
        ota.quiet_s = LAB_QUIET_S
    merged = {**agent_settings(ota), **settings}
    ota.prepare(image, **merged)
    _KNOWN_STATE[id(ota)] = (image, merged)


# How each session was last prepared: what a retry of a missed window restores.
_KNOWN_STATE: dict[int, tuple[str, dict[str, str]]] = {}
WINDOW_TRIES = 3
INCONCLUSIVE = "INCONCLUSIVE: "


def run_ota(request: pytest.FixtureRequest, ota: OtaSession, image: str, cut: str | None = None,
            *, expect: Final | None = None, timeout: float = 60.0) -> OtaResult:
    """One judged OTA of `image` (optionally with the fault `cut`), recorded on the test item.

    `expect` overrides the manifest's end state where the scenario changed the device's
    starting point (wrong pinned certificate, eFuse already burnt): every other check of
    the session (brick, torn otadata, log vs otadata) still applies.
    """
    spec = parse_cut(cut) if cut is not None else None
    result = ota.run(image, spec, timeout=timeout)
    if expect is not None:
        _expect(result, expect)
    record(request, result, spec)
    return result


def _expect(result: OtaResult, expect: Final) -> None:
    kept = [p for p in result.problems if not p.startswith(_MANIFEST_ONLY)]
    if result.final is not None and result.final is not expect:
        kept.append(f"ended on {result.final.value} firmware; this scenario's correct end is {expect.value}")
    result.acceptable = frozenset({expect})
    result.problems[:] = kept


def ok(request: pytest.FixtureRequest, ota: OtaSession, image: str, cut: str | None = None,
       *, expect: Final | None = None, timeout: float = 60.0,
       window: frozenset[Phase] | Phase | None = None) -> OtaResult:
    """`run_ota` that fails the test unless the device did the correct thing.

    `window` names the phase(s) the fault targets. A fault that lands outside it is not a
    verdict: the device is judged for where the fault did land (a wrong end state there
    still fails), then the known state is restored and the OTA tried again, up to
    WINDOW_TRIES times, with a byte or fraction trigger moved earlier when the fault landed
    late. Still outside: the test ends INCONCLUSIVE (recorded as such, never PASS or FAIL).
    """
    targets = frozenset({window}) if isinstance(window, Phase) else window
    attempt_cut = cut
    for attempt in range(1, WINDOW_TRIES + 1):
        spec = parse_cut(attempt_cut) if attempt_cut is not None else None
        result = ota.run(image, spec, timeout=timeout)
        if expect is not None:
            _expect(result, expect)
        missed = targets is not None and result.phase not in targets
        if not result.passed or not missed:
            record(request, result, spec)
            assert result.passed, result.summary()
            return result
        assert targets is not None
        if attempt == WINDOW_TRIES:
            wanted = " or ".join(sorted(p.value for p in targets))
            reason = (f"{image} with cut {cut}: the fault landed {result.phase.value} on "
                      f"{WINDOW_TRIES} tries (last cut {attempt_cut}); this scenario targets {wanted}")
            record(request, result, spec, inconclusive=reason)
            pytest.skip(INCONCLUSIVE + reason)
        restore(ota)
        attempt_cut = _earlier(attempt_cut, attempt) if result.phase.order > max(p.order for p in targets) \
            else attempt_cut
    raise AssertionError("unreachable")


def restore(ota: OtaSession) -> None:
    """Bring the board back to the known state the scenario last prepared."""
    image, settings = _KNOWN_STATE[id(ota)]
    ota.prepare(image, **settings)


def _earlier(cut: str | None, attempt: int) -> str | None:
    """The same cut with a byte or fraction threshold moved earlier by 10 % per attempt."""
    spec = parse_cut(cut) if cut is not None else None
    if spec is None or cut is None or spec.on not in (On.FRACTION, On.BYTES):
        return cut
    assert isinstance(spec.at, (int, float))
    moved: float = spec.at * (1.0 - 0.1 * attempt)
    number = f"{max(moved, 0.01):.3g}" if spec.on is On.FRACTION else str(max(int(moved), 1))
    return re.sub(rf"@{spec.on.value}=[0-9.]+", f"@{spec.on.value}={number}", cut, count=1)


def record(request: pytest.FixtureRequest, result: OtaResult, cut: CutSpec | None,
           *, inconclusive: str | None = None) -> dict[str, Any]:
    """Attach `result` to the test item as one outcome row and return the row."""
    row = outcome_row(request.node.originalname or request.node.name, result, cut, inconclusive=inconclusive)
    request.node.user_properties.append((ROW_KEY, row))
    return row


def outcome_row(scenario: str, result: OtaResult, cut: CutSpec | None,
                *, inconclusive: str | None = None) -> dict[str, Any]:
    """The results store's fields for one OTA, as JSON-able values."""
    if inconclusive is not None:
        outcome = "INCONCLUSIVE"
    elif result.problems and result.final is None and result.final_ready is None:
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
        "cut_point": cut.at if cut is not None and cut.on is On.FRACTION else None,
        "phase": result.phase.name,
        "outcome": outcome,
        "final": result.final.value if result.final else None,
        "acceptable": sorted(f.value for f in result.acceptable),
        "problems": [inconclusive] if inconclusive is not None else list(result.problems),
        "duration_s": round(result.duration_s, 3),
        "time_to_recover_s": None if result.time_to_recover_s is None else round(result.time_to_recover_s, 3),
        "bytes_sent": result.bytes_sent,
        "boots": [
            {"index": b.index, "reset_reason": b.reset_reason or "", "slot": b.slot_name or "",
             "version": b.app_version or "", "outcome": b.outcome.value}
            for b in result.timeline
        ],
        "faults": [
            {"name": f.trigger, "condition": f.condition, "observed": str(f.observed),
             "latency_ms": round(f.latency_ms, 2), "error": f.error,
             "t_offset_s": round(f.t_action_start - result.started, 3)}
            for f in result.firings
        ],
    }


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


def need_dead_path(ota: OtaSession) -> None:
    path = ota.path
    if path is None or path.namespace is None:
        why = path.unavailable if path is not None else "no fault path"
        pytest.skip(f"board {ota.board.name}: no dead-path fault here: {why}")


def need_image(ota: OtaSession, name: str) -> None:
    reason = ota.images.skipped_reason(name)
    if reason is not None:
        pytest.skip(f"image {name} not in this run's set: {reason}")


def add_slow_selftest(ota: OtaSession, folder: Path) -> str:
    """Serve `next2` with a healthy self-test taking SLOW_SELFTEST_MS: a window to cut power in."""
    data = patch_image(ota.images.data("next2"), behaviour=Behaviour.HEALTHY,
                       behaviour_param=SLOW_SELFTEST_MS, key=ota.images.key)
    return add_image(ota, folder, SLOW_SELFTEST, data, like="next2",
                     change=f"next2, healthy self-test of {SLOW_SELFTEST_MS} ms")


def add_image(ota: OtaSession, folder: Path, name: str, data: bytes, *, like: str, change: str,
              expect: Expect | None = None, logs: tuple[str, ...] | None = None) -> str:
    """Serve `data` as image `name` in this session, judged like the manifest's `like` entry
    unless `expect` / `logs` say otherwise: images that depend on the board (its slot size,
    a self-test window) are derived here, from the run's build.

    The file goes to `folder` (the test's artifacts); an absolute `file` wins over the
    set's directory when ImageSet joins the two.
    """
    entry = ota.images.manifest.entry(like)
    path = (folder / f"{name}.bin").resolve()
    path.write_bytes(data)
    entry = replace(entry, name=name, file=str(path), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                    change=change, expect=expect or entry.expect, logs=entry.logs if logs is None else logs)
    manifest = replace(ota.images.manifest, entries=(*ota.images.manifest.entries, entry))
    ota.images = ImageSet(ota.images.directory, manifest, ota.images.key)
    ota.server.set_images(ota.images.source())
    return name
