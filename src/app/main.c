/*
 * main.c - the warren binary: command line, configuration, the event loop
 * and its per-pass hooks, signals and orderly shutdown.
 *
 * Each loop pass ends (uv_check, right after I/O callbacks) and begins
 * (uv_prepare, before the loop sleeps) with the same "before sleep" step:
 * run queued dispatches, send coalesced publisher confirms, flush every
 * socket with pending output.  Doing it once per pass batches the work of
 * a whole burst of frames into a few system calls.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/ctl.h"
#include "admin/defs.h"
#include "admin/meta.h"
#include "admin/replica.h"
#include "broker/cluster.h"
#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/quorum.h"
#include "broker/persist.h"
#include "broker/stats.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/sock.h"
#include "net/tls.h"
#include "mgmt/api.h"
#include "mgmt/prom.h"

#include "core/version.h"

static wr_listener_t *listeners;
static size_t n_listeners;
static uv_prepare_t prepare_handle;
static uv_check_t check_handle;
static uv_timer_t tick_timer;
static uv_signal_t sigterm_handle, sigint_handle;
static uv_timer_t shutdown_timer;
static int shutting_down;

static void before_sleep(void)
{
    wr_queue_run_pending();
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
        if (vh->store)
            wr_store_flush(vh->store);
    wr_conn_flush_confirms();
    wr_conn_check_memory();
    wr_sock_flush_all();
}

static void on_prepare(uv_prepare_t *h)
{
    (void)h;
    before_sleep();
}

static void on_check(uv_check_t *h)
{
    (void)h;
    before_sleep();
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    wr_conn_tick();
    wr_persist_tick(wr_broker.cfg->disk_free_limit);
    wr_meta_tick();
    wr_cmeta_tick();
    wr_queue_trim_memory();
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    (void)t;
    /* Connections had their chance to read connection.close; stop. */
    uv_stop(wr_loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (shutting_down) {
        wr_warn("second signal %d: exiting now", signum);
        exit(1);
    }
    shutting_down = 1;
    wr_info("received signal %d, shutting down", signum);
    for (size_t i = 0; i < n_listeners; i++)
        wr_listener_close(&listeners[i]);
    wr_ctl_stop();
    wr_stats_stop();
    wr_conn_shutdown_all("broker shutdown");
    before_sleep();
    uv_timer_start(&shutdown_timer, on_shutdown_timer, 200, 0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: warren [--config FILE] [--listen HOST:PORT] [--data-dir DIR]\n"
               "              [--set KEY=VALUE]... [--help] [--version]\n"
               "\n"
               "Starts the warren AMQP 0-9-1 broker.  With no arguments it listens on\n"
               "127.0.0.1:5672 with the built-in defaults.  FILE uses RabbitMQ's\n"
               "rabbitmq.conf format (see docs/configuration.md); flags override it.\n");
}

static wr_tls_ctx_t *tls_ctx;
static wr_tls_ctx_t *mgmt_tls_ctx; /* management.ssl.*: its own certificate */

static const wr_http_app_t api_app = {"management API", wr_api_handle, wr_cmeta_wait,
                                      wr_cmeta_cancel};
static const wr_http_app_t prom_app = {"Prometheus", wr_prom_handle, NULL, NULL};

/* One HTTP listener serving app (over TLS with tls); key names the
 * setting in errors. */
static int listen_http(const char *key, const char *ip, int port, wr_tls_ctx_t *tls,
                       const wr_http_app_t *app)
{
    wr_listener_t *l = &listeners[n_listeners++];
    l->tls = tls;
    l->ud = (void *)(uintptr_t)app; /* read back as const by wr_http_accept */
    int r =
        wr_listen(wr_loop, l, ip ? ip : "127.0.0.1", port, &wr_http_sock_handler, wr_http_accept);
    if (r != 0) {
        wr_error("cannot listen on %s (%s): %s", l->addr, key, uv_strerror(r));
        return -1;
    }
    wr_info("listening for HTTP%s (%s) on %s", tls ? "S" : "", app->name, l->addr);
    return 0;
}

/* Binds one address of a listener; a failure is logged with the key that
 * asked for it.  *skipped is set for an IPv6 address on a host without
 * IPv6 (when v6_optional). */
static int listen_one(const char *kind, const char *name, const char *host, int port,
                      wr_tls_ctx_t *tls, int v6_optional)
{
    wr_listener_t *l = &listeners[n_listeners++];
    l->tls = tls;
    int r = wr_listen(wr_loop, l, host, port, &wr_conn_handler, wr_conn_accept);
    if (v6_optional && (r == UV_EAFNOSUPPORT || r == UV_EADDRNOTAVAIL)) {
        wr_warn("no IPv6 on this host (%s): listeners.%s.%s listens on IPv4 only", uv_strerror(r),
                kind, name);
        return 0;
    }
    if (r != 0) {
        wr_error("cannot listen on %s (listeners.%s.%s): %s", l->addr, kind, name, uv_strerror(r));
        return r;
    }
    wr_info("listening for AMQP%s on %s", tls ? " over TLS" : "", l->addr);
    return 0;
}

/* One list of listeners.  A bare port means every interface, as in
 * RabbitMQ: "::" (IPv6 only) and "0.0.0.0"; a host without IPv6 gets the
 * IPv4 one alone. */
static int start_list(const char *kind, const wr_listen_addr_t *list, size_t n, wr_tls_ctx_t *tls)
{
    for (size_t i = 0; i < n; i++) {
        const wr_listen_addr_t *a = &list[i];
        if (a->host) {
            if (listen_one(kind, a->name, a->host, a->port, tls, 0) != 0)
                return -1;
            continue;
        }
        if (listen_one(kind, a->name, "::", a->port, tls, 1) != 0 ||
            listen_one(kind, a->name, "0.0.0.0", a->port, tls, 0) != 0)
            return -1;
    }
    return 0;
}

/* The management and Prometheus listeners, then AMQP's: a client that can
 * connect to an AMQP port finds every other listener of the node up. */
static int start_listeners(const wr_config_t *cfg)
{
    listeners =
        wr_xcalloc(2 * (cfg->n_listeners + cfg->n_ssl_listeners) + cfg->n_unix_listeners + 4,
                   sizeof *listeners);
    if (cfg->management_port && listen_http("management.tcp.port", cfg->management_ip,
                                            cfg->management_port, NULL, &api_app) != 0)
        return -1;
    if (cfg->management_ssl_port) {
        /* The AMQPS listeners' transport, with management.ssl.*'s files. */
        wr_tls_config_t tc = {cfg->management_ssl_certfile,
                              cfg->management_ssl_keyfile,
                              cfg->management_ssl_cacertfile,
                              cfg->management_ssl_verify_peer,
                              cfg->management_ssl_fail_if_no_peer_cert,
                              NULL,
                              0,
                              NULL,
                              0};
        char err[512];
        mgmt_tls_ctx = wr_tls_ctx_new(&tc, err, sizeof err);
        if (mgmt_tls_ctx == NULL) {
            wr_error("cannot set up TLS for management.ssl: %s", err);
            return -1;
        }
        if (listen_http("management.ssl.port", cfg->management_ssl_ip, cfg->management_ssl_port,
                        mgmt_tls_ctx, &api_app) != 0)
            return -1;
    }
    if (cfg->prometheus_port && listen_http("prometheus.tcp.port", cfg->prometheus_ip,
                                            cfg->prometheus_port, NULL, &prom_app) != 0)
        return -1;
    /* AMQPS first (its TLS context takes a while): a client that reaches
     * the plain AMQP port finds every listener up. */
    if (cfg->n_ssl_listeners) {
        wr_tls_config_t tc = {cfg->ssl_certfile,
                              cfg->ssl_keyfile,
                              cfg->ssl_cacertfile,
                              cfg->ssl_verify_peer,
                              cfg->ssl_fail_if_no_peer_cert,
                              (const char *const *)cfg->ssl_versions,
                              cfg->n_ssl_versions,
                              (const char *const *)cfg->ssl_ciphers,
                              cfg->n_ssl_ciphers};
        char err[512];
        tls_ctx = wr_tls_ctx_new(&tc, err, sizeof err);
        if (tls_ctx == NULL) {
            wr_error("cannot set up TLS: %s", err);
            return -1;
        }
        if (start_list("ssl", cfg->ssl_listeners, cfg->n_ssl_listeners, tls_ctx) != 0)
            return -1;
    }
    if (start_list("tcp", cfg->listeners, cfg->n_listeners, NULL) != 0)
        return -1;
    for (size_t i = 0; i < cfg->n_unix_listeners; i++) {
        wr_listener_t *l = &listeners[n_listeners++];
        int r =
            wr_listen_unix(wr_loop, l, cfg->unix_listeners[i], &wr_conn_handler, wr_conn_accept);
        if (r != 0) {
            wr_error("cannot listen on %s (listeners.unix): %s", cfg->unix_listeners[i],
                     uv_strerror(r));
            return -1;
        }
        wr_info("listening for AMQP on the Unix socket %s", cfg->unix_listeners[i]);
    }
    if (cfg->n_listeners == 0 && cfg->n_ssl_listeners == 0 && cfg->n_unix_listeners == 0)
        wr_warn("no AMQP listeners (listeners.tcp = none)");
    return 0;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static wr_config_t cfg;
    char err[512];
    wr_config_init(&cfg);
    signal(SIGPIPE, SIG_IGN);

    /* The config file first, then the flags in order, so flags win. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            if (wr_config_load_file(&cfg, argv[++i], err, sizeof err) != 0) {
                fprintf(stderr, "warren: %s\n", err);
                return 2;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("warren %s\n", WARREN_VERSION);
            return 0;
        } else if (strcmp(a, "--config") == 0 && v) {
            i++;
        } else if (strcmp(a, "--listen") == 0 && v) {
            r = wr_config_set(&cfg, "listeners.tcp.default", v, err, sizeof err);
            i++;
        } else if (strcmp(a, "--data-dir") == 0 && v) {
            r = wr_config_set(&cfg, "data_dir", v, err, sizeof err);
            i++;
        } else if (strcmp(a, "--set") == 0 && v) {
            r = wr_config_set_kv(&cfg, v, err, sizeof err);
            i++;
        } else {
            fprintf(stderr, "warren: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (r != 0) {
            fprintf(stderr, "warren: %s\n", err);
            return 2;
        }
    }
    wr_log_set_level(cfg.log_level);

    if (mkdir_p(cfg.data_dir) != 0) {
        fprintf(stderr, "warren: cannot create data directory '%s': %s\n", cfg.data_dir,
                strerror(errno));
        return 1;
    }

    wr_loop = uv_default_loop();
    wr_broker.cfg = &cfg;
    /* Before the data directory: recovered quorum queues join their groups
     * through the node's inter-node listener. */
    if (wr_cluster_start(&cfg, err, sizeof err) != 0) {
        wr_error("cannot start clustering: %s", err);
        return 1;
    }
    if (wr_meta_open(&cfg, err, sizeof err) != 0) {
        wr_error("cannot open the data directory: %s", err);
        return 1;
    }

    wr_replica_start();
    if (wr_cmeta_open(cfg.data_dir, err, sizeof err) != 0) {
        wr_error("cannot open the cluster's metadata: %s", err);
        return 1;
    }
    if (cfg.load_definitions && wr_defs_load_file(cfg.load_definitions, err, sizeof err) != 0) {
        wr_error("cannot load definitions (load_definitions): %s", err);
        return 1;
    }
    if (wr_ctl_start(cfg.data_dir, err, sizeof err) != 0) {
        wr_error("cannot start the control socket: %s", err);
        return 1;
    }
    /* Signals first: a SIGTERM once a listener is up is an orderly stop. */
    uv_timer_init(wr_loop, &shutdown_timer);
    uv_signal_init(wr_loop, &sigterm_handle);
    uv_signal_start(&sigterm_handle, on_signal, SIGTERM);
    uv_signal_init(wr_loop, &sigint_handle);
    uv_signal_start(&sigint_handle, on_signal, SIGINT);
    if (start_listeners(&cfg) != 0)
        return 1;
    uv_prepare_init(wr_loop, &prepare_handle);
    uv_prepare_start(&prepare_handle, on_prepare);
    uv_check_init(wr_loop, &check_handle);
    uv_check_start(&check_handle, on_check);
    wr_stats_start(cfg.stats_interval);
    uv_timer_init(wr_loop, &tick_timer);
    uv_timer_start(&tick_timer, on_tick, 1000, 1000);

    wr_info("warren %s started, data in %s", WARREN_VERSION, cfg.data_dir);
    uv_run(wr_loop, UV_RUN_DEFAULT);

    /* Orderly teardown: release what connections hold, then the broker
     * state (which closes queue timers), then every remaining handle; one
     * more loop run lets the close callbacks free their memory. */
    wr_ctl_stop();
    wr_conn_close_all_now();
    wr_queue_run_pending();
    wr_quorum_early_free();
    wr_quorum_admin_free();
    wr_cmeta_close();
    wr_replica_stop();
    wr_meta_close();
    /* Raft groups (quorum queues, the cluster's metadata) close
     * asynchronously (their logs stay for the next start): let them
     * finish before the remaining handles go. */
    while (wr_quorum_closing() > 0 || wr_cluster_closing() > 0)
        uv_run(wr_loop, UV_RUN_ONCE);
    wr_quorum_shutdown();
    while (wr_cluster_stopping())
        uv_run(wr_loop, UV_RUN_ONCE);
    uv_walk(wr_loop, close_walk, NULL);
    uv_run(wr_loop, UV_RUN_DEFAULT);
    uv_loop_close(wr_loop);
    free(listeners);
    wr_tls_ctx_free(tls_ctx);
    wr_tls_ctx_free(mgmt_tls_ctx);
    wr_config_free(&cfg);
    wr_info("warren stopped");
    return 0;
}
