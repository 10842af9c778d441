/* UART0 console: assembles lines, parses them with rig_core, runs them, answers once each. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#include "esp_log.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "mbedtls/sha256.h"

#define CONSOLE_UART UART_NUM_0
#define UART_RX_BUFFER 4096
#define READ_CHUNK 64
#define SHA_SHOWN_BYTES 8 /* `sha256=<first 16 hex>` */

static void run_cert(const rig_cmd_t *cmd)
{
    const rig_out_t *out = agent_out();
    if (agent_cert_save(cmd->u.cert.der, cmd->u.cert.der_len) != ESP_OK) {
        rig_reply_error(out, cmd->name, "cannot store certificate");
        return;
    }
    uint8_t digest[32];
    mbedtls_sha256(cmd->u.cert.der, cmd->u.cert.der_len, digest, 0);
    char details[8 + 2 * SHA_SHOWN_BYTES + 1] = "sha256=";
    rig_hex(details + strlen(details), digest, SHA_SHOWN_BYTES);
    rig_reply_ok(out, cmd->name, details);
}

static void run_ota(const rig_cmd_t *cmd)
{
    const rig_out_t *out = agent_out();
    size_t cert_len;
    if (agent_cert(&cert_len) == NULL) {
        rig_reply_error(out, cmd->name, "no certificate pinned");
        return;
    }
    if (agent_ota_claim(cmd->u.ota.url) != ESP_OK) {
        rig_reply_error(out, cmd->name, "busy");
        return;
    }
    char details[RIG_LINE_MAX + 8];
    snprintf(details, sizeof details, "url=%s", cmd->u.ota.url);
    rig_reply_ok(out, cmd->name, details);
    agent_ota_launch();
}

static void run_config(const rig_cmd_t *cmd)
{
    const rig_out_t *out = agent_out();
    rig_settings_t settings = agent_settings();
    rig_settings_apply(&settings, &cmd->u.config);
    if (agent_settings_save(&settings) != ESP_OK) {
        rig_reply_error(out, cmd->name, "cannot store settings");
        return;
    }
    char details[128];
    rig_settings_format(details, sizeof details, &settings);
    rig_reply_ok(out, cmd->name, details);
}

static void run_wifi(const rig_cmd_t *cmd)
{
    const rig_out_t *out = agent_out();
    if (agent_wifi_save(cmd->u.wifi.ssid, cmd->u.wifi.password) != ESP_OK) {
        rig_reply_error(out, cmd->name, "cannot store credentials");
        return;
    }
    agent_wifi_connect(cmd->u.wifi.ssid, cmd->u.wifi.password);
    char details[8 + RIG_SSID_MAX + 1];
    snprintf(details, sizeof details, "ssid=%s", cmd->u.wifi.ssid);
    rig_reply_ok(out, cmd->name, details);
}

static void run_line(char *line)
{
    const rig_out_t *out = agent_out();
    rig_cmd_t cmd;
    rig_cmd_parse(line, &cmd);
    switch (cmd.kind) {
    case RIG_CMD_EMPTY:
        return;
    case RIG_CMD_UNKNOWN:
        rig_reply_error(out, cmd.name, "unknown command");
        return;
    case RIG_CMD_INVALID:
        rig_reply_error(out, cmd.name, cmd.error);
        return;
    case RIG_CMD_STATUS: {
        rig_status_t status;
        agent_fill_status(&status);
        rig_emit_status(out, &status);
        rig_reply_ok(out, cmd.name, NULL);
        return;
    }
    case RIG_CMD_CERT:
        run_cert(&cmd);
        return;
    case RIG_CMD_OTA:
        run_ota(&cmd);
        return;
    case RIG_CMD_OTA_ABORT:
        agent_ota_abort();
        rig_reply_ok(out, cmd.name, NULL);
        return;
    case RIG_CMD_OTA_CONFIG:
        run_config(&cmd);
        return;
    case RIG_CMD_WIFI:
        run_wifi(&cmd);
        return;
    case RIG_CMD_RESTART:
        rig_reply_ok(out, cmd.name, NULL);
        vTaskDelay(pdMS_TO_TICKS(50)); /* let the answer leave the UART */
        esp_restart();
        return;
    }
}

void agent_console_run(void)
{
    ESP_ERROR_CHECK(uart_driver_install(CONSOLE_UART, UART_RX_BUFFER, 0, 0, NULL, 0));
    uart_vfs_dev_use_driver(CONSOLE_UART); /* log output and input share the driver */

    static rig_linebuf_t lines; /* 2 KiB: off the stack */
    rig_linebuf_init(&lines);
    rig_status_t status;
    agent_fill_status(&status);
    rig_emit_ready(agent_out(), status.version, status.running, status.state);

    uint8_t chunk[READ_CHUNK];
    for (;;) {
        int n = uart_read_bytes(CONSOLE_UART, chunk, sizeof chunk, pdMS_TO_TICKS(20));
        for (int i = 0; i < n; i++) {
            rig_line_result_t result = rig_linebuf_feed(&lines, (char)chunk[i]);
            if (result == RIG_LINE_READY) {
                run_line(lines.buf);
            } else if (result == RIG_LINE_TOO_LONG) {
                rig_cmd_t cmd;
                rig_cmd_parse(lines.buf, &cmd);
                rig_reply_error(agent_out(), cmd.kind == RIG_CMD_EMPTY ? "-" : cmd.name, "line too long");
            }
        }
    }
}
