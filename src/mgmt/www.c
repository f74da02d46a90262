/* www.c - serves the embedded web UI (see www.h). */
#include "mgmt/www.h"

#include <string.h>

const wr_www_file_t *wr_www_find(const char *target)
{
    size_t len = strcspn(target, "?#");
    if (len == 1 && target[0] == '/') {
        target = "/index.html";
        len = strlen(target);
    }
    /* wr_www_n_files is small (a handful of files): a linear scan. */
    for (size_t i = 0; i < wr_www_n_files; i++) {
        const wr_www_file_t *f = &wr_www_files[i];
        if (strlen(f->path) == len && memcmp(f->path, target, len) == 0)
            return f;
    }
    return NULL;
}

int wr_www_serve(const wr_http_req_t *req, wr_http_resp_t *resp)
{
    if (req->method == NULL ||
        (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0))
        return 0;
    const wr_www_file_t *f = wr_www_find((const char *)req->url.p);
    if (f == NULL)
        return 0;
    resp->status = 200;
    resp->content_type = f->content_type;
    resp->body.len = 0;
    wr_buf_put(&resp->body, f->data, f->len);
    return 1;
}
