/* A minimal assert harness: no dependency beyond libc, so the host tests run anywhere gcc does. */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdio.h>
#include <string.h>

#include "rig_core.h"

extern int harness_failures;
extern int harness_checks;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        harness_checks++;                                                                 \
        if (!(cond)) {                                                                    \
            harness_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                 \
    } while (0)

#define CHECK_EQ_INT(actual, expected)                                                    \
    do {                                                                                  \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                   \
        harness_checks++;                                                                 \
        if (a_ != e_) {                                                                   \
            harness_failures++;                                                           \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,      \
                    #actual, a_, e_);                                                     \
        }                                                                                 \
    } while (0)

#define CHECK_EQ_STR(actual, expected)                                                    \
    do {                                                                                  \
        const char *a_ = (actual), *e_ = (expected);                                      \
        harness_checks++;                                                                 \
        if (a_ == NULL || strcmp(a_, e_) != 0) {                                          \
            harness_failures++;                                                           \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__,  \
                    #actual, a_ ? a_ : "(null)", e_);                                     \
        }                                                                                 \
    } while (0)

/* Collects emitted lines as "L tag: text\n" so tests compare the exact console output. */
typedef struct {
    char text[8192];
    size_t len;
} capture_t;

void capture_emit(void *ctx, rig_level_t level, const char *tag, const char *text);
rig_out_t capture_out(capture_t *capture);

void test_cmd(void);
void test_marker(void);
void test_version(void);
void test_resume(void);
void test_format(void);

#endif
