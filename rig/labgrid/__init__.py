"""Boards on other hosts, through labgrid: places reserved and acquired on a coordinator
(coordinator.py) and turned into the farm's boards for one run (acquire.py)."""
