/* Behaviour marker decoding and the first-boot plan (PROTOCOL.md §4, §5). */
#include "harness.h"

static void test_layout_of_the_initializer(void)
{
    static const uint8_t record[] = RIG_MARKER_INIT(RIG_BEHAVIOUR_CONFIRM_THEN_CRASH, 0x01020304u);
    static const uint8_t expected[32] = {
        'O', 'T', 'A', 'R', 'I', 'G', 'B', 'M', 0x01, 0x00, 0x05, 0x00, 0x04, 0x03, 0x02, 0x01,
    };
    CHECK_EQ_INT(sizeof record, RIG_MARKER_SIZE);
    CHECK(memcmp(record, expected, sizeof expected) == 0);
}

static void test_decode_every_behaviour(void)
{
    static const char *const names[] = {
        "healthy", "crash_on_boot", "selftest_fail", "hang", "never_confirm", "confirm_then_crash",
    };
    for (unsigned code = 0; code < RIG_BEHAVIOUR_COUNT; code++) {
        uint8_t record[] = RIG_MARKER_INIT(0u, 1500u);
        record[10] = (uint8_t)code;
        rig_marker_t m;
        CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_OK);
        CHECK_EQ_INT(m.behaviour, code);
        CHECK_EQ_INT(m.parameter_ms, 1500);
        CHECK_EQ_STR(rig_behaviour_name(m.behaviour), names[code]);
    }
}

static void test_decode_rejects_bad_records(void)
{
    rig_marker_t m;
    uint8_t record[] = RIG_MARKER_INIT(RIG_BEHAVIOUR_HANG, 0u);
    CHECK_EQ_INT(rig_marker_decode(record, 31, &m), RIG_MARKER_TRUNCATED);
    CHECK_EQ_INT(rig_marker_decode(NULL, 32, &m), RIG_MARKER_TRUNCATED);

    record[7] = 'X';
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_MAGIC);
    record[7] = 'M';
    record[0] = 'o';
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_MAGIC);
    record[0] = 'O';

    record[8] = 2;
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_VERSION);
    record[8] = 1;
    record[9] = 1; /* version 257: the high byte counts too */
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_VERSION);
    record[9] = 0;

    record[10] = 6;
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_CODE);
    record[10] = 3;
    record[11] = 1;
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_BAD_CODE);
    record[11] = 0;
    CHECK_EQ_INT(rig_marker_decode(record, sizeof record, &m), RIG_MARKER_OK);
    CHECK_EQ_STR(rig_marker_status_name(RIG_MARKER_BAD_MAGIC), "bad magic");
}

static rig_boot_plan_t plan_for(rig_behaviour_t behaviour, uint32_t param, rig_ota_state_t state)
{
    rig_marker_t m = {.behaviour = behaviour, .parameter_ms = param};
    return rig_boot_plan(state, &m);
}

static void test_first_boot_plans(void)
{
    rig_boot_plan_t p = plan_for(RIG_BEHAVIOUR_HEALTHY, 2500, RIG_STATE_PENDING_VERIFY);
    CHECK(p.announce);
    CHECK_EQ_INT(p.action, RIG_BOOT_SELFTEST_PASS);
    CHECK_EQ_INT(p.delay_ms, 2500);

    p = plan_for(RIG_BEHAVIOUR_CRASH_ON_BOOT, 0, RIG_STATE_PENDING_VERIFY);
    CHECK(p.announce);
    CHECK_EQ_INT(p.action, RIG_BOOT_CRASH);

    p = plan_for(RIG_BEHAVIOUR_SELFTEST_FAIL, 0, RIG_STATE_PENDING_VERIFY);
    CHECK_EQ_INT(p.action, RIG_BOOT_SELFTEST_FAIL);

    p = plan_for(RIG_BEHAVIOUR_HANG, 0, RIG_STATE_PENDING_VERIFY);
    CHECK(p.announce);
    CHECK_EQ_INT(p.action, RIG_BOOT_HANG);

    p = plan_for(RIG_BEHAVIOUR_NEVER_CONFIRM, 0, RIG_STATE_PENDING_VERIFY);
    CHECK(p.announce);
    CHECK_EQ_INT(p.action, RIG_BOOT_NEVER_CONFIRM);

    p = plan_for(RIG_BEHAVIOUR_CONFIRM_THEN_CRASH, 700, RIG_STATE_PENDING_VERIFY);
    CHECK_EQ_INT(p.action, RIG_BOOT_CONFIRM_THEN_CRASH);
    CHECK_EQ_INT(p.delay_ms, 700);
}

static void test_later_boots_are_healthy_except_crash_and_hang(void)
{
    static const rig_ota_state_t later[] = {RIG_STATE_VALID, RIG_STATE_UNDEFINED, RIG_STATE_NONE};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        for (unsigned code = 0; code < RIG_BEHAVIOUR_COUNT; code++) {
            rig_boot_plan_t p = plan_for((rig_behaviour_t)code, 900, later[i]);
            CHECK(!p.announce);
            CHECK_EQ_INT(p.delay_ms, 0);
            if (code == RIG_BEHAVIOUR_CRASH_ON_BOOT) {
                CHECK_EQ_INT(p.action, RIG_BOOT_CRASH);
            } else if (code == RIG_BEHAVIOUR_HANG) {
                CHECK_EQ_INT(p.action, RIG_BOOT_HANG);
            } else {
                CHECK_EQ_INT(p.action, RIG_BOOT_RUN);
            }
        }
    }
}

void test_marker(void)
{
    test_layout_of_the_initializer();
    test_decode_every_behaviour();
    test_decode_rejects_bad_records();
    test_first_boot_plans();
    test_later_boots_are_healthy_except_crash_and_hang();
}
