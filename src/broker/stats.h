/*
 * stats.h - message statistics: counters where messages pass, rates
 * sampled on a tick, read by the management API, warrenctl and
 * Prometheus alike (issue 11).
 *
 * Counting costs one plain increment where the message already is: each
 * queue, exchange and channel embeds a wr_counters_t, and the hot path
 * does c->n[WR_ST_DELIVER]++ on an object whose cache line it is touching
 * anyway.  No locks, no atomics: everything runs on the broker's loop.
 *
 * Every collect_statistics_interval (5 s by default, as RabbitMQ) the
 * tick (wr_stats_tick) walks every object once and turns the counters
 * into rates: rate = (count now - count at the last tick) / interval.
 * That is RabbitMQ's "*_details.rate" for the default request.  A vhost
 * sums its channels' counters (the live ones at the tick plus those of
 * channels already closed, folded in by wr_stats_retire) and the node
 * sums its vhosts; both keep a ring of the last WR_STATS_SAMPLES samples
 * of their counters and queue lengths, for the charts of the overview
 * (msg_rates_age / lengths_age up to that window).
 */
#ifndef WR_STATS_H
#define WR_STATS_H

#include <stddef.h>
#include <stdint.h>

/* RabbitMQ's message_stats keys, in this order (wr_stats_name). */
typedef enum wr_stat {
    WR_ST_PUBLISH,           /* channel: published; queue: enqueued */
    WR_ST_PUBLISH_IN,        /* exchange: published into it */
    WR_ST_PUBLISH_OUT,       /* exchange: routed out of it, per queue */
    WR_ST_CONFIRM,           /* channel: publisher confirms sent */
    WR_ST_DELIVER,           /* basic.deliver to a consumer that acks */
    WR_ST_DELIVER_NO_ACK,    /* basic.deliver to a no-ack consumer */
    WR_ST_GET,               /* basic.get-ok, with ack */
    WR_ST_GET_NO_ACK,        /* basic.get-ok, no-ack */
    WR_ST_GET_EMPTY,         /* basic.get-empty */
    WR_ST_REDELIVER,         /* deliveries and gets with redelivered set */
    WR_ST_ACK,               /* acknowledgements */
    WR_ST_RETURN_UNROUTABLE, /* mandatory and routed nowhere: returned */
    WR_ST_DROP_UNROUTABLE,   /* not mandatory, routed nowhere: dropped */
    WR_ST_N
} wr_stat_t;

typedef struct wr_counters {
    uint64_t n[WR_ST_N];
} wr_counters_t;

/* What the tick keeps for one object: the counters at the last tick and
 * the rates (per second) over the last interval. */
typedef struct wr_rates {
    uint64_t prev[WR_ST_N];
    float rate[WR_ST_N];
    /* Queues and aggregates: ready and unacked then, and their rates. */
    uint64_t prev_len[2];
    float len_rate[2];
} wr_rates_t;

/* Queue lengths, for the node's and vhosts' rings. */
typedef struct wr_lengths {
    uint64_t ready, unacked;
} wr_lengths_t;

#define WR_STATS_SAMPLES 61 /* 5 min at 5 s, and the sample at its start */

/* A ring of samples, oldest first from head. */
typedef struct wr_samples {
    int64_t at[WR_STATS_SAMPLES]; /* wall-clock ms */
    wr_counters_t c[WR_STATS_SAMPLES];
    wr_lengths_t len[WR_STATS_SAMPLES];
    uint32_t head, count;
} wr_samples_t;

/* An aggregate (a vhost, the node): totals now, what closed channels
 * left, rates, and the ring. */
typedef struct wr_stats_agg {
    wr_counters_t total;   /* at the last tick */
    wr_counters_t retired; /* of channels closed since start */
    wr_rates_t rates;
    wr_lengths_t len;
    wr_samples_t *ring; /* allocated at the first tick */
} wr_stats_agg_t;

/*
 * Node-wide event counters that belong to no object (the churn of
 * connections, channels and queues, logins, routing, dead-lettering), as
 * RabbitMQ's Prometheus plugin exports them.  Each is a plain increment
 * where the event happens (wr_stats_count), never decremented; they count
 * from the start of the process.
 */
typedef enum wr_node_stat {
    WR_NS_CONNECTIONS_OPENED, /* connection.open accepted */
    WR_NS_CONNECTIONS_CLOSED, /* an opened connection went away */
    WR_NS_CHANNELS_OPENED,
    WR_NS_CHANNELS_CLOSED,
    WR_NS_QUEUES_DECLARED,  /* queue.declare (not passive) that succeeded */
    WR_NS_QUEUES_CREATED,   /* ... and made a new queue */
    WR_NS_QUEUES_DELETED,   /* any way a queue goes (not recovery's hidden ones) */
    WR_NS_RECEIVED_CONFIRM, /* messages received on channels in confirm mode */
    WR_NS_ROUTED,           /* messages routed, once per queue reached */
    WR_NS_AUTH_AMQP_OK,
    WR_NS_AUTH_AMQP_FAILED,
    WR_NS_AUTH_HTTP_OK,
    WR_NS_AUTH_HTTP_FAILED,
    /* Messages dead-lettered from classic queues, by reason, with a
     * dead-letter exchange (RabbitMQ's strategy "at_most_once") and
     * without one ("disabled": the message is dropped). */
    WR_NS_DL_EXPIRED,
    WR_NS_DL_MAXLEN,
    WR_NS_DL_REJECTED,
    WR_NS_DL_DELIVERY_LIMIT,
    WR_NS_DROP_EXPIRED,
    WR_NS_DROP_MAXLEN,
    WR_NS_DROP_REJECTED,
    WR_NS_DROP_DELIVERY_LIMIT,
    /* Quorum queues' at-least-once dead letters confirmed by their targets. */
    WR_NS_DL_CONFIRMED,
    WR_NS_N
} wr_node_stat_t;

extern uint64_t wr_stats_events[WR_NS_N];
/* Their rates per second over the last tick (the API's churn_rates). */
extern float wr_stats_event_rates[WR_NS_N];

static inline void wr_stats_count(wr_node_stat_t k)
{
    wr_stats_events[k]++;
}

/* A message leaves a queue dead-lettered for reason ("expired", "maxlen",
 * "rejected", "delivery_limit"), to a dead-letter exchange or dropped. */
void wr_stats_dead_lettered(const char *reason, int has_dlx);

/* RabbitMQ's key for s ("publish", "deliver_no_ack", ...). */
const char *wr_stats_name(wr_stat_t s);

/* deliver + deliver_no_ack + get + get_no_ack (RabbitMQ's deliver_get),
 * of counters or of rates. */
uint64_t wr_stats_deliver_get(const wr_counters_t *c);
float wr_stats_deliver_get_rate(const wr_rates_t *r);

/* Folds one object's counters into its rates over dt_ms. */
void wr_stats_rate(const wr_counters_t *c, wr_rates_t *r, int64_t dt_ms);

/* The same for queue lengths (ready, unacked). */
void wr_stats_len_rate(uint64_t ready, uint64_t unacked, wr_rates_t *r, int64_t dt_ms);

/* Adds a's counters to *into. */
void wr_stats_add(wr_counters_t *into, const wr_counters_t *a);

struct wr_vhost;

/* A channel closes: its counters stay in its vhost's totals (the node's
 * when vh is NULL). */
void wr_stats_retire(struct wr_vhost *vh, const wr_counters_t *c);
/* A vhost is deleted: what it counted stays in the node's totals. */
void wr_stats_vhost_gone(struct wr_vhost *vh);

/* Starts the tick every interval_ms (collect_statistics_interval); 0 or
 * less: the default 5000. */
void wr_stats_start(int64_t interval_ms);
void wr_stats_stop(void);

/* One tick now (also used by tests): every queue, exchange, channel and
 * connection's rates, the vhosts' and node's totals, rings. */
void wr_stats_tick(void);

/* The interval in ms, and the node's aggregate. */
int64_t wr_stats_interval(void);
const wr_stats_agg_t *wr_stats_node(void);

/* The node's counters now, not at the last tick: what closed channels
 * and deleted vhosts left plus every live channel's (for Prometheus,
 * which is scraped at its own pace). */
void wr_stats_node_now(wr_counters_t *out);

/* What the last tick cost, in microseconds (for docs and benchmarks). */
double wr_stats_last_tick_us(void);

/* The samples of a ring newer than now - age_ms, oldest first: returns
 * their count and sets *first to the index of the first (walk with
 * (first + k) % WR_STATS_SAMPLES). */
size_t wr_stats_window(const wr_samples_t *s, int64_t now, int64_t age_ms, uint32_t *first);

#endif
