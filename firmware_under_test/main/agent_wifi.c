/* Wi-Fi station for real boards: connects with the stored credentials, reconnects on loss. */
#include <string.h>

#include "agent.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_wifi.h"

static bool s_started;
static volatile bool s_reconfiguring; /* no automatic reconnect while credentials change */

static void on_wifi_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    (void)data;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        if (!s_reconfiguring) {
            esp_wifi_connect(); /* keep trying: the rig may be cutting the network on purpose */
        }
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *got = data;
        ESP_LOGI(RIG_TAG, "wifi ip=" IPSTR, IP2STR(&got->ip_info.ip));
    }
}

static void start_once(void)
{
    if (s_started) {
        return;
    }
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, WIFI_EVENT_STA_DISCONNECTED, on_wifi_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_wifi_event, NULL));
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_start());
    s_started = true;
}

void agent_wifi_connect(const char *ssid, const char *password)
{
    start_once();
    wifi_config_t config = {0};
    /* 32-byte SSID and 64-byte passphrase fields need no NUL at full length */
    memcpy(config.sta.ssid, ssid, strnlen(ssid, sizeof config.sta.ssid));
    memcpy(config.sta.password, password, strnlen(password, sizeof config.sta.password));
    s_reconfiguring = true;
    (void)esp_wifi_disconnect();
    esp_err_t err = esp_wifi_set_config(WIFI_IF_STA, &config);
    s_reconfiguring = false;
    if (err != ESP_OK) {
        ESP_LOGE(RIG_TAG, "wifi config failed: %s", esp_err_to_name(err));
    }
    (void)esp_wifi_connect();
}
