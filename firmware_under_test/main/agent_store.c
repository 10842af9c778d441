/* NVS persistence: agent settings, the pinned certificate, Wi-Fi credentials, resume progress. */
#include <string.h>

#include "agent.h"
#include "esp_log.h"
#include "nvs.h"
#include "nvs_flash.h"

#define NS_AGENT "rig_agent"
#define NS_RESUME "rig_resume"
#define CERT_MAX 2048u

static rig_settings_t s_settings;
static uint8_t s_cert[CERT_MAX];
static size_t s_cert_len;

static esp_err_t commit_close(nvs_handle_t h, esp_err_t err)
{
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}

esp_err_t agent_store_init(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    if (err != ESP_OK) {
        return err;
    }
    s_settings = rig_settings_defaults();
    nvs_handle_t h;
    if (nvs_open(NS_AGENT, NVS_READONLY, &h) != ESP_OK) {
        return ESP_OK; /* nothing stored yet: defaults, no certificate */
    }
    uint8_t flag;
    (void)nvs_get_u32(h, "timeout_ms", &s_settings.timeout_ms);
    (void)nvs_get_u32(h, "request_size", &s_settings.request_size);
    if (nvs_get_u8(h, "resume", &flag) == ESP_OK) {
        s_settings.resume = flag != 0;
    }
    if (nvs_get_u8(h, "version_check", &flag) == ESP_OK) {
        s_settings.version_check = flag != 0;
    }
    size_t len = sizeof s_cert;
    if (nvs_get_blob(h, "cert", s_cert, &len) == ESP_OK) {
        s_cert_len = len;
    }
    nvs_close(h);
    return ESP_OK;
}

rig_settings_t agent_settings(void)
{
    return s_settings;
}

esp_err_t agent_settings_save(const rig_settings_t *settings)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_AGENT, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_u32(h, "timeout_ms", settings->timeout_ms);
    if (err == ESP_OK) {
        err = nvs_set_u32(h, "request_size", settings->request_size);
    }
    if (err == ESP_OK) {
        err = nvs_set_u8(h, "resume", settings->resume ? 1 : 0);
    }
    if (err == ESP_OK) {
        err = nvs_set_u8(h, "version_check", settings->version_check ? 1 : 0);
    }
    err = commit_close(h, err);
    if (err == ESP_OK) {
        s_settings = *settings;
    }
    return err;
}

esp_err_t agent_cert_save(const uint8_t *der, size_t len)
{
    if (len > sizeof s_cert) {
        return ESP_ERR_INVALID_SIZE;
    }
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_AGENT, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = commit_close(h, nvs_set_blob(h, "cert", der, len));
    if (err == ESP_OK) {
        memcpy(s_cert, der, len);
        s_cert_len = len;
    }
    return err;
}

const uint8_t *agent_cert(size_t *len)
{
    *len = s_cert_len;
    return s_cert_len > 0 ? s_cert : NULL;
}

esp_err_t agent_wifi_save(const char *ssid, const char *password)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_AGENT, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_str(h, "wifi_ssid", ssid);
    if (err == ESP_OK) {
        err = nvs_set_str(h, "wifi_pass", password);
    }
    return commit_close(h, err);
}

esp_err_t agent_wifi_load(char *ssid, size_t ssid_size, char *password, size_t password_size)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_AGENT, NVS_READONLY, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_get_str(h, "wifi_ssid", ssid, &ssid_size);
    if (err == ESP_OK) {
        err = nvs_get_str(h, "wifi_pass", password, &password_size);
    }
    nvs_close(h);
    return err;
}

esp_err_t agent_resume_load(char *url, size_t url_size, uint32_t *bytes)
{
    url[0] = '\0';
    *bytes = 0;
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_RESUME, NVS_READONLY, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_get_str(h, "url", url, &url_size);
    if (err == ESP_OK) {
        err = nvs_get_u32(h, "bytes", bytes);
    }
    nvs_close(h);
    if (err != ESP_OK) {
        url[0] = '\0';
        *bytes = 0;
    }
    return err;
}

esp_err_t agent_resume_save(const char *url, uint32_t bytes)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NS_RESUME, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    char saved[RIG_LINE_MAX + 1];
    size_t size = sizeof saved;
    /* the URL is rewritten only when it changes: NVS wear stays with the 4-byte count */
    if (nvs_get_str(h, "url", saved, &size) != ESP_OK || strcmp(saved, url) != 0) {
        err = nvs_set_str(h, "url", url);
    }
    if (err == ESP_OK) {
        err = nvs_set_u32(h, "bytes", bytes);
    }
    return commit_close(h, err);
}

void agent_resume_clear(void)
{
    nvs_handle_t h;
    if (nvs_open(NS_RESUME, NVS_READWRITE, &h) == ESP_OK) {
        (void)commit_close(h, nvs_erase_all(h));
    }
}
