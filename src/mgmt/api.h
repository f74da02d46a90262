/*
 * api.h - the management HTTP API (issue 11, in progress): RabbitMQ's
 * paths, fields and status codes, answered from the control plane.
 *
 * Served so far (GET): /api/overview, /api/whoami, /api/vhosts,
 * /api/users, and /api/queues, /api/exchanges, /api/bindings (each also
 * per VHOST).  HTTP basic auth against warren's
 * users; a user needs one of the tags management, policymaker,
 * monitoring or administrator; administrators and monitoring users see
 * every vhost, the others the vhosts they have permissions on.  Errors
 * are RabbitMQ's JSON ({"error": ..., "reason": ...}).
 */
#ifndef WR_API_H
#define WR_API_H

#include "mgmt/http.h"

void wr_api_handle(const wr_http_req_t *req, wr_http_resp_t *resp);

#endif
