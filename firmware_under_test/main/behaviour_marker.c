/*
 * The behaviour marker (PROTOCOL.md §4): a const record, so it lands in .rodata and
 * thus in a DROM segment of the image; `used` keeps the linker from dropping it. Code
 * reads it only through rig_marker_decode() in another translation unit, so the
 * compiler cannot fold the built-in value into the code and a patched image acts on
 * the patched bytes. A build is healthy; `rig images derive` makes the mutants.
 */
#include "agent.h"

__attribute__((used)) const uint8_t rig_behaviour_marker[RIG_MARKER_SIZE] =
    RIG_MARKER_INIT(RIG_BEHAVIOUR_HEALTHY, 0u);
