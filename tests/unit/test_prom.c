/* test_prom.c - the Prometheus exporter's text: families, labels and
 * their escaping, registries, the node's event counters. */
#include <stdlib.h>

#include "broker/conn.h"
#include "broker/queue.h"
#include "broker/stats.h"
#include "broker/vhost.h"
#include "core/loop.h"
#include "mgmt/prom.h"
#include "test.h"

static char *render(const char *target, int *status)
{
    wr_buf_t b;
    wr_buf_init(&b);
    *status = wr_prom_render(target, &b);
    wr_buf_put_u8(&b, 0);
    return (char *)b.p;
}

static void test_registries_and_labels(void)
{
    if (wr_loop == NULL)
        wr_loop = uv_default_loop();
    wr_vhost_t *vh = wr_vhost_new("prom \"v\"");
    wr_broker_vhost_add(vh);
    wr_queue_args_t qa;
    char err[200];
    CHECK(wr_queue_args_parse((wr_bytes_t){NULL, 0}, WR_BYTES_LIT("a\\b\nc"), vh->name, &qa, err,
                              sizeof err) == 0);
    wr_queue_t *q =
        wr_queue_new(vh, WR_BYTES_LIT("a\\b\nc"), 0, 0, 0, NULL, (wr_bytes_t){NULL, 0}, &qa);
    CHECK(q != NULL);
    int st;
    char *t = render("/metrics/per-object", &st);
    CHECK(st == 200);
    /* TYPE before HELP, then the samples; label values escaped. */
    CHECK(strstr(t, "# TYPE rabbitmq_queue_messages_ready gauge\n"
                    "# HELP rabbitmq_queue_messages_ready Messages ready to be delivered to "
                    "consumers\n") != NULL);
    CHECK(strstr(t, "rabbitmq_queue_messages_ready{vhost=\"prom \\\"v\\\"\",queue=\"a\\\\b\\nc\"} "
                    "0\n") != NULL);
    free(t);
    t = render("/metrics?x=1", &st);
    CHECK(st == 200);
    CHECK(strstr(t, "\nrabbitmq_queues ") != NULL);
    CHECK(strstr(t, "queue=\"") == NULL); /* aggregated: no object labels */
    CHECK(strstr(t, "rabbitmq_global_messages_received_total{protocol=\"amqp091\"} ") != NULL);
    free(t);
    /* Detailed: only the groups asked for, of the vhosts asked for. */
    t = render("/metrics/detailed?family=queue_coarse_metrics&vhost=prom+%22v%22", &st);
    CHECK(st == 200);
    CHECK(strstr(t, "rabbitmq_detailed_queue_messages{vhost=\"prom \\\"v\\\"\"") != NULL);
    CHECK(strstr(t, "rabbitmq_detailed_queue_consumers") == NULL);
    CHECK(strstr(t, "rabbitmq_identity_info{") != NULL);
    free(t);
    t = render("/metrics/detailed?family=queue_coarse_metrics&vhost=other", &st);
    CHECK(strstr(t, "rabbitmq_detailed_queue_messages{") == NULL);
    CHECK(strstr(t, "# TYPE rabbitmq_detailed_queue_messages gauge") != NULL);
    free(t);
    /* Malformed query strings are no trouble. */
    t = render("/metrics/detailed?family&=&vhost=%&vhost=%4&&family=%zz", &st);
    CHECK(st == 200);
    free(t);
    t = render("/metrics/nope", &st);
    CHECK(st == 404 && t[0] == '\0');
    free(t);
    t = render("/", &st);
    CHECK(st == 404);
    free(t);
    wr_broker_vhost_remove(vh);
    wr_vhost_free(vh);
}

static void test_node_events(void)
{
    uint64_t before[WR_NS_N];
    memcpy(before, wr_stats_events, sizeof before);
    wr_stats_count(WR_NS_QUEUES_CREATED);
    wr_stats_dead_lettered("expired", 1);
    wr_stats_dead_lettered("maxlen", 0);
    wr_stats_dead_lettered("rejected", 0);
    wr_stats_dead_lettered("delivery_limit", 1);
    CHECK(wr_stats_events[WR_NS_QUEUES_CREATED] == before[WR_NS_QUEUES_CREATED] + 1);
    CHECK(wr_stats_events[WR_NS_DL_EXPIRED] == before[WR_NS_DL_EXPIRED] + 1);
    CHECK(wr_stats_events[WR_NS_DROP_MAXLEN] == before[WR_NS_DROP_MAXLEN] + 1);
    CHECK(wr_stats_events[WR_NS_DROP_REJECTED] == before[WR_NS_DROP_REJECTED] + 1);
    CHECK(wr_stats_events[WR_NS_DL_DELIVERY_LIMIT] == before[WR_NS_DL_DELIVERY_LIMIT] + 1);
    CHECK(wr_stats_events[WR_NS_DROP_EXPIRED] == before[WR_NS_DROP_EXPIRED]);
    /* The node's counters now: closed channels' and live ones'. */
    wr_counters_t a, b = {{0}};
    wr_stats_node_now(&a);
    b.n[WR_ST_ACK] = 5;
    wr_stats_retire(NULL, &b);
    wr_counters_t c;
    wr_stats_node_now(&c);
    CHECK(c.n[WR_ST_ACK] == a.n[WR_ST_ACK] + 5);
}

WR_SUITE(prom)
{
    RUN(test_registries_and_labels);
    RUN(test_node_events);
}
