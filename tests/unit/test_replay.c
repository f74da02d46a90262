/* test_replay.c - taking entries out of a queue and putting them back
 * (dead-letter inspection and replay): order and delivery counts kept;
 * and the management API's binding properties keys. */
#include <stdlib.h>

#include "broker/queue.h"
#include "broker/vhost.h"
#include "mgmt/api_int.h"
#include "test.h"

static wr_msg_t *msg(uint8_t body)
{
    static const uint8_t no_props[2] = {0, 0};
    wr_msg_t *m = wr_msg_new(WR_BYTES_LIT(""), WR_BYTES_LIT("q"), (wr_bytes_t){no_props, 2}, 1);
    wr_msg_append_body(m, &body, 1);
    return m;
}

static void test_putback_keeps_order(void)
{
    if (wr_loop == NULL)
        wr_loop = uv_default_loop();
    wr_vhost_t *vh = wr_vhost_new("replay-test");
    wr_queue_args_t qa;
    char err[200];
    CHECK(wr_queue_args_parse((wr_bytes_t){NULL, 0}, WR_BYTES_LIT("q"), "replay-test", &qa, err,
                              sizeof err) == 0);
    wr_queue_t *q = wr_queue_new(vh, WR_BYTES_LIT("q"), 0, 0, 0, NULL, (wr_bytes_t){NULL, 0}, &qa);
    for (uint8_t i = 0; i < 5; i++) {
        wr_msg_t *m = msg(i);
        CHECK(wr_queue_push(q, m, (wr_loc_t){0, 0}) == 0);
        wr_msg_unref(m);
    }
    CHECK_EQ(q->st.n[WR_ST_PUBLISH], 5);
    wr_qent_t e[5];
    for (int i = 0; i < 5; i++)
        CHECK(wr_queue_pop(q, &e[i]));
    CHECK_EQ(wr_queue_ready(q), 0);
    /* Back in any order: they come out in their old order, not redelivered. */
    int order[5] = {3, 0, 4, 1, 2};
    for (int i = 0; i < 5; i++)
        wr_queue_putback(q, &e[order[i]]);
    CHECK_EQ(wr_queue_ready(q), 5);
    for (uint8_t i = 0; i < 5; i++) {
        wr_qent_t x;
        CHECK(wr_queue_pop(q, &x));
        CHECK_EQ(x.msg->body[0], i);
        CHECK_EQ(x.deliveries, 0);
        wr_queue_taken(q, &x);
    }
    wr_vhost_free(vh);
}

static void test_properties_keys(void)
{
    char k[200];
    wr_api_props_key(WR_BYTES_LIT("a.b"), (wr_bytes_t){NULL, 0}, k, sizeof k);
    CHECK_STR(k, "a.b");
    wr_api_props_key(WR_BYTES_LIT("rk/with spaces"), (wr_bytes_t){NULL, 0}, k, sizeof k);
    CHECK_STR(k, "rk%2Fwith+spaces"); /* as RabbitMQ encodes it */
    wr_api_props_key(WR_BYTES_LIT(""), (wr_bytes_t){NULL, 0}, k, sizeof k);
    CHECK_STR(k, "~");
    static const uint8_t args[] = {1, 'x', 't', 1};
    wr_api_props_key(WR_BYTES_LIT("k"), (wr_bytes_t){args, sizeof args}, k, sizeof k);
    CHECK(strncmp(k, "k~", 2) == 0 && strlen(k) == 8);
    char k2[200];
    static const uint8_t args2[] = {1, 'x', 't', 0};
    wr_api_props_key(WR_BYTES_LIT("k"), (wr_bytes_t){args2, sizeof args2}, k2, sizeof k2);
    CHECK(strcmp(k, k2) != 0); /* other arguments, another key */
}

WR_SUITE(replay)
{
    RUN(test_putback_keeps_order);
    RUN(test_properties_keys);
}
