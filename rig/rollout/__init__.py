"""Fleet rollouts: one update to a group of boards, paced, with abort thresholds (`rig rollout`)."""
