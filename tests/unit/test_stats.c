/* test_stats.c - message statistics: rates, aggregates, sample rings. */
#include <stdlib.h>

#include "broker/conn.h"
#include "broker/stats.h"
#include "broker/vhost.h"
#include "test.h"

static void test_rates_are_per_second(void)
{
    wr_counters_t c = {{0}};
    wr_rates_t r = {{0}, {0}, {0}, {0}};
    c.n[WR_ST_PUBLISH] = 500;
    c.n[WR_ST_ACK] = 10;
    wr_stats_rate(&c, &r, 5000);
    CHECK(r.rate[WR_ST_PUBLISH] == 100.0f);
    CHECK(r.rate[WR_ST_ACK] == 2.0f);
    CHECK(r.prev[WR_ST_PUBLISH] == 500);
    /* The next interval counts only what happened in it. */
    c.n[WR_ST_PUBLISH] = 750;
    wr_stats_rate(&c, &r, 5000);
    CHECK(r.rate[WR_ST_PUBLISH] == 50.0f);
    CHECK(r.rate[WR_ST_ACK] == 0.0f);
    /* A counter that went back (an object replaced) is no negative rate. */
    c.n[WR_ST_PUBLISH] = 10;
    wr_stats_rate(&c, &r, 5000);
    CHECK(r.rate[WR_ST_PUBLISH] == 0.0f);
    wr_stats_rate(&c, &r, 0);
    CHECK(r.rate[WR_ST_PUBLISH] == 0.0f);
    /* Lengths may fall: their rate may be negative. */
    wr_stats_len_rate(100, 4, &r, 5000);
    wr_stats_len_rate(50, 4, &r, 5000);
    CHECK(r.len_rate[0] == -10.0f && r.len_rate[1] == 0.0f);
}

static void test_deliver_get_sums_four(void)
{
    wr_counters_t c = {{0}};
    c.n[WR_ST_DELIVER] = 1;
    c.n[WR_ST_DELIVER_NO_ACK] = 2;
    c.n[WR_ST_GET] = 4;
    c.n[WR_ST_GET_NO_ACK] = 8;
    c.n[WR_ST_GET_EMPTY] = 100; /* not a delivery */
    CHECK(wr_stats_deliver_get(&c) == 15);
    CHECK(strcmp(wr_stats_name(WR_ST_DELIVER_NO_ACK), "deliver_no_ack") == 0);
    CHECK(strcmp(wr_stats_name(WR_ST_DROP_UNROUTABLE), "drop_unroutable") == 0);
}

static void test_tick_aggregates_vhosts_and_node(void)
{
    if (wr_loop == NULL)
        wr_loop = uv_default_loop();
    wr_vhost_t *vh = wr_vhost_new("stats-test");
    wr_broker_vhost_add(vh);
    wr_queue_args_t qa;
    char err[200];
    CHECK(wr_queue_args_parse((wr_bytes_t){NULL, 0}, WR_BYTES_LIT("q"), "stats-test", &qa, err,
                              sizeof err) == 0);
    wr_queue_t *q = wr_queue_new(vh, WR_BYTES_LIT("q"), 0, 0, 0, NULL, (wr_bytes_t){NULL, 0}, &qa);
    CHECK(q != NULL);
    wr_stats_tick();
    uint64_t node_before = wr_stats_node()->total.n[WR_ST_PUBLISH];
    /* A closed channel's counters stay with its vhost. */
    wr_counters_t ch = {{0}};
    ch.n[WR_ST_PUBLISH] = 7;
    wr_stats_retire(vh, &ch);
    wr_stats_tick();
    CHECK(vh->stats.total.n[WR_ST_PUBLISH] == 7);
    CHECK(wr_stats_node()->total.n[WR_ST_PUBLISH] == node_before + 7);
    CHECK(vh->stats.ring != NULL && vh->stats.ring->count == 2);
    CHECK(wr_stats_last_tick_us() >= 0.0);
    /* The ring keeps the last WR_STATS_SAMPLES samples, oldest first. */
    for (int i = 0; i < WR_STATS_SAMPLES + 5; i++)
        wr_stats_tick();
    CHECK(vh->stats.ring->count == WR_STATS_SAMPLES);
    uint32_t first;
    const wr_samples_t *s = vh->stats.ring;
    int64_t newest = s->at[(s->head + s->count - 1) % WR_STATS_SAMPLES];
    CHECK(wr_stats_window(s, newest, 3600 * 1000, &first) == WR_STATS_SAMPLES);
    CHECK(first == s->head);
    /* Every sample was taken within this test: none older than a minute,
     * all older than "a minute from now" minus an hour. */
    CHECK(wr_stats_window(s, newest + 7200 * 1000, 3600 * 1000, &first) == 0);
    CHECK(wr_stats_window(NULL, newest, 1000, &first) == 0);
    wr_broker_vhost_remove(vh);
    uint64_t node_now = wr_stats_node()->total.n[WR_ST_PUBLISH];
    wr_vhost_free(vh);
    /* What a deleted vhost counted stays in the node's totals. */
    wr_stats_tick();
    CHECK(wr_stats_node()->total.n[WR_ST_PUBLISH] == node_now);
}

WR_SUITE(stats)
{
    RUN(test_rates_are_per_second);
    RUN(test_deliver_get_sums_four);
    RUN(test_tick_aggregates_vhosts_and_node);
}
