"""The replay half of `rig sweep`: every power-cut point of one recorded update."""
