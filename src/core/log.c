/*
 * log.c - leveled logging to stderr (see log.h).
 *
 * A line is assembled completely in memory (on the stack unless it is
 * long) and handed to the kernel with one write(2), so concurrent writers
 * never interleave inside a line.  Formatting happens only after the level
 * test, and the macros in log.h do that test before the call, so disabled
 * messages cost nothing beyond the compare.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

int wr_log_threshold = WR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error", "none"};

void wr_log_set_level(int level)
{
    if (level < WR_LOG_DEBUG)
        level = WR_LOG_DEBUG;
    if (level > WR_LOG_NONE)
        level = WR_LOG_NONE;
    wr_log_threshold = level;
}

int wr_log_level(void)
{
    return wr_log_threshold;
}

int wr_log_parse_level(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        {"debug", WR_LOG_DEBUG},     {"info", WR_LOG_INFO},       {"notice", WR_LOG_WARNING},
        {"warning", WR_LOG_WARNING}, {"error", WR_LOG_ERROR},     {"critical", WR_LOG_ERROR},
        {"alert", WR_LOG_ERROR},     {"emergency", WR_LOG_ERROR}, {"none", WR_LOG_NONE},
    };
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].level;
    return -1;
}

const char *wr_log_level_name(int level)
{
    if (level < WR_LOG_DEBUG || level > WR_LOG_NONE)
        return "?";
    return level_names[level];
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* Nowhere left to report a failing stderr. */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Writes "YYYY-MM-DD HH:MM:SS.mmm [level] " into out; returns its length. */
static size_t format_prefix(char *out, size_t cap, int level)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d.%03d [%s] ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(ts.tv_nsec / 1000000), level_names[level]);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

void wr_log(int level, const char *fmt, ...)
{
    if (level < WR_LOG_DEBUG || level >= WR_LOG_NONE || level < wr_log_threshold)
        return;

    char msg_stack[512];
    char *msg = msg_stack;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg_stack, sizeof msg_stack, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg_stack) {
        msg = wr_xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    size_t len = (size_t)n;
    if (len > 0 && msg[len - 1] == '\n')
        len--;

    char prefix[128];
    size_t plen = format_prefix(prefix, sizeof prefix, level);

    /* Each byte expands to at most four ("\x1b"), plus the newline. */
    size_t cap = plen + 4 * len + 1;
    char line_stack[1024];
    char *line = cap <= sizeof line_stack ? line_stack : wr_xmalloc(cap);
    memcpy(line, prefix, plen);
    size_t pos = plen;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            line[pos++] = '\\';
            line[pos++] = 'x';
            line[pos++] = hex[c >> 4];
            line[pos++] = hex[c & 15];
        } else {
            line[pos++] = (char)c;
        }
    }
    line[pos++] = '\n';
    write_all(STDERR_FILENO, line, pos);

    if (line != line_stack)
        free(line);
    if (msg != msg_stack)
        free(msg);
}
