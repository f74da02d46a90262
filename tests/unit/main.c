/*
 * main.c - the unit test runner: runs every registered suite (or only the
 * tests whose name contains argv[1]) and prints "N passed, N failed".
 */
#include <stdlib.h>

#include "test.h"

int wr_test_failed_flag;
static int passed, failed;
static const char *only;

#define MAX_SUITES 128
static struct {
    const char *name;
    void (*fn)(void);
} suites[MAX_SUITES];
static int nsuites;

void wr_test_register(const char *name, void (*suite)(void))
{
    if (nsuites == MAX_SUITES) {
        fprintf(stderr, "too many test suites\n");
        exit(2);
    }
    suites[nsuites].name = name;
    suites[nsuites].fn = suite;
    nsuites++;
}

void wr_test_run(const char *name, void (*fn)(void))
{
    if (only && strstr(name, only) == NULL)
        return;
    wr_test_failed_flag = 0;
    fn();
    if (wr_test_failed_flag) {
        printf("FAIL %s\n", name);
        failed++;
    } else {
        passed++;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        only = argv[1];
    for (int i = 0; i < nsuites; i++)
        suites[i].fn();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
