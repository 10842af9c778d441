/*
 * Portable core of the ota-rig reference firmware (PROTOCOL.md v1).
 *
 * Everything here is plain C11 with no ESP-IDF header, so that the rules the rig
 * relies on (command grammar, marker texts, behaviour marker, version order, resume
 * bookkeeping) are unit-tested on the host. The ESP-IDF glue in main/ only moves
 * data between these functions and the ESP-IDF APIs.
 */
#ifndef RIG_CORE_H
#define RIG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RIG_TAG "rig_agent"
/* ESP-IDF's advanced example tag: PROTOCOL.md §3 requires its same-version warning verbatim. */
#define RIG_EXAMPLE_TAG "advanced_https_ota_example"

#define RIG_LINE_MAX 2048u          /* longest command line, without the newline */
#define RIG_VERSION_MAX 32u         /* esp_app_desc_t.version / project_name size */
#define RIG_ERROR_MAX 64u

/* ------------------------------------------------------------------ output */

typedef enum { RIG_LEVEL_ERROR = 'E', RIG_LEVEL_WARN = 'W', RIG_LEVEL_INFO = 'I' } rig_level_t;

/* One log line: the glue prints it with ESP_LOG at `level` under `tag`. */
typedef void (*rig_emit_fn)(void *ctx, rig_level_t level, const char *tag, const char *text);

typedef struct {
    rig_emit_fn fn;
    void *ctx;
} rig_out_t;

/* ------------------------------------------------------------------ states */

typedef enum {
    RIG_STATE_NEW,
    RIG_STATE_PENDING_VERIFY,
    RIG_STATE_VALID,
    RIG_STATE_INVALID,
    RIG_STATE_ABORTED,
    RIG_STATE_UNDEFINED,
    RIG_STATE_NONE, /* the running slot has no otadata entry */
} rig_ota_state_t;

typedef enum { RIG_OTA_IDLE, RIG_OTA_RUNNING, RIG_OTA_FAILED, RIG_OTA_DONE } rig_ota_phase_t;

const char *rig_state_name(rig_ota_state_t state);
const char *rig_ota_phase_name(rig_ota_phase_t phase);

/* ------------------------------------------------------- behaviour marker */

#define RIG_MARKER_SIZE 32u
#define RIG_MARKER_LAYOUT_VERSION 1u

typedef enum {
    RIG_BEHAVIOUR_HEALTHY = 0,
    RIG_BEHAVIOUR_CRASH_ON_BOOT = 1,
    RIG_BEHAVIOUR_SELFTEST_FAIL = 2,
    RIG_BEHAVIOUR_HANG = 3,
    RIG_BEHAVIOUR_NEVER_CONFIRM = 4,
    RIG_BEHAVIOUR_CONFIRM_THEN_CRASH = 5,
} rig_behaviour_t;

#define RIG_BEHAVIOUR_COUNT 6u

typedef enum {
    RIG_MARKER_OK,
    RIG_MARKER_TRUNCATED,
    RIG_MARKER_BAD_MAGIC,
    RIG_MARKER_BAD_VERSION,
    RIG_MARKER_BAD_CODE,
} rig_marker_status_t;

typedef struct {
    rig_behaviour_t behaviour;
    uint32_t parameter_ms;
} rig_marker_t;

/*
 * Initializer of the 32-byte record (PROTOCOL.md §4). The magic is spelled out only
 * here, as single characters, so that the image holds it exactly once: in the
 * record the firmware defines with this macro.
 */
#define RIG_MARKER_INIT(code, param_ms)                                                   \
    {                                                                                     \
        'O', 'T', 'A', 'R', 'I', 'G', 'B', 'M', RIG_MARKER_LAYOUT_VERSION & 0xFFu, 0u,    \
            (code) & 0xFFu, ((code) >> 8) & 0xFFu, (param_ms) & 0xFFu,                    \
            ((param_ms) >> 8) & 0xFFu, ((param_ms) >> 16) & 0xFFu, ((param_ms) >> 24) & 0xFFu, \
            0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u                \
    }

rig_marker_status_t rig_marker_decode(const uint8_t *buf, size_t len, rig_marker_t *out);
const char *rig_marker_status_name(rig_marker_status_t status);
const char *rig_behaviour_name(rig_behaviour_t behaviour);

/* What the app does at boot, before the console opens (PROTOCOL.md §4, §5). */
typedef enum {
    RIG_BOOT_RUN,               /* nothing to do: not a first boot, or a harmless behaviour */
    RIG_BOOT_CRASH,             /* panic now */
    RIG_BOOT_HANG,              /* stop feeding the task watchdog */
    RIG_BOOT_SELFTEST_PASS,     /* wait delay_ms, pass, mark valid */
    RIG_BOOT_SELFTEST_FAIL,     /* fail, mark invalid and reboot */
    RIG_BOOT_NEVER_CONFIRM,     /* run, never mark valid */
    RIG_BOOT_CONFIRM_THEN_CRASH /* pass, mark valid, panic delay_ms after */
} rig_boot_action_t;

typedef struct {
    bool announce; /* print `selftest begin` first */
    rig_boot_action_t action;
    uint32_t delay_ms;
} rig_boot_plan_t;

rig_boot_plan_t rig_boot_plan(rig_ota_state_t state, const rig_marker_t *marker);

/* ---------------------------------------------------------------- versions */

typedef enum {
    RIG_VCMP_LESS = -1,
    RIG_VCMP_EQUAL = 0,
    RIG_VCMP_GREATER = 1,
    RIG_VCMP_UNORDERED = 2, /* an unparsable version that differs from the other */
} rig_vcmp_t;

typedef enum {
    RIG_VERDICT_ACCEPT,
    RIG_VERDICT_SAME_VERSION,
    RIG_VERDICT_OLDER_VERSION,
    RIG_VERDICT_LOWER_SECURE_VERSION,
} rig_verdict_t;

rig_vcmp_t rig_version_compare(const char *a, const char *b);
rig_verdict_t rig_version_verdict(const char *new_version, const char *running_version,
                                  uint32_t new_secure_version, uint32_t efuse_secure_version);
const char *rig_verdict_reason(rig_verdict_t verdict);

/* ---------------------------------------------------------------- settings */

typedef struct {
    uint32_t timeout_ms;
    uint32_t request_size;
    bool resume;
    bool version_check;
} rig_settings_t;

typedef struct {
    bool has_timeout_ms, has_request_size, has_resume, has_version_check;
    rig_settings_t values;
} rig_settings_update_t;

rig_settings_t rig_settings_defaults(void);
void rig_settings_apply(rig_settings_t *settings, const rig_settings_update_t *update);
/* "timeout_ms=5000 request_size=0 resume=on version_check=on" */
int rig_settings_format(char *buf, size_t size, const rig_settings_t *settings);

/* ---------------------------------------------------------------- commands */

typedef enum {
    RIG_CMD_EMPTY, /* blank line: no answer */
    RIG_CMD_STATUS,
    RIG_CMD_CERT,
    RIG_CMD_OTA,
    RIG_CMD_OTA_ABORT,
    RIG_CMD_OTA_CONFIG,
    RIG_CMD_WIFI,
    RIG_CMD_RESTART,
    RIG_CMD_UNKNOWN, /* answer `error <word> unknown command` */
    RIG_CMD_INVALID, /* known command, bad arguments: answer `error <word> <error>` */
} rig_cmd_kind_t;

#define RIG_SSID_MAX 32u
#define RIG_PASSWORD_MAX 64u

typedef struct {
    rig_cmd_kind_t kind;
    const char *name; /* the command word as typed (points into the line) */
    char error[RIG_ERROR_MAX];
    union {
        struct {
            const uint8_t *der; /* decoded in place, inside the line buffer */
            size_t der_len;
        } cert;
        struct {
            const char *url;
        } ota;
        rig_settings_update_t config;
        struct {
            const char *ssid;
            const char *password; /* "" for an open network */
        } wifi;
    } u;
} rig_cmd_t;

/* Parses one line (without its newline) in place: tokens are NUL-terminated inside it. */
void rig_cmd_parse(char *line, rig_cmd_t *cmd);

/* Assembles console bytes into lines: `\r` before `\n` dropped, over-long lines flagged. */
typedef struct {
    char buf[RIG_LINE_MAX + 1];
    size_t len;
    bool overflow;
} rig_linebuf_t;

typedef enum { RIG_LINE_PENDING, RIG_LINE_READY, RIG_LINE_TOO_LONG } rig_line_result_t;

void rig_linebuf_init(rig_linebuf_t *lb);
/* Feeds one byte; on READY or TOO_LONG the line (or its first RIG_LINE_MAX bytes) is in
 * lb->buf, NUL-terminated, until the next call. */
rig_line_result_t rig_linebuf_feed(rig_linebuf_t *lb, char c);

/* Decodes standard base64 (padding optional); returns the length or -1 when malformed. */
long rig_base64_decode(const char *text, uint8_t *out, size_t out_size);
/* Lower-case hex of `len` bytes into buf (needs 2 * len + 1 bytes). */
void rig_hex(char *buf, const uint8_t *data, size_t len);

/* ------------------------------------------------------- resume, progress */

#define RIG_RESUME_MIN_BYTES 1024u   /* ESP-IDF resumes only from >= 1 KiB written */
#define RIG_RESUME_SAVE_STEP 4096u   /* save after crossing each 4 KiB boundary */
#define RIG_RESUME_GRANULE 1024u     /* saved counts are whole KiB */
#define RIG_PROGRESS_STEP 65536u     /* a progress marker at least every 64 KiB */

typedef struct {
    uint32_t offset; /* bytes to resume from (0 = from the start) */
    bool forget;     /* saved progress belongs to another URL or resume is off: erase it */
} rig_resume_start_t;

rig_resume_start_t rig_resume_start(bool resume_on, const char *saved_url, uint32_t saved_bytes,
                                    const char *url);

/* Value of the first request's Range header as ESP-IDF v5.5 sends it ("" = none).
 * image_length is the HEAD Content-Length (partial mode only). */
void rig_resume_range(char *buf, size_t size, uint32_t offset, bool resume_on, uint32_t request_size,
                      uint32_t image_length);

typedef struct {
    bool resume_on;
    uint32_t offset;    /* where this download started */
    uint32_t save_mark; /* written count at the last save */
    uint32_t reported;  /* written count at the last progress marker */
} rig_progress_t;

#define RIG_STEP_SAVE 1u
#define RIG_STEP_REPORT 2u

void rig_progress_start(rig_progress_t *p, bool resume_on, uint32_t offset);
/* Right after esp_https_ota_begin, given esp_https_ota_get_image_len_read(): true when
 * ESP-IDF fell back to byte 0 (the server ignored the Range or answered 416), so the saved
 * progress must be forgotten. v5.5.5 returns the resume offset when it resumes (state
 * ESP_HTTPS_OTA_RESUME) and -1 when the download starts from byte 0 (state
 * ESP_HTTPS_OTA_BEGIN: esp_https_ota.c, esp_https_ota_get_image_len_read). */
bool rig_progress_begun(rig_progress_t *p, int32_t len_read);
/* Whole image size for `ota progress total=`: ESP-IDF reports the partial-download HEAD
 * length, or else the Content-Length of the (possibly ranged) GET; 0 when unknown. */
uint32_t rig_image_total(bool partial, uint32_t offset, int32_t reported_length);
/* After each esp_https_ota_perform: RIG_STEP_* flags; *save_bytes gets the KiB-rounded
 * count to save when RIG_STEP_SAVE is set. */
unsigned rig_progress_step(rig_progress_t *p, uint32_t written, bool complete, uint32_t *save_bytes);

/* ------------------------------------------------------ replies, markers */

typedef struct {
    const char *running;
    const char *boot;
    const char *version;
    uint32_t secure_version;
    uint32_t efuse_secure_version;
    rig_ota_state_t state;
    rig_behaviour_t behaviour;
    rig_ota_phase_t ota;
} rig_status_t;

/* Why an OTA ended without switching the boot partition (`reason=` of `ota failed`). */
typedef enum {
    RIG_FAIL_BEGIN,      /* esp_https_ota_begin: connection, TLS, HTTP status */
    RIG_FAIL_IMAGE_DESC, /* esp_https_ota_get_img_desc */
    RIG_FAIL_DOWNLOAD,   /* esp_https_ota_perform */
    RIG_FAIL_INCOMPLETE, /* connection ended before all bytes arrived */
    RIG_FAIL_FINISH,     /* esp_https_ota_finish: verification, signature, set_boot_partition */
    RIG_FAIL_ABORTED,    /* `ota-abort` */
} rig_fail_t;

const char *rig_fail_reason(rig_fail_t fail);
/* Saved resume progress survives a broken transfer, not a bad image or an abort. */
bool rig_fail_keeps_progress(rig_fail_t fail);

void rig_reply_ok(const rig_out_t *out, const char *name, const char *details);
void rig_reply_error(const rig_out_t *out, const char *name, const char *reason);

void rig_emit_status(const rig_out_t *out, const rig_status_t *status);
void rig_emit_ready(const rig_out_t *out, const char *version, const char *running, rig_ota_state_t state);
void rig_emit_ota_begin(const rig_out_t *out, const char *url, uint32_t resume_from);
void rig_emit_ota_image(const rig_out_t *out, const char *version, uint32_t secure_version,
                        const char *project);
void rig_emit_ota_rejected(const rig_out_t *out, rig_verdict_t verdict, const char *new_version,
                           const char *running_version);
void rig_emit_ota_progress(const rig_out_t *out, uint32_t bytes, uint32_t total);
void rig_emit_ota_saved(const rig_out_t *out, uint32_t bytes);
void rig_emit_ota_complete(const rig_out_t *out, uint32_t bytes);
void rig_emit_ota_failed(const rig_out_t *out, int32_t err, rig_fail_t fail);
void rig_emit_ota_restarting(const rig_out_t *out);
void rig_emit_selftest_begin(const rig_out_t *out, rig_behaviour_t behaviour);
void rig_emit_selftest_passed(const rig_out_t *out);
void rig_emit_app_confirmed(const rig_out_t *out);
void rig_emit_selftest_failed(const rig_out_t *out);

#endif /* RIG_CORE_H */
