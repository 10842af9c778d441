"""What must run after a cut, per ESP-IDF v5.5.5's boot rules, and every invariant of a point."""

from __future__ import annotations

import pytest

from rig.sweep.judge import Band, Judge, Problem, bands, expected_after, infra_reason
from rig.sweep.records import EntryHealth, Image, RunEnd, TraceFacts
from tests.unit.sweep.conftest import facts, point, run, update_ops

OLD, NEW = Image.OLD, Image.NEW


@pytest.mark.parametrize(
    ("selects", "state", "rollback", "must_run"),
    [
        (None, "", True, {OLD}),  # erased otadata: the first slot, where the old image lives
        (OLD, "VALID", True, {OLD}),
        (NEW, "NEW", True, {NEW}),  # its one boot, then its self-test confirms it
        (NEW, "PENDING_VERIFY", True, {OLD}),  # it had its boot: the bootloader rolls back
        (NEW, "VALID", True, {NEW}),
        (NEW, "UNDEFINED", False, {NEW}),  # no rollback: whatever otadata selects
        (NEW, "PENDING_VERIFY", False, {NEW}),
    ],
)
def test_what_must_run_follows_otadata_at_the_cut(
    selects: Image | None, state: str, rollback: bool, must_run: set[Image]
) -> None:
    assert expected_after(selects, state, rollback) == must_run


def test_bands_follow_the_update(trace: TraceFacts) -> None:
    assert bands(trace) == [
        Band.PREPARE, Band.ERASE, Band.DOWNLOAD, Band.DOWNLOAD, Band.DOWNLOAD, Band.OTADATA, Band.OTADATA,
        Band.FIRST_BOOT, Band.FIRST_BOOT, Band.FIRST_BOOT, Band.CONFIRM, Band.CONFIRM, Band.END,
    ]  # fmt: skip


def test_old_image_before_the_switch_and_a_landing_retry_are_safe(trace: TraceFacts) -> None:
    judged = Judge(trace, accepted=True, retry=True).judge(
        point(3), run((OLD, "VALID"), (NEW, "PENDING_VERIFY"), retried=True, before=1)
    )
    assert judged.safe and judged.settled is OLD and judged.final is NEW


def test_new_image_running_while_otadata_still_selects_the_old_is_unsafe(trace: TraceFacts) -> None:
    judged = Judge(trace, accepted=True, retry=False).judge(point(4), run((NEW, "PENDING_VERIFY")))
    assert [p for p, _ in judged.problems] == [Problem.WRONG_IMAGE]


def test_after_the_new_image_had_its_boot_a_cut_must_roll_back(trace: TraceFacts) -> None:
    judge = Judge(trace, accepted=True, retry=False)
    assert judge.judge(point(9), run((OLD, "VALID"))).safe  # otadata: new PENDING_VERIFY
    wrong = judge.judge(point(9), run((NEW, "PENDING_VERIFY")))
    assert [p for p, _ in wrong.problems] == [Problem.WRONG_IMAGE]


def test_the_new_image_may_boot_unconfirmed_only_once(trace: TraceFacts) -> None:
    judged = Judge(trace, accepted=True, retry=False).judge(
        point(7), run((NEW, "PENDING_VERIFY"), (NEW, "PENDING_VERIFY"))
    )
    assert Problem.UNCONFIRMED_TWICE in {p for p, _ in judged.problems}


def test_a_torn_otadata_write_may_leave_either_side(trace: TraceFacts) -> None:
    judge = Judge(trace, accepted=True, retry=False)
    torn_at_cut = (EntryHealth.VALID, EntryHealth.TORN)
    for image in (OLD, NEW):
        judged = judge.judge(point(6, 0.5, torn_at_cut), run((image, "VALID"), otadata=torn_at_cut))
        assert judged.safe, judged.problems


def test_a_torn_entry_between_operations_is_unsafe(trace: TraceFacts) -> None:
    torn = (EntryHealth.TORN, EntryHealth.VALID)
    judged = Judge(trace, accepted=True, retry=False).judge(point(3, None, torn), run((OLD, "VALID")))
    assert Problem.OTADATA_TORN in {p for p, _ in judged.problems}


def test_no_app_at_all_is_a_brick_and_resets_without_settling_a_boot_loop(trace: TraceFacts) -> None:
    judge = Judge(trace, accepted=True, retry=False)
    brick = judge.judge(point(3), run(end=RunEnd.BOOT_LOOP))
    loop = judge.judge(point(3), run((OLD, "VALID"), (OLD, "VALID"), end=RunEnd.BOOT_LOOP))
    assert next(p for p, _ in brick.problems) is Problem.BRICK
    assert next(p for p, _ in loop.problems) is Problem.BOOT_LOOP


def test_a_retry_that_does_not_land_is_unsafe(trace: TraceFacts) -> None:
    judged = Judge(trace, accepted=True, retry=True).judge(
        point(3), run((OLD, "VALID"), retried=True, before=1)
    )
    assert [p for p, _ in judged.problems] == [Problem.RETRY_FAILED]


def test_a_refused_image_may_never_run() -> None:
    judge = Judge(facts(), accepted=False, retry=False)
    assert judge.judge(point(8), run((OLD, "VALID"))).safe
    kinds = {p for p, _ in judge.judge(point(8), run((NEW, "PENDING_VERIFY"))).problems}
    assert kinds == {Problem.WRONG_IMAGE, Problem.REFUSED_BOOTED}


def test_secure_version_burnt_before_confirm_is_unsafe() -> None:
    early = Judge(facts(update_ops(burn_before_confirm=True)), accepted=True, retry=False)
    judged = early.judge(point(9), run((OLD, "VALID"), efuse_end=2))
    assert Problem.SECURE_VERSION_EARLY in {p for p, _ in judged.problems}
    on_time = Judge(facts(), accepted=True, retry=False)
    assert on_time.judge(point(12), run((NEW, "VALID"), efuse_end=2)).safe


def test_a_retry_without_a_server_is_infrastructure_not_firmware() -> None:
    lost = run((OLD, "VALID"), retried=True, before=1)
    lost = type(lost)(
        **{
            **lost.__dict__,
            "log": "E (56) esp_https_ota: Failed to open HTTP connection: ESP_ERR_HTTP_CONNECT",
        }
    )
    assert "no server" in infra_reason(lost)
    assert infra_reason(run((OLD, "VALID"))) == ""
