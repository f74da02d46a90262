/*
 * ctl.h - the control socket: what warrenctl talks to.
 *
 * A Unix stream socket at data_dir/warren.sock, mode 0600 (only the user
 * the broker runs as, and root, may connect: the same trust as
 * rabbitmqctl's Erlang cookie), served on the broker's loop.  Whoever
 * connects acts as the operator: every operation is allowed, and goes
 * through the operations layer (broker/ops.h) or the access and vhost
 * functions the AMQP side uses, never around them.
 *
 * Protocol: the client sends requests, one JSON object per line (at most
 * WR_CTL_MAX_LINE bytes); the broker answers each with one JSON object on
 * one line, in order.
 *
 *   request:  {"command": "list_queues",      rabbitmqctl's command name
 *              "vhost": "/",                  -p (default "/")
 *              "args": ["name", "messages"],  positional arguments, strings
 *              "options": {"tags": "..."}}    --flags, by name without "--"
 *
 *   reply, a listing:
 *             {"ok": true, "info": "Listing queues for vhost / ...",
 *              "columns": ["name", "messages"],
 *              "rows": [["q1", 0], ...]}      JSON values: strings, numbers,
 *                                             booleans, objects (arguments
 *                                             tables), arrays, null
 *   reply, an action:
 *             {"ok": true, "info": "Adding user \"bob\" ...",
 *              "message": "..."}              optional text to print
 *   reply, a refusal:
 *             {"ok": false, "error": "...",   the text rabbitmqctl prints
 *              "exit": 65}                    rabbitmqctl's exit status
 *
 * The command table (and each command's arguments and columns) is in
 * ctl.c; docs/warrenctl.md documents it for users.
 */
#ifndef WR_CTL_H
#define WR_CTL_H

#include <stddef.h>

#include <jansson.h>

#define WR_CTL_SOCKET   "warren.sock"
#define WR_CTL_MAX_LINE (64u << 20)

/* Listens on data_dir/warren.sock (replacing a stale socket file).
 * Returns 0, or -1 with err filled. */
int wr_ctl_start(const char *data_dir, char *err, size_t errlen);
/* Stops listening, closes client connections, removes the socket file. */
void wr_ctl_stop(void);

/* Runs one request (a JSON text) and returns the reply as a malloc'd
 * JSON text without the newline (for the socket, tests and fuzzing). */
char *wr_ctl_execute(const char *request, size_t len);

/* The same for a request already parsed (the HTTP API): the reply
 * object, {"ok": true, ...} or {"ok": false, "error": TEXT, "exit": N}.
 * The request is borrowed. */
json_t *wr_ctl_call(json_t *request);

#endif
