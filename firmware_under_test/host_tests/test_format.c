/* The exact text and level of every reply and marker (PROTOCOL.md §1, §2, §3). */
#include "harness.h"

static capture_t cap;

#define EXPECT_LINES(call, expected)                                                      \
    do {                                                                                  \
        rig_out_t out = capture_out(&cap);                                                \
        call;                                                                             \
        CHECK_EQ_STR(cap.text, expected);                                                 \
    } while (0)

static void test_replies(void)
{
    EXPECT_LINES(rig_reply_ok(&out, "status", NULL), "I rig_agent: ok status\n");
    EXPECT_LINES(rig_reply_ok(&out, "restart", ""), "I rig_agent: ok restart\n");
    EXPECT_LINES(rig_reply_ok(&out, "ota", "url=https://h/fw.bin"), "I rig_agent: ok ota url=https://h/fw.bin\n");
    EXPECT_LINES(rig_reply_error(&out, "frobnicate", "unknown command"),
                 "E rig_agent: error frobnicate unknown command\n");
}

static void test_status_line(void)
{
    rig_status_t s = {
        .running = "ota_1",
        .boot = "ota_1",
        .version = "1.2.0",
        .secure_version = 2,
        .efuse_secure_version = 1,
        .state = RIG_STATE_PENDING_VERIFY,
        .behaviour = RIG_BEHAVIOUR_NEVER_CONFIRM,
        .ota = RIG_OTA_IDLE,
    };
    EXPECT_LINES(rig_emit_status(&out, &s),
                 "I rig_agent: status running=ota_1 boot=ota_1 version=1.2.0 secure_version=2 "
                 "efuse_secure_version=1 state=PENDING_VERIFY behaviour=never_confirm ota=idle\n");
    static const char *const states[] = {"NEW", "PENDING_VERIFY", "VALID", "INVALID", "ABORTED", "UNDEFINED", "NONE"};
    for (int i = RIG_STATE_NEW; i <= RIG_STATE_NONE; i++) {
        CHECK_EQ_STR(rig_state_name((rig_ota_state_t)i), states[i]);
    }
    static const char *const phases[] = {"idle", "running", "failed", "done"};
    for (int i = RIG_OTA_IDLE; i <= RIG_OTA_DONE; i++) {
        CHECK_EQ_STR(rig_ota_phase_name((rig_ota_phase_t)i), phases[i]);
    }
}

static void test_markers(void)
{
    EXPECT_LINES(rig_emit_ready(&out, "1.0.0", "ota_0", RIG_STATE_VALID),
                 "I rig_agent: ready version=1.0.0 running=ota_0 state=VALID\n");
    EXPECT_LINES(rig_emit_ota_begin(&out, "https://10.0.0.2:8443/a.bin", 40960),
                 "I rig_agent: ota begin url=https://10.0.0.2:8443/a.bin resume_from=40960\n");
    EXPECT_LINES(rig_emit_ota_image(&out, "1.1.0", 3, "ota_rig_ref"),
                 "I rig_agent: ota image version=1.1.0 secure_version=3 project=ota_rig_ref\n");
    EXPECT_LINES(rig_emit_ota_rejected(&out, RIG_VERDICT_SAME_VERSION, "1.0.0", "1.0.0"),
                 "W advanced_https_ota_example: Current running version is the same as a new. "
                 "We will not continue the update.\n"
                 "W rig_agent: ota rejected reason=same_version new=1.0.0 running=1.0.0\n");
    EXPECT_LINES(rig_emit_ota_rejected(&out, RIG_VERDICT_OLDER_VERSION, "0.9.0", "1.0.0"),
                 "W rig_agent: ota rejected reason=older_version new=0.9.0 running=1.0.0\n");
    EXPECT_LINES(rig_emit_ota_rejected(&out, RIG_VERDICT_LOWER_SECURE_VERSION, "2.0.0", "1.0.0"),
                 "W rig_agent: ota rejected reason=lower_secure_version new=2.0.0 running=1.0.0\n");
    EXPECT_LINES(rig_emit_ota_progress(&out, 65536, 180000),
                 "I rig_agent: ota progress bytes=65536 total=180000\n");
    EXPECT_LINES(rig_emit_ota_saved(&out, 4096), "I rig_agent: ota saved bytes=4096\n");
    EXPECT_LINES(rig_emit_ota_complete(&out, 180000), "I rig_agent: ota complete bytes=180000\n");
    EXPECT_LINES(rig_emit_ota_failed(&out, 0x1503, RIG_FAIL_FINISH),
                 "E rig_agent: ota failed err=0x1503 reason=finish\n");
    EXPECT_LINES(rig_emit_ota_failed(&out, -1, RIG_FAIL_DOWNLOAD),
                 "E rig_agent: ota failed err=0xffffffff reason=download\n");
    EXPECT_LINES(rig_emit_ota_failed(&out, 0, RIG_FAIL_ABORTED), "E rig_agent: ota failed err=0x0 reason=aborted\n");
    EXPECT_LINES(rig_emit_ota_failed(&out, 0x7002, RIG_FAIL_BEGIN),
                 "E rig_agent: ota failed err=0x7002 reason=begin\n");
    EXPECT_LINES(rig_emit_ota_restarting(&out), "I rig_agent: ota restarting\n");
    EXPECT_LINES(rig_emit_selftest_begin(&out, RIG_BEHAVIOUR_CONFIRM_THEN_CRASH),
                 "I rig_agent: selftest begin behaviour=confirm_then_crash\n");
    EXPECT_LINES(rig_emit_selftest_passed(&out), "I rig_agent: selftest passed\n");
    EXPECT_LINES(rig_emit_app_confirmed(&out), "I rig_agent: app confirmed valid\n");
    EXPECT_LINES(rig_emit_selftest_failed(&out), "E rig_agent: selftest failed\n");

    static const char *const reasons[] = {"begin", "image_desc", "download", "incomplete", "finish", "aborted"};
    for (int i = RIG_FAIL_BEGIN; i <= RIG_FAIL_ABORTED; i++) {
        CHECK_EQ_STR(rig_fail_reason((rig_fail_t)i), reasons[i]);
    }
}

void test_format(void)
{
    test_replies();
    test_status_line();
    test_markers();
}
