/* Version order (PROTOCOL.md §6) and the agent's version check (§3). */
#include "harness.h"

typedef struct {
    const char *a;
    const char *b;
    rig_vcmp_t expected;
} case_t;

static const case_t k_cases[] = {
    /* the examples of §6 */
    {"2.3.0", "2.3.0", RIG_VCMP_EQUAL},
    {"v2.3", "2.3", RIG_VCMP_EQUAL},        /* a leading v is ignored */
    {"v2.3", "2.3.0", RIG_VCMP_EQUAL},      /* missing parts are 0 */
    {"2.3.0-rc1", "2.3.0", RIG_VCMP_LESS},  /* a suffix sorts before no suffix */
    {"2.3.0", "2.3.0-rc1", RIG_VCMP_GREATER},
    {"2.3-rc1", "2.3.0", RIG_VCMP_LESS},
    /* numbers left to right, as numbers */
    {"2.10.0", "2.9.9", RIG_VCMP_GREATER},
    {"1.0.0", "1.0.1", RIG_VCMP_LESS},
    {"3", "2.99.99", RIG_VCMP_GREATER},
    {"2.3.0.1", "2.3", RIG_VCMP_GREATER},
    {"2.3.0-rc1", "2.2.9", RIG_VCMP_GREATER}, /* numbers first, suffix only on a tie */
    {"2.3.0-rc1", "2.3.0-rc2", RIG_VCMP_LESS}, /* two suffixes: ASCII order */
    {"2.3.0-rc1", "2.3.0-rc1", RIG_VCMP_EQUAL},
    {"01.2", "1.2", RIG_VCMP_EQUAL},
    /* unparsable: equality only */
    {"build-42", "build-42", RIG_VCMP_EQUAL},
    {"build-42", "build-43", RIG_VCMP_UNORDERED},
    {"build-42", "1.0", RIG_VCMP_UNORDERED},
    {"1.0", "nightly", RIG_VCMP_UNORDERED},
    {"", "1.0", RIG_VCMP_UNORDERED},
    {"1..2", "1.2", RIG_VCMP_UNORDERED},
    {"1.2.", "1.2", RIG_VCMP_UNORDERED},
    {"1.2-", "1.2", RIG_VCMP_UNORDERED},
    {"V1.2", "1.2", RIG_VCMP_UNORDERED}, /* only a lower-case v */
    {"1.2 beta", "1.2", RIG_VCMP_UNORDERED},
    {"99999999999.0", "1.0", RIG_VCMP_UNORDERED}, /* part overflows 32 bits */
};

static void test_order(void)
{
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        rig_vcmp_t got = rig_version_compare(k_cases[i].a, k_cases[i].b);
        if (got != k_cases[i].expected) {
            fprintf(stderr, "compare(\"%s\", \"%s\") = %d, expected %d\n", k_cases[i].a, k_cases[i].b, got,
                    k_cases[i].expected);
        }
        CHECK_EQ_INT(got, k_cases[i].expected);
        /* the order is antisymmetric */
        rig_vcmp_t back = rig_version_compare(k_cases[i].b, k_cases[i].a);
        rig_vcmp_t mirrored = k_cases[i].expected == RIG_VCMP_LESS      ? RIG_VCMP_GREATER
                              : k_cases[i].expected == RIG_VCMP_GREATER ? RIG_VCMP_LESS
                                                                        : k_cases[i].expected;
        CHECK_EQ_INT(back, mirrored);
    }
}

static void test_verdicts(void)
{
    CHECK_EQ_INT(rig_version_verdict("2.0.0", "1.0.0", 0, 0), RIG_VERDICT_ACCEPT);
    CHECK_EQ_INT(rig_version_verdict("1.0.0", "1.0.0", 0, 0), RIG_VERDICT_SAME_VERSION);
    CHECK_EQ_INT(rig_version_verdict("v1.0", "1.0.0", 0, 0), RIG_VERDICT_SAME_VERSION);
    CHECK_EQ_INT(rig_version_verdict("0.9.0", "1.0.0", 0, 0), RIG_VERDICT_OLDER_VERSION);
    CHECK_EQ_INT(rig_version_verdict("1.0.0-rc1", "1.0.0", 0, 0), RIG_VERDICT_OLDER_VERSION);
    CHECK_EQ_INT(rig_version_verdict("2.0.0", "1.0.0", 1, 2), RIG_VERDICT_LOWER_SECURE_VERSION);
    CHECK_EQ_INT(rig_version_verdict("2.0.0", "1.0.0", 2, 2), RIG_VERDICT_ACCEPT);
    CHECK_EQ_INT(rig_version_verdict("2.0.0", "1.0.0", 3, 2), RIG_VERDICT_ACCEPT);
    /* same and older are judged before the secure version */
    CHECK_EQ_INT(rig_version_verdict("1.0.0", "1.0.0", 0, 5), RIG_VERDICT_SAME_VERSION);
    CHECK_EQ_INT(rig_version_verdict("0.1", "1.0.0", 0, 5), RIG_VERDICT_OLDER_VERSION);
    /* unparsable but different versions are not ordered, so they are accepted */
    CHECK_EQ_INT(rig_version_verdict("nightly-2", "nightly-1", 0, 0), RIG_VERDICT_ACCEPT);
    CHECK_EQ_INT(rig_version_verdict("nightly-2", "nightly-2", 0, 0), RIG_VERDICT_SAME_VERSION);

    CHECK_EQ_STR(rig_verdict_reason(RIG_VERDICT_SAME_VERSION), "same_version");
    CHECK_EQ_STR(rig_verdict_reason(RIG_VERDICT_OLDER_VERSION), "older_version");
    CHECK_EQ_STR(rig_verdict_reason(RIG_VERDICT_LOWER_SECURE_VERSION), "lower_secure_version");
}

void test_version(void)
{
    test_order();
    test_verdicts();
}
