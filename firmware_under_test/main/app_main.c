/*
 * Boot of the ota-rig reference firmware: first-boot handling driven by the behaviour
 * marker (PROTOCOL.md §4, §5), then Wi-Fi and the console. Decisions live in rig_core.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "esp_app_desc.h"
#include "esp_efuse.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_task_wdt.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

static rig_behaviour_t s_behaviour = RIG_BEHAVIOUR_HEALTHY;
static char s_version[RIG_VERSION_MAX + 1];

/* Written through a volatile pointer so the store is really emitted: address 0 is unmapped,
 * the CPU raises StoreProhibited and the panic handler prints "Guru Meditation Error". */
static volatile uint32_t *volatile s_unmapped = NULL;

static void emit_line(void *ctx, rig_level_t level, const char *tag, const char *text)
{
    (void)ctx;
    switch (level) {
    case RIG_LEVEL_ERROR:
        ESP_LOGE(tag, "%s", text);
        break;
    case RIG_LEVEL_WARN:
        ESP_LOGW(tag, "%s", text);
        break;
    case RIG_LEVEL_INFO:
        ESP_LOGI(tag, "%s", text);
        break;
    }
}

static const rig_out_t s_out = {.fn = emit_line, .ctx = NULL};

const rig_out_t *agent_out(void)
{
    return &s_out;
}

const char *agent_running_version(void)
{
    return s_version;
}

static rig_ota_state_t running_state(void)
{
    esp_ota_img_states_t state;
    if (esp_ota_get_state_partition(esp_ota_get_running_partition(), &state) != ESP_OK) {
        return RIG_STATE_NONE;
    }
    switch (state) {
    case ESP_OTA_IMG_NEW:
        return RIG_STATE_NEW;
    case ESP_OTA_IMG_PENDING_VERIFY:
        return RIG_STATE_PENDING_VERIFY;
    case ESP_OTA_IMG_VALID:
        return RIG_STATE_VALID;
    case ESP_OTA_IMG_INVALID:
        return RIG_STATE_INVALID;
    case ESP_OTA_IMG_ABORTED:
        return RIG_STATE_ABORTED;
    default:
        return RIG_STATE_UNDEFINED;
    }
}

void agent_fill_status(rig_status_t *status)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    const esp_partition_t *boot = esp_ota_get_boot_partition();
    status->running = running != NULL ? running->label : "none";
    status->boot = boot != NULL ? boot->label : "none";
    status->version = s_version;
    status->secure_version = esp_app_get_description()->secure_version;
    status->efuse_secure_version = esp_efuse_read_secure_version();
    status->state = running_state();
    status->behaviour = s_behaviour;
    status->ota = agent_ota_phase();
}

static void crash(void)
{
    *s_unmapped = 0xDEADu;
    abort(); /* not reached */
}

/*
 * The task watchdog resets the chip only with CONFIG_ESP_TASK_WDT_PANIC=y (sdkconfig.defaults);
 * without it ESP-IDF merely prints "Task watchdog got triggered". This task subscribes itself
 * and spins with interrupts enabled, so it never resets the watchdog and the idle task of
 * its core starves too: after CONFIG_ESP_TASK_WDT_TIMEOUT_S the TWDT panics and the panic
 * handler reboots.
 */
static void hang(void)
{
    ESP_ERROR_CHECK(esp_task_wdt_add(NULL));
    for (;;) {
    }
}

static void crash_later_task(void *arg)
{
    vTaskDelay(pdMS_TO_TICKS((uint32_t)(uintptr_t)arg));
    crash();
}

static void pass_selftest(uint32_t delay_ms)
{
    vTaskDelay(pdMS_TO_TICKS(delay_ms)); /* the rig's window for a cut before confirm */
    rig_emit_selftest_passed(&s_out);
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err == ESP_OK) {
        rig_emit_app_confirmed(&s_out);
    } else {
        ESP_LOGE(RIG_TAG, "mark valid failed: %s", esp_err_to_name(err));
    }
}

static void run_boot_plan(const rig_boot_plan_t *plan)
{
    if (plan->announce) {
        rig_emit_selftest_begin(&s_out, s_behaviour);
    }
    switch (plan->action) {
    case RIG_BOOT_RUN:
    case RIG_BOOT_NEVER_CONFIRM:
        break;
    case RIG_BOOT_CRASH:
        crash();
        break;
    case RIG_BOOT_HANG:
        hang();
        break;
    case RIG_BOOT_SELFTEST_PASS:
        pass_selftest(plan->delay_ms);
        break;
    case RIG_BOOT_SELFTEST_FAIL: {
        rig_emit_selftest_failed(&s_out);
        esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
        ESP_LOGE(RIG_TAG, "rollback failed: %s", esp_err_to_name(err)); /* only reached on failure */
        break;
    }
    case RIG_BOOT_CONFIRM_THEN_CRASH:
        pass_selftest(0);
        xTaskCreate(crash_later_task, "rig_crash", 2048, (void *)(uintptr_t)plan->delay_ms, 5, NULL);
        break;
    }
}

void app_main(void)
{
    ESP_ERROR_CHECK(agent_store_init());
    memcpy(s_version, esp_app_get_description()->version, RIG_VERSION_MAX);
    s_version[RIG_VERSION_MAX] = '\0';

    rig_marker_t marker = {.behaviour = RIG_BEHAVIOUR_HEALTHY, .parameter_ms = 0};
    rig_marker_status_t decoded = rig_marker_decode(rig_behaviour_marker, sizeof rig_behaviour_marker, &marker);
    if (decoded != RIG_MARKER_OK) {
        ESP_LOGE(RIG_TAG, "behaviour marker unusable (%s): behaving as healthy", rig_marker_status_name(decoded));
        marker.behaviour = RIG_BEHAVIOUR_HEALTHY;
        marker.parameter_ms = 0;
    }
    s_behaviour = marker.behaviour;
    rig_boot_plan_t plan = rig_boot_plan(running_state(), &marker);
    run_boot_plan(&plan);

    char ssid[RIG_SSID_MAX + 1], password[RIG_PASSWORD_MAX + 1];
    if (agent_wifi_load(ssid, sizeof ssid, password, sizeof password) == ESP_OK) {
        agent_wifi_connect(ssid, password);
    }
    agent_console_run();
}
