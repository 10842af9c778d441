/* Resume decisions, Range headers and progress/save cadence (PROTOCOL.md §2, §3). */
#include "harness.h"

#define URL "https://127.0.0.1:8443/fw.bin"

static void test_resume_start(void)
{
    rig_resume_start_t s = rig_resume_start(true, NULL, 0, URL);
    CHECK_EQ_INT(s.offset, 0);
    CHECK(!s.forget);

    s = rig_resume_start(true, URL, 40960, URL);
    CHECK_EQ_INT(s.offset, 40960);
    CHECK(!s.forget);

    s = rig_resume_start(true, URL, 41000, URL); /* whole KiB only */
    CHECK_EQ_INT(s.offset, 40960);

    s = rig_resume_start(true, "https://127.0.0.1:8443/other.bin", 40960, URL);
    CHECK_EQ_INT(s.offset, 0);
    CHECK(s.forget);

    s = rig_resume_start(false, URL, 40960, URL);
    CHECK_EQ_INT(s.offset, 0);
    CHECK(s.forget);

    s = rig_resume_start(true, URL, 512, URL); /* ESP-IDF resumes only from >= 1 KiB */
    CHECK_EQ_INT(s.offset, 0);
    CHECK(s.forget);
}

static void test_range_headers(void)
{
    char range[48];
    rig_resume_range(range, sizeof range, 0, false, 0, 0);
    CHECK_EQ_STR(range, "");
    rig_resume_range(range, sizeof range, 0, true, 0, 0);
    CHECK_EQ_STR(range, "bytes=0-");
    rig_resume_range(range, sizeof range, 40960, true, 0, 0);
    CHECK_EQ_STR(range, "bytes=40960-");
    /* partial download: fixed-size ranges, the tail ends at the image length */
    rig_resume_range(range, sizeof range, 0, false, 16384, 100000);
    CHECK_EQ_STR(range, "bytes=0-16383");
    rig_resume_range(range, sizeof range, 40960, true, 16384, 100000);
    CHECK_EQ_STR(range, "bytes=40960-57343");
    rig_resume_range(range, sizeof range, 90112, true, 16384, 100000);
    CHECK_EQ_STR(range, "bytes=90112-100000");
    rig_resume_range(range, sizeof range, 0, false, 200000, 100000);
    CHECK_EQ_STR(range, ""); /* one range would cover the whole image */
}

static void test_server_ignoring_range_restarts_from_zero(void)
{
    rig_progress_t p;
    rig_progress_start(&p, true, 40960);
    CHECK(!rig_progress_begun(&p, 40960)); /* resumed: len_read is the resume offset */
    rig_progress_start(&p, true, 40960);
    CHECK(rig_progress_begun(&p, -1)); /* fell back to byte 0: v5.5.5 reports -1 in BEGIN state */
    CHECK_EQ_INT(p.offset, 0);
    rig_progress_start(&p, true, 0);
    CHECK(!rig_progress_begun(&p, -1)); /* a fresh download from 0 is no fallback */
    uint32_t save = 0;
    /* counting restarts at 0: the first save comes at the first 4 KiB boundary again */
    CHECK_EQ_INT(rig_progress_step(&p, 3000, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 4100, false, &save), RIG_STEP_SAVE);
    CHECK_EQ_INT(save, 4096);
}

static void test_save_cadence(void)
{
    rig_progress_t p;
    uint32_t save = 0;
    rig_progress_start(&p, true, 0);
    CHECK_EQ_INT(rig_progress_step(&p, 1024, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 4095, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 5000, false, &save), RIG_STEP_SAVE);
    CHECK_EQ_INT(save, 4096); /* rounded down to whole KiB */
    CHECK_EQ_INT(rig_progress_step(&p, 8191, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 8192, false, &save), RIG_STEP_SAVE);
    CHECK_EQ_INT(save, 8192);
    CHECK_EQ_INT(rig_progress_step(&p, 20000, false, &save), RIG_STEP_SAVE); /* one save per step */
    CHECK_EQ_INT(save, 19456);

    /* resumed at 40 KiB: the next save is at 44 KiB */
    rig_progress_start(&p, true, 40960);
    CHECK_EQ_INT(rig_progress_step(&p, 44000, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 45100, false, &save), RIG_STEP_SAVE);
    CHECK_EQ_INT(save, 45056);

    /* resume=off never saves */
    rig_progress_start(&p, false, 0);
    CHECK_EQ_INT(rig_progress_step(&p, 10000, false, &save) & RIG_STEP_SAVE, 0);
}

static void test_progress_cadence(void)
{
    rig_progress_t p;
    uint32_t save = 0;
    rig_progress_start(&p, false, 0);
    CHECK_EQ_INT(rig_progress_step(&p, 65535, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 65536, false, &save), RIG_STEP_REPORT);
    CHECK_EQ_INT(rig_progress_step(&p, 70000, false, &save), 0);
    CHECK_EQ_INT(rig_progress_step(&p, 140000, false, &save), RIG_STEP_REPORT);
    CHECK_EQ_INT(rig_progress_step(&p, 150000, true, &save), RIG_STEP_REPORT); /* the end */
    CHECK_EQ_INT(rig_progress_step(&p, 150000, true, &save), 0);               /* only once */

    /* an image ending on a 64 KiB boundary gets one final marker, not two */
    rig_progress_start(&p, false, 0);
    CHECK_EQ_INT(rig_progress_step(&p, 131072, true, &save), RIG_STEP_REPORT);
    CHECK_EQ_INT(rig_progress_step(&p, 131072, true, &save), 0);

    /* both at once */
    rig_progress_start(&p, true, 0);
    CHECK_EQ_INT(rig_progress_step(&p, 65600, false, &save), RIG_STEP_SAVE | RIG_STEP_REPORT);
    CHECK_EQ_INT(save, 65536);
}

static void test_image_total_and_failures(void)
{
    CHECK_EQ_INT(rig_image_total(false, 0, 180000), 180000);
    CHECK_EQ_INT(rig_image_total(false, 40960, 139040), 180000); /* 206: Content-Length is the rest */
    CHECK_EQ_INT(rig_image_total(true, 40960, 180000), 180000);  /* HEAD gives the whole length */
    CHECK_EQ_INT(rig_image_total(false, 0, -1), 0);
    CHECK(rig_fail_keeps_progress(RIG_FAIL_BEGIN));
    CHECK(rig_fail_keeps_progress(RIG_FAIL_DOWNLOAD));
    CHECK(rig_fail_keeps_progress(RIG_FAIL_INCOMPLETE));
    CHECK(!rig_fail_keeps_progress(RIG_FAIL_FINISH));
    CHECK(!rig_fail_keeps_progress(RIG_FAIL_ABORTED));
}

void test_resume(void)
{
    test_image_total_and_failures();
    test_resume_start();
    test_range_headers();
    test_server_ignoring_range_restarts_from_zero();
    test_save_cadence();
    test_progress_cadence();
}
