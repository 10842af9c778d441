/* Console grammar (PROTOCOL.md §1): line assembly, parsing, settings. Pure functions. */
#include <stdio.h>
#include <string.h>

#include "rig_core.h"

#define TIMEOUT_MS_MAX 600000u      /* 10 min: longer is a typo, not a setting */
#define REQUEST_SIZE_MAX 0x7FFFFFFFu /* ESP-IDF keeps it in an int */

/* ------------------------------------------------------------- line buffer */

void rig_linebuf_init(rig_linebuf_t *lb)
{
    lb->len = 0;
    lb->overflow = false;
    lb->buf[0] = '\0';
}

rig_line_result_t rig_linebuf_feed(rig_linebuf_t *lb, char c)
{
    if (c == '\n') {
        if (!lb->overflow && lb->len > 0 && lb->buf[lb->len - 1] == '\r') {
            lb->len--;
        }
        lb->buf[lb->len] = '\0';
        rig_line_result_t result = lb->overflow ? RIG_LINE_TOO_LONG : RIG_LINE_READY;
        lb->len = 0;
        lb->overflow = false;
        return result;
    }
    if (lb->len < RIG_LINE_MAX) {
        lb->buf[lb->len++] = c;
    } else if (!(lb->len == RIG_LINE_MAX && c == '\r')) {
        lb->overflow = true;
    }
    return RIG_LINE_PENDING;
}

/* ------------------------------------------------------------------ helpers */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

long rig_base64_decode(const char *text, uint8_t *out, size_t out_size)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '=') {
        n--;
    }
    if (strlen(text) - n > 2 || n % 4 == 1) {
        return -1;
    }
    size_t produced = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(text[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (produced == out_size) {
                return -1;
            }
            /* writing behind the reading position makes in-place decoding safe */
            out[produced++] = (uint8_t)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1u)) != 0) {
        return -1; /* non-canonical trailing bits */
    }
    return (long)produced;
}

void rig_hex(char *buf, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        buf[2 * i] = digits[data[i] >> 4];
        buf[2 * i + 1] = digits[data[i] & 0x0F];
    }
    buf[2 * len] = '\0';
}

/* Splits the next space-separated token off *cursor; NULL at the end of the line. */
static char *next_token(char **cursor)
{
    char *p = *cursor;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0') {
        *cursor = p;
        return NULL;
    }
    char *start = p;
    while (*p != '\0' && *p != ' ' && *p != '\t') {
        p++;
    }
    if (*p != '\0') {
        *p++ = '\0';
    }
    *cursor = p;
    return start;
}

static bool parse_u32(const char *text, uint32_t max, uint32_t *out)
{
    if (*text == '\0') {
        return false;
    }
    uint32_t value = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        uint32_t digit = (uint32_t)(*p - '0');
        if (value > (max - digit) / 10u) {
            return false;
        }
        value = value * 10u + digit;
    }
    *out = value;
    return true;
}

static bool parse_on_off(const char *text, bool *out)
{
    if (strcmp(text, "on") == 0 || strcmp(text, "off") == 0) {
        *out = text[1] == 'n';
        return true;
    }
    return false;
}

static void invalid(rig_cmd_t *cmd, const char *reason, const char *detail)
{
    cmd->kind = RIG_CMD_INVALID;
    if (detail != NULL) {
        snprintf(cmd->error, sizeof cmd->error, "%s %.40s", reason, detail);
    } else {
        snprintf(cmd->error, sizeof cmd->error, "%s", reason);
    }
}

/* ------------------------------------------------------------ the commands */

static void parse_config(char **cursor, rig_cmd_t *cmd)
{
    rig_settings_update_t *u = &cmd->u.config;
    memset(u, 0, sizeof *u);
    for (char *tok = next_token(cursor); tok != NULL; tok = next_token(cursor)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            invalid(cmd, "bad setting", tok);
            return;
        }
        *eq = '\0';
        const char *value = eq + 1;
        bool ok;
        if (strcmp(tok, "timeout_ms") == 0) {
            ok = parse_u32(value, TIMEOUT_MS_MAX, &u->values.timeout_ms) && u->values.timeout_ms > 0;
            u->has_timeout_ms = true;
        } else if (strcmp(tok, "request_size") == 0) {
            ok = parse_u32(value, REQUEST_SIZE_MAX, &u->values.request_size);
            u->has_request_size = true;
        } else if (strcmp(tok, "resume") == 0) {
            ok = parse_on_off(value, &u->values.resume);
            u->has_resume = true;
        } else if (strcmp(tok, "version_check") == 0) {
            ok = parse_on_off(value, &u->values.version_check);
            u->has_version_check = true;
        } else {
            invalid(cmd, "unknown setting", tok);
            return;
        }
        if (!ok) {
            invalid(cmd, "bad value for", tok);
            return;
        }
    }
}

static void parse_cert(char **cursor, rig_cmd_t *cmd)
{
    char *text = next_token(cursor);
    if (text == NULL) {
        invalid(cmd, "missing argument", NULL);
        return;
    }
    if (next_token(cursor) != NULL) {
        invalid(cmd, "too many arguments", NULL);
        return;
    }
    long len = rig_base64_decode(text, (uint8_t *)text, strlen(text));
    if (len <= 0) {
        invalid(cmd, "bad base64", NULL);
        return;
    }
    if ((uint8_t)text[0] != 0x30u) {
        invalid(cmd, "not a DER certificate", NULL); /* DER starts with a SEQUENCE */
        return;
    }
    cmd->u.cert.der = (const uint8_t *)text;
    cmd->u.cert.der_len = (size_t)len;
}

static void parse_ota(char **cursor, rig_cmd_t *cmd)
{
    char *url = next_token(cursor);
    if (url == NULL) {
        invalid(cmd, "missing argument", NULL);
    } else if (next_token(cursor) != NULL) {
        invalid(cmd, "too many arguments", NULL);
    } else if (strncmp(url, "https://", 8) != 0 || url[8] == '\0') {
        invalid(cmd, "not an https url", NULL);
    } else {
        cmd->u.ota.url = url;
    }
}

static void parse_wifi(char **cursor, rig_cmd_t *cmd)
{
    char *ssid = next_token(cursor);
    char *password = next_token(cursor);
    if (ssid == NULL) {
        invalid(cmd, "missing argument", NULL);
    } else if (next_token(cursor) != NULL) {
        invalid(cmd, "too many arguments", NULL);
    } else if (strlen(ssid) > RIG_SSID_MAX) {
        invalid(cmd, "ssid too long", NULL);
    } else if (password != NULL && strlen(password) > RIG_PASSWORD_MAX) {
        invalid(cmd, "password too long", NULL);
    } else {
        cmd->u.wifi.ssid = ssid;
        cmd->u.wifi.password = password != NULL ? password : "";
    }
}

typedef struct {
    const char *word;
    rig_cmd_kind_t kind;
    void (*parse_args)(char **cursor, rig_cmd_t *cmd); /* NULL: takes no argument */
} command_entry_t;

static const command_entry_t k_commands[] = {
    {"status", RIG_CMD_STATUS, NULL},
    {"cert", RIG_CMD_CERT, parse_cert},
    {"ota", RIG_CMD_OTA, parse_ota},
    {"ota-abort", RIG_CMD_OTA_ABORT, NULL},
    {"ota-config", RIG_CMD_OTA_CONFIG, parse_config},
    {"wifi", RIG_CMD_WIFI, parse_wifi},
    {"restart", RIG_CMD_RESTART, NULL},
};

void rig_cmd_parse(char *line, rig_cmd_t *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    char *cursor = line;
    char *word = next_token(&cursor);
    if (word == NULL) {
        cmd->kind = RIG_CMD_EMPTY;
        cmd->name = "";
        return;
    }
    cmd->name = word;
    cmd->kind = RIG_CMD_UNKNOWN;
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++) {
        const command_entry_t *entry = &k_commands[i];
        if (strcmp(word, entry->word) != 0) {
            continue;
        }
        cmd->kind = entry->kind;
        if (entry->parse_args != NULL) {
            entry->parse_args(&cursor, cmd);
        } else if (next_token(&cursor) != NULL) {
            invalid(cmd, "too many arguments", NULL);
        }
        return;
    }
}

/* ---------------------------------------------------------------- settings */

rig_settings_t rig_settings_defaults(void)
{
    rig_settings_t s = {.timeout_ms = 5000u, .request_size = 0u, .resume = true, .version_check = true};
    return s;
}

void rig_settings_apply(rig_settings_t *settings, const rig_settings_update_t *update)
{
    if (update->has_timeout_ms) {
        settings->timeout_ms = update->values.timeout_ms;
    }
    if (update->has_request_size) {
        settings->request_size = update->values.request_size;
    }
    if (update->has_resume) {
        settings->resume = update->values.resume;
    }
    if (update->has_version_check) {
        settings->version_check = update->values.version_check;
    }
}

int rig_settings_format(char *buf, size_t size, const rig_settings_t *s)
{
    return snprintf(buf, size, "timeout_ms=%u request_size=%u resume=%s version_check=%s",
                    (unsigned)s->timeout_ms, (unsigned)s->request_size, s->resume ? "on" : "off",
                    s->version_check ? "on" : "off");
}
