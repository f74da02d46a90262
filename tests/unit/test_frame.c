/* test_frame.c - the frame parser and framing helpers. */
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "proto/frame.h"
#include "proto/spec_gen.h"
#include "test.h"

#define FRAME_MAX 131072u

/* Appends a method frame carrying connection.tune-ok on channel ch. */
static void put_tune_ok(wr_buf_t *b, uint16_t ch)
{
    wr_method_t m;
    memset(&m, 0, sizeof m);
    m.id = WR_M_CONNECTION_TUNE_OK;
    m.u.connection_tune_ok.channel_max = 2047;
    m.u.connection_tune_ok.frame_max = FRAME_MAX;
    m.u.connection_tune_ok.heartbeat = 60;
    size_t start = wr_frame_begin(b, WR_AMQP_FRAME_METHOD, ch);
    wr_method_encode(b, &m);
    wr_frame_end(b, start);
}

static void test_frame_complete(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    put_tune_ok(&b, 3);
    CHECK_EQ(b.len, 7 + 12 + 1);
    CHECK_EQ(b.p[0], 1);
    CHECK_EQ(wr_get_u16(b.p + 1), 3);
    CHECK_EQ(wr_get_u32(b.p + 3), 12);
    CHECK_EQ(b.p[b.len - 1], 0xCE);

    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(b.p, b.len, FRAME_MAX, &f), (long)b.len);
    CHECK_EQ(f.type, WR_AMQP_FRAME_METHOD);
    CHECK_EQ(f.channel, 3);
    CHECK_EQ(f.payload.n, 12);
    CHECK(f.payload.p == b.p + 7);

    wr_method_t m;
    CHECK_EQ(wr_method_decode(f.payload.p, f.payload.n, &m), 0);
    CHECK_EQ(m.id, WR_M_CONNECTION_TUNE_OK);
    CHECK_EQ(m.u.connection_tune_ok.frame_max, FRAME_MAX);
    wr_buf_free(&b);
}

static void test_frame_partial_every_prefix(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    put_tune_ok(&b, 1);
    wr_frame_t f = {0};
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ(wr_frame_parse(b.p, n, FRAME_MAX, &f), 0);
    CHECK_EQ(wr_frame_parse(b.p, b.len, FRAME_MAX, &f), (long)b.len);
    wr_buf_free(&b);
}

static void test_frame_back_to_back(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    put_tune_ok(&b, 0);
    wr_frame_put_heartbeat(&b);
    size_t start = wr_frame_begin(&b, WR_AMQP_FRAME_BODY, 7);
    wr_buf_put(&b, "hello", 5);
    wr_frame_end(&b, start);

    wr_frame_t f = {0};
    size_t off = 0;
    long n = wr_frame_parse(b.p, b.len, FRAME_MAX, &f);
    CHECK_EQ(n, 20);
    CHECK_EQ(f.type, 1);
    off += (size_t)n;
    n = wr_frame_parse(b.p + off, b.len - off, FRAME_MAX, &f);
    CHECK_EQ(n, 8);
    CHECK_EQ(f.type, WR_AMQP_FRAME_HEARTBEAT);
    off += (size_t)n;
    n = wr_frame_parse(b.p + off, b.len - off, FRAME_MAX, &f);
    CHECK_EQ(n, 13);
    CHECK_EQ(f.type, WR_AMQP_FRAME_BODY);
    CHECK_EQ(f.channel, 7);
    CHECK(wr_bytes_eq_str(f.payload, "hello"));
    off += (size_t)n;
    CHECK_EQ(off, b.len);
    CHECK_EQ(wr_frame_parse(b.p + off, 0, FRAME_MAX, &f), 0);
    wr_buf_free(&b);
}

static void test_frame_heartbeat(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    wr_frame_put_heartbeat(&b);
    static const uint8_t want[] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
    CHECK_EQ(b.len, sizeof want);
    CHECK_MEM(b.p, want, sizeof want);
    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(b.p, b.len, FRAME_MAX, &f), 8);
    CHECK_EQ(f.type, 8);
    CHECK_EQ(f.channel, 0);
    CHECK_EQ(f.payload.n, 0);
    /* The smallest frame_max that fits a heartbeat is its own 8 bytes. */
    CHECK_EQ(wr_frame_parse(b.p, b.len, 8, &f), 8);
    CHECK_EQ(wr_frame_parse(b.p, b.len, 7, &f), WR_ETOOBIG);
    wr_buf_free(&b);
}

static void test_frame_bad_end_octet(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    put_tune_ok(&b, 1);
    b.p[b.len - 1] = 0xCD;
    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(b.p, b.len, FRAME_MAX, &f), WR_EFRAME);
    /* Until the end octet arrives the frame is just incomplete. */
    CHECK_EQ(wr_frame_parse(b.p, b.len - 1, FRAME_MAX, &f), 0);
    wr_buf_free(&b);
}

static void test_frame_unknown_type(void)
{
    static const uint8_t types[] = {0, 4, 5, 7, 9, 'A', 0xCE, 0xFF};
    for (size_t i = 0; i < sizeof types; i++) {
        uint8_t fr[8] = {types[i], 0, 0, 0, 0, 0, 0, 0xCE};
        wr_frame_t f = {0};
        CHECK_EQ(wr_frame_parse(fr, sizeof fr, FRAME_MAX, &f), WR_EFRAME);
        /* The type is judged from the header alone. */
        CHECK_EQ(wr_frame_parse(fr, 7, FRAME_MAX, &f), WR_EFRAME);
    }
    /* "AMQP" (a protocol header sent again) is not a frame. */
    static const uint8_t hdr[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(hdr, sizeof hdr, FRAME_MAX, &f), WR_EFRAME);
}

static void test_frame_oversized(void)
{
    /* Only the 7-byte header: a 4 GiB payload is refused before any of it
     * arrives. */
    static const uint8_t huge[7] = {3, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF};
    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(huge, sizeof huge, FRAME_MAX, &f), WR_ETOOBIG);
    CHECK_EQ(wr_frame_parse(huge, sizeof huge, UINT32_MAX, &f), WR_ETOOBIG);

    /* Exactly frame_max including overhead is accepted; one more is not. */
    uint8_t hdr[7] = {3, 0, 1, 0, 0, 0, 0};
    wr_set_u32(hdr + 3, 4096 - 8);
    CHECK_EQ(wr_frame_parse(hdr, sizeof hdr, 4096, &f), 0);
    wr_set_u32(hdr + 3, 4096 - 7);
    CHECK_EQ(wr_frame_parse(hdr, sizeof hdr, 4096, &f), WR_ETOOBIG);
    /* A frame_max below the overhead refuses everything. */
    wr_set_u32(hdr + 3, 0);
    CHECK_EQ(wr_frame_parse(hdr, sizeof hdr, 0, &f), WR_ETOOBIG);

    wr_buf_t b;
    wr_buf_init(&b);
    size_t start = wr_frame_begin(&b, WR_AMQP_FRAME_BODY, 1);
    memset(wr_buf_reserve(&b, 4096 - 8), 'x', 4096 - 8);
    b.len += 4096 - 8;
    wr_frame_end(&b, start);
    CHECK_EQ(b.len, 4096);
    CHECK_EQ(wr_frame_parse(b.p, b.len, 4096, &f), 4096);
    CHECK_EQ(f.payload.n, 4096 - 8);
    CHECK_EQ(wr_frame_parse(b.p, b.len, 4095, &f), WR_ETOOBIG);
    wr_buf_free(&b);
}

static void test_frame_content_header(void)
{
    /* A content header: class 60, weight 0, body size 5, then properties. */
    wr_buf_t b;
    wr_buf_init(&b);
    size_t start = wr_frame_begin(&b, WR_AMQP_FRAME_HEADER, 1);
    wr_buf_put_u16(&b, WR_CLASS_BASIC);
    wr_buf_put_u16(&b, 0);
    wr_buf_put_u64(&b, 5);
    wr_basic_props_t p;
    memset(&p, 0, sizeof p);
    p.flags = WR_PROP_DELIVERY_MODE | WR_PROP_MESSAGE_ID;
    p.delivery_mode = 2;
    p.message_id = WR_BYTES_LIT("id-7");
    wr_props_encode(&b, &p);
    wr_frame_end(&b, start);

    wr_frame_t f = {0};
    CHECK_EQ(wr_frame_parse(b.p, b.len, FRAME_MAX, &f), (long)b.len);
    CHECK_EQ(f.type, WR_AMQP_FRAME_HEADER);
    CHECK_EQ(wr_get_u16(f.payload.p), 60);
    CHECK(wr_get_u64(f.payload.p + 4) == 5);
    wr_basic_props_t d;
    CHECK_EQ(wr_props_decode(f.payload.p + 12, f.payload.n - 12, &d), 0);
    CHECK_EQ(d.flags, p.flags);
    CHECK_EQ(d.delivery_mode, 2);
    CHECK(wr_bytes_eq_str(d.message_id, "id-7"));
    wr_buf_free(&b);
}

WR_SUITE(frame)
{
    RUN(test_frame_complete);
    RUN(test_frame_partial_every_prefix);
    RUN(test_frame_back_to_back);
    RUN(test_frame_heartbeat);
    RUN(test_frame_bad_end_octet);
    RUN(test_frame_unknown_type);
    RUN(test_frame_oversized);
    RUN(test_frame_content_header);
}
