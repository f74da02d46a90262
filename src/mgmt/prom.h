/*
 * prom.h - the Prometheus exporter (issue 11): RabbitMQ's
 * rabbitmq_prometheus endpoints, served by warren's HTTP server on
 * prometheus.tcp.port (15692 when enabled).
 *
 *   GET /metrics             every family warren measures, aggregated
 *                            (one sample per family, no object labels)
 *   GET /metrics/per-object  the same families with one sample per queue,
 *                            channel or connection and their labels
 *   GET /metrics/detailed?family=NAME&...&vhost=V&...
 *                            only the named metric groups, per object,
 *                            names prefixed rabbitmq_detailed_, objects of
 *                            the named vhosts only (all without vhost=)
 *
 * Names, types, help texts and label names are RabbitMQ 3.10's
 * (docs/metrics.md lists them, and what warren leaves out because it
 * cannot measure it).  The text format is Prometheus's 0.0.4 exposition
 * format, "# TYPE" before "# HELP" as RabbitMQ writes them.  No auth, as
 * in RabbitMQ.  Everything is read when scraped, from the broker's
 * objects and counters (broker/stats.h), on the broker's loop.
 */
#ifndef WR_PROM_H
#define WR_PROM_H

#include "core/buf.h"
#include "mgmt/http.h"

/* The HTTP application (mgmt/http.h): 200 with the metrics, 404 with
 * RabbitMQ's bodies elsewhere, 406 when the client accepts only the
 * protobuf format. */
void wr_prom_handle(const wr_http_req_t *req, wr_http_resp_t *resp);

/* Renders the registry that target (a request target: path and query
 * string) names, appending the text to out.  Returns the HTTP status:
 * 200, or 404 for an unknown path (out untouched). */
int wr_prom_render(const char *target, wr_buf_t *out);

#endif
