"""Faults spread over the group by seed: the same seed hits the same boards the same way."""

from __future__ import annotations

from rig.rollout.plan import draw_plan
from rig.rollout.policy import parse_rollout_policy
from rig.yamlfile import parse_yaml

BOARDS = [f"b{i}" for i in range(1, 9)]
POLICY = parse_rollout_policy(parse_yaml(
    "name: p\nlate_joiners: {boards: 2}\nfaults:\n  spread:\n"
    "    - {boards: 2, cut: 'power@random=0.2..0.8'}\n"
    "    - {boards: 3, firmware: corrupt-write}\n",
    "p.yaml",
))  # fmt: skip


def test_every_share_gets_its_count_of_distinct_boards() -> None:
    plan = draw_plan(POLICY, BOARDS, seed=1)
    assert sorted(a.board for a in plan.assignments) == BOARDS
    assert sum(1 for a in plan.assignments if a.cut is not None) == 2
    assert len(plan.firmware_swaps) == 3
    assert not any(a.cut is not None and a.firmware is not None for a in plan.assignments)


def test_the_seed_decides_and_repeats() -> None:
    same = [draw_plan(POLICY, BOARDS, seed=5) for _ in range(2)]
    assert same[0] == same[1]
    spreads = {tuple(a.fault for a in draw_plan(POLICY, BOARDS, seed=s).assignments) for s in range(10)}
    assert len(spreads) > 1


def test_late_joiners_run_healthy_firmware_and_come_last() -> None:
    for seed in range(20):
        plan = draw_plan(POLICY, BOARDS, seed)
        assert len(plan.joiners) == 2
        assert all(a.firmware is None for a in plan.joiners)
        assert plan.assignments[-2:] == plan.joiners


def test_a_policy_seed_overrides_the_run_seed() -> None:
    seeded = parse_rollout_policy(parse_yaml(
        "name: p\nfaults: {seed: 4, spread: [{boards: 1, cut: 'power@fraction=0.5'}]}\n", "p.yaml"
    ))  # fmt: skip
    assert draw_plan(seeded, BOARDS, 1) == draw_plan(seeded, BOARDS, 2)
    assert draw_plan(seeded, BOARDS, 1).seed == 4
