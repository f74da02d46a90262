/*
 * fuzz_frame.c - libFuzzer target for the frame parser and, through it, the
 * method and content-header decoders.
 *
 * The input is treated as a connection's byte stream after the protocol
 * header: frames are parsed one after another until the parser asks for
 * more input or reports an error, as the connection's read path does.
 * Method payloads go to wr_method_decode and content-header payloads (past
 * class-id, weight and body-size) to wr_props_decode, and every successful
 * decode has its tables walked, so that anything a peer can send reaches
 * the code that will read it.  The harness also checks the parser's own
 * promises: a frame never extends past the input, and its payload lies
 * inside it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "proto/frame.h"
#include "proto/spec_gen.h"
#include "proto/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FRAME_MAX 131072u

/* Walks a validated table, recursing into nested tables and arrays (their
 * depth is already bounded by validation).  Iteration must not fail. */
static void walk(wr_bytes_t t, int is_table)
{
    wr_table_iter_t it;
    wr_bytes_t key;
    wr_field_t v;
    int rc;
    wr_table_iter_init(&it, t);
    while ((rc = is_table ? wr_table_next(&it, &key, &v) : wr_array_next(&it, &v)) == 1) {
        if (v.type == 'F')
            walk(v.v.bytes, 1);
        else if (v.type == 'A')
            walk(v.v.bytes, 0);
    }
    if (rc != 0)
        abort();
}

static void check_method(wr_bytes_t payload)
{
    wr_method_t m;
    if (wr_method_decode(payload.p, payload.n, &m) != 0)
        return;
    if (!wr_method_is_known(m.id) || wr_method_name(m.id) == NULL)
        abort();
    switch (m.id) {
    case WR_M_CONNECTION_START_OK:
        walk(m.u.connection_start_ok.client_properties, 1);
        break;
    case WR_M_QUEUE_DECLARE:
        walk(m.u.queue_declare.arguments, 1);
        break;
    case WR_M_BASIC_CONSUME:
        walk(m.u.basic_consume.arguments, 1);
        break;
    case WR_M_EXCHANGE_DECLARE:
        walk(m.u.exchange_declare.arguments, 1);
        break;
    case WR_M_QUEUE_BIND:
        walk(m.u.queue_bind.arguments, 1);
        break;
    default:
        break;
    }
}

static void check_header(wr_bytes_t payload)
{
    /* class-id (2), weight (2), body-size (8), then the property list. */
    if (payload.n < 12)
        return;
    wr_basic_props_t pr;
    if (wr_props_decode(payload.p + 12, payload.n - 12, &pr) != 0)
        return;
    if (pr.flags & WR_PROP_HEADERS)
        walk(pr.headers, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        wr_frame_t f;
        long n = wr_frame_parse(data + off, size - off, FUZZ_FRAME_MAX, &f);
        if (n <= 0)
            break;
        if ((size_t)n > size - off || f.payload.p != data + off + WR_FRAME_HEADER_SIZE ||
            f.payload.n + WR_FRAME_OVERHEAD != (size_t)n)
            abort();
        if (f.type == WR_AMQP_FRAME_METHOD)
            check_method(f.payload);
        else if (f.type == WR_AMQP_FRAME_HEADER)
            check_header(f.payload);
        off += (size_t)n;
    }
    return 0;
}
