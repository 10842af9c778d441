"""The rollout policy file: AWS IoT job rollout names, one-line errors for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rig.errors import InputError
from rig.resources import scenarios_dir
from rig.rollout.policy import FailureType, Transport, check_group, load_rollout_policy, parse_rollout_policy
from rig.yamlfile import parse_yaml

FULL = """\
name: nightly
transport: mqtt
rollout:
  maximum_per_minute: 120
  exponential_rate:
    base_rate_per_minute: 10
    increment_factor: 2.5
    rate_increase_criteria: {number_of_notified_things: 3}
abort:
  - {failure_type: REJECTED, min_number_of_executed_things: 5, threshold_percentage: 12.5}
timeout_per_board: 2m
late_joiners: {boards: 2, after_dispatched: 3}
faults:
  seed: 11
  spread:
    - {boards: 2, cut: "power@fraction=0.4"}
    - {boards: 1, firmware: aws-ota-corrupt-write}
"""


ABORT = (
    "name: x\nabort: [{{failure_type: {}, min_number_of_executed_things: {}, threshold_percentage: {}}}]\n"
)


def parse(text: str) -> object:
    return parse_rollout_policy(parse_yaml(text, "policy.yaml"))


def test_a_full_policy_reads_like_the_aws_job_it_stands_for() -> None:
    policy = parse(FULL)
    assert policy.name == "nightly" and policy.transport is Transport.MQTT
    assert policy.release == "greater"  # the MQTT default: the base one minor version up
    assert policy.maximum_per_minute == 120
    assert policy.exponential is not None
    assert (policy.exponential.base_per_minute, policy.exponential.factor) == (10, 2.5)
    assert (policy.exponential.every, policy.exponential.on_success) == (3, False)
    (criterion,) = policy.abort
    assert (criterion.failure_type, criterion.min_executed, criterion.threshold_percent) == (
        FailureType.REJECTED, 5, 12.5,
    )  # fmt: skip
    assert policy.timeout_s == 120.0
    assert (policy.late_joiners, policy.join_after, policy.fault_seed) == (2, 3, 11)
    assert [share.label for share in policy.faults] == [
        "power@fraction=0.4",
        "firmware aws-ota-corrupt-write",
    ]
    assert policy.needs_lab


@pytest.mark.parametrize("path", sorted((scenarios_dir() / "rollouts").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_rollout_scenarios_are_valid(path: Path) -> None:
    policy = load_rollout_policy(path)
    assert policy.name == path.stem
    check_group(policy, 8, own_lab=True, where=str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nspeed: 3\n", "policy.yaml:2: speed: unknown key"),
        ("name: x\ntransport: coap\n", "transport"),
        ("name: ../x\n", "name"),
        (
            ABORT.format("FAILED", 0, 5),
            "min_number_of_executed_things",
        ),
        (
            ABORT.format("FAILED", 2, 101),
            "threshold_percentage",
        ),
        (
            ABORT.format("BROKEN", 2, 5),
            "failure_type",
        ),
        (
            "name: x\nrollout: {exponential_rate: {base_rate_per_minute: 1, increment_factor: 9,"
            " rate_increase_criteria: {number_of_notified_things: 1}}}\n",
            "increment_factor",
        ),
        (
            "name: x\nrollout: {exponential_rate: {base_rate_per_minute: 1, increment_factor: 2,"
            " rate_increase_criteria: {}}}\n",
            "exactly one of number_of_notified_things",
        ),
        ("name: x\ntimeout_per_board: soon\n", "policy.yaml:2: timeout_per_board: 'soon' is not a duration"),
        (
            "name: x\nfaults: {spread: [{boards: 1, cut: 'power@nowhere'}]}\n",
            "faults.spread[0].cut: --cut power@nowhere",
        ),
        ("name: x\nfaults: {spread: [{boards: 1}]}\n", "exactly one of cut, firmware"),
        ("- a list\n", "a rollout policy must be a mapping"),
    ],
)
def test_mistakes_are_one_line_errors_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        parse(text)
    assert "\n" not in str(caught.value)


def test_a_group_too_small_for_its_faults_or_a_firmware_swap_on_real_boards_is_refused() -> None:
    policy = parse(FULL)
    with pytest.raises(InputError, match="the faults name 3 boards but the group has 2"):
        check_group(policy, 2, own_lab=True, where="p")
    with pytest.raises(InputError, match="only the lab `rig rollout` brings up itself"):
        check_group(policy, 8, own_lab=False, where="p")
    with pytest.raises(InputError, match="3 late joiners leave no board"):
        check_group(parse("name: x\nlate_joiners: {boards: 3}\n"), 3, own_lab=True, where="p")
