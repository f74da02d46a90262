/* stats.c - message statistics and their tick (see stats.h). */
#include "broker/stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "broker/conn.h"
#include "broker/queue.h"
#include "broker/vhost.h"
#include "core/buf.h"
#include "core/loop.h"

static const char *const names[WR_ST_N] = {
    "publish",         "publish_in",     "publish_out", "confirm",
    "deliver",         "deliver_no_ack", "get",         "get_no_ack",
    "get_empty",       "redeliver",      "ack",         "return_unroutable",
    "drop_unroutable",
};

static uv_timer_t timer;
static int timer_on;
static int64_t interval = 5000;
static int64_t last_tick; /* loop ms, 0: never */
static double last_tick_us;
static wr_stats_agg_t node;
uint64_t wr_stats_events[WR_NS_N];
float wr_stats_event_rates[WR_NS_N];
static uint64_t events_prev[WR_NS_N];

const char *wr_stats_name(wr_stat_t s)
{
    return s < WR_ST_N ? names[s] : "?";
}

uint64_t wr_stats_deliver_get(const wr_counters_t *c)
{
    return c->n[WR_ST_DELIVER] + c->n[WR_ST_DELIVER_NO_ACK] + c->n[WR_ST_GET] +
           c->n[WR_ST_GET_NO_ACK];
}

float wr_stats_deliver_get_rate(const wr_rates_t *r)
{
    return r->rate[WR_ST_DELIVER] + r->rate[WR_ST_DELIVER_NO_ACK] + r->rate[WR_ST_GET] +
           r->rate[WR_ST_GET_NO_ACK];
}

void wr_stats_rate(const wr_counters_t *c, wr_rates_t *r, int64_t dt_ms)
{
    for (int i = 0; i < WR_ST_N; i++) {
        uint64_t d = c->n[i] >= r->prev[i] ? c->n[i] - r->prev[i] : 0;
        r->rate[i] = dt_ms > 0 ? (float)((double)d * 1000.0 / (double)dt_ms) : 0.0f;
        r->prev[i] = c->n[i];
    }
}

void wr_stats_len_rate(uint64_t ready, uint64_t unacked, wr_rates_t *r, int64_t dt_ms)
{
    uint64_t now[2] = {ready, unacked};
    for (int i = 0; i < 2; i++) {
        double d = (double)now[i] - (double)r->prev_len[i];
        r->len_rate[i] = dt_ms > 0 ? (float)(d * 1000.0 / (double)dt_ms) : 0.0f;
        r->prev_len[i] = now[i];
    }
}

void wr_stats_add(wr_counters_t *into, const wr_counters_t *a)
{
    for (int i = 0; i < WR_ST_N; i++)
        into->n[i] += a->n[i];
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static float byte_rate(uint64_t d, int64_t dt_ms)
{
    return dt_ms > 0 ? (float)((double)d * 1000.0 / (double)dt_ms) : 0.0f;
}

static void sample(wr_stats_agg_t *a, int64_t at)
{
    if (a->ring == NULL)
        a->ring = wr_xcalloc(1, sizeof *a->ring);
    wr_samples_t *s = a->ring;
    uint32_t slot = (s->head + s->count) % WR_STATS_SAMPLES;
    if (s->count == WR_STATS_SAMPLES)
        s->head = (s->head + 1) % WR_STATS_SAMPLES;
    else
        s->count++;
    s->at[slot] = at;
    s->c[slot] = a->total;
    s->len[slot] = a->len;
}

void wr_stats_tick(void)
{
    uint64_t t0 = uv_hrtime();
    int64_t now = wr_now_ms();
    int64_t dt = last_tick ? now - last_tick : interval;
    last_tick = now;
    int64_t at = wall_ms();

    /* Channels first: their counters make the vhosts' totals. */
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        vh->stats.total = vh->stats.retired;
        vh->stats.len = (wr_lengths_t){0, 0};
    }
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        c->rate_in = byte_rate(c->sock->bytes_in - c->prev_in, dt);
        c->rate_out = byte_rate(c->sock->bytes_out - c->prev_out, dt);
        c->prev_in = c->sock->bytes_in;
        c->prev_out = c->sock->bytes_out;
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next) {
            wr_stats_rate(&ch->st, &ch->rt, dt);
            if (c->vhost)
                wr_stats_add(&c->vhost->stats.total, &ch->st);
        }
    }
    node.total = node.retired;
    node.len = (wr_lengths_t){0, 0};
    i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->queues, &k, &sl)) {
            wr_queue_t *q = sl->value;
            wr_stats_rate(&q->st, &q->rt, dt);
            wr_stats_len_rate(wr_queue_ready(q), q->unacked, &q->rt, dt);
            vh->stats.len.ready += wr_queue_ready(q);
            vh->stats.len.unacked += q->unacked;
        }
        k = 0;
        while (wr_map_next(&vh->exchanges, &k, &sl)) {
            wr_exchange_t *x = sl->value;
            wr_stats_rate(&x->st, &x->rt, dt);
        }
        wr_stats_rate(&vh->stats.total, &vh->stats.rates, dt);
        wr_stats_len_rate(vh->stats.len.ready, vh->stats.len.unacked, &vh->stats.rates, dt);
        sample(&vh->stats, at);
        wr_stats_add(&node.total, &vh->stats.total);
        node.len.ready += vh->stats.len.ready;
        node.len.unacked += vh->stats.len.unacked;
    }
    wr_stats_rate(&node.total, &node.rates, dt);
    for (int k = 0; k < WR_NS_N; k++) {
        wr_stats_event_rates[k] = byte_rate(wr_stats_events[k] - events_prev[k], dt);
        events_prev[k] = wr_stats_events[k];
    }
    wr_stats_len_rate(node.len.ready, node.len.unacked, &node.rates, dt);
    sample(&node, at);
    last_tick_us = (double)(uv_hrtime() - t0) / 1000.0;
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    wr_stats_tick();
}

void wr_stats_start(int64_t interval_ms)
{
    interval = interval_ms > 0 ? interval_ms : 5000;
    if (!timer_on) {
        uv_timer_init(wr_loop, &timer);
        timer_on = 1;
    }
    last_tick = wr_now_ms();
    uv_timer_start(&timer, on_timer, (uint64_t)interval, (uint64_t)interval);
}

void wr_stats_stop(void)
{
    if (timer_on)
        uv_timer_stop(&timer);
}

int64_t wr_stats_interval(void)
{
    return interval;
}

const wr_stats_agg_t *wr_stats_node(void)
{
    return &node;
}

double wr_stats_last_tick_us(void)
{
    return last_tick_us;
}

void wr_stats_retire(wr_vhost_t *vh, const wr_counters_t *c)
{
    if (vh)
        wr_stats_add(&vh->stats.retired, c);
    else
        wr_stats_add(&node.retired, c);
}

void wr_stats_vhost_gone(wr_vhost_t *vh)
{
    /* What a deleted vhost's channels did stays in the node's totals. */
    wr_stats_add(&node.retired, &vh->stats.retired);
    free(vh->stats.ring);
    vh->stats.ring = NULL;
}

size_t wr_stats_window(const wr_samples_t *s, int64_t now, int64_t age_ms, uint32_t *first)
{
    *first = s ? s->head : 0;
    if (s == NULL)
        return 0;
    size_t n = s->count;
    while (n > 0 && s->at[*first] < now - age_ms) {
        *first = (*first + 1) % WR_STATS_SAMPLES;
        n--;
    }
    return n;
}

void wr_stats_dead_lettered(const char *reason, int has_dlx)
{
    int k;
    switch (reason[0]) {
    case 'e':
        k = 0;
        break;
    case 'm':
        k = 1;
        break;
    case 'r':
        k = 2;
        break;
    default:
        k = 3;
        break;
    }
    wr_stats_count((wr_node_stat_t)((has_dlx ? WR_NS_DL_EXPIRED : WR_NS_DROP_EXPIRED) + k));
}

void wr_stats_node_now(wr_counters_t *out)
{
    *out = node.retired;
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
        wr_stats_add(out, &vh->stats.retired);
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next)
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next)
            wr_stats_add(out, &ch->st);
}
