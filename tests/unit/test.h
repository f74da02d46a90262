/*
 * test.h - warren's small unit test runner.
 *
 * A test is a function `static void test_name(void)` that uses CHECK*
 * macros; a suite is declared with WR_SUITE(name) { RUN(test_a); ... } in
 * its own file and registers itself before main runs, so adding a test
 * file needs no edit elsewhere.
 * A failed CHECK prints file:line and the expression, marks the running
 * test failed and returns from it.  The runner ends with the line
 * "N passed, N failed" and exits non-zero if anything failed.
 */
#ifndef WR_TEST_H
#define WR_TEST_H

#include <stdio.h>
#include <string.h>

extern int wr_test_failed_flag;
void wr_test_run(const char *name, void (*fn)(void));

void wr_test_register(const char *name, void (*suite)(void));

#define RUN(fn) wr_test_run(#fn, fn)

#define WR_SUITE(name)                                                                             \
    static void suite_##name(void);                                                                \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        wr_test_register(#name, suite_##name);                                                     \
    }                                                                                              \
    static void suite_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                      \
            wr_test_failed_flag = 1;                                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            printf("  %s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                   a_, b_);                                                                        \
            wr_test_failed_flag = 1;                                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(p, q, n) CHECK(memcmp((p), (q), (n)) == 0)
#define CHECK_STR(a, b)    CHECK(strcmp((a), (b)) == 0)

#endif
