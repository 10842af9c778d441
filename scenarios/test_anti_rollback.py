"""Anti-rollback: a lower secure_version is refused; a bump burns the eFuse for good."""

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
    need_anti_rollback,
    need_image,
)

pytestmark = [pytest.mark.anti_rollback, pytest.mark.gate]
# Burning an eFuse is forever: only boards the farm file offers up for it take part.
BURN_TAG = "efuse-burnable"


def test_lower_secure_version_refused(ota: OtaSession) -> None:
    """Field failure: an attacker downgrades the fleet to a release with a known hole.

    Fault: `next` with secure_version one below the eFuse's. Correct outcome (ESP-IDF
    anti-rollback): refused on the image descriptor before anything is written (`W
    rig_agent: ota rejected reason=lower_secure_version`); the old app keeps running.
    """
    need_anti_rollback(ota)
    need_agent(ota, "early-anti-rollback")
    need_image(ota, "lower_secure_version")
    ota.prepare()
    result = ota.ok("lower_secure_version")
    check = image_rejected(result.timeline, result.otadata, ota.board.table,
                             reason=RejectReason.SECURE_VERSION)
    assert check.passed, check.explain()
    assert_no_log(ota, result, *ota.says.wrote, ota.says.complete)
    ended_on(result, ota.images.base_version)


@pytest.mark.burns_efuse
def test_bump_burns_efuse_and_blocks_downgrade(ota: OtaSession) -> None:
    """Field failure: after a security release, the vulnerable release can still be installed.

    Fault: `next` with secure_version + 1 (confirmed), then `next2` carrying the old
    secure_version. Correct outcome (ESP-IDF anti-rollback): confirming the bumped app
    burns the eFuse (`status ... efuse_secure_version=<n+1>`); the later image is refused
    with `reason=lower_secure_version` and the bumped app keeps running.
    """
    need_anti_rollback(ota)
    need_agent(ota, "early-anti-rollback")
    if BURN_TAG not in ota.board.spec.tags:
        pytest.skip(f"board {ota.board.name}: this burns an eFuse for good; tag the board {BURN_TAG!r}")
    ota.prepare()
    bumped = ota.ok("higher_secure_version")
    entry = ota.images.manifest.entry("higher_secure_version")
    ended_on(bumped, ota.images.entry("higher_secure_version").version)
    status = ota.board.status()
    if "efuse_secure_version" in status:  # firmware that reports its eFuse (PROTOCOL.md `status`)
        assert status["efuse_secure_version"] == str(entry.secure_version), status
    downgrade = ota.run("next2", expect=Final.OLD)
    assert downgrade.passed, downgrade.summary()
    assert_log(ota, downgrade, ota.says.secure_version_refused)
    assert_no_log(ota, downgrade, *ota.says.wrote)
