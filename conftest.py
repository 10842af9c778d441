"""Repository-level pytest configuration.

The rig's fixtures come from its pytest plugin (`rig.plugin`, registered as an entry
point), so scenarios run the same from this checkout and from an installed rig. Here
we only keep pytest away from folders that hold no Python tests.
"""

collect_ignore = ["firmware_under_test", "reports", ".lab"]
