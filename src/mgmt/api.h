/*
 * api.h - the management HTTP API (issue 11): RabbitMQ's paths, methods,
 * fields, status codes and error bodies, so rabbitmqadmin, the HTTP API
 * clients and test suites that close connections through it work
 * unchanged.  The routes are in api.c (routes[]); docs/management.md
 * lists them with what differs from RabbitMQ.
 *
 * HTTP basic auth against warren's users; a user needs one of the tags
 * management, policymaker, monitoring or administrator.  Administrators
 * and monitoring users see every vhost, the others the vhosts they have
 * permissions on (and only their own connections); changes need
 * administrator (users, vhosts, permissions, limits, definitions,
 * operator policies) or policymaker (policies) or, for queues, exchanges,
 * bindings and messages, the AMQP permissions of the user - checked by
 * the operations layer exactly as for a client.  Every refusal is a 401,
 * as in RabbitMQ.
 *
 * Reads come from the broker's objects and the statistics module
 * (broker/stats.h) through admin/info.h; writes go through the
 * operations layer (broker/ops.h) and the control plane's commands
 * (admin/ctl.c), the code behind warrenctl.  Beyond RabbitMQ:
 * GET /api/queues/V/Q/dead-letters, POST .../replay and .../move
 * (broker/replay.h).
 */
#ifndef WR_API_H
#define WR_API_H

#include "mgmt/http.h"

void wr_api_handle(const wr_http_req_t *req, wr_http_resp_t *resp);

#endif
