/* Behaviour marker decoding and the first-boot plan (PROTOCOL.md §4, §5). */
#include "rig_core.h"

/*
 * The magic is kept XOR-masked with a byte read at run time, so the compiler cannot
 * fold the comparison back into the plain text: the image must hold "OTARIGBM" once,
 * in the marker record itself (PROTOCOL.md §4).
 */
static volatile const uint8_t k_magic_mask = 0xA5u;
static const uint8_t k_magic_masked[8] = {
    'O' ^ 0xA5u, 'T' ^ 0xA5u, 'A' ^ 0xA5u, 'R' ^ 0xA5u, 'I' ^ 0xA5u, 'G' ^ 0xA5u, 'B' ^ 0xA5u, 'M' ^ 0xA5u,
};

static const char *const k_behaviour_names[RIG_BEHAVIOUR_COUNT] = {
    "healthy", "crash_on_boot", "selftest_fail", "hang", "never_confirm", "confirm_then_crash",
};

static uint16_t read_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t read_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

rig_marker_status_t rig_marker_decode(const uint8_t *buf, size_t len, rig_marker_t *out)
{
    if (buf == NULL || len < RIG_MARKER_SIZE) {
        return RIG_MARKER_TRUNCATED;
    }
    const uint8_t mask = k_magic_mask;
    for (size_t i = 0; i < sizeof k_magic_masked; i++) {
        if ((uint8_t)(buf[i] ^ mask) != k_magic_masked[i]) {
            return RIG_MARKER_BAD_MAGIC;
        }
    }
    if (read_u16le(buf + 8) != RIG_MARKER_LAYOUT_VERSION) {
        return RIG_MARKER_BAD_VERSION;
    }
    uint16_t code = read_u16le(buf + 10);
    if (code >= RIG_BEHAVIOUR_COUNT) {
        return RIG_MARKER_BAD_CODE;
    }
    out->behaviour = (rig_behaviour_t)code;
    out->parameter_ms = read_u32le(buf + 12);
    return RIG_MARKER_OK;
}

const char *rig_marker_status_name(rig_marker_status_t status)
{
    switch (status) {
    case RIG_MARKER_OK:
        return "ok";
    case RIG_MARKER_TRUNCATED:
        return "truncated";
    case RIG_MARKER_BAD_MAGIC:
        return "bad magic";
    case RIG_MARKER_BAD_VERSION:
        return "unsupported layout version";
    case RIG_MARKER_BAD_CODE:
        return "unknown behaviour code";
    }
    return "?";
}

const char *rig_behaviour_name(rig_behaviour_t behaviour)
{
    return (unsigned)behaviour < RIG_BEHAVIOUR_COUNT ? k_behaviour_names[behaviour] : "?";
}

rig_boot_plan_t rig_boot_plan(rig_ota_state_t state, const rig_marker_t *marker)
{
    rig_boot_plan_t plan = {.announce = false, .action = RIG_BOOT_RUN, .delay_ms = 0};
    bool first_boot = state == RIG_STATE_PENDING_VERIFY;
    switch (marker->behaviour) {
    case RIG_BEHAVIOUR_CRASH_ON_BOOT:
        plan.action = RIG_BOOT_CRASH; /* on every boot: a crash loop, as in the field */
        break;
    case RIG_BEHAVIOUR_HANG:
        plan.action = RIG_BOOT_HANG;
        break;
    case RIG_BEHAVIOUR_HEALTHY:
        plan.action = first_boot ? RIG_BOOT_SELFTEST_PASS : RIG_BOOT_RUN;
        plan.delay_ms = first_boot ? marker->parameter_ms : 0;
        break;
    case RIG_BEHAVIOUR_SELFTEST_FAIL:
        plan.action = first_boot ? RIG_BOOT_SELFTEST_FAIL : RIG_BOOT_RUN;
        break;
    case RIG_BEHAVIOUR_NEVER_CONFIRM:
        plan.action = first_boot ? RIG_BOOT_NEVER_CONFIRM : RIG_BOOT_RUN;
        break;
    case RIG_BEHAVIOUR_CONFIRM_THEN_CRASH:
        plan.action = first_boot ? RIG_BOOT_CONFIRM_THEN_CRASH : RIG_BOOT_RUN;
        plan.delay_ms = first_boot ? marker->parameter_ms : 0;
        break;
    }
    plan.announce = first_boot;
    return plan;
}
