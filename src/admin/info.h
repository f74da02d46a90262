/*
 * info.h - one description of each broker object, as JSON objects with
 * RabbitMQ's field names.
 *
 * warrenctl's listings (admin/ctl.c project these onto the columns asked
 * for), the management API (mgmt/api.c) and the Prometheus exporter read
 * the same objects, so a queue's "messages_ready" is computed in one
 * place.  With stats set, objects carry what the management API adds:
 * message_stats with RabbitMQ's *_details {rate}, the lengths' rates,
 * idle_since, the node name.
 */
#ifndef WR_INFO_H
#define WR_INFO_H

#include <jansson.h>

#include "broker/conn.h"
#include "broker/stats.h"
#include "core/map.h"

/* The node's name in objects ("node"): warren@HOSTNAME's short name. */
const char *wr_info_node(void);

/* "PEER -> LOCAL", RabbitMQ's connection name; a channel's is the
 * connection's and " (N)"; its "pid" a stable stand-in for Erlang's. */
void wr_info_conn_name(const wr_conn_t *c, char *out, size_t n);
void wr_info_chan_name(const wr_channel_t *ch, char *out, size_t n);
void wr_info_chan_pid(const wr_channel_t *ch, char *out, size_t n);
const char *wr_info_conn_state(const wr_conn_t *c);

/* Bytes of the deliveries out and not yet acknowledged, per queue
 * pointer (one walk over every channel's unacked deliveries): pass to
 * wr_info_queue. */
void wr_info_unacked_bytes(wr_map_t *out);

/* {"rate": r}. */
json_t *wr_info_rate(double r);

/* message_stats: every key of keys (ending with WR_ST_N) and its
 * *_details, plus deliver_get when has_deliver_get. */
json_t *wr_info_message_stats(const wr_counters_t *c, const wr_rates_t *r, const wr_stat_t *keys,
                              int has_deliver_get);

/* The keys each kind of object counts. */
extern const wr_stat_t wr_info_queue_stats[], wr_info_exchange_stats[], wr_info_channel_stats[];
/* A vhost and the node count what their channels count. */
#define wr_info_vhost_stats wr_info_channel_stats

/* Loop time (ms) as an "idle_since" date, RabbitMQ's format. */
json_t *wr_info_idle_since(int64_t loop_ms);

json_t *wr_info_queue(const wr_queue_t *q, wr_map_t *unacked_bytes, int stats);
json_t *wr_info_exchange(const wr_exchange_t *x, int stats);
json_t *wr_info_conn(const wr_conn_t *c, int stats);
json_t *wr_info_channel(const wr_channel_t *ch, int stats);
json_t *wr_info_consumer(const wr_queue_t *q, const wr_consumer_t *c);

#endif
