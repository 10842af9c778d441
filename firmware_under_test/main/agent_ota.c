/* The OTA worker: esp_https_ota begin / get_img_desc / perform / finish, narrated by markers. */
#include <stdatomic.h>
#include <string.h>

#include "agent.h"
#include "esp_efuse.h"
#include "esp_https_ota.h"
#include "esp_log.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#define OTA_TASK_STACK 10240 /* TLS handshake + esp_https_ota buffers */
#define OTA_TASK_PRIORITY 4
#define KEEPALIVE_IDLE_S 5
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

static atomic_bool s_busy;
static atomic_bool s_abort;
static _Atomic rig_ota_phase_t s_phase = RIG_OTA_IDLE;
static char s_url[RIG_LINE_MAX + 1];

rig_ota_phase_t agent_ota_phase(void)
{
    return atomic_load(&s_phase);
}

esp_err_t agent_ota_claim(const char *url)
{
    bool idle = false;
    if (!atomic_compare_exchange_strong(&s_busy, &idle, true)) {
        return ESP_ERR_INVALID_STATE;
    }
    strlcpy(s_url, url, sizeof s_url);
    atomic_store(&s_abort, false);
    atomic_store(&s_phase, RIG_OTA_RUNNING);
    return ESP_OK;
}

void agent_ota_abort(void)
{
    atomic_store(&s_abort, true); /* the worker notices between two reads */
    if (!atomic_load(&s_busy)) {
        agent_resume_clear();
    }
}

static void end_task(rig_ota_phase_t phase)
{
    atomic_store(&s_phase, phase);
    atomic_store(&s_busy, false);
    vTaskDelete(NULL);
}

static void fail(esp_err_t err, rig_fail_t why)
{
    if (!rig_fail_keeps_progress(why)) {
        agent_resume_clear();
    }
    rig_emit_ota_failed(agent_out(), (int32_t)err, why);
    end_task(RIG_OTA_FAILED);
}

/* esp_app_desc_t strings fill their 32 bytes without a NUL when at full length. */
static void desc_string(char *dst, const char *src)
{
    memcpy(dst, src, RIG_VERSION_MAX);
    dst[RIG_VERSION_MAX] = '\0';
}

static void ota_task(void *arg)
{
    (void)arg;
    const rig_out_t *out = agent_out();
    rig_settings_t settings = agent_settings();

    static char saved_url[RIG_LINE_MAX + 1]; /* one OTA at a time; kept off the task stack */
    uint32_t saved_bytes;
    (void)agent_resume_load(saved_url, sizeof saved_url, &saved_bytes);
    rig_resume_start_t start = rig_resume_start(settings.resume, saved_url, saved_bytes, s_url);
    if (start.forget) {
        agent_resume_clear();
    }
    rig_emit_ota_begin(out, s_url, start.offset);

    size_t cert_len;
    const uint8_t *cert = agent_cert(&cert_len);
    esp_http_client_config_t http = {
        .url = s_url,
        .cert_der = (const char *)cert,
        .cert_len = cert_len,
        .skip_cert_common_name_check = true, /* the rig serves on an IP address */
        .timeout_ms = (int)settings.timeout_ms,
        .keep_alive_enable = true,
        .keep_alive_idle = KEEPALIVE_IDLE_S,
        .keep_alive_interval = KEEPALIVE_INTERVAL_S,
        .keep_alive_count = KEEPALIVE_COUNT,
    };
    bool partial = settings.request_size > 0;
    esp_https_ota_config_t config = {
        .http_config = &http,
        .partial_http_download = partial,
        .max_http_request_size = (int)settings.request_size,
        .ota_resumption = settings.resume,
        .ota_image_bytes_written = start.offset,
    };

    rig_progress_t progress;
    rig_progress_start(&progress, settings.resume, start.offset);
    esp_https_ota_handle_t handle = NULL;
    esp_err_t err = esp_https_ota_begin(&config, &handle);
    if (err != ESP_OK) {
        fail(err, RIG_FAIL_BEGIN);
        return;
    }
    if (rig_progress_begun(&progress, esp_https_ota_get_image_len_read(handle))) {
        /* esp_https_ota_begin() fell back to byte 0 in this attempt: the server ignored Range,
           or answered 416 (progress saved right before finish). The saved count is stale. */
        agent_resume_clear();
    }
    uint32_t total = rig_image_total(partial, progress.offset, esp_https_ota_get_image_size(handle));
    char range[48];
    rig_resume_range(range, sizeof range, progress.offset, settings.resume, settings.request_size, total);
    ESP_LOGD(RIG_TAG, "first request Range: %s", range[0] != '\0' ? range : "(none)");

    esp_app_desc_t desc;
    err = esp_https_ota_get_img_desc(handle, &desc);
    if (err != ESP_OK) {
        esp_https_ota_abort(handle);
        fail(err, RIG_FAIL_IMAGE_DESC);
        return;
    }
    char new_version[RIG_VERSION_MAX + 1], project[RIG_VERSION_MAX + 1];
    desc_string(new_version, desc.version);
    desc_string(project, desc.project_name);
    rig_emit_ota_image(out, new_version, desc.secure_version, project);

    if (settings.version_check) {
        const char *running = agent_running_version();
        rig_verdict_t verdict =
            rig_version_verdict(new_version, running, desc.secure_version, esp_efuse_read_secure_version());
        if (verdict != RIG_VERDICT_ACCEPT) {
            esp_https_ota_abort(handle); /* before the first perform: nothing was written */
            agent_resume_clear();
            rig_emit_ota_rejected(out, verdict, new_version, running);
            end_task(RIG_OTA_FAILED);
            return;
        }
    }

    uint32_t written = progress.offset;
    do {
        err = esp_https_ota_perform(handle);
        written = (uint32_t)esp_https_ota_get_image_len_read(handle);
        bool complete = err == ESP_OK && esp_https_ota_is_complete_data_received(handle);
        uint32_t save_bytes = 0;
        unsigned step = rig_progress_step(&progress, written, complete, &save_bytes);
        if ((step & RIG_STEP_SAVE) != 0 && agent_resume_save(s_url, save_bytes) == ESP_OK) {
            rig_emit_ota_saved(out, save_bytes);
        }
        if ((step & RIG_STEP_REPORT) != 0) {
            rig_emit_ota_progress(out, written, total);
        }
        if (atomic_load(&s_abort)) {
            esp_https_ota_abort(handle);
            fail(ESP_OK, RIG_FAIL_ABORTED);
            return;
        }
    } while (err == ESP_ERR_HTTPS_OTA_IN_PROGRESS);

    if (err != ESP_OK) {
        esp_https_ota_abort(handle);
        fail(err, RIG_FAIL_DOWNLOAD);
        return;
    }
    if (!esp_https_ota_is_complete_data_received(handle)) {
        esp_https_ota_abort(handle);
        fail(ESP_FAIL, RIG_FAIL_INCOMPLETE);
        return;
    }
    err = esp_https_ota_finish(handle); /* esp_ota_end (verify, signature) + set_boot_partition */
    if (err != ESP_OK) {
        fail(err, RIG_FAIL_FINISH);
        return;
    }
    agent_resume_clear();
    atomic_store(&s_phase, RIG_OTA_DONE);
    rig_emit_ota_complete(out, written);
    rig_emit_ota_restarting(out);
    vTaskDelay(pdMS_TO_TICKS(100)); /* let the UART drain the last lines */
    esp_restart();
}

void agent_ota_launch(void)
{
    if (xTaskCreate(ota_task, "rig_ota", OTA_TASK_STACK, NULL, OTA_TASK_PRIORITY, NULL) != pdPASS) {
        rig_emit_ota_failed(agent_out(), (int32_t)ESP_ERR_NO_MEM, RIG_FAIL_BEGIN);
        atomic_store(&s_phase, RIG_OTA_FAILED);
        atomic_store(&s_busy, false);
    }
}
