/*
 * fuzz_method.c - libFuzzer target for the generated method decoder and
 * encoder.
 *
 * The input is one method frame payload.  Whatever it holds, decoding must
 * not read out of bounds.  When it decodes, the encoder must write the same
 * number of bytes back (every field has a fixed or self-described size), and
 * the re-encoded bytes must decode and encode again to themselves: the
 * codec is a fixed point after one pass.  (The first encoding may differ
 * from the input only in bit octets, whose unused bits the decoder drops.)
 * If the input happens to start with a property-flags word rather than a
 * method id, it is also fed to the property decoder, which gets the same
 * round-trip check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "proto/spec_gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const wr_buf_t *a, const wr_buf_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static void method_round_trip(const uint8_t *data, size_t size)
{
    wr_method_t m;
    if (wr_method_decode(data, size, &m) != 0)
        return;
    wr_buf_t once, twice;
    wr_buf_init(&once);
    wr_buf_init(&twice);
    wr_method_encode(&once, &m);
    if (once.len != size)
        abort();
    wr_method_t m2;
    if (wr_method_decode(once.p, once.len, &m2) != 0 || m2.id != m.id)
        abort();
    wr_method_encode(&twice, &m2);
    if (!same(&once, &twice))
        abort();
    wr_buf_free(&once);
    wr_buf_free(&twice);
}

static void props_round_trip(const uint8_t *data, size_t size)
{
    wr_basic_props_t pr;
    if (wr_props_decode(data, size, &pr) != 0)
        return;
    wr_buf_t once, twice;
    wr_buf_init(&once);
    wr_buf_init(&twice);
    wr_props_encode(&once, &pr);
    if (once.len != size)
        abort();
    wr_basic_props_t pr2;
    if (wr_props_decode(once.p, once.len, &pr2) != 0 || pr2.flags != pr.flags)
        abort();
    wr_props_encode(&twice, &pr2);
    if (!same(&once, &twice))
        abort();
    wr_buf_free(&once);
    wr_buf_free(&twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    method_round_trip(data, size);
    props_round_trip(data, size);
    return 0;
}
