/*
 * buf.h - byte views and growable byte buffers.
 *
 * wr_bytes_t is a borrowed view: it owns nothing, and is valid only as long
 * as the memory it points into (usually a connection's input buffer, valid
 * until the read callback that produced it returns).  Anything kept longer
 * must be copied.
 *
 * wr_buf_t owns a heap block that grows geometrically.  All put functions
 * write AMQP's network byte order (big-endian).  Allocation failure aborts
 * the process (wr_xmalloc): a broker that cannot allocate a few bytes for a
 * frame cannot make progress, and every caller checking for it would hide
 * the real logic.  Memory limits are enforced earlier, by flow control.
 */
#ifndef WR_BUF_H
#define WR_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct wr_bytes {
    const uint8_t *p;
    size_t n;
} wr_bytes_t;

#define WR_BYTES_LIT(s) ((wr_bytes_t){(const uint8_t *)(s), sizeof(s) - 1})

static inline wr_bytes_t wr_bytes_of(const char *s)
{
    return (wr_bytes_t){(const uint8_t *)s, strlen(s)};
}

static inline int wr_bytes_eq(wr_bytes_t a, wr_bytes_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline int wr_bytes_eq_str(wr_bytes_t a, const char *s)
{
    return wr_bytes_eq(a, wr_bytes_of(s));
}

typedef struct wr_buf {
    uint8_t *p; /* owned; NULL when cap == 0 */
    size_t len; /* bytes written */
    size_t cap; /* bytes allocated */
} wr_buf_t;

void *wr_xmalloc(size_t n);
void *wr_xcalloc(size_t n, size_t size);
void *wr_xrealloc(void *p, size_t n);
char *wr_xstrndup(const char *s, size_t n);

void wr_buf_init(wr_buf_t *b);
void wr_buf_free(wr_buf_t *b);
/* wr_buf_reserve makes room for at least n more bytes and returns a pointer
 * to them; the caller then adds what it wrote with b->len += k. */
uint8_t *wr_buf_reserve(wr_buf_t *b, size_t n);
void wr_buf_put(wr_buf_t *b, const void *p, size_t n);
void wr_buf_put_u8(wr_buf_t *b, uint8_t v);
void wr_buf_put_u16(wr_buf_t *b, uint16_t v);
void wr_buf_put_u32(wr_buf_t *b, uint32_t v);
void wr_buf_put_u64(wr_buf_t *b, uint64_t v);
/* Short strings are at most 255 bytes; longer input is a caller bug. */
void wr_buf_put_shortstr(wr_buf_t *b, wr_bytes_t s);
void wr_buf_put_longstr(wr_buf_t *b, wr_bytes_t s);
/* Overwrite a big-endian u32 at offset off (which must be < len - 3). */
void wr_buf_patch_u32(wr_buf_t *b, size_t off, uint32_t v);
/* Drop the first n bytes, moving the rest to the front. */
void wr_buf_consume(wr_buf_t *b, size_t n);

static inline uint16_t wr_get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t wr_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t wr_get_u64(const uint8_t *p)
{
    return (uint64_t)wr_get_u32(p) << 32 | wr_get_u32(p + 4);
}
static inline void wr_set_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr_set_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void wr_set_u64(uint8_t *p, uint64_t v)
{
    wr_set_u32(p, (uint32_t)(v >> 32));
    wr_set_u32(p + 4, (uint32_t)v);
}

#endif
