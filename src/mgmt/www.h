/*
 * www.h - the management web UI's static files (issue 11), served by the
 * management HTTP server beside the API.
 *
 * The UI is plain HTML, CSS and JavaScript under www/ in the source tree;
 * tools/embed_www.py turns those files into src/mgmt/www_gen.c (committed,
 * checked by tools/check_generated.sh), so the binary needs nothing next
 * to it at run time.  The UI itself only talks to the HTTP API (/api/...)
 * with basic auth; serving it needs no authentication, as RabbitMQ's UI
 * does not.  Every reply carries the HTTP layer's "Cache-Control: no-cache":
 * the files have no version in their names, so after an upgrade a browser
 * must fetch them again rather than keep a stale app.js.
 */
#ifndef WR_WWW_H
#define WR_WWW_H

#include <stddef.h>

#include "mgmt/http.h"

/* One embedded file: path as requested ("/app.js"), its Content-Type, and
 * its bytes (static, never freed). */
typedef struct wr_www_file {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    size_t len;
} wr_www_file_t;

/* The generated table (www_gen.c), sorted by path; wr_www_n_files entries
 * and a terminating entry whose path is NULL. */
extern const wr_www_file_t wr_www_files[];
extern const size_t wr_www_n_files;

/* The file a request target names ("/" is "/index.html"; a query string
 * is ignored), or NULL. */
const wr_www_file_t *wr_www_find(const char *target);

/* Answers GET and HEAD of "/", "/index.html" and the other embedded files:
 * status 200, the file's Content-Type, the bytes copied into resp->body
 * (for HEAD too, so Content-Length is the file's; the HTTP layer leaves a
 * HEAD's body out).  Returns 1 when it answered, 0 when req is not one of
 * those requests (resp untouched): the caller then answers 404. */
int wr_www_serve(const wr_http_req_t *req, wr_http_resp_t *resp);

#endif
