"""The version check: the same and an older version are refused before anything is written."""

from __future__ import annotations

import pytest

from rig.session import OtaSession
from rig.verdicts import RejectReason, image_rejected
from scenarios._support import (
    assert_log,
    assert_no_log,
    ended_on,
    need_image,
    need_version_check,
    ok,
    prepare,
)

pytestmark = [pytest.mark.gate]


def test_same_and_older_refused(request: pytest.FixtureRequest, ota: OtaSession) -> None:
    """Field failure: a stale server or a replayed URL re-flashes (or downgrades) devices
    in a loop, wearing flash and reintroducing fixed bugs.

    Fault: serve `base`'s own version, then an older version. Correct outcome (ESP-IDF
    advanced_https_ota_example): `W advanced_https_ota_example: Current running version is
    the same as a new. We will not continue the update.` then `W rig_agent: ota rejected
    reason=same_version`, and `reason=older_version` for the older one; no `Writing to`
    line, the old app keeps running.
    """
    need_version_check(ota)
    need_image(ota, "older_version")
    prepare(ota)
    same = ok(request, ota, "same_version")
    verdict = image_rejected(same.timeline, same.otadata, ota.board.table, reason=RejectReason.SAME_VERSION)
    assert verdict.passed, verdict.explain()
    older = ok(request, ota, "older_version")
    assert_log(ota, older, "rig_agent: ota rejected reason=older_version")
    for result in (same, older):
        assert_no_log(ota, result, "rig_agent: ota progress", "rig_agent: ota complete")
        ended_on(result, ota.images.base_version)
