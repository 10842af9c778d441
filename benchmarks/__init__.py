"""Speed and memory targets, measured outside the test suite (results printed as ratios)."""
