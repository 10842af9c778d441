"""The version check: the same and an older version are refused before anything is written."""

from __future__ import annotations

import pytest

from rig.checks import RejectReason, image_rejected
from rig.phase import Final
from rig.session import OtaSession
from scenarios._support import (
    assert_log,
    assert_no_log,
    ended_on,
    need_agent,
    need_image,
    need_version_check,
)

pytestmark = [pytest.mark.gate]


def test_same_and_older_refused(ota: OtaSession) -> None:
    """Field failure: a stale server or a replayed URL re-flashes (or downgrades) devices
    in a loop, wearing flash and reintroducing fixed bugs.

    Fault: serve `base`'s own version, then an older version. Correct outcome (ESP-IDF
    advanced_https_ota_example): `W advanced_https_ota_example: Current running version is
    the same as a new. We will not continue the update.` then `W rig_agent: ota rejected
    reason=same_version`, and `reason=older_version` for the older one; no `Writing to`
    line, the old app keeps running.
    """
    need_version_check(ota)
    need_agent(ota, "ordered-version-check")
    need_image(ota, "older_version")
    ota.prepare()
    same = ota.ok("same_version")
    check = image_rejected(same.timeline, same.otadata, ota.board.table, reason=RejectReason.SAME_VERSION)
    assert check.passed, check.explain()
    older = ota.ok("older_version")
    assert_log(ota, older, "rig_agent: ota rejected reason=older_version")
    for result in (same, older):
        assert_no_log(ota, result, "rig_agent: ota progress", "rig_agent: ota complete")
        ended_on(result, ota.images.base_version)


def test_version_digit_boundaries(ota: OtaSession) -> None:
    """Field failure: an agent that compares version strings stops updating at x.9 (`"1.0.10"
    < "1.0.9"` as text) or lets an x.9 build replace x.10 — the fleet sticks or downgrades
    the day a number gains a digit; one that compares only some numbers misses major bumps.

    Fault: none; versions straddle the orderings agents get wrong (PROTOCOL.md §6). Running
    x.9: x.10 is installed. Running x.10: x.9 is refused (`W rig_agent: ota rejected
    reason=older_version`), nothing written. Then a major bump (x+1.0.0) is installed.
    Correct outcome: ESP-IDF leaves ordering to the app (advanced_https_ota_example only
    refuses an equal version); the reference agent orders numbers numerically, part by part.
    """
    need_version_check(ota)
    need_agent(ota, "ordered-version-check")
    ota.prepare("version_digits_low")
    high = ota.images.entry("version_digits_high").version
    ended_on(ota.ok("version_digits_high"), high)
    back = ota.ok("version_digits_low", expect=Final.OLD)
    assert_log(ota, back, "rig_agent: ota rejected reason=older_version")
    assert_no_log(ota, back, "rig_agent: ota progress", "rig_agent: ota complete")
    ended_on(back, high)
    ended_on(ota.ok("version_major"), ota.images.entry("version_major").version)


def test_prerelease_below_its_release(ota: OtaSession) -> None:
    """Field failure: a release candidate left on the server replaces the final release it
    preceded (the agent drops the `-rc.1` suffix, or sorts it above the release), or a device
    on the candidate never takes the release.

    Fault: none. Running `next`, its pre-release `next-rc.1` is served: refused with
    `reason=older_version` (not `same_version`: they differ), nothing written. Running the
    pre-release, `next` is installed. Correct outcome (PROTOCOL.md §6): a suffix sorts
    before the same numbers without one.
    """
    need_version_check(ota)
    need_agent(ota, "ordered-version-check")
    ota.prepare("next")
    release = ota.images.entry("next").version
    refused = ota.ok("version_prerelease", expect=Final.OLD)
    assert_log(ota, refused, "rig_agent: ota rejected reason=older_version")
    assert_no_log(ota, refused, "rig_agent: ota progress", "rig_agent: ota complete")
    ended_on(refused, release)
    ota.prepare("version_prerelease")
    ended_on(ota.ok("next"), release)
