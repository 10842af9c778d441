/*
 * Every line the agent prints (PROTOCOL.md §1, §2, §3). The texts are literal format
 * strings here and nowhere else, so the firmware and the tests that grep for them agree.
 */
#include <stdarg.h>
#include <stdio.h>

#include "rig_core.h"

#define TEXT_MAX (RIG_LINE_MAX + 128u)

static void emit(const rig_out_t *out, rig_level_t level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void emit(const rig_out_t *out, rig_level_t level, const char *tag, const char *fmt, ...)
{
    char text[TEXT_MAX];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    out->fn(out->ctx, level, tag, text);
}

const char *rig_state_name(rig_ota_state_t state)
{
    switch (state) {
    case RIG_STATE_NEW:
        return "NEW";
    case RIG_STATE_PENDING_VERIFY:
        return "PENDING_VERIFY";
    case RIG_STATE_VALID:
        return "VALID";
    case RIG_STATE_INVALID:
        return "INVALID";
    case RIG_STATE_ABORTED:
        return "ABORTED";
    case RIG_STATE_UNDEFINED:
        return "UNDEFINED";
    case RIG_STATE_NONE:
        return "NONE";
    }
    return "?";
}

const char *rig_ota_phase_name(rig_ota_phase_t phase)
{
    switch (phase) {
    case RIG_OTA_IDLE:
        return "idle";
    case RIG_OTA_RUNNING:
        return "running";
    case RIG_OTA_FAILED:
        return "failed";
    case RIG_OTA_DONE:
        return "done";
    }
    return "?";
}

const char *rig_fail_reason(rig_fail_t fail)
{
    switch (fail) {
    case RIG_FAIL_BEGIN:
        return "begin";
    case RIG_FAIL_IMAGE_DESC:
        return "image_desc";
    case RIG_FAIL_DOWNLOAD:
        return "download";
    case RIG_FAIL_INCOMPLETE:
        return "incomplete";
    case RIG_FAIL_FINISH:
        return "finish";
    case RIG_FAIL_ABORTED:
        return "aborted";
    }
    return "?";
}

void rig_reply_ok(const rig_out_t *out, const char *name, const char *details)
{
    if (details != NULL && details[0] != '\0') {
        emit(out, RIG_LEVEL_INFO, RIG_TAG, "ok %s %s", name, details);
    } else {
        emit(out, RIG_LEVEL_INFO, RIG_TAG, "ok %s", name);
    }
}

void rig_reply_error(const rig_out_t *out, const char *name, const char *reason)
{
    emit(out, RIG_LEVEL_ERROR, RIG_TAG, "error %s %s", name, reason);
}

void rig_emit_status(const rig_out_t *out, const rig_status_t *s)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG,
         "status running=%s boot=%s version=%s secure_version=%u efuse_secure_version=%u state=%s behaviour=%s ota=%s",
         s->running, s->boot, s->version, (unsigned)s->secure_version, (unsigned)s->efuse_secure_version,
         rig_state_name(s->state), rig_behaviour_name(s->behaviour), rig_ota_phase_name(s->ota));
}

void rig_emit_ready(const rig_out_t *out, const char *version, const char *running, rig_ota_state_t state)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ready version=%s running=%s state=%s", version, running,
         rig_state_name(state));
}

void rig_emit_ota_begin(const rig_out_t *out, const char *url, uint32_t resume_from)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota begin url=%s resume_from=%u", url, (unsigned)resume_from);
}

void rig_emit_ota_image(const rig_out_t *out, const char *version, uint32_t secure_version,
                        const char *project)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota image version=%s secure_version=%u project=%s", version,
         (unsigned)secure_version, project);
}

void rig_emit_ota_rejected(const rig_out_t *out, rig_verdict_t verdict, const char *new_version,
                           const char *running_version)
{
    if (verdict == RIG_VERDICT_SAME_VERSION) {
        emit(out, RIG_LEVEL_WARN, RIG_EXAMPLE_TAG,
             "Current running version is the same as a new. We will not continue the update.");
    }
    emit(out, RIG_LEVEL_WARN, RIG_TAG, "ota rejected reason=%s new=%s running=%s", rig_verdict_reason(verdict),
         new_version, running_version);
}

void rig_emit_ota_progress(const rig_out_t *out, uint32_t bytes, uint32_t total)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota progress bytes=%u total=%u", (unsigned)bytes, (unsigned)total);
}

void rig_emit_ota_saved(const rig_out_t *out, uint32_t bytes)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota saved bytes=%u", (unsigned)bytes);
}

void rig_emit_ota_complete(const rig_out_t *out, uint32_t bytes)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota complete bytes=%u", (unsigned)bytes);
}

void rig_emit_ota_failed(const rig_out_t *out, int32_t err, rig_fail_t fail)
{
    emit(out, RIG_LEVEL_ERROR, RIG_TAG, "ota failed err=0x%x reason=%s", (unsigned)err, rig_fail_reason(fail));
}

void rig_emit_ota_restarting(const rig_out_t *out)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "ota restarting");
}

void rig_emit_selftest_begin(const rig_out_t *out, rig_behaviour_t behaviour)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "selftest begin behaviour=%s", rig_behaviour_name(behaviour));
}

void rig_emit_selftest_passed(const rig_out_t *out)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "selftest passed");
}

void rig_emit_app_confirmed(const rig_out_t *out)
{
    emit(out, RIG_LEVEL_INFO, RIG_TAG, "app confirmed valid");
}

void rig_emit_selftest_failed(const rig_out_t *out)
{
    emit(out, RIG_LEVEL_ERROR, RIG_TAG, "selftest failed");
}
