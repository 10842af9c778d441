"""Board health: a short LAVA-style check of each board (check.py), and the quarantine
of boards that keep failing it (policy.py; records in the results store)."""
