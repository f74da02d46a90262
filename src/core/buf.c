/* buf.c - growable byte buffers and the aborting allocators. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>

static void oom(size_t n)
{
    fprintf(stderr, "warren: out of memory allocating %zu bytes\n", n);
    abort();
}

void *wr_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *wr_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *wr_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

char *wr_xstrndup(const char *s, size_t n)
{
    char *d = wr_xmalloc(n + 1);
    if (n)
        memcpy(d, s, n); /* s may be NULL when n is 0 (an empty wr_buf_t) */
    d[n] = '\0';
    return d;
}

void wr_buf_init(wr_buf_t *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void wr_buf_free(wr_buf_t *b)
{
    free(b->p);
    wr_buf_init(b);
}

uint8_t *wr_buf_reserve(wr_buf_t *b, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->p = wr_xrealloc(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

void wr_buf_put(wr_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(wr_buf_reserve(b, n), p, n);
    b->len += n;
}

void wr_buf_put_u8(wr_buf_t *b, uint8_t v)
{
    *wr_buf_reserve(b, 1) = v;
    b->len += 1;
}

void wr_buf_put_u16(wr_buf_t *b, uint16_t v)
{
    wr_set_u16(wr_buf_reserve(b, 2), v);
    b->len += 2;
}

void wr_buf_put_u32(wr_buf_t *b, uint32_t v)
{
    wr_set_u32(wr_buf_reserve(b, 4), v);
    b->len += 4;
}

void wr_buf_put_u64(wr_buf_t *b, uint64_t v)
{
    wr_set_u64(wr_buf_reserve(b, 8), v);
    b->len += 8;
}

void wr_buf_put_shortstr(wr_buf_t *b, wr_bytes_t s)
{
    size_t n = s.n > 255 ? 255 : s.n;
    uint8_t *p = wr_buf_reserve(b, 1 + n);
    p[0] = (uint8_t)n;
    if (n)
        memcpy(p + 1, s.p, n);
    b->len += 1 + n;
}

void wr_buf_put_longstr(wr_buf_t *b, wr_bytes_t s)
{
    uint8_t *p = wr_buf_reserve(b, 4 + s.n);
    wr_set_u32(p, (uint32_t)s.n);
    if (s.n)
        memcpy(p + 4, s.p, s.n);
    b->len += 4 + s.n;
}

void wr_buf_patch_u32(wr_buf_t *b, size_t off, uint32_t v)
{
    wr_set_u32(b->p + off, v);
}

void wr_buf_consume(wr_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}
