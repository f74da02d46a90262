/*
 * fuzz_ctl.c - libFuzzer target: the control socket's request parser and
 * command handlers (admin/ctl.h) fed arbitrary request lines.
 *
 * Each input is one request; the broker state (vhost "/", user guest with
 * every permission, and no data directory, so commands that would write
 * one are refused) is rebuilt for every input so runs are independent.
 * The reply must always be a JSON object with "ok".
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"
#include "broker/access.h"
#include "broker/conn.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wr_config_t cfg;
static int ready;

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
    char *reply = wr_ctl_execute((const char *)data, size);
    json_t *r = json_loads(reply, 0, NULL);
    if (r == NULL || !json_is_boolean(json_object_get(r, "ok")))
        abort();
    json_decref(r);
    free(reply);
    /* A command may have removed "/" (delete_vhost is refused without a
     * data directory, but be safe). */
    wr_vhost_t *still = wr_broker_vhost(WR_BYTES_LIT("/"));
    if (still) {
        wr_broker_vhost_remove(still);
        wr_vhost_free(still);
    }
    wr_access_reset();
    return 0;
}
