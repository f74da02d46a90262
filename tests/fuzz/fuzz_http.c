/*
 * fuzz_http.c - libFuzzer target: the HTTP server (mgmt/http.h) and the
 * applications behind it (the management API, then the Prometheus
 * exporter with its query strings), each fed the same arbitrary bytes on
 * a detached socket, in chunks the first byte sizes (so requests split
 * across reads).
 */
#include <stdlib.h>

#include "broker/access.h"
#include "broker/conn.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "mgmt/api.h"
#include "mgmt/prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wr_config_t cfg;
static int ready;
static const wr_http_app_t apps[] = {{"management API", wr_api_handle, NULL, NULL},
                                     {"Prometheus", wr_prom_handle, NULL, NULL}};

static void feed(const wr_http_app_t *app, const uint8_t *data, size_t size, size_t chunk)
{
    wr_sock_t *s = wr_sock_new_detached(&wr_http_sock_handler, 1);
    wr_http_attach(s, app);
    for (size_t off = 0; off < size && !s->closing; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        wr_sock_feed(s, data + off, n);
        wr_sock_detached_drain(s);
    }
    wr_sock_detached_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        wr_loop = uv_default_loop();
        wr_config_init(&cfg);
        wr_log_set_level(WR_LOG_NONE);
        wr_broker.cfg = &cfg;
        ready = 1;
    }
    wr_vhost_t *vh = wr_vhost_new("/");
    wr_broker_vhost_add(vh);
    wr_user_t *guest = wr_access_user_add("guest", "guest", "administrator");
    wr_access_set_perms(guest, "/", ".*", ".*", ".*", NULL, 0);
    size_t chunk = size ? (size_t)data[0] * 5 + 1 : 1;
    if (size) {
        data++;
        size--;
    }
    for (size_t a = 0; a < sizeof apps / sizeof apps[0]; a++)
        feed(&apps[a], data, size, chunk);
    wr_broker_vhost_remove(vh);
    wr_vhost_free(vh);
    wr_access_reset();
    return 0;
}
