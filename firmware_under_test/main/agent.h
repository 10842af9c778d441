/* ESP-IDF glue of the ota-rig reference firmware: the parts shared between its files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "rig_core.h"

/* The behaviour marker record (behaviour_marker.c); the rig patches it in built images. */
extern const uint8_t rig_behaviour_marker[RIG_MARKER_SIZE];

/* Where every rig_core line goes: ESP_LOG at the line's level and tag. */
const rig_out_t *agent_out(void);

/* Boot-time facts the status line repeats. */
void agent_fill_status(rig_status_t *status);
const char *agent_running_version(void);

/* NVS-backed settings, pinned certificate, Wi-Fi credentials and resume progress. */
esp_err_t agent_store_init(void);
rig_settings_t agent_settings(void);
esp_err_t agent_settings_save(const rig_settings_t *settings);
esp_err_t agent_cert_save(const uint8_t *der, size_t len);
const uint8_t *agent_cert(size_t *len); /* NULL when none is pinned */
esp_err_t agent_wifi_save(const char *ssid, const char *password);
esp_err_t agent_wifi_load(char *ssid, size_t ssid_size, char *password, size_t password_size);
esp_err_t agent_resume_load(char *url, size_t url_size, uint32_t *bytes);
esp_err_t agent_resume_save(const char *url, uint32_t bytes);
void agent_resume_clear(void);

/* Wi-Fi station. */
void agent_wifi_connect(const char *ssid, const char *password);

/* The OTA worker. claim -> (reply ok) -> launch, so `ok ota` precedes `ota begin`. */
esp_err_t agent_ota_claim(const char *url);
void agent_ota_launch(void);
void agent_ota_abort(void);
rig_ota_phase_t agent_ota_phase(void);

/* The console: prints `ready`, then reads and answers commands forever. */
void agent_console_run(void);
