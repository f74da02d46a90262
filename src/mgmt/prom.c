/*
 * prom.c - the Prometheus exporter (see prom.h).
 *
 * A scrape walks the broker's objects once per family: every family is
 * one "# TYPE" and "# HELP" pair followed by its samples, so the
 * per-object registries visit every queue (or channel, connection) once
 * for each of their families.  Nothing is cached between scrapes; the
 * counters are the same plain integers the management API reads, so a
 * scrape costs a few list walks and string formatting, on the loop.
 *
 * Families come from tables (name, type, help, RabbitMQ's metric group
 * and which value to read) so that the aggregated registry (one sum per
 * family), the per-object one and the detailed one are the same code.
 */
#include "mgmt/prom.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <uv.h>

#include "admin/info.h"
#include "broker/conn.h"
#include "broker/queue.h"
#include "broker/stats.h"
#include "broker/vhost.h"
#include "core/config.h"
#include "core/version.h"

#define CONTENT_TYPE "text/plain; version=0.0.4"

enum { REG_DEFAULT, REG_PER_OBJECT, REG_DETAILED, REG_N };
static const char *const reg_names[REG_N] = {"default", "per-object", "detailed"};

/* What earlier scrapes cost, per registry (telemetry_scrape_*). */
static struct {
    uint64_t count;
    double seconds;
    uint64_t bytes;
} tel[REG_N];

/* RabbitMQ's metric groups: the family= values of /metrics/detailed. */
enum {
    G_CONNECTION_CHURN = 1u << 0,
    G_NODE_COARSE = 1u << 1,
    G_NODE = 1u << 2,
    G_AUTH = 1u << 3,
    G_QUEUE_COARSE = 1u << 4,
    G_QUEUE_CONSUMER_COUNT = 1u << 5,
    G_QUEUE = 1u << 6,
    G_CHANNEL = 1u << 7,
    G_CHANNEL_EXCHANGE = 1u << 8,
    G_CHANNEL_QUEUE = 1u << 9,
    G_CONNECTION_COARSE = 1u << 10,
    G_CONNECTION = 1u << 11,
    G_CHANNEL_QUEUE_EXCHANGE = 1u << 12,
    G_VHOST_STATUS = 1u << 13,
    G_EXCHANGE_BINDINGS = 1u << 14,
    G_EXCHANGE_NAMES = 1u << 15,
    G_NONE = 0, /* a group RabbitMQ has and warren has nothing for */
};

static const struct {
    const char *name;
    unsigned bits;
} group_names[] = {
    {"connection_churn_metrics", G_CONNECTION_CHURN},
    {"node_coarse_metrics", G_NODE_COARSE},
    {"node_metrics", G_NODE},
    {"auth_attempt_metrics", G_AUTH},
    {"queue_coarse_metrics", G_QUEUE_COARSE},
    {"queue_consumer_count", G_QUEUE_CONSUMER_COUNT},
    {"queue_metrics", G_QUEUE},
    {"channel_metrics", G_CHANNEL},
    {"channel_exchange_metrics", G_CHANNEL_EXCHANGE},
    {"channel_queue_metrics", G_CHANNEL_QUEUE},
    {"connection_coarse_metrics", G_CONNECTION_COARSE},
    {"connection_metrics", G_CONNECTION},
    {"channel_queue_exchange_metrics", G_CHANNEL_QUEUE_EXCHANGE},
    {"vhost_status", G_VHOST_STATUS},
    {"exchange_bindings", G_EXCHANGE_BINDINGS},
    {"exchange_names", G_EXCHANGE_NAMES},
    /* Groups of Erlang processes, Raft, the persister's file I/O and
     * per-source logins: nothing warren measures (docs/metrics.md). */
    {"channel_process_metrics", G_NONE},
    {"connection_process_metrics", G_NONE},
    {"queue_delivery_metrics", G_NONE},
    {"queue_exchange_metrics", G_NONE},
    {"node_persister_metrics", G_NONE},
    {"ra_metrics", G_NONE},
    {"auth_attempt_detailed_metrics", G_NONE},
};

#define MAX_VHOSTS 32

/* One scrape being written. */
typedef struct scrape {
    wr_buf_t *out;
    const char *prefix; /* "rabbitmq_" or "rabbitmq_detailed_" */
    int per_object;
    unsigned groups;
    /* /metrics/detailed?vhost=: only these vhosts' objects (none: all). */
    char *vhosts[MAX_VHOSTS];
    size_t n_vhosts;
    wr_map_t ub; /* unacked bytes per queue (admin/info.h) */
} scrape_t;

static void put(scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(scrape_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        wr_buf_put(s->out, tmp, (size_t)n);
        return;
    }
    char *p = (char *)wr_buf_reserve(s->out, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->out->len += (size_t)n;
}

static void put_value(scrape_t *s, double v)
{
    if (isnan(v))
        put(s, " NaN\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        put(s, " %.0f\n", v);
    else
        put(s, " %.15g\n", v);
}

/* "# TYPE" then "# HELP", RabbitMQ's order. */
static void head(scrape_t *s, const char *prefix, const char *name, const char *type,
                 const char *help)
{
    put(s, "# TYPE %s%s %s\n# HELP %s%s %s\n", prefix, name, type, prefix, name, help);
}

/* Label sets: key="value" pairs, values escaped as the format asks. */
typedef struct labels {
    char s[2400];
    size_t n;
} labels_t;

static void lbl(labels_t *l, const char *key, const char *v, size_t vlen)
{
    size_t need = strlen(key) + 2 * vlen + 8;
    if (need > sizeof l->s - l->n)
        return; /* cannot happen with names of at most 255 bytes */
    l->n += (size_t)snprintf(l->s + l->n, sizeof l->s - l->n, "%s%s=\"", l->n ? "," : "", key);
    for (size_t i = 0; i < vlen; i++) {
        char ch = v[i];
        if (ch == '\\' || ch == '"') {
            l->s[l->n++] = '\\';
            l->s[l->n++] = ch;
        } else if (ch == '\n') {
            l->s[l->n++] = '\\';
            l->s[l->n++] = 'n';
        } else {
            l->s[l->n++] = ch;
        }
    }
    l->s[l->n++] = '"';
    l->s[l->n] = '\0';
}

static void lbl_str(labels_t *l, const char *key, const char *v)
{
    lbl(l, key, v, strlen(v));
}

static void sample(scrape_t *s, const char *prefix, const char *name, const labels_t *l, double v)
{
    if (l && l->n)
        put(s, "%s%s{%s}", prefix, name, l->s);
    else
        put(s, "%s%s", prefix, name);
    put_value(s, v);
}

static int vhost_wanted(const scrape_t *s, const wr_vhost_t *vh)
{
    if (s->n_vhosts == 0)
        return 1;
    if (vh == NULL)
        return 0;
    for (size_t i = 0; i < s->n_vhosts; i++)
        if (strcmp(s->vhosts[i], vh->name) == 0)
            return 1;
    return 0;
}

/* ---- queues ------------------------------------------------------------ */

enum {
    Q_READY,
    Q_UNACKED,
    Q_MESSAGES,
    Q_CONSUMERS,
    Q_CAPACITY,
    Q_BYTES,
    Q_READY_BYTES,
    Q_UNACKED_BYTES,
    Q_PUBLISHED,
};

typedef struct family {
    const char *name, *type, *help;
    unsigned groups;
    int what;
} family_t;

static const family_t queue_families[] = {
    {"queue_messages_ready", "gauge", "Messages ready to be delivered to consumers", G_QUEUE_COARSE,
     Q_READY},
    {"queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged",
     G_QUEUE_COARSE, Q_UNACKED},
    {"queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth",
     G_QUEUE_COARSE, Q_MESSAGES},
    {"queue_consumers", "gauge", "Consumers on a queue", G_QUEUE | G_QUEUE_CONSUMER_COUNT,
     Q_CONSUMERS},
    {"queue_consumer_capacity", "gauge", "Consumer capacity", G_QUEUE, Q_CAPACITY},
    {"queue_consumer_utilisation", "gauge", "Same as consumer capacity", G_QUEUE, Q_CAPACITY},
    {"queue_messages_bytes", "gauge", "Size in bytes of ready and unacknowledged messages", G_QUEUE,
     Q_BYTES},
    {"queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages", G_QUEUE,
     Q_READY_BYTES},
    {"queue_messages_unacked_bytes", "gauge", "Size in bytes of all unacknowledged messages",
     G_QUEUE, Q_UNACKED_BYTES},
};

static double queue_value(scrape_t *s, const wr_queue_t *q, int what)
{
    size_t ready = wr_queue_ready(q);
    uint64_t ub =
        (uint64_t)(uintptr_t)wr_map_get(&s->ub, (wr_bytes_t){(const uint8_t *)&q, sizeof q});
    switch (what) {
    case Q_READY:
        return (double)ready;
    case Q_UNACKED:
        return (double)q->unacked;
    case Q_MESSAGES:
        return (double)(ready + q->unacked);
    case Q_CONSUMERS:
        return (double)q->n_consumers;
    case Q_CAPACITY:
        /* The management API's figure (admin/info.c): 1 while the queue
         * has consumers and nothing waits for them. */
        return q->n_consumers && ready == 0 ? 1.0 : 0.0;
    case Q_BYTES:
        return (double)(q->sm.ready_bytes + ub);
    case Q_READY_BYTES:
        return (double)q->sm.ready_bytes;
    case Q_UNACKED_BYTES:
        return (double)ub;
    case Q_PUBLISHED:
        return (double)q->st.n[WR_ST_PUBLISH];
    default:
        return 0;
    }
}

/* The queues a scrape covers, one after the other (hidden delay queues
 * are no queues to anyone outside). */
typedef struct qiter {
    size_t vi, qi;
    wr_vhost_t *vh;
} qiter_t;

static const wr_queue_t *next_queue(const scrape_t *s, qiter_t *it)
{
    for (;;) {
        if (it->vh == NULL) {
            if ((it->vh = wr_broker_vhost_next(&it->vi)) == NULL)
                return NULL;
            it->qi = 0;
            if (!vhost_wanted(s, it->vh)) {
                it->vh = NULL;
                continue;
            }
        }
        wr_map_slot_t *sl;
        if (!wr_map_next(&it->vh->queues, &it->qi, &sl)) {
            it->vh = NULL;
            continue;
        }
        const wr_queue_t *q = sl->value;
        if (!q->delay)
            return q;
    }
}

static void queue_family(scrape_t *s, const family_t *f)
{
    head(s, s->prefix, f->name, f->type, f->help);
    double sum = 0;
    qiter_t it = {0, 0, NULL};
    for (const wr_queue_t *q; (q = next_queue(s, &it));) {
        double v = queue_value(s, q, f->what);
        if (!s->per_object) {
            sum += v;
            continue;
        }
        labels_t l = {"", 0};
        if (f->what == Q_PUBLISHED) {
            lbl_str(&l, "queue_vhost", q->vhost->name);
            lbl(&l, "queue", q->name, q->name_len);
        } else {
            lbl_str(&l, "vhost", q->vhost->name);
            lbl(&l, "queue", q->name, q->name_len);
        }
        sample(s, s->prefix, f->name, &l, v);
    }
    if (!s->per_object)
        sample(s, s->prefix, f->name, NULL, sum);
}

/* ---- channels and connections ------------------------------------------ */

enum {
    CH_CONSUMERS,
    CH_UNACKED,
    CH_UNCONFIRMED,
    CH_UNCOMMITTED,
    CH_ACKS_UNCOMMITTED,
    CH_CONSUMER_PREFETCH,
    CH_PREFETCH,
    CH_STAT, /* CH_STAT + wr_stat_t: a message counter */
};

static const family_t channel_families[] = {
    {"channel_consumers", "gauge", "Consumers on a channel", G_CHANNEL, CH_CONSUMERS},
    {"channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages", G_CHANNEL,
     CH_UNACKED},
    {"channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages", G_CHANNEL,
     CH_UNCONFIRMED},
    {"channel_messages_uncommitted", "gauge",
     "Messages received in a transaction but not yet committed", G_CHANNEL, CH_UNCOMMITTED},
    {"channel_acks_uncommitted", "gauge",
     "Message acknowledgements in a transaction not yet committed", G_CHANNEL, CH_ACKS_UNCOMMITTED},
    {"consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer", G_CHANNEL,
     CH_CONSUMER_PREFETCH},
    {"channel_prefetch", "gauge",
     "Total limit of unacknowledged messages for all consumers on a channel", G_CHANNEL,
     CH_PREFETCH},
    {"channel_messages_published_total", "counter",
     "Total number of messages published into an exchange on a channel", G_CHANNEL_EXCHANGE,
     CH_STAT + WR_ST_PUBLISH},
    {"channel_messages_confirmed_total", "counter",
     "Total number of messages published into an exchange and confirmed on the channel",
     G_CHANNEL_EXCHANGE, CH_STAT + WR_ST_CONFIRM},
    {"channel_messages_unroutable_returned_total", "counter",
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable",
     G_CHANNEL_EXCHANGE, CH_STAT + WR_ST_RETURN_UNROUTABLE},
    {"channel_messages_unroutable_dropped_total", "counter",
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable",
     G_CHANNEL_EXCHANGE, CH_STAT + WR_ST_DROP_UNROUTABLE},
    {"channel_get_ack_total", "counter",
     "Total number of messages fetched with basic.get in manual acknowledgement mode",
     G_CHANNEL_QUEUE, CH_STAT + WR_ST_GET},
    {"channel_get_total", "counter",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode",
     G_CHANNEL_QUEUE, CH_STAT + WR_ST_GET_NO_ACK},
    {"channel_messages_delivered_ack_total", "counter",
     "Total number of messages delivered to consumers in manual acknowledgement mode",
     G_CHANNEL_QUEUE, CH_STAT + WR_ST_DELIVER},
    {"channel_messages_delivered_total", "counter",
     "Total number of messages delivered to consumers in automatic acknowledgement mode",
     G_CHANNEL_QUEUE, CH_STAT + WR_ST_DELIVER_NO_ACK},
    {"channel_messages_redelivered_total", "counter",
     "Total number of messages redelivered to consumers", G_CHANNEL_QUEUE,
     CH_STAT + WR_ST_REDELIVER},
    {"channel_messages_acked_total", "counter",
     "Total number of messages acknowledged by consumers", G_CHANNEL_QUEUE, CH_STAT + WR_ST_ACK},
    {"channel_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message", G_CHANNEL_QUEUE,
     CH_STAT + WR_ST_GET_EMPTY},
};

static double channel_value(const wr_channel_t *ch, int what)
{
    if (what >= CH_STAT)
        return (double)ch->st.n[what - CH_STAT];
    size_t n = 0;
    switch (what) {
    case CH_CONSUMERS:
        return (double)ch->consumers.count;
    case CH_UNACKED:
        return (double)ch->n_unacked;
    case CH_UNCONFIRMED:
        return ch->confirm ? (double)(ch->pub_seq - ch->confirm_sent) : 0.0;
    case CH_UNCOMMITTED:
    case CH_ACKS_UNCOMMITTED:
        for (size_t i = 0; i < ch->n_txops; i++)
            n += ch->txops[i].kind == (what == CH_UNCOMMITTED ? 0 : 1);
        return (double)n;
    case CH_CONSUMER_PREFETCH:
        return (double)ch->prefetch_consumer;
    case CH_PREFETCH:
        return (double)ch->prefetch_channel;
    default:
        return 0;
    }
}

/* Connections that are open (counted in rabbitmq_connections): the ones
 * past connection.open and not yet gone. */
static int conn_wanted(const scrape_t *s, const wr_conn_t *c)
{
    return c->counted && vhost_wanted(s, c->vhost);
}

/* RabbitMQ's "pid" of a connection, which it puts in a label named
 * "channel" for connection metrics too. */
static void conn_pid(const wr_conn_t *c, char *out, size_t n)
{
    char name[160];
    wr_info_conn_name(c, name, sizeof name);
    snprintf(out, n, "<%s>", name);
}

static void channel_family(scrape_t *s, const family_t *f)
{
    head(s, s->prefix, f->name, f->type, f->help);
    double sum = 0;
    for (const wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        if (!conn_wanted(s, c))
            continue;
        for (const wr_channel_t *ch = c->channel_list; ch; ch = ch->next) {
            double v = channel_value(ch, f->what);
            if (!s->per_object) {
                sum += v;
                continue;
            }
            char pid[240];
            wr_info_chan_pid(ch, pid, sizeof pid);
            labels_t l = {"", 0};
            lbl_str(&l, "channel", pid);
            /* RabbitMQ breaks message counters down by exchange or queue
             * too; warren counts per channel (docs/metrics.md). */
            if (f->what >= CH_STAT)
                lbl_str(&l, "vhost", c->vhost->name);
            sample(s, s->prefix, f->name, &l, v);
        }
    }
    if (!s->per_object)
        sample(s, s->prefix, f->name, NULL, sum);
}

enum { C_IN, C_OUT, C_CHANNELS };

static const family_t conn_families[] = {
    {"connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection",
     G_CONNECTION_COARSE, C_IN},
    {"connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection",
     G_CONNECTION_COARSE, C_OUT},
    {"connection_channels", "gauge", "Channels on a connection", G_CONNECTION, C_CHANNELS},
};

static void conn_family(scrape_t *s, const family_t *f)
{
    head(s, s->prefix, f->name, f->type, f->help);
    double sum = 0;
    for (const wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        if (!conn_wanted(s, c))
            continue;
        double v = f->what == C_IN    ? (double)c->sock->bytes_in
                   : f->what == C_OUT ? (double)c->sock->bytes_out
                                      : (double)c->n_channels;
        if (!s->per_object) {
            sum += v;
            continue;
        }
        char pid[200];
        conn_pid(c, pid, sizeof pid);
        labels_t l = {"", 0};
        lbl_str(&l, "channel", pid);
        sample(s, s->prefix, f->name, &l, v);
    }
    if (!s->per_object)
        sample(s, s->prefix, f->name, NULL, sum);
}

/* ---- the node ---------------------------------------------------------- */

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return NAN;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return (double)(n - 1); /* not the descriptor reading the directory */
}

static double resident_bytes(void)
{
    size_t rss = 0;
    if (uv_resident_set_memory(&rss) != 0)
        return NAN;
    return (double)rss;
}

static double max_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return NAN;
    return (double)rl.rlim_cur;
}

static double disk_free(void)
{
    const wr_config_t *cfg = wr_broker.cfg;
    struct statvfs v;
    if (cfg == NULL || cfg->data_dir == NULL || statvfs(cfg->data_dir, &v) != 0)
        return NAN;
    return (double)v.f_bavail * (double)v.f_frsize;
}

/* The memory alarm's limit, as broker/conn.c computes it. */
static double memory_limit(void)
{
    const wr_config_t *cfg = wr_broker.cfg;
    if (cfg == NULL)
        return NAN;
    if (cfg->mem_high_watermark_bytes)
        return (double)cfg->mem_high_watermark_bytes;
    return floor((double)uv_get_total_memory() * cfg->mem_high_watermark_relative);
}

/* The process's start, seconds since the epoch: /proc/self/stat's start
 * time (clock ticks after boot) and the boot time of /proc/stat. */
static double start_time(void)
{
    static double at;
    if (at > 0)
        return at;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command may hold blanks */
    if (p == NULL)
        return NAN;
    /* Field 22 is starttime; p is at the end of field 2. */
    unsigned long long ticks = 0;
    int field = 2;
    for (; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (sscanf(p, "%llu", &ticks) != 1)
        return NAN;
    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return NAN;
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime == 0 || hz <= 0)
        return NAN;
    at = floor((double)btime + (double)ticks / (double)hz);
    return at;
}

static double tcp_sockets(void)
{
    size_t n = 0;
    for (const wr_conn_t *c = wr_conn_first(); c; c = c->next)
        n += c->sock && c->sock->tr != &wr_transport_unix;
    return (double)n;
}

typedef struct node_family {
    const char *name, *type, *help;
    unsigned groups;
    double (*value)(void);
} node_family_t;

static double ev(wr_node_stat_t k)
{
    return (double)wr_stats_events[k];
}
static double conns_opened(void)
{
    return ev(WR_NS_CONNECTIONS_OPENED);
}
static double conns_closed(void)
{
    return ev(WR_NS_CONNECTIONS_CLOSED);
}
static double chans_opened(void)
{
    return ev(WR_NS_CHANNELS_OPENED);
}
static double chans_closed(void)
{
    return ev(WR_NS_CHANNELS_CLOSED);
}
static double queues_declared(void)
{
    return ev(WR_NS_QUEUES_DECLARED);
}
static double queues_created(void)
{
    return ev(WR_NS_QUEUES_CREATED);
}
static double queues_deleted(void)
{
    return ev(WR_NS_QUEUES_DELETED);
}
static double disk_limit(void)
{
    return wr_broker.cfg ? (double)wr_broker.cfg->disk_free_limit : NAN;
}

static const node_family_t churn_families[] = {
    {"connections_opened_total", "counter", "Total number of connections opened",
     G_CONNECTION_CHURN, conns_opened},
    {"connections_closed_total", "counter", "Total number of connections closed or terminated",
     G_CONNECTION_CHURN, conns_closed},
    {"channels_opened_total", "counter", "Total number of channels opened", G_CONNECTION_CHURN,
     chans_opened},
    {"channels_closed_total", "counter", "Total number of channels closed", G_CONNECTION_CHURN,
     chans_closed},
    {"queues_declared_total", "counter", "Total number of queues declared", G_CONNECTION_CHURN,
     queues_declared},
    {"queues_created_total", "counter", "Total number of queues created", G_CONNECTION_CHURN,
     queues_created},
    {"queues_deleted_total", "counter", "Total number of queues deleted", G_CONNECTION_CHURN,
     queues_deleted},
    {"process_open_fds", "gauge", "Open file descriptors", G_NODE_COARSE, open_fds},
    {"process_open_tcp_sockets", "gauge", "Open TCP sockets", G_NODE_COARSE, tcp_sockets},
    {"process_resident_memory_bytes", "gauge", "Memory used in bytes", G_NODE_COARSE,
     resident_bytes},
    {"disk_space_available_bytes", "gauge", "Disk space available in bytes", G_NODE_COARSE,
     disk_free},
    {"process_max_fds", "gauge", "Open file descriptors limit", G_NODE, max_fds},
    {"resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes", G_NODE,
     memory_limit},
    {"disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes", G_NODE,
     disk_limit},
};

static void node_family(scrape_t *s, const node_family_t *f)
{
    head(s, s->prefix, f->name, f->type, f->help);
    sample(s, s->prefix, f->name, NULL, f->value());
}

static void auth_families(scrape_t *s)
{
    static const char *const protocols[2] = {"http", "amqp091"};
    uint64_t ok[2] = {wr_stats_events[WR_NS_AUTH_HTTP_OK], wr_stats_events[WR_NS_AUTH_AMQP_OK]};
    uint64_t bad[2] = {wr_stats_events[WR_NS_AUTH_HTTP_FAILED],
                       wr_stats_events[WR_NS_AUTH_AMQP_FAILED]};
    static const char *const names[3] = {"auth_attempts_total", "auth_attempts_succeeded_total",
                                         "auth_attempts_failed_total"};
    static const char *const helps[3] = {"Total number of authorization attempts",
                                         "Total number of successful authentication attempts",
                                         "Total number of failed authentication attempts"};
    for (int k = 0; k < 3; k++) {
        head(s, s->prefix, names[k], "counter", helps[k]);
        for (int p = 0; p < 2; p++) {
            labels_t l = {"", 0};
            lbl_str(&l, "protocol", protocols[p]);
            uint64_t v = k == 0 ? ok[p] + bad[p] : k == 1 ? ok[p] : bad[p];
            sample(s, s->prefix, names[k], &l, (double)v);
        }
    }
}

static void alarm_families(scrape_t *s)
{
    head(s, "", "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    sample(s, "", "process_start_time_seconds", NULL, start_time());
    head(s, s->prefix, "alarms_free_disk_space_watermark", "untyped",
         "is 1 if free disk space watermark alarm is in effect");
    sample(s, s->prefix, "alarms_free_disk_space_watermark", NULL,
           (wr_broker.alarms & WR_ALARM_DISK) ? 1 : 0);
    head(s, s->prefix, "alarms_memory_used_watermark", "untyped",
         "is 1 if VM memory watermark alarm is in effect");
    sample(s, s->prefix, "alarms_memory_used_watermark", NULL,
           (wr_broker.alarms & WR_ALARM_MEMORY) ? 1 : 0);
}

/* rabbitmq_connections, _channels, _consumers, _queues. */
static void count_families(scrape_t *s)
{
    size_t conns = 0, chans = 0, consumers = 0, queues = 0;
    for (const wr_conn_t *c = wr_conn_first(); c; c = c->next) {
        if (!c->counted)
            continue;
        conns++;
        for (const wr_channel_t *ch = c->channel_list; ch; ch = ch->next) {
            chans++;
            consumers += ch->consumers.count;
        }
    }
    qiter_t it = {0, 0, NULL};
    while (next_queue(s, &it))
        queues++;
    head(s, s->prefix, "connections", "gauge", "Connections currently open");
    sample(s, s->prefix, "connections", NULL, (double)conns);
    head(s, s->prefix, "channels", "gauge", "Channels currently open");
    sample(s, s->prefix, "channels", NULL, (double)chans);
    head(s, s->prefix, "consumers", "gauge", "Consumers currently connected");
    sample(s, s->prefix, "consumers", NULL, (double)consumers);
    head(s, s->prefix, "queues", "gauge", "Queues available");
    sample(s, s->prefix, "queues", NULL, (double)queues);
}

static void info_families(scrape_t *s)
{
    const wr_config_t *cfg = wr_broker.cfg;
    labels_t l = {"", 0};
    /* The version warren's API reports for RabbitMQ compatibility; the
     * exporter's own version is warren's. */
    lbl_str(&l, "rabbitmq_version", "3.10.8");
    lbl_str(&l, "prometheus_plugin_version", WARREN_VERSION);
    head(s, "rabbitmq_", "build_info", "untyped", "RabbitMQ & Erlang/OTP version info");
    sample(s, "rabbitmq_", "build_info", &l, 1);
    labels_t id = {"", 0};
    lbl_str(&id, "rabbitmq_node", wr_info_node());
    lbl_str(&id, "rabbitmq_cluster",
            cfg && cfg->cluster_name ? cfg->cluster_name : "warren@localhost");
    head(s, "rabbitmq_", "identity_info", "untyped", "RabbitMQ node & cluster identity info");
    sample(s, "rabbitmq_", "identity_info", &id, 1);
}

/* rabbitmq_global_*: node totals since start, AMQP 0-9-1 only, classic
 * queues only (the only kind warren has). */
static void global_families(scrape_t *s)
{
    wr_counters_t t;
    wr_stats_node_now(&t);
    size_t consumers = 0;
    for (const wr_conn_t *c = wr_conn_first(); c; c = c->next)
        for (const wr_channel_t *ch = c->channel_list; ch; ch = ch->next)
            consumers += ch->consumers.count;
    labels_t p = {"", 0};
    lbl_str(&p, "protocol", "amqp091");
    labels_t pq = p;
    lbl_str(&pq, "queue_type", "rabbit_classic_queue");
    const char *g = "rabbitmq_global_";

    head(s, g, "consumers", "gauge", "Current number of consumers");
    sample(s, g, "consumers", &p, (double)consumers);
    head(s, g, "messages_acknowledged_total", "counter",
         "Total number of messages acknowledged by consumers");
    sample(s, g, "messages_acknowledged_total", &pq, (double)t.n[WR_ST_ACK]);
    head(s, g, "messages_confirmed_total", "counter",
         "Total number of messages confirmed to publishers");
    sample(s, g, "messages_confirmed_total", &p, (double)t.n[WR_ST_CONFIRM]);

    static const struct {
        const char *name, *help;
        wr_node_stat_t dl, drop;
    } dead[] = {
        {"messages_dead_lettered_delivery_limit_total",
         "Total number of messages dead-lettered due to delivery-limit exceeded",
         WR_NS_DL_DELIVERY_LIMIT, WR_NS_DROP_DELIVERY_LIMIT},
        {"messages_dead_lettered_expired_total",
         "Total number of messages dead-lettered due to message TTL exceeded", WR_NS_DL_EXPIRED,
         WR_NS_DROP_EXPIRED},
        {"messages_dead_lettered_maxlen_total",
         "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
         WR_NS_DL_MAXLEN, WR_NS_DROP_MAXLEN},
        {"messages_dead_lettered_rejected_total",
         "Total number of messages dead-lettered due to basic.reject or basic.nack",
         WR_NS_DL_REJECTED, WR_NS_DROP_REJECTED},
    };
    for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++) {
        head(s, g, dead[i].name, "counter", dead[i].help);
        labels_t a = {"", 0}, b = {"", 0};
        lbl_str(&a, "queue_type", "rabbit_classic_queue");
        b = a;
        lbl_str(&a, "dead_letter_strategy", "at_most_once");
        lbl_str(&b, "dead_letter_strategy", "disabled");
        sample(s, g, dead[i].name, &a, ev(dead[i].dl));
        sample(s, g, dead[i].name, &b, ev(dead[i].drop));
    }
    {
        const char *name = "messages_dead_lettered_confirmed_total";
        head(s, g, name, "counter",
             "Total number of messages dead-lettered and confirmed by target queues");
        labels_t c = {"", 0};
        lbl_str(&c, "queue_type", "rabbit_quorum_queue");
        lbl_str(&c, "dead_letter_strategy", "at_least_once");
        sample(s, g, name, &c, ev(WR_NS_DL_CONFIRMED));
    }

    static const struct {
        const char *name, *help;
        int stat; /* wr_stat_t, or -1: delivered in all */
    } per_queue_type[] = {
        {"messages_delivered_consume_auto_ack_total",
         "Total number of messages delivered to consumers using basic.consume with automatic "
         "acknowledgment",
         WR_ST_DELIVER_NO_ACK},
        {"messages_delivered_consume_manual_ack_total",
         "Total number of messages delivered to consumers using basic.consume with manual "
         "acknowledgment",
         WR_ST_DELIVER},
        {"messages_delivered_get_auto_ack_total",
         "Total number of messages delivered to consumers using basic.get with automatic "
         "acknowledgment",
         WR_ST_GET_NO_ACK},
        {"messages_delivered_get_manual_ack_total",
         "Total number of messages delivered to consumers using basic.get with manual "
         "acknowledgment",
         WR_ST_GET},
        {"messages_delivered_total", "Total number of messages delivered to consumers", -1},
        {"messages_get_empty_total",
         "Total number of times basic.get operations fetched no message", WR_ST_GET_EMPTY},
    };
    for (size_t i = 0; i < sizeof per_queue_type / sizeof per_queue_type[0]; i++) {
        head(s, g, per_queue_type[i].name, "counter", per_queue_type[i].help);
        int st = per_queue_type[i].stat;
        double v = st < 0 ? (double)wr_stats_deliver_get(&t) : (double)t.n[st];
        sample(s, g, per_queue_type[i].name, &pq, v);
    }
    head(s, g, "messages_received_confirm_total", "counter",
         "Total number of messages received from publishers expecting confirmations");
    sample(s, g, "messages_received_confirm_total", &p, ev(WR_NS_RECEIVED_CONFIRM));
    head(s, g, "messages_received_total", "counter",
         "Total number of messages received from publishers");
    sample(s, g, "messages_received_total", &p, (double)t.n[WR_ST_PUBLISH]);
    head(s, g, "messages_redelivered_total", "counter",
         "Total number of messages redelivered to consumers");
    sample(s, g, "messages_redelivered_total", &pq, (double)t.n[WR_ST_REDELIVER]);
    head(s, g, "messages_routed_total", "counter",
         "Total number of messages routed to queues or streams");
    sample(s, g, "messages_routed_total", &p, ev(WR_NS_ROUTED));
    head(s, g, "messages_unroutable_dropped_total", "counter",
         "Total number of messages published as non-mandatory into an exchange and dropped as "
         "unroutable");
    sample(s, g, "messages_unroutable_dropped_total", &p, (double)t.n[WR_ST_DROP_UNROUTABLE]);
    head(s, g, "messages_unroutable_returned_total", "counter",
         "Total number of messages published as mandatory into an exchange and returned to the "
         "publisher as unroutable");
    sample(s, g, "messages_unroutable_returned_total", &p, (double)t.n[WR_ST_RETURN_UNROUTABLE]);
}

/* rabbitmq_cluster_*: vhosts and exchanges (detailed only). */
static void cluster_families(scrape_t *s)
{
    size_t i;
    if (s->groups & G_VHOST_STATUS) {
        head(s, "rabbitmq_cluster_", "vhost_status", "gauge", "Whether a given vhost is running");
        i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
            if (!vhost_wanted(s, vh))
                continue;
            labels_t l = {"", 0};
            lbl_str(&l, "vhost", vh->name);
            sample(s, "rabbitmq_cluster_", "vhost_status", &l, 1);
        }
    }
    for (int k = 0; k < 2; k++) {
        if (!(s->groups & (k == 0 ? G_EXCHANGE_BINDINGS : G_EXCHANGE_NAMES)))
            continue;
        const char *name = k == 0 ? "exchange_bindings" : "exchange_name";
        head(s, "rabbitmq_cluster_", name, "gauge",
             k == 0 ? "Number of bindings for an exchange. This value is cluster-wide."
                    : "Enumerates exchanges without any additional info. This value is "
                      "cluster-wide. A cheaper alternative to `exchange_bindings`");
        i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
            if (!vhost_wanted(s, vh))
                continue;
            size_t xi = 0;
            wr_map_slot_t *sl;
            while (wr_map_next(&vh->exchanges, &xi, &sl)) {
                const wr_exchange_t *x = sl->value;
                labels_t l = {"", 0};
                lbl_str(&l, "vhost", vh->name);
                lbl(&l, "exchange", x->name, x->name_len);
                lbl_str(&l, "type", x->delayed ? "x-delayed-message" : wr_extype_name(x->type));
                sample(s, "rabbitmq_cluster_", name, &l, k == 0 ? (double)x->n_bindings : 1.0);
            }
        }
    }
}

static void telemetry_families(scrape_t *s)
{
    int any = 0;
    for (int r = 0; r < REG_N; r++)
        any |= tel[r].count > 0;
    if (!any)
        return;
    static const char *const names[3] = {"telemetry_scrape_duration_seconds",
                                         "telemetry_scrape_size_bytes",
                                         "telemetry_scrape_encoded_size_bytes"};
    static const char *const helps[3] = {"Scrape duration", "Scrape size, not encoded",
                                         "Scrape size, encoded"};
    for (int k = 0; k < 3; k++) {
        head(s, "", names[k], "summary", helps[k]);
        for (int r = 0; r < REG_N; r++) {
            if (tel[r].count == 0)
                continue;
            labels_t l = {"", 0};
            lbl_str(&l, "registry", reg_names[r]);
            lbl_str(&l, "content_type", CONTENT_TYPE);
            if (k == 2)
                lbl_str(&l, "encoding", "identity"); /* no gzip */
            put(s, "%s_count{%s}", names[k], l.s);
            put_value(s, (double)tel[r].count);
            put(s, "%s_sum{%s}", names[k], l.s);
            put_value(s, k == 0 ? tel[r].seconds : (double)tel[r].bytes);
        }
    }
}

/* Every family the groups ask for, in RabbitMQ's order. */
static void render(scrape_t *s, int reg)
{
    wr_map_init(&s->ub);
    if (s->groups & (G_QUEUE | G_QUEUE_COARSE))
        wr_info_unacked_bytes(&s->ub);
    if (reg == REG_DEFAULT)
        alarm_families(s);
    for (size_t i = 0; i < sizeof churn_families / sizeof churn_families[0]; i++)
        if (s->groups & churn_families[i].groups)
            node_family(s, &churn_families[i]);
    if (s->groups & G_AUTH)
        auth_families(s);
    for (size_t i = 0; i < sizeof queue_families / sizeof queue_families[0]; i++)
        if (s->groups & queue_families[i].groups)
            queue_family(s, &queue_families[i]);
    for (size_t i = 0; i < sizeof channel_families / sizeof channel_families[0]; i++)
        if (s->groups & channel_families[i].groups)
            channel_family(s, &channel_families[i]);
    for (size_t i = 0; i < sizeof conn_families / sizeof conn_families[0]; i++)
        if (s->groups & conn_families[i].groups)
            conn_family(s, &conn_families[i]);
    if (s->groups & G_CHANNEL_QUEUE_EXCHANGE) {
        static const family_t published = {"queue_messages_published_total", "counter",
                                           "Total number of messages published to queues",
                                           G_CHANNEL_QUEUE_EXCHANGE, Q_PUBLISHED};
        queue_family(s, &published);
    }
    if (reg == REG_DETAILED)
        cluster_families(s);
    else
        count_families(s);
    info_families(s);
    if (reg != REG_DETAILED)
        global_families(s);
    telemetry_families(s);
    wr_map_free(&s->ub);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of p (and '+' as a blank) into a new string. */
static char *url_decode(const char *p, size_t n)
{
    char *out = wr_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && n - i > 2 && (hi = hexval(p[i + 1])) >= 0 &&
            (lo = hexval(p[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    out[k] = '\0';
    return out;
}

/* family=NAME and vhost=NAME, each as often as given; the rest ignored. */
static void parse_query(scrape_t *s, const char *q)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq) {
            size_t kn = (size_t)(eq - q);
            char *v = url_decode(eq + 1, n - kn - 1);
            if (kn == 6 && memcmp(q, "family", 6) == 0) {
                for (size_t i = 0; i < sizeof group_names / sizeof group_names[0]; i++)
                    if (strcmp(v, group_names[i].name) == 0)
                        s->groups |= group_names[i].bits;
                free(v);
            } else if (kn == 5 && memcmp(q, "vhost", 5) == 0 && s->n_vhosts < MAX_VHOSTS) {
                s->vhosts[s->n_vhosts++] = v;
            } else {
                free(v);
            }
        }
        q += n;
        if (*q == '&')
            q++;
    }
}

int wr_prom_render(const char *target, wr_buf_t *out)
{
    size_t plen = strcspn(target, "?");
    const char *query = target[plen] == '?' ? target + plen + 1 : "";
    int reg;
    if (plen == 8 && memcmp(target, "/metrics", 8) == 0)
        reg = REG_DEFAULT;
    else if (plen == 19 && memcmp(target, "/metrics/per-object", 19) == 0)
        reg = REG_PER_OBJECT;
    else if (plen == 17 && memcmp(target, "/metrics/detailed", 17) == 0)
        reg = REG_DETAILED;
    else
        return 404;
    uint64_t t0 = uv_hrtime();
    size_t start = out->len;
    scrape_t s = {.out = out, .prefix = "rabbitmq_"};
    if (reg == REG_DETAILED) {
        s.prefix = "rabbitmq_detailed_";
        s.per_object = 1;
        parse_query(&s, query);
    } else {
        s.per_object = reg == REG_PER_OBJECT;
        s.groups = ~0u & ~(unsigned)(G_VHOST_STATUS | G_EXCHANGE_BINDINGS | G_EXCHANGE_NAMES);
    }
    render(&s, reg);
    for (size_t i = 0; i < s.n_vhosts; i++)
        free(s.vhosts[i]);
    tel[reg].count++;
    tel[reg].seconds += (double)(uv_hrtime() - t0) / 1e9;
    tel[reg].bytes += out->len - start;
    return 200;
}

/* 406 only for a client that takes nothing but the protobuf format, as
 * RabbitMQ answers; Prometheus itself always offers the text format. */
static int accepts_text(const char *accept)
{
    if (accept[0] == '\0')
        return 1;
    if (strstr(accept, "text/plain") || strstr(accept, "text/*") || strstr(accept, "*/*") ||
        strstr(accept, "openmetrics"))
        return 1;
    return strstr(accept, "protobuf") == NULL;
}

void wr_prom_handle(const wr_http_req_t *req, wr_http_resp_t *resp)
{
    const char *url = (const char *)req->url.p;
    if (url == NULL)
        url = "";
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        snprintf(resp->headers, sizeof resp->headers, "Allow: GET, HEAD\r\n");
        return;
    }
    size_t plen = strcspn(url, "?");
    int metrics = plen >= 8 && memcmp(url, "/metrics", 8) == 0 && (plen == 8 || url[8] == '/');
    if (metrics && !accepts_text(req->accept)) {
        resp->status = 406;
        return;
    }
    if (wr_prom_render(url, &resp->body) == 200) {
        resp->status = 200;
        resp->content_type = CONTENT_TYPE;
        return;
    }
    resp->status = 404;
    if (metrics) {
        resp->content_type = "text/plain";
        wr_buf_put(&resp->body, "Unknown Registry", 16);
    } else {
        static const char body[] = "{\"error\":\"Object Not Found\",\"reason\":\"Not Found\"}";
        wr_buf_put(&resp->body, body, sizeof body - 1);
    }
}
