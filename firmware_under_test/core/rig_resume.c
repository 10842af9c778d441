/* Resume and progress bookkeeping of an OTA download (PROTOCOL.md §2, §3). */
#include <stdio.h>
#include <string.h>

#include "rig_core.h"

rig_resume_start_t rig_resume_start(bool resume_on, const char *saved_url, uint32_t saved_bytes,
                                    const char *url)
{
    rig_resume_start_t start = {.offset = 0, .forget = false};
    bool same_url = saved_url != NULL && strcmp(saved_url, url) == 0;
    if (resume_on && same_url && saved_bytes >= RIG_RESUME_MIN_BYTES) {
        start.offset = saved_bytes - saved_bytes % RIG_RESUME_GRANULE;
    } else {
        start.forget = saved_bytes != 0 || (saved_url != NULL && saved_url[0] != '\0');
    }
    return start;
}

void rig_resume_range(char *buf, size_t size, uint32_t offset, bool resume_on, uint32_t request_size,
                      uint32_t image_length)
{
    buf[0] = '\0';
    if (request_size > 0) {
        /* partial download: ranges of request_size; the tail's end is the image length
         * (ESP-IDF's arithmetic), no header when one range covers the whole image */
        uint32_t end = image_length > request_size + offset ? offset + request_size - 1u : image_length;
        if (end - offset < image_length) {
            snprintf(buf, size, "bytes=%u-%u", (unsigned)offset, (unsigned)end);
        }
    } else if (resume_on) {
        /* v5.5 probes Range support on every resumable download, from 0 when fresh */
        snprintf(buf, size, "bytes=%u-", (unsigned)offset);
    }
}

void rig_progress_start(rig_progress_t *p, bool resume_on, uint32_t offset)
{
    p->resume_on = resume_on;
    p->offset = offset;
    p->save_mark = offset;
    p->reported = offset;
}

bool rig_progress_begun(rig_progress_t *p, int32_t len_read)
{
    uint32_t from = len_read > 0 ? (uint32_t)len_read : 0u; /* -1: from byte 0 */
    if (from >= p->offset) {
        return false;
    }
    rig_progress_start(p, p->resume_on, from);
    return true;
}

uint32_t rig_image_total(bool partial, uint32_t offset, int32_t reported_length)
{
    if (reported_length <= 0) {
        return 0; /* chunked transfer: no length */
    }
    return partial ? (uint32_t)reported_length : offset + (uint32_t)reported_length;
}

bool rig_fail_keeps_progress(rig_fail_t fail)
{
    switch (fail) {
    case RIG_FAIL_BEGIN:
    case RIG_FAIL_IMAGE_DESC:
    case RIG_FAIL_DOWNLOAD:
    case RIG_FAIL_INCOMPLETE:
        return true;
    case RIG_FAIL_FINISH:
    case RIG_FAIL_ABORTED:
        return false;
    }
    return false;
}

unsigned rig_progress_step(rig_progress_t *p, uint32_t written, bool complete, uint32_t *save_bytes)
{
    unsigned flags = 0;
    if (p->resume_on && written >= RIG_RESUME_MIN_BYTES &&
        written / RIG_RESUME_SAVE_STEP > p->save_mark / RIG_RESUME_SAVE_STEP) {
        *save_bytes = written - written % RIG_RESUME_GRANULE;
        p->save_mark = written;
        flags |= RIG_STEP_SAVE;
    }
    if (written / RIG_PROGRESS_STEP > p->reported / RIG_PROGRESS_STEP || (complete && written != p->reported)) {
        p->reported = written;
        flags |= RIG_STEP_REPORT;
    }
    return flags;
}
