/* Console grammar: every command of PROTOCOL.md §1, line assembly, base64, settings. */
#include <stdlib.h>

#include "harness.h"

static rig_cmd_t parse(const char *text, char *line, size_t size)
{
    snprintf(line, size, "%s", text);
    rig_cmd_t cmd;
    rig_cmd_parse(line, &cmd);
    return cmd;
}

static void test_simple_commands(void)
{
    char line[256];
    rig_cmd_t cmd = parse("status", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_STATUS);
    CHECK_EQ_STR(cmd.name, "status");

    cmd = parse("  restart  ", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_RESTART);
    CHECK_EQ_STR(cmd.name, "restart");

    cmd = parse("ota-abort", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_OTA_ABORT);

    cmd = parse("status now", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.name, "status");
    CHECK_EQ_STR(cmd.error, "too many arguments");

    cmd = parse("", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_EMPTY);
    cmd = parse("   ", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_EMPTY);

    cmd = parse("reboot now", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_UNKNOWN);
    CHECK_EQ_STR(cmd.name, "reboot");

    cmd = parse("STATUS", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_UNKNOWN); /* commands are case-sensitive */
}

static void test_ota_command(void)
{
    char line[256];
    rig_cmd_t cmd = parse("ota https://127.0.0.1:8443/fw.bin", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_OTA);
    CHECK_EQ_STR(cmd.u.ota.url, "https://127.0.0.1:8443/fw.bin");

    cmd = parse("ota", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "missing argument");

    cmd = parse("ota http://10.0.0.1/fw.bin", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "not an https url");

    cmd = parse("ota https://a/b https://c/d", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "too many arguments");
}

static void test_cert_command(void)
{
    char line[256];
    /* base64 of 30 82 01 0a 02 01 */
    rig_cmd_t cmd = parse("cert MIIBCgIB", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_CERT);
    CHECK_EQ_INT(cmd.u.cert.der_len, 6);
    static const uint8_t expected[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x01};
    CHECK(cmd.u.cert.der != NULL && memcmp(cmd.u.cert.der, expected, sizeof expected) == 0);

    cmd = parse("cert", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "missing argument");

    cmd = parse("cert MIIB*gIB", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "bad base64");

    cmd = parse("cert aGVsbG8=", line, sizeof line); /* "hello": not DER */
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "not a DER certificate");
}

static void test_config_command(void)
{
    char line[256];
    rig_cmd_t cmd = parse("ota-config", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_OTA_CONFIG);
    CHECK(!cmd.u.config.has_timeout_ms && !cmd.u.config.has_request_size);
    CHECK(!cmd.u.config.has_resume && !cmd.u.config.has_version_check);

    cmd = parse("ota-config timeout_ms=3000 request_size=16384 resume=off version_check=off", line,
                sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_OTA_CONFIG);
    rig_settings_t s = rig_settings_defaults();
    rig_settings_apply(&s, &cmd.u.config);
    CHECK_EQ_INT(s.timeout_ms, 3000);
    CHECK_EQ_INT(s.request_size, 16384);
    CHECK(!s.resume);
    CHECK(!s.version_check);

    cmd = parse("ota-config resume=on", line, sizeof line);
    rig_settings_apply(&s, &cmd.u.config);
    CHECK(s.resume);
    CHECK_EQ_INT(s.timeout_ms, 3000); /* untouched keys keep their value */

    cmd = parse("ota-config colour=blue", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_INVALID);
    CHECK_EQ_STR(cmd.error, "unknown setting colour");

    cmd = parse("ota-config resume=maybe", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "bad value for resume");
    cmd = parse("ota-config timeout_ms=0", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "bad value for timeout_ms");
    cmd = parse("ota-config timeout_ms=99999999999", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "bad value for timeout_ms");
    cmd = parse("ota-config request_size=-1", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "bad value for request_size");
    cmd = parse("ota-config resume", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "bad setting resume");
}

static void test_settings_defaults_and_format(void)
{
    rig_settings_t s = rig_settings_defaults();
    char buf[128];
    rig_settings_format(buf, sizeof buf, &s);
    CHECK_EQ_STR(buf, "timeout_ms=5000 request_size=0 resume=on version_check=on");
}

static void test_wifi_command(void)
{
    char line[256];
    rig_cmd_t cmd = parse("wifi lab-net s3cret-pass", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_WIFI);
    CHECK_EQ_STR(cmd.u.wifi.ssid, "lab-net");
    CHECK_EQ_STR(cmd.u.wifi.password, "s3cret-pass");

    cmd = parse("wifi open-net", line, sizeof line);
    CHECK_EQ_INT(cmd.kind, RIG_CMD_WIFI);
    CHECK_EQ_STR(cmd.u.wifi.password, "");

    cmd = parse("wifi", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "missing argument");
    cmd = parse("wifi a b c", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "too many arguments");
    cmd = parse("wifi 0123456789012345678901234567890123 pw", line, sizeof line);
    CHECK_EQ_STR(cmd.error, "ssid too long");
}

static rig_line_result_t feed(rig_linebuf_t *lb, const char *bytes)
{
    rig_line_result_t r = RIG_LINE_PENDING;
    for (const char *p = bytes; *p != '\0'; p++) {
        r = rig_linebuf_feed(lb, *p);
    }
    return r;
}

static void test_line_buffer(void)
{
    rig_linebuf_t *lb = malloc(sizeof *lb);
    rig_linebuf_init(lb);
    CHECK_EQ_INT(feed(lb, "stat"), RIG_LINE_PENDING);
    CHECK_EQ_INT(feed(lb, "us\r\n"), RIG_LINE_READY);
    CHECK_EQ_STR(lb->buf, "status");
    CHECK_EQ_INT(feed(lb, "restart\n"), RIG_LINE_READY);
    CHECK_EQ_STR(lb->buf, "restart");
    CHECK_EQ_INT(feed(lb, "\n"), RIG_LINE_READY);
    CHECK_EQ_STR(lb->buf, "");

    /* exactly RIG_LINE_MAX bytes (plus \r\n) is accepted, one more is not */
    char *longest = malloc(RIG_LINE_MAX + 3);
    memset(longest, 'a', RIG_LINE_MAX);
    strcpy(longest + RIG_LINE_MAX, "\r\n");
    CHECK_EQ_INT(feed(lb, longest), RIG_LINE_READY);
    CHECK_EQ_INT(strlen(lb->buf), RIG_LINE_MAX);
    memset(longest, 'b', RIG_LINE_MAX);
    strcpy(longest + RIG_LINE_MAX, "b\n");
    CHECK_EQ_INT(feed(lb, longest), RIG_LINE_TOO_LONG);
    CHECK_EQ_INT(strlen(lb->buf), RIG_LINE_MAX);
    /* the buffer recovers for the next line */
    CHECK_EQ_INT(feed(lb, "status\n"), RIG_LINE_READY);
    CHECK_EQ_STR(lb->buf, "status");
    free(longest);
    free(lb);
}

static void test_base64_and_hex(void)
{
    uint8_t out[16];
    CHECK_EQ_INT(rig_base64_decode("aGVsbG8=", out, sizeof out), 5);
    CHECK(memcmp(out, "hello", 5) == 0);
    CHECK_EQ_INT(rig_base64_decode("aGVsbG8", out, sizeof out), 5); /* padding optional */
    CHECK_EQ_INT(rig_base64_decode("aGVsbA==", out, sizeof out), 4);
    CHECK_EQ_INT(rig_base64_decode("", out, sizeof out), 0);
    CHECK_EQ_INT(rig_base64_decode("a", out, sizeof out), -1);
    CHECK_EQ_INT(rig_base64_decode("aGVsbG9=", out, sizeof out), -1); /* non-canonical tail */
    CHECK_EQ_INT(rig_base64_decode("aG===", out, sizeof out), -1);
    CHECK_EQ_INT(rig_base64_decode("aGVsbG8gd29ybGQhISE=", out, 4), -1); /* does not fit */

    char hex[9];
    static const uint8_t bytes[] = {0x00, 0x9f, 0xa0, 0xff};
    rig_hex(hex, bytes, sizeof bytes);
    CHECK_EQ_STR(hex, "009fa0ff");
}

void test_cmd(void)
{
    test_simple_commands();
    test_ota_command();
    test_cert_command();
    test_config_command();
    test_settings_defaults_and_format();
    test_wifi_command();
    test_line_buffer();
    test_base64_and_hex();
}
