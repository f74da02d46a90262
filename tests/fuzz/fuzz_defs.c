/*
 * fuzz_defs.c - libFuzzer target: the definitions importer (admin/defs.h)
 * fed arbitrary JSON texts.
 *
 * Each input is imported into a fresh broker state (vhost "/", user
 * guest, no data directory: creating a vhost is refused, so the importer's
 * checks and its queue, exchange, binding, policy and user paths run on
 * "/").  An import that fails must leave what it refused unapplied; the
 * target checks that "/" still exists and that an export still works.
 */
#include <jansson.h>
#include <stdlib.h>

#include "admin/defs.h"
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
    char err[1024];
    wr_defs_import((const char *)data, size, NULL, err, sizeof err);
    if (wr_broker_vhost(WR_BYTES_LIT("/")) != vh)
        abort();
    json_t *out = wr_defs_export(NULL);
    if (!json_is_object(out))
        abort();
    json_decref(out);
    wr_broker_vhost_remove(vh);
    wr_vhost_free(vh);
    wr_access_reset();
    return 0;
}
