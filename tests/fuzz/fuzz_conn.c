/*
 * fuzz_conn.c - libFuzzer target: a whole AMQP connection fed arbitrary
 * bytes.
 *
 * Each input is split into chunks (the first byte picks the chunk size) and
 * fed to a detached connection (net/sock.h) after a valid protocol header,
 * so the fuzzer explores the handshake, every method handler, content
 * assembly and error paths of the real broker code.  The broker state (a
 * fresh vhost) is rebuilt for every input so runs are independent.  Inputs
 * starting with 'H' skip the automatic header, to fuzz header handling too.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/access.h"
#include "broker/conn.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wr_vhost_t *vh0; /* the vhost "/", in the registry */
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
    vh0 = wr_vhost_new("/");
    wr_broker_vhost_add(vh0);
    wr_user_t *guest = wr_access_user_add("guest", "guest", "administrator");
    wr_access_set_perms(guest, "/", ".*", ".*", ".*", NULL, 0);
    wr_sock_t *s = wr_sock_new_detached(&wr_conn_handler, 1);
    wr_conn_accept(s);
    size_t chunk = 4096;
    if (size > 0) {
        chunk = (size_t)data[0] * 7 + 1;
        int raw = data[0] == 'H';
        data++;
        size--;
        if (!raw) {
            static const uint8_t hdr[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
            wr_sock_feed(s, hdr, sizeof hdr);
        }
    }
    for (size_t off = 0; off < size && !s->closing; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        wr_sock_feed(s, data + off, n);
        wr_queue_run_pending();
        wr_conn_flush_confirms();
        wr_sock_detached_drain(s);
    }
    wr_conn_tick();
    wr_sock_detached_free(s);
    wr_broker_vhost_remove(vh0);
    wr_vhost_free(vh0);
    wr_access_reset();
    vh0 = NULL;
    uv_run(wr_loop, UV_RUN_NOWAIT); /* lets closed timers be freed */
    return 0;
}
