/* test_codec.c - the generated method and property codecs (spec_gen). */
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "proto/spec_gen.h"
#include "proto/table.h"
#include "test.h"

/* Encodes m, decodes the result into *out and checks that encoding *out
 * again gives the same bytes.  Leaves the first encoding in *b (the
 * decoded views point into it). */
static int round_trip(wr_buf_t *b, const wr_method_t *m, wr_method_t *out)
{
    wr_buf_init(b);
    wr_method_encode(b, m);
    int rc = wr_method_decode(b->p, b->len, out);
    if (rc != 0)
        return rc;
    wr_buf_t again;
    wr_buf_init(&again);
    wr_method_encode(&again, out);
    int same = again.len == b->len && memcmp(again.p, b->p, b->len) == 0;
    wr_buf_free(&again);
    return same ? 0 : -1;
}

static void test_spec_constants(void)
{
    CHECK_EQ(WR_AMQP_FRAME_METHOD, 1);
    CHECK_EQ(WR_AMQP_FRAME_HEADER, 2);
    CHECK_EQ(WR_AMQP_FRAME_BODY, 3);
    CHECK_EQ(WR_AMQP_FRAME_HEARTBEAT, 8);
    CHECK_EQ(WR_AMQP_FRAME_END, 206);
    CHECK_EQ(WR_AMQP_FRAME_MIN_SIZE, 4096);
    CHECK_EQ(WR_AMQP_REPLY_SUCCESS, 200);
    CHECK_EQ(WR_AMQP_NO_ROUTE, 312);
    CHECK_EQ(WR_AMQP_NOT_FOUND, 404);
    CHECK_EQ(WR_AMQP_PRECONDITION_FAILED, 406);
    CHECK_EQ(WR_AMQP_COMMAND_INVALID, 503);
    CHECK_EQ(WR_AMQP_NOT_IMPLEMENTED, 540);
    CHECK_EQ(WR_CLASS_CONNECTION, 10);
    CHECK_EQ(WR_CLASS_CHANNEL, 20);
    CHECK_EQ(WR_CLASS_EXCHANGE, 40);
    CHECK_EQ(WR_CLASS_QUEUE, 50);
    CHECK_EQ(WR_CLASS_BASIC, 60);
    CHECK_EQ(WR_CLASS_CONFIRM, 85);
    CHECK_EQ(WR_CLASS_TX, 90);
    CHECK_EQ(WR_M_BASIC_PUBLISH, 0x003C0028u);
    CHECK_EQ(WR_M_CONNECTION_START_OK, 0x000A000Bu);
    CHECK_EQ(WR_M_EXCHANGE_UNBIND_OK, 0x00280033u); /* RabbitMQ's 40.51 */
    CHECK_EQ(WR_M_BASIC_RECOVER_ASYNC, 0x003C0064u);
    CHECK_EQ(WR_M_CONFIRM_SELECT, WR_M_ID(85, 10));
    CHECK_EQ(WR_M_CLASS(WR_M_BASIC_NACK), 60);
    CHECK_EQ(WR_M_METHOD(WR_M_BASIC_NACK), 120);
}

static void test_reply_codes(void)
{
    CHECK_STR(wr_amqp_reply_name(200), "REPLY_SUCCESS");
    CHECK_STR(wr_amqp_reply_name(311), "CONTENT_TOO_LARGE");
    CHECK_STR(wr_amqp_reply_name(312), "NO_ROUTE");
    CHECK_STR(wr_amqp_reply_name(313), "NO_CONSUMERS");
    CHECK_STR(wr_amqp_reply_name(320), "CONNECTION_FORCED");
    CHECK_STR(wr_amqp_reply_name(402), "INVALID_PATH");
    CHECK_STR(wr_amqp_reply_name(403), "ACCESS_REFUSED");
    CHECK_STR(wr_amqp_reply_name(404), "NOT_FOUND");
    CHECK_STR(wr_amqp_reply_name(405), "RESOURCE_LOCKED");
    CHECK_STR(wr_amqp_reply_name(406), "PRECONDITION_FAILED");
    CHECK_STR(wr_amqp_reply_name(501), "FRAME_ERROR");
    CHECK_STR(wr_amqp_reply_name(502), "SYNTAX_ERROR");
    CHECK_STR(wr_amqp_reply_name(503), "COMMAND_INVALID");
    CHECK_STR(wr_amqp_reply_name(504), "CHANNEL_ERROR");
    CHECK_STR(wr_amqp_reply_name(505), "UNEXPECTED_FRAME");
    CHECK_STR(wr_amqp_reply_name(506), "RESOURCE_ERROR");
    CHECK_STR(wr_amqp_reply_name(530), "NOT_ALLOWED");
    CHECK_STR(wr_amqp_reply_name(540), "NOT_IMPLEMENTED");
    CHECK_STR(wr_amqp_reply_name(541), "INTERNAL_ERROR");
    CHECK(wr_amqp_reply_name(0) == NULL);
    CHECK(wr_amqp_reply_name(1) == NULL); /* frame-method is not a reply code */
    CHECK(wr_amqp_reply_name(999) == NULL);

    static const uint16_t hard[] = {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541};
    static const uint16_t soft[] = {200, 311, 312, 313, 403, 404, 405, 406, 0, 999};
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++)
        CHECK_EQ(wr_amqp_reply_is_hard(hard[i]), 1);
    for (size_t i = 0; i < sizeof soft / sizeof soft[0]; i++)
        CHECK_EQ(wr_amqp_reply_is_hard(soft[i]), 0);
}

static void test_method_names(void)
{
    CHECK_STR(wr_method_name(WR_M_BASIC_PUBLISH), "basic.publish");
    CHECK_STR(wr_method_name(WR_M_CONNECTION_START_OK), "connection.start-ok");
    CHECK_STR(wr_method_name(WR_M_BASIC_RECOVER_ASYNC), "basic.recover-async");
    CHECK_STR(wr_method_name(WR_M_CONFIRM_SELECT_OK), "confirm.select-ok");
    CHECK_STR(wr_method_name(WR_M_CONNECTION_BLOCKED), "connection.blocked");
    CHECK_STR(wr_method_name(WR_M_CONNECTION_UPDATE_SECRET_OK), "connection.update-secret-ok");
    CHECK(wr_method_name(0x003C0063u) == NULL);
    CHECK(wr_method_name(0) == NULL);

    CHECK_EQ(wr_method_has_content(WR_M_BASIC_PUBLISH), 1);
    CHECK_EQ(wr_method_has_content(WR_M_BASIC_RETURN), 1);
    CHECK_EQ(wr_method_has_content(WR_M_BASIC_DELIVER), 1);
    CHECK_EQ(wr_method_has_content(WR_M_BASIC_GET_OK), 1);
    CHECK_EQ(wr_method_has_content(WR_M_BASIC_GET), 0);
    CHECK_EQ(wr_method_has_content(WR_M_QUEUE_DECLARE), 0);
    CHECK_EQ(wr_method_has_content(0x12345678u), 0);

    CHECK_EQ(wr_method_is_known(WR_M_TX_ROLLBACK_OK), 1);
    CHECK_EQ(wr_method_is_known(WR_M_EXCHANGE_UNBIND_OK), 1);
    CHECK_EQ(wr_method_is_known(WR_M_ID(40, 41)), 0);
    CHECK_EQ(wr_method_is_known(WR_M_ID(60, 0)), 0);

    /* Every known id round-trips through its name's class prefix. */
    int known = 0;
    for (uint32_t cls = 0; cls < 100; cls++) {
        for (uint32_t meth = 0; meth < 130; meth++) {
            uint32_t id = WR_M_ID(cls, meth);
            if (!wr_method_is_known(id))
                continue;
            known++;
            CHECK(wr_method_name(id) != NULL);
        }
    }
    CHECK_EQ(known, 64); /* 60 from the XML, 4 RabbitMQ connection extensions */
}

static void test_publish_wire_bytes(void)
{
    wr_method_t m;
    memset(&m, 0, sizeof m);
    m.id = WR_M_BASIC_PUBLISH;
    m.u.basic_publish.exchange = WR_BYTES_LIT("amq");
    m.u.basic_publish.routing_key = WR_BYTES_LIT("rk");
    m.u.basic_publish.mandatory = 1;
    m.u.basic_publish.immediate = 0;

    static const uint8_t want[] = {0, 60, 0, 40, 0, 0, 3, 'a', 'm', 'q', 2, 'r', 'k', 0x01};
    wr_buf_t b;
    wr_buf_init(&b);
    wr_method_encode(&b, &m);
    CHECK_EQ(b.len, sizeof want);
    CHECK_MEM(b.p, want, sizeof want);

    wr_method_t d;
    CHECK_EQ(wr_method_decode(b.p, b.len, &d), 0);
    CHECK_EQ(d.id, WR_M_BASIC_PUBLISH);
    CHECK_EQ(d.u.basic_publish.reserved_1, 0);
    CHECK(wr_bytes_eq_str(d.u.basic_publish.exchange, "amq"));
    CHECK(wr_bytes_eq_str(d.u.basic_publish.routing_key, "rk"));
    CHECK_EQ(d.u.basic_publish.mandatory, 1);
    CHECK_EQ(d.u.basic_publish.immediate, 0);
    /* Views point into the input, not into copies. */
    CHECK(d.u.basic_publish.exchange.p == b.p + 7);

    /* Bits beyond the method's own are ignored; non-zero encodes as 1. */
    b.p[13] = 0xFE;
    CHECK_EQ(wr_method_decode(b.p, b.len, &d), 0);
    CHECK_EQ(d.u.basic_publish.mandatory, 0);
    CHECK_EQ(d.u.basic_publish.immediate, 1);
    d.u.basic_publish.mandatory = 7;
    wr_buf_t again;
    wr_buf_init(&again);
    wr_method_encode(&again, &d);
    CHECK_EQ(again.p[13], 0x03);
    wr_buf_free(&again);
    wr_buf_free(&b);
}

static void test_queue_declare_packed_bits(void)
{
    for (unsigned bits = 0; bits < 32; bits++) {
        wr_method_t m, d;
        memset(&m, 0, sizeof m);
        m.id = WR_M_QUEUE_DECLARE;
        wr_queue_declare_t *q = &m.u.queue_declare;
        q->queue = WR_BYTES_LIT("orders");
        q->passive = (uint8_t)(bits & 1);
        q->durable = (uint8_t)(bits >> 1 & 1);
        q->exclusive = (uint8_t)(bits >> 2 & 1);
        q->auto_delete = (uint8_t)(bits >> 3 & 1);
        q->no_wait = (uint8_t)(bits >> 4 & 1);
        wr_buf_t b;
        CHECK_EQ(round_trip(&b, &m, &d), 0);
        /* class, method, reserved-1, "orders", one bit octet, empty table */
        CHECK_EQ(b.len, 4 + 2 + 7 + 1 + 4);
        CHECK_EQ(b.p[13], bits); /* passive is the least significant bit */
        CHECK_EQ(wr_get_u32(b.p + 14), 0);
        const wr_queue_declare_t *r = &d.u.queue_declare;
        CHECK(wr_bytes_eq_str(r->queue, "orders"));
        CHECK_EQ(r->passive, q->passive);
        CHECK_EQ(r->durable, q->durable);
        CHECK_EQ(r->exclusive, q->exclusive);
        CHECK_EQ(r->auto_delete, q->auto_delete);
        CHECK_EQ(r->no_wait, q->no_wait);
        CHECK_EQ(r->arguments.n, 0);
        wr_buf_free(&b);
    }
}

/* A table {"x-message-ttl": I 60000, "x-dead-letter-exchange": S "dlx"}. */
static wr_bytes_t sample_args(wr_buf_t *tb)
{
    wr_buf_init(tb);
    size_t off = wr_table_begin(tb);
    wr_field_t ttl;
    memset(&ttl, 0, sizeof ttl);
    ttl.type = 'I';
    ttl.v.i = 60000;
    wr_table_put_key(tb, WR_BYTES_LIT("x-message-ttl"));
    wr_field_put(tb, &ttl);
    wr_field_t dlx = wr_field_longstr(WR_BYTES_LIT("dlx"));
    wr_table_put_key(tb, WR_BYTES_LIT("x-dead-letter-exchange"));
    wr_field_put(tb, &dlx);
    wr_table_end(tb, off);
    return (wr_bytes_t){tb->p + 4, tb->len - 4};
}

static void test_consume_and_exchange_declare(void)
{
    wr_buf_t tb, b;
    wr_bytes_t args = sample_args(&tb);

    wr_method_t m, d;
    memset(&m, 0, sizeof m);
    m.id = WR_M_BASIC_CONSUME;
    wr_basic_consume_t *c = &m.u.basic_consume;
    c->queue = WR_BYTES_LIT("q1");
    c->consumer_tag = WR_BYTES_LIT("ctag-1");
    c->no_local = 0;
    c->no_ack = 1;
    c->exclusive = 1;
    c->no_wait = 0;
    c->arguments = args;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK_EQ(d.id, WR_M_BASIC_CONSUME);
    CHECK(wr_bytes_eq_str(d.u.basic_consume.queue, "q1"));
    CHECK(wr_bytes_eq_str(d.u.basic_consume.consumer_tag, "ctag-1"));
    CHECK_EQ(d.u.basic_consume.no_local, 0);
    CHECK_EQ(d.u.basic_consume.no_ack, 1);
    CHECK_EQ(d.u.basic_consume.exclusive, 1);
    CHECK_EQ(d.u.basic_consume.no_wait, 0);
    CHECK(wr_bytes_eq(d.u.basic_consume.arguments, args));
    wr_field_t v;
    CHECK_EQ(wr_table_get(d.u.basic_consume.arguments, "x-message-ttl", &v), 1);
    CHECK_EQ(v.v.i, 60000);
    wr_buf_free(&b);

    memset(&m, 0, sizeof m);
    m.id = WR_M_EXCHANGE_DECLARE;
    wr_exchange_declare_t *x = &m.u.exchange_declare;
    x->exchange = WR_BYTES_LIT("logs");
    x->type = WR_BYTES_LIT("topic");
    x->passive = 0;
    x->durable = 1;
    x->auto_delete = 0;
    x->internal = 1;
    x->no_wait = 1;
    x->arguments = args;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    /* reserved-1, "logs", "topic", then the bit octet: durable (bit 1),
     * internal (bit 3), no-wait (bit 4). */
    CHECK_EQ(b.p[4 + 2 + 5 + 6], 0x1A);
    CHECK(wr_bytes_eq_str(d.u.exchange_declare.exchange, "logs"));
    CHECK(wr_bytes_eq_str(d.u.exchange_declare.type, "topic"));
    CHECK_EQ(d.u.exchange_declare.passive, 0);
    CHECK_EQ(d.u.exchange_declare.durable, 1);
    CHECK_EQ(d.u.exchange_declare.auto_delete, 0);
    CHECK_EQ(d.u.exchange_declare.internal, 1);
    CHECK_EQ(d.u.exchange_declare.no_wait, 1);
    CHECK(wr_bytes_eq(d.u.exchange_declare.arguments, args));
    wr_buf_free(&b);
    wr_buf_free(&tb);
}

static void test_numeric_fields(void)
{
    wr_method_t m, d;
    wr_buf_t b;

    memset(&m, 0, sizeof m);
    m.id = WR_M_BASIC_DELIVER;
    m.u.basic_deliver.consumer_tag = WR_BYTES_LIT("amq.ctag-x");
    m.u.basic_deliver.delivery_tag = (1ULL << 40) + 5;
    m.u.basic_deliver.redelivered = 1;
    m.u.basic_deliver.exchange = WR_BYTES_LIT("");
    m.u.basic_deliver.routing_key = WR_BYTES_LIT("hello");
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK(d.u.basic_deliver.delivery_tag == (1ULL << 40) + 5);
    CHECK_EQ(d.u.basic_deliver.redelivered, 1);
    CHECK_EQ(d.u.basic_deliver.exchange.n, 0);
    CHECK(wr_bytes_eq_str(d.u.basic_deliver.routing_key, "hello"));
    wr_buf_free(&b);

    memset(&m, 0, sizeof m);
    m.id = WR_M_CONNECTION_TUNE;
    m.u.connection_tune.channel_max = 2047;
    m.u.connection_tune.frame_max = 131072;
    m.u.connection_tune.heartbeat = 60;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    static const uint8_t tune[] = {0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60};
    CHECK_EQ(b.len, sizeof tune);
    CHECK_MEM(b.p, tune, sizeof tune);
    CHECK_EQ(d.u.connection_tune.channel_max, 2047);
    CHECK_EQ(d.u.connection_tune.frame_max, 131072);
    CHECK_EQ(d.u.connection_tune.heartbeat, 60);
    wr_buf_free(&b);

    memset(&m, 0, sizeof m);
    m.id = WR_M_BASIC_NACK;
    m.u.basic_nack.delivery_tag = UINT64_MAX;
    m.u.basic_nack.multiple = 0;
    m.u.basic_nack.requeue = 1;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK_EQ(b.p[12], 0x02);
    CHECK(d.u.basic_nack.delivery_tag == UINT64_MAX);
    CHECK_EQ(d.u.basic_nack.multiple, 0);
    CHECK_EQ(d.u.basic_nack.requeue, 1);
    wr_buf_free(&b);

    memset(&m, 0, sizeof m);
    m.id = WR_M_CHANNEL_CLOSE;
    m.u.channel_close.reply_code = WR_AMQP_NOT_FOUND;
    m.u.channel_close.reply_text = WR_BYTES_LIT("NOT_FOUND - no queue 'x'");
    m.u.channel_close.class_id = WR_CLASS_QUEUE;
    m.u.channel_close.method_id = 10;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK_EQ(d.u.channel_close.reply_code, 404);
    CHECK(wr_bytes_eq_str(d.u.channel_close.reply_text, "NOT_FOUND - no queue 'x'"));
    CHECK_EQ(d.u.channel_close.class_id, 50);
    CHECK_EQ(d.u.channel_close.method_id, 10);
    wr_buf_free(&b);

    /* RabbitMQ's connection.blocked extension (10.60), not in the XML. */
    static const uint8_t blocked[] = {0, 10, 0, 60, 6, 'm', 'e', 'm', 'o', 'r', 'y'};
    CHECK_EQ(wr_method_decode(blocked, sizeof blocked, &d), 0);
    CHECK_EQ(d.id, WR_M_CONNECTION_BLOCKED);
    CHECK(wr_bytes_eq_str(d.u.connection_blocked.reason, "memory"));
    memset(&m, 0, sizeof m);
    m.id = WR_M_CONNECTION_UPDATE_SECRET;
    m.u.connection_update_secret.new_secret = WR_BYTES_LIT("token");
    m.u.connection_update_secret.reason = WR_BYTES_LIT("refresh");
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK(wr_bytes_eq_str(d.u.connection_update_secret.new_secret, "token"));
    CHECK(wr_bytes_eq_str(d.u.connection_update_secret.reason, "refresh"));
    wr_buf_free(&b);

    memset(&m, 0, sizeof m);
    m.id = WR_M_CONFIRM_SELECT;
    m.u.confirm_select.nowait = 1;
    CHECK_EQ(round_trip(&b, &m, &d), 0);
    CHECK_EQ(b.len, 5);
    CHECK_EQ(d.u.confirm_select.nowait, 1);
    wr_buf_free(&b);
}

/* Every known method, zero-valued, survives encode -> decode -> encode. */
static void test_every_method_round_trips(void)
{
    int n = 0;
    for (uint32_t cls = 0; cls < 100; cls++) {
        for (uint32_t meth = 0; meth < 130; meth++) {
            uint32_t id = WR_M_ID(cls, meth);
            if (!wr_method_is_known(id))
                continue;
            wr_method_t m, d;
            memset(&m, 0, sizeof m);
            m.id = id;
            wr_buf_t b;
            CHECK_EQ(round_trip(&b, &m, &d), 0);
            CHECK_EQ(d.id, id);
            CHECK_EQ(wr_get_u32(b.p), id);
            /* One byte more is trailing garbage; one fewer is truncation. */
            wr_buf_put_u8(&b, 0);
            CHECK_EQ(wr_method_decode(b.p, b.len, &d), WR_EFRAME);
            if (b.len > 5)
                CHECK_EQ(wr_method_decode(b.p, b.len - 2, &d), WR_EFRAME);
            wr_buf_free(&b);
            n++;
        }
    }
    CHECK_EQ(n, 64);
}

/* connection.start-ok as a client sends it, written out byte by byte from
 * the spec's field list: client-properties (table), mechanism (shortstr),
 * response (longstr), locale (shortstr). */
static void test_start_ok_hand_written(void)
{
    static const uint8_t payload[] = {
        0, 10, 0, 11,
        /* client-properties: {"product": S "pika"} = 1+7+1+4+4 = 17 bytes */
        0, 0, 0, 17, 7, 'p', 'r', 'o', 'd', 'u', 'c', 't', 'S', 0, 0, 0, 4, 'p', 'i', 'k', 'a',
        /* mechanism */
        5, 'P', 'L', 'A', 'I', 'N',
        /* response: "\0guest\0guest" */
        0, 0, 0, 12, 0, 'g', 'u', 'e', 's', 't', 0, 'g', 'u', 'e', 's', 't',
        /* locale */
        5, 'e', 'n', '_', 'U', 'S'};
    wr_method_t d;
    CHECK_EQ(wr_method_decode(payload, sizeof payload, &d), 0);
    CHECK_EQ(d.id, WR_M_CONNECTION_START_OK);
    const wr_connection_start_ok_t *s = &d.u.connection_start_ok;
    CHECK_EQ(s->client_properties.n, 17);
    CHECK(s->client_properties.p == payload + 8);
    wr_field_t v;
    CHECK_EQ(wr_table_get(s->client_properties, "product", &v), 1);
    CHECK(wr_bytes_eq_str(v.v.bytes, "pika"));
    CHECK(wr_bytes_eq_str(s->mechanism, "PLAIN"));
    CHECK_EQ(s->response.n, 12);
    CHECK_MEM(s->response.p, "\0guest\0guest", 12);
    CHECK(wr_bytes_eq_str(s->locale, "en_US"));

    /* Re-encoding gives back exactly what the client sent. */
    wr_buf_t b;
    wr_buf_init(&b);
    wr_method_encode(&b, &d);
    CHECK_EQ(b.len, sizeof payload);
    CHECK_MEM(b.p, payload, sizeof payload);
    wr_buf_free(&b);

    /* Every truncation is a framing error, never a partial success. */
    for (size_t n = 0; n < sizeof payload; n++)
        CHECK_EQ(wr_method_decode(payload, n, &d), WR_EFRAME);

    /* A corrupt table (unknown type 'Z' instead of 'S') is refused. */
    uint8_t bad[sizeof payload];
    memcpy(bad, payload, sizeof payload);
    bad[16] = 'Z';
    CHECK_EQ(wr_method_decode(bad, sizeof bad, &d), WR_EFRAME);
    /* So is a table length that runs past the payload. */
    memcpy(bad, payload, sizeof payload);
    bad[7] = 200;
    CHECK_EQ(wr_method_decode(bad, sizeof bad, &d), WR_EFRAME);
}

static void test_unknown_and_short(void)
{
    wr_method_t d;
    static const uint8_t unknown[] = {0, 60, 0, 99, 1, 2, 3};
    CHECK_EQ(wr_method_decode(unknown, sizeof unknown, &d), WR_ENOTFOUND);
    CHECK_EQ(d.id, 0x003C0063u);
    static const uint8_t unknown_class[] = {0x12, 0x34, 0, 10};
    CHECK_EQ(wr_method_decode(unknown_class, sizeof unknown_class, &d), WR_ENOTFOUND);
    CHECK_EQ(d.id, 0x1234000Au);
    static const uint8_t short_payload[] = {0, 60, 0};
    for (size_t n = 0; n <= sizeof short_payload; n++)
        CHECK_EQ(wr_method_decode(short_payload, n, &d), WR_EFRAME);
    CHECK_EQ(wr_method_decode(NULL, 0, &d), WR_EFRAME);

    /* tx.select has no arguments: 4 bytes exactly. */
    static const uint8_t tx[] = {0, 90, 0, 10, 0};
    CHECK_EQ(wr_method_decode(tx, 4, &d), 0);
    CHECK_EQ(d.id, WR_M_TX_SELECT);
    CHECK_EQ(wr_method_decode(tx, 5, &d), WR_EFRAME);
}

static void test_bad_tables_in_arguments(void)
{
    wr_buf_t b;
    wr_buf_init(&b);
    /* queue.declare header by hand, then an arguments table we control. */
    static const uint8_t head[] = {0, 50, 0, 10, 0, 0, 1, 'q', 0};
    wr_buf_put(&b, head, sizeof head);
    size_t off = wr_table_begin(&b);
    /* One level deeper than warren accepts. */
    enum { LEVELS = WR_TABLE_MAX_DEPTH };
    for (int i = 0; i < LEVELS; i++) {
        wr_table_put_key(&b, WR_BYTES_LIT("a"));
        wr_buf_put_u8(&b, 'F');
        wr_table_begin(&b);
    }
    /* Patch the nested lengths from the inside out. */
    size_t pos = b.len;
    for (int i = LEVELS - 1; i >= 0; i--) {
        size_t lenpos = off + 4 + (size_t)i * 7 + 3;
        wr_set_u32(b.p + lenpos, (uint32_t)(pos - lenpos - 4));
    }
    wr_table_end(&b, off);
    wr_method_t d;
    CHECK_EQ(wr_method_decode(b.p, b.len, &d), WR_EDEPTH);

    /* An arguments table that claims one byte more than the payload holds. */
    wr_set_u32(b.p + off, wr_get_u32(b.p + off) + 1);
    CHECK_EQ(wr_method_decode(b.p, b.len, &d), WR_EFRAME);
    wr_buf_free(&b);
}

static void test_props_all_fields(void)
{
    wr_buf_t tb, b;
    wr_bytes_t headers = sample_args(&tb);
    wr_basic_props_t p, d;
    memset(&p, 0, sizeof p);
    p.flags = WR_PROP_CONTENT_TYPE | WR_PROP_CONTENT_ENCODING | WR_PROP_HEADERS |
              WR_PROP_DELIVERY_MODE | WR_PROP_PRIORITY | WR_PROP_CORRELATION_ID | WR_PROP_REPLY_TO |
              WR_PROP_EXPIRATION | WR_PROP_MESSAGE_ID | WR_PROP_TIMESTAMP | WR_PROP_TYPE |
              WR_PROP_USER_ID | WR_PROP_APP_ID | WR_PROP_CLUSTER_ID;
    CHECK_EQ(p.flags, WR_PROP_MASK);
    p.content_type = WR_BYTES_LIT("application/json");
    p.content_encoding = WR_BYTES_LIT("gzip");
    p.headers = headers;
    p.delivery_mode = 2;
    p.priority = 9;
    p.correlation_id = WR_BYTES_LIT("corr");
    p.reply_to = WR_BYTES_LIT("amq.rabbitmq.reply-to");
    p.expiration = WR_BYTES_LIT("60000");
    p.message_id = WR_BYTES_LIT("msg-1");
    p.timestamp = 1700000000;
    p.type = WR_BYTES_LIT("order.created");
    p.user_id = WR_BYTES_LIT("guest");
    p.app_id = WR_BYTES_LIT("shop");
    p.cluster_id = WR_BYTES_LIT("c1");

    wr_buf_init(&b);
    wr_props_encode(&b, &p);
    CHECK_EQ(wr_get_u16(b.p), 0xFFFC);
    CHECK_EQ(wr_props_decode(b.p, b.len, &d), 0);
    CHECK_EQ(d.flags, p.flags);
    CHECK(wr_bytes_eq(d.content_type, p.content_type));
    CHECK(wr_bytes_eq(d.content_encoding, p.content_encoding));
    CHECK(wr_bytes_eq(d.headers, headers));
    CHECK_EQ(d.delivery_mode, 2);
    CHECK_EQ(d.priority, 9);
    CHECK(wr_bytes_eq(d.correlation_id, p.correlation_id));
    CHECK(wr_bytes_eq(d.reply_to, p.reply_to));
    CHECK(wr_bytes_eq(d.expiration, p.expiration));
    CHECK(wr_bytes_eq(d.message_id, p.message_id));
    CHECK(d.timestamp == 1700000000);
    CHECK(wr_bytes_eq(d.type, p.type));
    CHECK(wr_bytes_eq(d.user_id, p.user_id));
    CHECK(wr_bytes_eq(d.app_id, p.app_id));
    CHECK(wr_bytes_eq(d.cluster_id, p.cluster_id));

    wr_buf_t again;
    wr_buf_init(&again);
    wr_props_encode(&again, &d);
    CHECK_EQ(again.len, b.len);
    CHECK_MEM(again.p, b.p, b.len);
    wr_buf_free(&again);

    /* Every truncation fails; so does a trailing byte. */
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ(wr_props_decode(b.p, n, &d), WR_EFRAME);
    wr_buf_put_u8(&b, 0);
    CHECK_EQ(wr_props_decode(b.p, b.len, &d), WR_EFRAME);
    wr_buf_free(&b);
    wr_buf_free(&tb);
}

static void test_props_none_and_hand_written(void)
{
    wr_basic_props_t p, d;
    memset(&p, 0, sizeof p);
    p.content_type = WR_BYTES_LIT("ignored: flag not set");
    wr_buf_t b;
    wr_buf_init(&b);
    wr_props_encode(&b, &p);
    CHECK_EQ(b.len, 2);
    CHECK_EQ(wr_get_u16(b.p), 0);
    memset(&d, 0xAA, sizeof d);
    CHECK_EQ(wr_props_decode(b.p, b.len, &d), 0);
    CHECK_EQ(d.flags, 0);
    CHECK_EQ(d.content_type.n, 0);
    CHECK(d.content_type.p == NULL);
    CHECK_EQ(d.delivery_mode, 0);
    CHECK(d.timestamp == 0);
    wr_buf_free(&b);

    /* content-type "text/plain" and delivery-mode 2, as pika sends them. */
    static const uint8_t hand[] = {0x90, 0x00, 10,  't', 'e', 'x', 't',
                                   '/',  'p',  'l', 'a', 'i', 'n', 2};
    CHECK_EQ(wr_props_decode(hand, sizeof hand, &d), 0);
    CHECK_EQ(d.flags, WR_PROP_CONTENT_TYPE | WR_PROP_DELIVERY_MODE);
    CHECK(wr_bytes_eq_str(d.content_type, "text/plain"));
    CHECK_EQ(d.delivery_mode, 2);
    CHECK_EQ(d.headers.n, 0);

    /* The continuation bit is refused. */
    static const uint8_t cont[] = {0x00, 0x01};
    CHECK_EQ(wr_props_decode(cont, sizeof cont, &d), WR_EFRAME);
    /* Bit 1 names no property: ignored and cleared. */
    static const uint8_t bit1[] = {0x10, 0x02, 1};
    CHECK_EQ(wr_props_decode(bit1, sizeof bit1, &d), 0);
    CHECK_EQ(d.flags, WR_PROP_DELIVERY_MODE);
    CHECK_EQ(d.delivery_mode, 1);
    /* Headers must be a well-formed table. */
    static const uint8_t bad_headers[] = {0x20, 0x00, 0, 0, 0, 3, 1, 'a', 'Z'};
    CHECK_EQ(wr_props_decode(bad_headers, sizeof bad_headers, &d), WR_EFRAME);
    static const uint8_t good_headers[] = {0x20, 0x00, 0, 0, 0, 3, 1, 'a', 'V'};
    CHECK_EQ(wr_props_decode(good_headers, sizeof good_headers, &d), 0);
    CHECK_EQ(d.headers.n, 3);
    CHECK_EQ(wr_props_decode(hand, 1, &d), WR_EFRAME);
    CHECK_EQ(wr_props_decode(NULL, 0, &d), WR_EFRAME);
}

WR_SUITE(codec)
{
    RUN(test_spec_constants);
    RUN(test_reply_codes);
    RUN(test_method_names);
    RUN(test_publish_wire_bytes);
    RUN(test_queue_declare_packed_bits);
    RUN(test_consume_and_exchange_declare);
    RUN(test_numeric_fields);
    RUN(test_every_method_round_trips);
    RUN(test_start_ok_hand_written);
    RUN(test_unknown_and_short);
    RUN(test_bad_tables_in_arguments);
    RUN(test_props_all_fields);
    RUN(test_props_none_and_hand_written);
}
