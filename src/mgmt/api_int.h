/*
 * api_int.h - what the management API's files share (api.c: the router,
 * authentication, listings and reads; api_write.c: every change).
 */
#ifndef WR_API_INT_H
#define WR_API_INT_H

#include <jansson.h>

#include "broker/access.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "mgmt/http.h"

#define WR_API_SEGS 9

typedef struct wr_api_ctx {
    const wr_http_req_t *q;
    wr_http_resp_t *r;
    wr_user_t *u;
    const char *method;
    int n;                      /* segments after "api" */
    char seg[WR_API_SEGS][256]; /* percent-decoded */
    char raw[WR_API_SEGS][256]; /* as sent (for properties keys) */
    const char *query;          /* after '?', or "" */
} wr_api_ctx_t;

/* Replies. */
void wr_api_json(wr_api_ctx_t *c, int status, json_t *v); /* takes v */
void wr_api_error(wr_api_ctx_t *c, int status, const char *err, const char *reason);
void wr_api_empty(wr_api_ctx_t *c, int status);
void wr_api_not_found(wr_api_ctx_t *c);
void wr_api_bad(wr_api_ctx_t *c, const char *reason); /* 400 bad_request */
/* 401 not_authorised with reason. */
void wr_api_refused(wr_api_ctx_t *c, const char *reason);
/* An operation's refusal as RabbitMQ's API shows it. */
void wr_api_op_failed(wr_api_ctx_t *c, const wr_reply_t *rp);

/* A query parameter, decoded (+ is a space); NULL if absent. */
const char *wr_api_param(const wr_api_ctx_t *c, const char *name, char *out, size_t cap);
int wr_api_param_true(const wr_api_ctx_t *c, const char *name);

/* The request body as a JSON object ({} when empty), or NULL after a 400
 * not_json reply. */
json_t *wr_api_body(wr_api_ctx_t *c);

/* Access: 0 if allowed, else -1 after the 401. */
int wr_api_need(wr_api_ctx_t *c, unsigned tags, const char *reason);
#define WR_API_ADMIN(c) wr_api_need((c), WR_TAG_ADMINISTRATOR, "Not administrator user")
#define WR_API_MONITOR(c)                                                                          \
    wr_api_need((c), WR_TAG_ADMINISTRATOR | WR_TAG_MONITORING, "Not monitor user")
/* The vhost called name if it exists (else 404) and the user may see it
 * (else 401); NULL after replying. */
wr_vhost_t *wr_api_vhost(wr_api_ctx_t *c, const char *name);
int wr_api_sees(const wr_user_t *u, const wr_vhost_t *vh);

/* Runs a control-plane command (admin/ctl.c, warrenctl's code): NULL on
 * success, else the reply (to map to a status; the caller frees it). */
json_t *wr_api_ctl(const char *command, const char *vhost, json_t *args, json_t *options);
/* Maps a control-plane refusal: its exit status and text. */
void wr_api_ctl_failed(wr_api_ctx_t *c, json_t *reply);

/* The actor of the request for the operations layer. */
wr_actor_t wr_api_actor(const wr_api_ctx_t *c);

/* A binding's properties key (RabbitMQ's: the routing key URL-encoded,
 * "~" for an empty one, "~" and a hash of the arguments when it has
 * some). */
void wr_api_props_key(wr_bytes_t key, wr_bytes_t args, char *out, size_t cap);

/* Writes: each returns 1 if it handled the request. */
int wr_api_write(wr_api_ctx_t *c);
/* GET /api/queues/VHOST/NAME/dead-letters. */
void wr_api_dead_letters(wr_api_ctx_t *c);

#endif
