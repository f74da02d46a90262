/*
 * config.h - broker settings and the rabbitmq.conf file format.
 *
 * warren reads the same sysctl-like format as RabbitMQ (parsed there by
 * cuttlefish): one `key = value` per line, '#' comments, blank lines, keys
 * made of dot-separated words of [A-Za-z0-9_-] (a literal dot inside a word
 * is written "\."), values either unquoted (up to a '#' or the end of the
 * line, trailing blanks trimmed) or in single quotes, which may then
 * contain '#'.  Only the keys warren implements are accepted; anything
 * else is an error rather than silently ignored, because a setting that
 * looks applied but is not is worse than a refusal to start.
 * docs/configuration.md lists every key, its default and legal values.
 *
 * Settings are applied in order, so a later line (or a later --set on the
 * command line, which main.c applies after the file) overrides an earlier
 * one.  A failed load may leave the settings before the bad line applied;
 * callers are expected to report the error and exit.
 *
 * Ownership: every pointer in wr_config_t is owned by the struct and freed
 * by wr_config_free; wr_config_set replaces (and frees) old values.
 */
#ifndef WR_CONFIG_H
#define WR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* One AMQP listener, listeners.tcp.NAME = VALUE. */
typedef struct wr_listen_addr {
    char *name;    /* the NAME of the key ("default", "1", "local_v6", ...) */
    char *host;    /* numeric IPv4 or IPv6 address, no brackets; NULL for a
                    * bare port: every interface, IPv6 ("::") and IPv4 */
    uint16_t port; /* 0: let the kernel pick a free port */
} wr_listen_addr_t;

typedef struct wr_config {
    wr_listen_addr_t *listeners;     /* in the order first configured */
    size_t n_listeners;              /* 0 after "listeners.tcp = none" */
    int listeners_builtin;           /* still the built-in default (the first
                                      * listeners.tcp.* key replaces it) */
    wr_listen_addr_t *ssl_listeners; /* listeners.ssl.NAME: AMQPS (none by default) */
    int management_port;             /* management.tcp.port: the HTTP API; 0 = off */
    char *management_ip;             /* management.tcp.ip: 127.0.0.1 */
    /* management.ssl.*: the HTTP API over TLS (off while port is 0), with
     * its own certificate, key, CAs and peer verification, as RabbitMQ. */
    int management_ssl_port;
    char *management_ssl_ip; /* 127.0.0.1 */
    char *management_ssl_certfile, *management_ssl_keyfile, *management_ssl_cacertfile;
    int management_ssl_verify_peer, management_ssl_fail_if_no_peer_cert;
    int prometheus_port;     /* prometheus.tcp.port: the exporter; 0 = off (RabbitMQ: 15692) */
    char *prometheus_ip;     /* prometheus.tcp.ip: 127.0.0.1 */
    uint32_t stats_interval; /* collect_statistics_interval, ms: 5000 */
    char **unix_listeners;   /* listeners.unix.NAME = PATH: AMQP on Unix sockets */
    size_t n_unix_listeners;
    size_t n_ssl_listeners;
    /* ssl_options.*: the TLS listeners' certificate, key, CAs, peer
     * verification (verify_peer), versions.N and ciphers.N. */
    char *ssl_certfile, *ssl_keyfile, *ssl_cacertfile;
    int ssl_verify_peer, ssl_fail_if_no_peer_cert;
    char **ssl_versions;
    size_t n_ssl_versions;
    char **ssl_ciphers;
    size_t n_ssl_ciphers;
    int ssl_cert_login_cn;  /* ssl_cert_login_from = common_name (else the DN) */
    char **auth_mechanisms; /* auth_mechanisms.N, in order; NULL: PLAIN AMQPLAIN */
    size_t n_auth_mechanisms;
    /* connection.start's server properties (product, version) and
     * cluster_name; NULL = warren's own. */
    char *product;
    char *product_version;
    char *cluster_name;
    char *default_user; /* created on first start */
    char *default_pass;
    char *default_vhost;
    char *default_perms[3];       /* configure, write, read: ".*" */
    char *default_user_tags;      /* comma-separated: "administrator" */
    uint32_t heartbeat;           /* seconds offered in connection.tune; 0 disables */
    uint32_t frame_max;           /* bytes offered in connection.tune; 0 = no limit */
    uint16_t channel_max;         /* offered in connection.tune; 0 = no limit (65535) */
    uint64_t consumer_timeout_ms; /* unacked delivery age that closes the channel */
    uint64_t max_message_size;    /* bytes; larger bodies: 406 on the channel */
    uint64_t connection_max;      /* open connections at most; 0 = no limit */
    char **loopback_users;        /* users who may only connect from loopback */
    size_t n_loopback_users;
    int log_level; /* WR_LOG_* */
    char *data_dir;
    /* Clustering (docs/clustering.md): cluster.listener (this node's
     * inter-node listener, host:port; NULL: a node alone), the shared
     * secret's file, and the nodes of cluster_formation.classic_config
     * ("warren@host:port"), in the order configured. */
    char *cluster_listener;
    char *cluster_secret_file;
    char **cluster_nodes;
    size_t n_cluster_nodes;
    /* A new quorum queue's number of members when x-quorum-initial-group-
     * size is not given (quorum_cluster_size, RabbitMQ's default 3), and
     * where its leader goes (queue_leader_locator: 0 client-local, the
     * declaring node; 1 balanced). */
    unsigned quorum_cluster_size;
    int queue_leader_balanced;
    /* Metadata log entries between snapshots of the cluster's metadata
     * group (cluster.metadata_snapshot_threshold; default 4096). */
    unsigned metadata_snapshot_threshold;
    /* At-least-once dead-lettering of quorum queues: dead letters awaiting
     * their targets' confirms at a time (dead_letter_worker_consumer_
     * prefetch, 32), and the wait before one that routed nowhere or was
     * refused is tried again (dead_letter_worker_publisher_confirm_timeout,
     * ms, 180000); RabbitMQ's names and defaults. */
    unsigned dlx_prefetch;
    uint64_t dlx_retry_ms;
    char *load_definitions; /* a definitions file imported at every start, or NULL */
    /* Memory alarm: publishers are blocked while messages held in memory
     * exceed the absolute limit if set, else this fraction of RAM. */
    double mem_high_watermark_relative;
    uint64_t mem_high_watermark_bytes;
    /* Disk alarm: publishers are blocked while the data directory's file
     * system has less free space than this. */
    uint64_t disk_free_limit;
    /* Size at which the store starts a new segment file; 0 = the default
     * (64 MiB).  Smaller values make compaction testable. */
    uint64_t segment_size;
} wr_config_t;

/* Fills c with the defaults (RabbitMQ's, except listening on 127.0.0.1
 * only):
 * listeners.tcp.default = 127.0.0.1:5672, guest/guest, vhost "/", heartbeat 60, frame_max 131072,
 * channel_max 2047, consumer_timeout 1800000 (30 min), loopback_users
 * ["guest"], log level info, data_dir wr_config_default_data_dir(). */
void wr_config_init(wr_config_t *c);

/* Frees everything c owns and leaves it zeroed; c itself is the caller's. */
void wr_config_free(wr_config_t *c);

/* The default data directory: $WARREN_DATA_DIR if set and non-empty; else
 * /var/lib/warren if the process can write it (or create it); else
 * $XDG_DATA_HOME/warren if XDG_DATA_HOME is an absolute path; else
 * $HOME/.local/share/warren; else ./warren-data.  Returns a pointer to
 * static storage, valid until the next call; not thread-safe (it is meant
 * for startup). */
const char *wr_config_default_data_dir(void);

/* Applies one setting, e.g. ("heartbeat", "30").  value is taken literally:
 * quote and comment handling belong to the file syntax, not to this
 * function.  Returns 0, or WR_EINVAL with a message naming the key and the
 * problem written to err (always NUL-terminated when errlen > 0; err may be
 * NULL). */
int wr_config_set(wr_config_t *c, const char *key, const char *value, char *err, size_t errlen);

/* Applies "KEY=VALUE" (the argument of --set): the key is trimmed of
 * surrounding blanks, the value is everything after the first '='.
 * Returns 0 or WR_EINVAL as wr_config_set. */
int wr_config_set_kv(wr_config_t *c, const char *kv, char *err, size_t errlen);

/* Reads a rabbitmq.conf-format file and applies each setting in order.
 * Returns 0; WR_EIO if the file cannot be read ("PATH: reason" in err); or
 * WR_EINVAL for the first bad line, with err "PATH:LINE: message". */
int wr_config_load_file(wr_config_t *c, const char *path, char *err, size_t errlen);

/* 1 if user is in loopback_users (may connect only over loopback), else 0. */
int wr_config_is_loopback_user(const wr_config_t *c, wr_bytes_t user);

#endif
