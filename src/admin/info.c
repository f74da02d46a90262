/* info.c - JSON descriptions of broker objects (see info.h). */
#include "admin/info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/json.h"
#include "broker/access.h"
#include "broker/cluster.h"
#include "broker/policy.h"
#include "broker/quorum.h"
#include "core/loop.h"
#include "net/tls.h"

const char *wr_info_node(void)
{
    static char name[300];
    if (name[0] == '\0' && wr_cluster_self_name())
        snprintf(name, sizeof name, "%s", wr_cluster_self_name());
    if (name[0] == '\0') {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        host[strcspn(host, ".")] = '\0';
        snprintf(name, sizeof name, "warren@%s", host);
    }
    return name;
}

static json_t *str_n(const void *p, size_t n)
{
    return json_stringn((const char *)p, n);
}

void wr_info_conn_name(const wr_conn_t *c, char *out, size_t n)
{
    snprintf(out, n, "%s -> %s", c->sock->peer, c->sock->local);
}

void wr_info_chan_name(const wr_channel_t *ch, char *out, size_t n)
{
    char cn[160];
    wr_info_conn_name(ch->conn, cn, sizeof cn);
    snprintf(out, n, "%s (%u)", cn, ch->id);
}

void wr_info_chan_pid(const wr_channel_t *ch, char *out, size_t n)
{
    /* No Erlang processes here: a stable name of the channel instead. */
    char cn[200];
    wr_info_chan_name(ch, cn, sizeof cn);
    snprintf(out, n, "<%s>", cn);
}

const char *wr_info_conn_state(const wr_conn_t *c)
{
    switch (c->state) {
    case WR_CONN_OPEN:
        return c->blocked_sent ? "blocked" : "running";
    case WR_CONN_CLOSING:
    case WR_CONN_CLOSED:
    case WR_CONN_DEAD:
        return "closing";
    default:
        return "starting";
    }
}

/* Splits "host:port" (or "[v6]:port") into its parts. */
static void split_addr(const char *addr, char *host, size_t hn, long *port)
{
    const char *colon = strrchr(addr, ':');
    size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
    const char *h = addr;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    snprintf(host, hn, "%.*s", (int)n, h);
    *port = colon ? strtol(colon + 1, NULL, 10) : 0;
}

void wr_info_unacked_bytes(wr_map_t *out)
{
    for (wr_conn_t *c = wr_conn_first(); c; c = c->next)
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next)
            for (size_t i = 0; i < ch->ua_count; i++) {
                const wr_unacked_t *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
                if (u->queue == NULL)
                    continue;
                wr_bytes_t k = {(const uint8_t *)&u->queue, sizeof u->queue};
                uintptr_t n = (uintptr_t)wr_map_get(out, k) + u->ent.size;
                wr_map_put(out, k, (void *)n);
            }
}

json_t *wr_info_rate(double r)
{
    /* Rates to a tenth, as RabbitMQ shows them. */
    return json_pack("{s:f}", "rate", (double)(int64_t)(r * 10.0 + (r < 0 ? -0.5 : 0.5)) / 10.0);
}

const wr_stat_t wr_info_queue_stats[] = {
    WR_ST_PUBLISH,   WR_ST_DELIVER,    WR_ST_DELIVER_NO_ACK,
    WR_ST_GET,       WR_ST_GET_NO_ACK, WR_ST_GET_EMPTY,
    WR_ST_REDELIVER, WR_ST_ACK,        WR_ST_N,
};
const wr_stat_t wr_info_exchange_stats[] = {WR_ST_PUBLISH_IN, WR_ST_PUBLISH_OUT, WR_ST_N};
const wr_stat_t wr_info_channel_stats[] = {
    WR_ST_PUBLISH,
    WR_ST_CONFIRM,
    WR_ST_RETURN_UNROUTABLE,
    WR_ST_DROP_UNROUTABLE,
    WR_ST_DELIVER,
    WR_ST_DELIVER_NO_ACK,
    WR_ST_GET,
    WR_ST_GET_NO_ACK,
    WR_ST_GET_EMPTY,
    WR_ST_REDELIVER,
    WR_ST_ACK,
    WR_ST_N,
};

json_t *wr_info_message_stats(const wr_counters_t *c, const wr_rates_t *r, const wr_stat_t *keys,
                              int has_deliver_get)
{
    json_t *o = json_object();
    char k[64];
    for (const wr_stat_t *s = keys; *s != WR_ST_N; s++) {
        json_object_set_new(o, wr_stats_name(*s), json_integer((json_int_t)c->n[*s]));
        snprintf(k, sizeof k, "%s_details", wr_stats_name(*s));
        json_object_set_new(o, k, wr_info_rate(r->rate[*s]));
    }
    if (has_deliver_get) {
        json_object_set_new(o, "deliver_get", json_integer((json_int_t)wr_stats_deliver_get(c)));
        json_object_set_new(o, "deliver_get_details", wr_info_rate(wr_stats_deliver_get_rate(r)));
    }
    return o;
}

json_t *wr_info_idle_since(int64_t loop_ms)
{
    /* RabbitMQ's format: "2026-12-03T16:22:18.629+00:00". */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (wr_now_ms() - loop_ms);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[40], out[64];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03d+00:00", buf, (int)(ms % 1000));
    return json_string(out);
}

/* The effective definition: the policy's keys, and the operator
 * policy's where stricter (smaller). */
static json_t *effective_policy(const wr_policy_t *pol, const wr_policy_t *op)
{
    json_t *eff = json_object();
    for (int k = 0; k < 2; k++) {
        const wr_policy_t *p = k ? op : pol;
        json_t *d = p ? json_loads(p->definition, 0, NULL) : NULL;
        const char *key;
        json_t *v;
        json_object_foreach(d, key, v)
        {
            json_t *cur = json_object_get(eff, key);
            if (cur == NULL || (json_is_integer(v) && json_is_integer(cur) &&
                                json_integer_value(v) < json_integer_value(cur)))
                json_object_set(eff, key, v);
        }
        json_decref(d);
    }
    return eff;
}

json_t *wr_info_queue(const wr_queue_t *q, wr_map_t *ub, int stats)
{
    size_t ready = wr_queue_ready(q);
    json_t *o = json_object();
    json_object_set_new(o, "name", str_n(q->name, q->name_len));
    json_object_set_new(o, "vhost", json_string(q->vhost->name));
    json_object_set_new(o, "durable", json_boolean(q->durable));
    json_object_set_new(o, "auto_delete", json_boolean(q->auto_delete));
    json_object_set_new(o, "arguments",
                        wr_json_table((wr_bytes_t){q->args_raw.p, q->args_raw.len}));
    json_object_set_new(o, "policy", json_string(q->policy ? q->policy->name : ""));
    json_object_set_new(o, "operator_policy", json_string(q->op_policy ? q->op_policy->name : ""));
    json_object_set_new(o, "effective_policy_definition",
                        effective_policy(q->policy, q->op_policy));
    char pid[200] = "";
    snprintf(pid, sizeof pid, "<queue '%.*s'>", (int)q->name_len, q->name);
    json_object_set_new(o, "pid", json_string(pid));
    char owner[200] = "";
    if (q->exclusive && q->owner)
        wr_info_conn_name(q->owner, owner, sizeof owner);
    json_object_set_new(o, "owner_pid", json_string(owner));
    json_object_set_new(o, "exclusive", json_boolean(q->exclusive));
    const wr_chconsumer_t *ex = NULL;
    for (const wr_consumer_t *c = q->consumers; c; c = c->qnext)
        if (c->exclusive)
            ex = (const wr_chconsumer_t *)c;
    char expid[220] = "";
    if (ex)
        wr_info_chan_pid(ex->ch, expid, sizeof expid);
    json_object_set_new(o, "exclusive_consumer_pid", json_string(expid));
    json_object_set_new(o, "exclusive_consumer_tag",
                        ex ? str_n(ex->tag, ex->tag_len) : json_string(""));
    /* A quorum queue's dead letters kept for at-least-once count among
     * its messages (neither ready nor unacknowledged), as in RabbitMQ. */
    uint64_t dlx_bytes = 0;
    size_t dlx = wr_queue_is_quorum(q) ? wr_quorum_dlx(q, &dlx_bytes) : 0;
    json_object_set_new(o, "messages_ready", json_integer((json_int_t)ready));
    json_object_set_new(o, "messages_unacknowledged", json_integer(q->unacked));
    json_object_set_new(o, "messages", json_integer((json_int_t)(ready + q->unacked + dlx)));
    json_object_set_new(o, "message_bytes_ready",
                        json_integer((json_int_t)wr_queue_ready_bytes(q)));
    uintptr_t uab = ub ? (uintptr_t)wr_map_get(ub, (wr_bytes_t){(const uint8_t *)&q, sizeof q}) : 0;
    json_object_set_new(o, "message_bytes",
                        json_integer((json_int_t)(wr_queue_ready_bytes(q) + uab + dlx_bytes)));
    json_object_set_new(o, "message_bytes_unacknowledged", json_integer((json_int_t)uab));
    json_object_set_new(o, "consumers", json_integer(q->n_consumers));
    /* An estimate: the queue and its index entries (messages are shared
     * between queues and counted by the node). */
    json_object_set_new(o, "memory",
                        json_integer((json_int_t)(sizeof *q + ready * sizeof(wr_qent_t))));
    json_object_set_new(o, "state", json_string("running"));
    if (q->args.type == WR_QTYPE_QUORUM) {
        /* A node alone: it is the only member, and the leader once its
         * group has elected itself. */
        json_object_set_new(o, "type", json_string("quorum"));
        json_object_set_new(o, "messages_dlx", json_integer((json_int_t)dlx));
        json_object_set_new(o, "message_bytes_dlx", json_integer((json_int_t)dlx_bytes));
        json_object_set_new(o, "leader", json_string(wr_quorum_leader(q)));
        /* The voting members of its group as this node knows them (every
         * node keeps a replica; non-members are standbys); online: those
         * whose node-to-node link is up, and this one. */
        json_t *m = json_array(), *on = json_array();
        uint64_t ids[64];
        size_t nm = wr_cluster_enabled() ? wr_quorum_members(q, ids, 64) : 0;
        for (size_t i = 0; i < nm && i < 64; i++) {
            const char *name = wr_cluster_node_name(ids[i]);
            if (name == NULL)
                continue;
            json_array_append_new(m, json_string(name));
            if (wr_cluster_node_up(ids[i]))
                json_array_append_new(on, json_string(name));
        }
        if (nm == 0) {
            json_array_append_new(m, json_string(wr_info_node()));
            json_array_append_new(on, json_string(wr_info_node()));
        }
        json_object_set_new(o, "members", m);
        json_object_set_new(o, "online", on);
    } else {
        json_object_set_new(o, "type", json_string("classic"));
        json_object_set_new(o, "leader", json_string(""));
        json_object_set_new(o, "members", json_string(""));
        json_object_set_new(o, "online", json_string(""));
    }
    if (q->args.single_active) {
        const wr_chconsumer_t *a = (const wr_chconsumer_t *)q->consumers;
        json_object_set_new(o, "single_active_consumer_tag",
                            a ? str_n(a->tag, a->tag_len) : json_null());
    }
    if (!stats)
        return o;
    json_object_set_new(o, "node", json_string(wr_info_node()));
    json_object_set_new(o, "messages_details", wr_info_rate(q->rt.len_rate[0] + q->rt.len_rate[1]));
    json_object_set_new(o, "messages_ready_details", wr_info_rate(q->rt.len_rate[0]));
    json_object_set_new(o, "messages_unacknowledged_details", wr_info_rate(q->rt.len_rate[1]));
    json_object_set_new(o, "message_stats",
                        wr_info_message_stats(&q->st, &q->rt, wr_info_queue_stats, 1));
    if (q->n_consumers == 0 && q->unacked == 0)
        json_object_set_new(o, "idle_since", wr_info_idle_since(q->last_used));
    /* Every consumer takes what arrives at once unless blocked by its
     * prefetch: 1.0 while the queue has consumers and nothing waits. */
    json_object_set_new(o, "consumer_capacity",
                        q->n_consumers ? json_real(ready == 0 ? 1.0 : 0.0) : json_integer(0));
    json_object_set_new(o, "consumer_utilisation", json_object_get(o, "consumer_capacity"));
    json_incref(json_object_get(o, "consumer_capacity"));
    return o;
}

json_t *wr_info_exchange(const wr_exchange_t *x, int stats)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", str_n(x->name, x->name_len));
    json_object_set_new(o, "vhost", json_string(x->vhost->name));
    json_object_set_new(o, "type",
                        json_string(x->delayed ? "x-delayed-message" : wr_extype_name(x->type)));
    json_object_set_new(o, "durable", json_boolean(x->durable));
    json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
    json_object_set_new(o, "internal", json_boolean(x->internal));
    json_object_set_new(o, "arguments",
                        wr_json_table((wr_bytes_t){x->args_raw.p, x->args_raw.len}));
    json_object_set_new(o, "policy", json_string(x->policy ? x->policy->name : ""));
    json_object_set_new(o, "user_who_performed_action", json_string("rmq-internal"));
    if (stats)
        json_object_set_new(o, "message_stats",
                            wr_info_message_stats(&x->st, &x->rt, wr_info_exchange_stats, 0));
    return o;
}

json_t *wr_info_conn(const wr_conn_t *c, int stats)
{
    json_t *o = json_object();
    char name[160], host[80], peer[80];
    long port, peer_port;
    wr_info_conn_name(c, name, sizeof name);
    split_addr(c->sock->local, host, sizeof host, &port);
    split_addr(c->sock->peer, peer, sizeof peer, &peer_port);
    char pid[200];
    snprintf(pid, sizeof pid, "<%s>", name);
    json_object_set_new(o, "pid", json_string(pid));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "port", json_integer(port));
    json_object_set_new(o, "host", json_string(host));
    json_object_set_new(o, "peer_port", json_integer(peer_port));
    json_object_set_new(o, "peer_host", json_string(peer));
    json_object_set_new(o, "ssl", json_boolean(c->sock->tls != NULL));
    json_object_set_new(o, "ssl_protocol",
                        c->sock->tls ? json_string(wr_tls_version(c->sock->tls)) : json_null());
    json_object_set_new(o, "ssl_cipher",
                        c->sock->tls ? json_string(wr_tls_cipher(c->sock->tls)) : json_null());
    json_object_set_new(o, "state", json_string(wr_info_conn_state(c)));
    json_object_set_new(o, "channels", json_integer(c->n_channels));
    json_object_set_new(o, "protocol", json_string("AMQP 0-9-1"));
    json_object_set_new(o, "auth_mechanism", json_string(c->auth_mechanism));
    json_object_set_new(o, "user", json_string(c->user ? c->user : ""));
    json_object_set_new(o, "vhost", json_string(c->vhost ? c->vhost->name : ""));
    json_object_set_new(o, "timeout", json_integer(c->heartbeat));
    json_object_set_new(o, "frame_max", json_integer(c->frame_max));
    json_object_set_new(o, "channel_max", json_integer(c->channel_max));
    json_object_set_new(o, "client_properties",
                        wr_json_table((wr_bytes_t){c->client_props.p, c->client_props.len}));
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->sock->bytes_in));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)c->sock->bytes_out));
    json_object_set_new(o, "connected_at", json_integer(c->connected_at));
    if (stats) {
        json_object_set_new(o, "node", json_string(wr_info_node()));
        json_object_set_new(o, "type", json_string("network"));
        json_object_set_new(o, "recv_oct_details", wr_info_rate(c->rate_in));
        json_object_set_new(o, "send_oct_details", wr_info_rate(c->rate_out));
        json_object_set_new(o, "user_who_performed_action", json_string(c->user ? c->user : ""));
    }
    return o;
}

json_t *wr_info_channel(const wr_channel_t *ch, int stats)
{
    const wr_conn_t *c = ch->conn;
    json_t *o = json_object();
    char pid[220], cn[160], name[200];
    wr_info_chan_pid(ch, pid, sizeof pid);
    wr_info_conn_name(c, cn, sizeof cn);
    wr_info_chan_name(ch, name, sizeof name);
    size_t unacked = 0, msgs = 0, acks = 0;
    for (size_t i = 0; i < ch->ua_count; i++)
        unacked += ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)].queue != NULL;
    for (size_t i = 0; i < ch->n_txops; i++)
        *(ch->txops[i].kind == 0 ? &msgs : &acks) += 1;
    json_object_set_new(o, "pid", json_string(pid));
    json_object_set_new(o, "connection", json_string(cn));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "number", json_integer(ch->id));
    json_object_set_new(o, "user", json_string(c->user ? c->user : ""));
    json_object_set_new(o, "vhost", json_string(c->vhost ? c->vhost->name : ""));
    json_object_set_new(o, "transactional", json_boolean(ch->tx));
    json_object_set_new(o, "confirm", json_boolean(ch->confirm));
    json_object_set_new(o, "consumer_count", json_integer((json_int_t)ch->consumers.count));
    json_object_set_new(o, "messages_unacknowledged", json_integer((json_int_t)unacked));
    json_object_set_new(o, "messages_uncommitted", json_integer((json_int_t)msgs));
    json_object_set_new(o, "acks_uncommitted", json_integer((json_int_t)acks));
    json_object_set_new(o, "messages_unconfirmed", json_integer((json_int_t)ch->pc_count));
    json_object_set_new(o, "prefetch_count", json_integer(ch->prefetch_consumer));
    json_object_set_new(o, "global_prefetch_count", json_integer(ch->prefetch_channel));
    if (stats) {
        char host[80];
        long port;
        split_addr(c->sock->peer, host, sizeof host, &port);
        json_object_set_new(o, "node", json_string(wr_info_node()));
        json_object_set_new(o, "state", json_string(ch->flow_active ? "running" : "flow"));
        json_object_set_new(o, "connection_details",
                            json_pack("{s:s, s:s, s:I}", "name", cn, "peer_host", host, "peer_port",
                                      (json_int_t)port));
        json_object_set_new(o, "message_stats",
                            wr_info_message_stats(&ch->st, &ch->rt, wr_info_channel_stats, 1));
    }
    return o;
}

json_t *wr_info_consumer(const wr_queue_t *q, const wr_consumer_t *c)
{
    const wr_chconsumer_t *cc = (const wr_chconsumer_t *)c;
    json_t *o = json_object();
    char pid[220], name[200], host[80];
    long port;
    wr_info_chan_pid(cc->ch, pid, sizeof pid);
    wr_info_chan_name(cc->ch, name, sizeof name);
    int active = !q->args.single_active || c == q->consumers;
    json_object_set_new(o, "queue_name", str_n(q->name, q->name_len));
    json_object_set_new(o, "channel_pid", json_string(pid));
    json_object_set_new(o, "consumer_tag", str_n(cc->tag, cc->tag_len));
    json_object_set_new(o, "ack_required", json_boolean(!c->no_ack));
    json_object_set_new(o, "exclusive", json_boolean(c->exclusive));
    json_object_set_new(o, "prefetch_count", json_integer(cc->prefetch));
    json_object_set_new(o, "active", json_boolean(active));
    json_object_set_new(
        o, "activity_status",
        json_string(q->args.single_active ? (active ? "single_active" : "waiting") : "up"));
    json_t *args = json_object();
    if (c->priority)
        json_object_set_new(args, "x-priority", json_integer(c->priority));
    json_object_set_new(o, "arguments", args);
    json_object_set_new(
        o, "queue",
        json_pack("{s:o, s:s}", "name", str_n(q->name, q->name_len), "vhost", q->vhost->name));
    const wr_conn_t *conn = cc->ch->conn;
    char cn[160];
    wr_info_conn_name(conn, cn, sizeof cn);
    split_addr(conn->sock->peer, host, sizeof host, &port);
    json_object_set_new(o, "channel_details",
                        json_pack("{s:s, s:s, s:s, s:i, s:s, s:I, s:s}", "connection_name", cn,
                                  "name", name, "node", wr_info_node(), "number", cc->ch->id,
                                  "peer_host", host, "peer_port", (json_int_t)port, "user",
                                  conn->user ? conn->user : ""));
    return o;
}
