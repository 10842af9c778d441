"""Fleet rollouts on 8- and 16-board virtual labs (2-core machine): how fast the rig can
update a group, and what a staged rollout with faults costs.

- burst: the release to every board at once, no faults — the rig's and lab's capacity in
  boards per minute (target >= 60 boards/min over HTTPS and over MQTT jobs);
- staged: the shipped staged scenarios (ramped, faults, broken board, late joiner) — the
  rollout's own wall time (target <= 60 s) and the whole command's (lab up, provisioning,
  report).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

from rig.cli import main as rig
from rig.resources import scenarios_dir
from rig.results.store import ResultsStore
from rig.rollout.model import BoardState, RolloutResult

BOARD_COUNTS = (8, 16)
MIN_BOARDS_PER_MINUTE = 60.0
MAX_STAGED_WALL_S = 60.0


def _rollout(policy: Path, boards: int, reports: Path) -> tuple[RolloutResult, float]:
    started = time.monotonic()
    argv = ["rollout", "--policy", str(policy), "--lab-boards", str(boards), "--report-dir", str(reports)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = rig(argv)
    took = time.monotonic() - started
    store = ResultsStore(reports / "results.db")
    rollouts = store.rollouts(store.latest_run().run_id)
    if code not in (0, 1) or not rollouts:
        raise SystemExit(f"rollout {policy.name} ended with exit {code}")
    return rollouts[0], took


def _times(result: RolloutResult) -> str:
    times = sorted(t for b in result.boards if (t := b.time_to_update_s) is not None)
    return f"time to update median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s" if times else "none"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for boards in BOARD_COUNTS:
            for transport in ("https", "mqtt"):
                policy = root / f"burst-{transport}.yaml"
                policy.write_text(f"name: burst-{transport}\ntransport: {transport}\n", encoding="utf-8")
                result, took = _rollout(policy, boards, root / f"{transport}-{boards}")
                per_minute, updated = result.boards_per_minute, result.count(BoardState.SUCCEEDED)
                print(
                    f"rollout_burst_{transport}_{boards}: measured={per_minute:.1f} "
                    f"target>={MIN_BOARDS_PER_MINUTE:g} ratio={MIN_BOARDS_PER_MINUTE / per_minute:.2f} "
                    f"(boards/min; {updated}/{boards} updated in {result.wall_s:.1f} s; {_times(result)}; "
                    f"command {took:.1f} s)"
                )
            for scenario in ("staged", "staged-mqtt"):
                policy = scenarios_dir() / "rollouts" / f"{scenario}.yaml"
                result, took = _rollout(policy, boards, root / f"{scenario}-{boards}")
                name = scenario.replace("-", "_")
                print(
                    f"rollout_{name}_{boards}: measured={result.wall_s:.1f} target<={MAX_STAGED_WALL_S:g} "
                    f"ratio={result.wall_s / MAX_STAGED_WALL_S:.2f} (s; {result.headline()}; "
                    f"{_times(result)}; command {took:.1f} s)"
                )


if __name__ == "__main__":
    main()
