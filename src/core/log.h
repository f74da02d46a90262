/*
 * log.h - leveled logging to stderr, one line per message.
 *
 * Every message is written as a single line
 *
 *     2026-11-21 12:00:00.123 [info] text
 *
 * with a UTC timestamp at millisecond precision, using one write(2) so that
 * lines from several processes sharing the same stderr (the integration test
 * harness, systemd) do not interleave.  Control characters in the text
 * (a queue name with a newline, say) are escaped as \xNN: a client must not
 * be able to forge log lines.
 *
 * The level names are RabbitMQ's (log.console.level): a message is written
 * when its level is at or above the configured one.  The wr_debug/wr_info/
 * wr_warn/wr_error macros test the level before evaluating their arguments,
 * so a disabled debug line costs one load and one compare.
 *
 * The level is process-wide and meant to be set once at startup, before
 * any other thread exists; it is not synchronised.
 */
#ifndef WR_LOG_H
#define WR_LOG_H

/* Ordered: a higher level is more severe.  WR_LOG_NONE disables logging. */
enum {
    WR_LOG_DEBUG = 0,
    WR_LOG_INFO = 1,
    WR_LOG_WARNING = 2,
    WR_LOG_ERROR = 3,
    WR_LOG_NONE = 4,
};

/* The current threshold.  Read it with wr_log_level(); it is exported only
 * so that the macros below can test it inline.  Do not assign to it. */
extern int wr_log_threshold;

/* Sets the threshold; out-of-range values are clamped to the nearest level. */
void wr_log_set_level(int level);
int wr_log_level(void);

/* Parses a RabbitMQ log level name (case-insensitive): debug, info, notice,
 * warning, error, critical, alert, emergency, none.  warren has fewer
 * levels than RabbitMQ, so notice maps to warning (it hides info, as in
 * RabbitMQ) and critical, alert and emergency map to error.  Returns the
 * WR_LOG_* level, or -1 if the name is unknown. */
int wr_log_parse_level(const char *s);

/* The lower-case name of a WR_LOG_* level ("info"), or "?" if invalid. */
const char *wr_log_level_name(int level);

/* Formats and writes one line if level >= the threshold.  Messages logged
 * at WR_LOG_NONE or above are never written.  A trailing newline in fmt's
 * output is dropped (the line end is added here). */
void wr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define WR_LOG_AT(level, ...)                                                                      \
    do {                                                                                           \
        if ((level) >= wr_log_threshold)                                                           \
            wr_log((level), __VA_ARGS__);                                                          \
    } while (0)

#define wr_debug(...) WR_LOG_AT(WR_LOG_DEBUG, __VA_ARGS__)
#define wr_info(...)  WR_LOG_AT(WR_LOG_INFO, __VA_ARGS__)
#define wr_warn(...)  WR_LOG_AT(WR_LOG_WARNING, __VA_ARGS__)
#define wr_error(...) WR_LOG_AT(WR_LOG_ERROR, __VA_ARGS__)

#endif
