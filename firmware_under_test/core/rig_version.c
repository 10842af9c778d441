/* Version order of PROTOCOL.md §6 and the agent's version check (§3). */
#include <string.h>

#include "rig_core.h"

#define MAX_PARTS 16u

typedef struct {
    uint32_t parts[MAX_PARTS];
    size_t count;
    const char *suffix; /* after the '-', or NULL */
} parsed_version_t;

/* `[v]N(.N)*[-suffix]`; false when the text has any other shape. */
static bool parse_version(const char *text, parsed_version_t *out)
{
    const char *p = text;
    if (*p == 'v') {
        p++;
    }
    out->count = 0;
    out->suffix = NULL;
    for (;;) {
        if (*p < '0' || *p > '9' || out->count == MAX_PARTS) {
            return false;
        }
        uint32_t value = 0;
        while (*p >= '0' && *p <= '9') {
            uint32_t digit = (uint32_t)(*p - '0');
            if (value > (UINT32_MAX - digit) / 10u) {
                return false;
            }
            value = value * 10u + digit;
            p++;
        }
        out->parts[out->count++] = value;
        if (*p != '.') {
            break;
        }
        p++;
    }
    if (*p == '\0') {
        return true;
    }
    if (*p == '-' && p[1] != '\0') {
        out->suffix = p + 1;
        return true;
    }
    return false;
}

static rig_vcmp_t sign(int value)
{
    return value < 0 ? RIG_VCMP_LESS : (value > 0 ? RIG_VCMP_GREATER : RIG_VCMP_EQUAL);
}

rig_vcmp_t rig_version_compare(const char *a, const char *b)
{
    parsed_version_t va, vb;
    if (!parse_version(a, &va) || !parse_version(b, &vb)) {
        return strcmp(a, b) == 0 ? RIG_VCMP_EQUAL : RIG_VCMP_UNORDERED;
    }
    size_t n = va.count > vb.count ? va.count : vb.count;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = i < va.count ? va.parts[i] : 0u;
        uint32_t y = i < vb.count ? vb.parts[i] : 0u;
        if (x != y) {
            return x < y ? RIG_VCMP_LESS : RIG_VCMP_GREATER;
        }
    }
    if (va.suffix == NULL || vb.suffix == NULL) {
        /* a suffix (pre-release) sorts before the same numbers without one */
        return va.suffix == vb.suffix ? RIG_VCMP_EQUAL : (va.suffix != NULL ? RIG_VCMP_LESS : RIG_VCMP_GREATER);
    }
    return sign(strcmp(va.suffix, vb.suffix));
}

rig_verdict_t rig_version_verdict(const char *new_version, const char *running_version,
                                  uint32_t new_secure_version, uint32_t efuse_secure_version)
{
    rig_vcmp_t order = rig_version_compare(new_version, running_version);
    if (order == RIG_VCMP_EQUAL) {
        return RIG_VERDICT_SAME_VERSION;
    }
    if (order == RIG_VCMP_LESS) {
        return RIG_VERDICT_OLDER_VERSION;
    }
    if (new_secure_version < efuse_secure_version) {
        return RIG_VERDICT_LOWER_SECURE_VERSION;
    }
    return RIG_VERDICT_ACCEPT;
}

const char *rig_verdict_reason(rig_verdict_t verdict)
{
    switch (verdict) {
    case RIG_VERDICT_ACCEPT:
        return "accepted";
    case RIG_VERDICT_SAME_VERSION:
        return "same_version";
    case RIG_VERDICT_OLDER_VERSION:
        return "older_version";
    case RIG_VERDICT_LOWER_SECURE_VERSION:
        return "lower_secure_version";
    }
    return "?";
}
