/*
 * err.h - warren's internal error codes.
 *
 * Every function that can fail returns 0 (or a non-negative count) on
 * success and one of the negative WR_E* codes below on failure, in the
 * manner of libuv.  These codes are about what went wrong inside warren;
 * they are deliberately separate from AMQP reply codes (404, 406, 501...),
 * which come from the generated spec tables in proto/spec_gen.h and are
 * what a peer sees.
 */
#ifndef WR_ERR_H
#define WR_ERR_H

#define WR_ERRNO_MAP(X)                                                                            \
    X(NOMEM, "out of memory")                                                                      \
    X(AGAIN, "need more input")                                                                    \
    X(PROTO, "protocol violation")                                                                 \
    X(FRAME, "malformed frame")                                                                    \
    X(TOOBIG, "value too large")                                                                   \
    X(RANGE, "value out of range")                                                                 \
    X(DEPTH, "nesting too deep")                                                                   \
    X(INVAL, "invalid argument")                                                                   \
    X(NOTFOUND, "not found")                                                                       \
    X(EXISTS, "already exists")                                                                    \
    X(IO, "i/o error")                                                                             \
    X(NOSPC, "no space left on device")                                                            \
    X(CORRUPT, "corrupt data")                                                                     \
    X(CLOSED, "closed")

enum {
    WR_OK = 0,
#define WR_ERR_ENUM(name, text) WR_E##name,
    WR__EFIRST = -1000,
    WR_ERRNO_MAP(WR_ERR_ENUM)
#undef WR_ERR_ENUM
};

/* wr_strerror returns a static string describing a WR_E* code (or "ok"). */
const char *wr_strerror(int err);

#endif
