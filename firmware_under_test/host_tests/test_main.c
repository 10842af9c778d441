/* Runs every host test group; exit status 1 when any check failed. */
#include "harness.h"

int harness_failures = 0;
int harness_checks = 0;

void capture_emit(void *ctx, rig_level_t level, const char *tag, const char *text)
{
    capture_t *c = ctx;
    int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%c %s: %s\n", (char)level, tag, text);
    if (n > 0 && (size_t)n < sizeof c->text - c->len) {
        c->len += (size_t)n;
    }
}

rig_out_t capture_out(capture_t *capture)
{
    capture->len = 0;
    capture->text[0] = '\0';
    rig_out_t out = {.fn = capture_emit, .ctx = capture};
    return out;
}

int main(void)
{
    test_cmd();
    test_marker();
    test_version();
    test_resume();
    test_format();
    printf("%d checks, %d failed\n", harness_checks, harness_failures);
    return harness_failures == 0 ? 0 : 1;
}
