"""`rig sweep`: every power-cut point of one update, replayed and judged."""
