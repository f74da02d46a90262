/*
 * config.c - broker settings and the rabbitmq.conf parser (see config.h).
 *
 * The file syntax follows cuttlefish's grammar (conf_parse.peg), which is
 * what RabbitMQ uses: `key = value`, where an unquoted value ends at the
 * first '#' (the rest of the line is a comment) and a value in single
 * quotes is taken verbatim.  The value checks follow RabbitMQ's schema
 * (rabbit.schema) where warren has the same setting, and are stricter where
 * a RabbitMQ value would make no sense on the wire: heartbeat and
 * channel_max are 16-bit fields of connection.tune, and a frame_max below
 * the protocol's 4096-byte minimum frame cannot carry a method frame.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

#define DEFAULT_DATA_DIR_FALLBACK "./warren-data"
#define SYSTEM_DATA_DIR           "/var/lib/warren"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *xstrdup(const char *s)
{
    return wr_xstrndup(s, strlen(s));
}

static void replace_str(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
}

/* ---- listeners --------------------------------------------------------- */

static void listeners_clear(wr_config_t *c)
{
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].host);
    }
    free(c->listeners);
    c->listeners = NULL;
    c->n_listeners = 0;
}

/* Sets listener NAME of a list (replacing its address if it exists);
 * takes host. */
static void addr_set(wr_listen_addr_t **list, size_t *n, const char *name, char *host,
                     uint16_t port)
{
    wr_listen_addr_t *l = NULL;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i].name, name) == 0)
            l = &(*list)[i];
    if (l == NULL) {
        *list = wr_xrealloc(*list, (*n + 1) * sizeof **list);
        l = &(*list)[(*n)++];
        l->name = xstrdup(name);
        l->host = NULL;
    }
    free(l->host);
    l->host = host;
    l->port = port;
}

static void listener_set(wr_config_t *c, const char *name, char *host, uint16_t port)
{
    addr_set(&c->listeners, &c->n_listeners, name, host, port);
}

static void strv_free(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static void strv_add(char ***v, size_t *n, const char *s)
{
    *v = wr_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

/* ---- loopback user list ------------------------------------------------ */

static void loopback_clear(wr_config_t *c)
{
    for (size_t i = 0; i < c->n_loopback_users; i++)
        free(c->loopback_users[i]);
    free(c->loopback_users);
    c->loopback_users = NULL;
    c->n_loopback_users = 0;
}

static ssize_t loopback_find(const wr_config_t *c, wr_bytes_t user)
{
    for (size_t i = 0; i < c->n_loopback_users; i++)
        if (wr_bytes_eq_str(user, c->loopback_users[i]))
            return (ssize_t)i;
    return -1;
}

static void loopback_add(wr_config_t *c, const char *user)
{
    if (loopback_find(c, wr_bytes_of(user)) >= 0)
        return;
    c->loopback_users =
        wr_xrealloc(c->loopback_users, (c->n_loopback_users + 1) * sizeof *c->loopback_users);
    c->loopback_users[c->n_loopback_users++] = xstrdup(user);
}

static void loopback_remove(wr_config_t *c, const char *user)
{
    ssize_t i = loopback_find(c, wr_bytes_of(user));
    if (i < 0)
        return;
    free(c->loopback_users[i]);
    /* Keep the order: it is what an operator reading a dump expects. */
    memmove(&c->loopback_users[i], &c->loopback_users[i + 1],
            (c->n_loopback_users - (size_t)i - 1) * sizeof *c->loopback_users);
    c->n_loopback_users--;
}

int wr_config_is_loopback_user(const wr_config_t *c, wr_bytes_t user)
{
    return loopback_find(c, user) >= 0;
}

/* ---- defaults ---------------------------------------------------------- */

/* A directory is usable if we can write into it, or if it does not exist
 * yet and we could create it in its parent. */
static int dir_usable(const char *dir, const char *parent)
{
    if (access(dir, W_OK | X_OK) == 0)
        return 1;
    return errno == ENOENT && access(parent, W_OK | X_OK) == 0;
}

const char *wr_config_default_data_dir(void)
{
    static char buf[4096];
    const char *env = getenv("WARREN_DATA_DIR");
    if (env != NULL && env[0] != '\0' && strlen(env) < sizeof buf) {
        memcpy(buf, env, strlen(env) + 1);
        return buf;
    }
    if (dir_usable(SYSTEM_DATA_DIR, "/var/lib"))
        return SYSTEM_DATA_DIR;
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg != NULL && xdg[0] == '/') {
        int n = snprintf(buf, sizeof buf, "%s/warren", xdg);
        if (n > 0 && (size_t)n < sizeof buf)
            return buf;
    }
    const char *home = getenv("HOME");
    if (home != NULL && home[0] != '\0') {
        int n = snprintf(buf, sizeof buf, "%s/.local/share/warren", home);
        if (n > 0 && (size_t)n < sizeof buf)
            return buf;
    }
    return DEFAULT_DATA_DIR_FALLBACK;
}

void wr_config_init(wr_config_t *c)
{
    memset(c, 0, sizeof *c);
    listener_set(c, "default", xstrdup("127.0.0.1"), 5672);
    c->listeners_builtin = 1;
    c->max_message_size = 128u << 20;
    c->default_user = xstrdup("guest");
    c->default_pass = xstrdup("guest");
    c->default_vhost = xstrdup("/");
    for (int i = 0; i < 3; i++)
        c->default_perms[i] = xstrdup(".*");
    c->default_user_tags = xstrdup("administrator");
    c->heartbeat = 60;
    c->stats_interval = 5000;
    c->quorum_cluster_size = 3;
    c->metadata_snapshot_threshold = 4096;
    c->dlx_prefetch = 32;
    c->dlx_retry_ms = 180000;
    c->frame_max = 131072;
    c->channel_max = 2047;
    c->consumer_timeout_ms = 1800000;
    c->mem_high_watermark_relative = 0.4;
    c->mem_high_watermark_bytes = 0;
    c->disk_free_limit = 50000000; /* RabbitMQ's default: 50 MB */
    loopback_add(c, "guest");
    c->log_level = WR_LOG_INFO;
    c->data_dir = xstrdup(wr_config_default_data_dir());
}

void wr_config_free(wr_config_t *c)
{
    listeners_clear(c);
    for (size_t i = 0; i < c->n_ssl_listeners; i++) {
        free(c->ssl_listeners[i].name);
        free(c->ssl_listeners[i].host);
    }
    free(c->ssl_listeners);
    free(c->ssl_certfile);
    free(c->ssl_keyfile);
    free(c->ssl_cacertfile);
    strv_free(&c->ssl_versions, &c->n_ssl_versions);
    strv_free(&c->ssl_ciphers, &c->n_ssl_ciphers);
    strv_free(&c->auth_mechanisms, &c->n_auth_mechanisms);
    strv_free(&c->unix_listeners, &c->n_unix_listeners);
    free(c->management_ip);
    free(c->management_ssl_ip);
    free(c->management_ssl_certfile);
    free(c->management_ssl_keyfile);
    free(c->management_ssl_cacertfile);
    free(c->prometheus_ip);
    free(c->product);
    free(c->product_version);
    free(c->cluster_name);
    free(c->default_user);
    free(c->default_pass);
    free(c->default_vhost);
    free(c->load_definitions);
    free(c->cluster_listener);
    free(c->cluster_secret_file);
    strv_free(&c->cluster_nodes, &c->n_cluster_nodes);
    for (int i = 0; i < 3; i++)
        free(c->default_perms[i]);
    free(c->default_user_tags);
    free(c->data_dir);
    loopback_clear(c);
    memset(c, 0, sizeof *c);
}

/* ---- value parsers ----------------------------------------------------- */

/* Decimal digits only (no sign, no blanks), without overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* cuttlefish's bytesize: an integer, optionally followed by KB, MB or GB
 * (either case, powers of 1024). */
static int parse_bytesize(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    uint64_t mult = 1;
    if (n >= 2) {
        char a = s[n - 2], b = s[n - 1];
        if (b == 'B' || b == 'b') {
            if (a == 'K' || a == 'k')
                mult = 1024;
            else if (a == 'M' || a == 'm')
                mult = 1024 * 1024;
            else if (a == 'G' || a == 'g')
                mult = 1024 * 1024 * 1024;
        }
    }
    char digits[32];
    size_t dn = mult == 1 ? n : n - 2;
    if (dn == 0 || dn >= sizeof digits)
        return -1;
    memcpy(digits, s, dn);
    digits[dn] = '\0';
    uint64_t v;
    if (parse_u64(digits, &v) < 0 || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "false") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_port(const char *s, uint16_t *out)
{
    uint64_t v;
    if (parse_u64(s, &v) < 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/*
 * A listener is a bare port (every interface: *host is NULL), "IP:PORT" split at the
 * last colon as cuttlefish's ip datatype does (so "::1:5672" is IPv6
 * loopback), or "[IPv6]:PORT".  The address must be numeric: RabbitMQ does
 * not resolve host names here either.
 */
static int parse_listener(const char *s, char **host, uint16_t *port)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *port_str;
    size_t alen;
    unsigned char tmp[sizeof(struct in6_addr)];

    if (parse_port(s, port) == 0) {
        *host = NULL;
        return 0;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        alen = (size_t)(close - s - 1);
        if (alen == 0 || alen >= sizeof addr)
            return -1;
        memcpy(addr, s + 1, alen);
        addr[alen] = '\0';
        if (inet_pton(AF_INET6, addr, tmp) != 1)
            return -1;
        port_str = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        alen = (size_t)(colon - s);
        if (alen == 0 || alen >= sizeof addr)
            return -1;
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        if (inet_pton(AF_INET, addr, tmp) != 1 && inet_pton(AF_INET6, addr, tmp) != 1)
            return -1;
        port_str = colon + 1;
    }
    if (parse_port(port_str, port) < 0)
        return -1;
    *host = xstrdup(addr);
    return 0;
}

/* ---- keys -------------------------------------------------------------- */

/*
 * Checks a key against cuttlefish's grammar: words of [A-Za-z0-9_-] and
 * "\." separated by single dots.  Returns 0 if well-formed.
 */
static int key_valid(const char *k)
{
    int word_len = 0;
    for (const char *p = k;; p++) {
        char ch = *p;
        if (ch == '\0' || ch == '.') {
            if (word_len == 0)
                return -1;
            if (ch == '\0')
                return 0;
            word_len = 0;
        } else if (ch == '\\' && p[1] == '.') {
            p++;
            word_len++;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '_' || ch == '-') {
            word_len++;
        } else {
            return -1;
        }
    }
}

/*
 * If key is PREFIX followed by exactly one more word, writes that word with
 * "\." unescaped into out (size outlen) and returns 1; else 0.
 */
static int key_suffix_word(const char *key, const char *prefix, char *out, size_t outlen)
{
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl) != 0)
        return 0;
    size_t o = 0;
    for (const char *p = key + pl; *p; p++) {
        char ch = *p;
        if (ch == '.')
            return 0; /* a further, unescaped separator */
        if (ch == '\\' && p[1] == '.')
            ch = *++p;
        if (o + 1 >= outlen)
            return 0;
        out[o++] = ch;
    }
    if (o == 0)
        return 0;
    out[o] = '\0';
    return 1;
}

static int bad_value(char *err, size_t errlen, const char *key, const char *value, const char *what)
{
    seterr(err, errlen, "%s: '%s' is not %s", key, value, what);
    return WR_EINVAL;
}

/* Adds (on) or removes a tag of a comma-separated list. */
static int set_tag(char **csv, const char *tag, int on)
{
    size_t n = strlen(*csv), tl = strlen(tag);
    char *out = malloc(n + tl + 2);
    if (out == NULL)
        abort();
    size_t o = 0;
    for (const char *p = *csv; *p;) {
        size_t k = strcspn(p, ",");
        if (!(k == tl && memcmp(p, tag, k) == 0) && k) {
            if (o)
                out[o++] = ',';
            memcpy(out + o, p, k);
            o += k;
        }
        p += k + (p[k] == ',');
    }
    if (on) {
        if (o)
            out[o++] = ',';
        memcpy(out + o, tag, tl);
        o += tl;
    }
    out[o] = '\0';
    free(*csv);
    *csv = out;
    return 0;
}

static int set_string(char **slot, const char *key, const char *value, char *err, size_t errlen)
{
    if (value[0] == '\0') {
        seterr(err, errlen, "%s: must not be empty", key);
        return WR_EINVAL;
    }
    replace_str(slot, value);
    return 0;
}

int wr_config_set(wr_config_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    uint64_t n;
    int b;
    char word[256];

    if (key_valid(key) < 0) {
        seterr(err, errlen,
               "invalid key '%s' (keys are dot-separated words of letters, digits, "
               "'_' and '-')",
               key);
        return WR_EINVAL;
    }

    if (key_suffix_word(key, "listeners.tcp.", word, sizeof word)) {
        char *host;
        uint16_t port;
        if (parse_listener(value, &host, &port) < 0)
            return bad_value(err, errlen, key, value,
                             "a port or IP:port (e.g. 5672, 127.0.0.1:5672, ::1:5672, "
                             "[::1]:5672)");
        /* As in RabbitMQ, configured listeners replace the built-in one. */
        if (c->listeners_builtin)
            listeners_clear(c);
        c->listeners_builtin = 0;
        listener_set(c, word, host, port);
        return 0;
    }
    if (key_suffix_word(key, "listeners.ssl.", word, sizeof word)) {
        char *host;
        uint16_t port;
        if (parse_listener(value, &host, &port) < 0)
            return bad_value(err, errlen, key, value,
                             "a port or IP:port (e.g. 5671, 127.0.0.1:5671, [::1]:5671)");
        addr_set(&c->ssl_listeners, &c->n_ssl_listeners, word, host, port);
        return 0;
    }
    if (strcmp(key, "management.tcp.port") == 0) {
        if (parse_u64(value, &n) < 0 || n > 65535)
            return bad_value(err, errlen, key, value, "a port, 0..65535");
        c->management_port = (int)n;
        return 0;
    }
    if (strcmp(key, "management.tcp.ip") == 0)
        return set_string(&c->management_ip, key, value, err, errlen);
    if (strcmp(key, "management.ssl.port") == 0) {
        if (parse_u64(value, &n) < 0 || n > 65535)
            return bad_value(err, errlen, key, value, "a port, 0..65535");
        c->management_ssl_port = (int)n;
        return 0;
    }
    if (strcmp(key, "management.ssl.ip") == 0)
        return set_string(&c->management_ssl_ip, key, value, err, errlen);
    if (strcmp(key, "management.ssl.certfile") == 0)
        return set_string(&c->management_ssl_certfile, key, value, err, errlen);
    if (strcmp(key, "management.ssl.keyfile") == 0)
        return set_string(&c->management_ssl_keyfile, key, value, err, errlen);
    if (strcmp(key, "management.ssl.cacertfile") == 0)
        return set_string(&c->management_ssl_cacertfile, key, value, err, errlen);
    if (strcmp(key, "management.ssl.verify") == 0) {
        if (strcmp(value, "verify_peer") != 0 && strcmp(value, "verify_none") != 0)
            return bad_value(err, errlen, key, value, "verify_peer or verify_none");
        c->management_ssl_verify_peer = strcmp(value, "verify_peer") == 0;
        return 0;
    }
    if (strcmp(key, "management.ssl.fail_if_no_peer_cert") == 0) {
        int on;
        if (parse_bool(value, &on) < 0)
            return bad_value(err, errlen, key, value, "true or false");
        c->management_ssl_fail_if_no_peer_cert = on;
        return 0;
    }
    if (strcmp(key, "prometheus.tcp.port") == 0) {
        if (parse_u64(value, &n) < 0 || n > 65535)
            return bad_value(err, errlen, key, value, "a port, 0..65535");
        c->prometheus_port = (int)n;
        return 0;
    }
    if (strcmp(key, "prometheus.tcp.ip") == 0)
        return set_string(&c->prometheus_ip, key, value, err, errlen);
    if (key_suffix_word(key, "listeners.unix.", word, sizeof word)) {
        if (value[0] != '/' || strlen(value) > 100)
            return bad_value(err, errlen, key, value,
                             "an absolute path of at most 100 bytes for a Unix socket");
        strv_add(&c->unix_listeners, &c->n_unix_listeners, value);
        return 0;
    }
    if (strcmp(key, "ssl_options.certfile") == 0)
        return set_string(&c->ssl_certfile, key, value, err, errlen);
    if (strcmp(key, "ssl_options.keyfile") == 0)
        return set_string(&c->ssl_keyfile, key, value, err, errlen);
    if (strcmp(key, "ssl_options.cacertfile") == 0)
        return set_string(&c->ssl_cacertfile, key, value, err, errlen);
    if (strcmp(key, "ssl_options.verify") == 0) {
        if (strcmp(value, "verify_peer") != 0 && strcmp(value, "verify_none") != 0)
            return bad_value(err, errlen, key, value, "verify_peer or verify_none");
        c->ssl_verify_peer = strcmp(value, "verify_peer") == 0;
        return 0;
    }
    if (strcmp(key, "ssl_options.fail_if_no_peer_cert") == 0) {
        int on;
        if (parse_bool(value, &on) < 0)
            return bad_value(err, errlen, key, value, "true or false");
        c->ssl_fail_if_no_peer_cert = on;
        return 0;
    }
    if (key_suffix_word(key, "ssl_options.versions.", word, sizeof word)) {
        if (strcmp(value, "tlsv1.2") != 0 && strcmp(value, "tlsv1.3") != 0)
            return bad_value(err, errlen, key, value,
                             "tlsv1.2 or tlsv1.3 (older versions are not offered)");
        strv_add(&c->ssl_versions, &c->n_ssl_versions, value);
        return 0;
    }
    if (key_suffix_word(key, "ssl_options.ciphers.", word, sizeof word)) {
        strv_add(&c->ssl_ciphers, &c->n_ssl_ciphers, value);
        return 0;
    }
    if (strcmp(key, "ssl_cert_login_from") == 0) {
        if (strcmp(value, "common_name") != 0 && strcmp(value, "distinguished_name") != 0)
            return bad_value(err, errlen, key, value, "distinguished_name or common_name");
        c->ssl_cert_login_cn = strcmp(value, "common_name") == 0;
        return 0;
    }
    if (strcmp(key, "cluster.listener") == 0) {
        char *host;
        uint16_t port;
        if (parse_listener(value, &host, &port) < 0 || port == 0 || strchr(value, ':') == NULL)
            return bad_value(err, errlen, key, value, "IP:port (e.g. 127.0.0.1:25672)");
        free(host);
        return set_string(&c->cluster_listener, key, value, err, errlen);
    }
    if (strcmp(key, "dead_letter_worker_consumer_prefetch") == 0) {
        if (parse_u64(value, &n) < 0 || n < 1 || n > 65535)
            return bad_value(err, errlen, key, value, "a number of messages, 1..65535");
        c->dlx_prefetch = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "dead_letter_worker_publisher_confirm_timeout") == 0) {
        if (parse_u64(value, &n) < 0 || n < 1 || n > 86400000)
            return bad_value(err, errlen, key, value, "milliseconds, 1..86400000");
        c->dlx_retry_ms = n;
        return 0;
    }
    if (strcmp(key, "quorum_cluster_size") == 0) {
        if (parse_u64(value, &n) < 0 || n < 1 || n > 255)
            return bad_value(err, errlen, key, value, "a number of nodes, 1..255");
        c->quorum_cluster_size = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "cluster.metadata_snapshot_threshold") == 0) {
        if (parse_u64(value, &n) < 0 || n < 8 || n > 1000000)
            return bad_value(err, errlen, key, value, "a number of log entries, 8..1000000");
        c->metadata_snapshot_threshold = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "queue_leader_locator") == 0) {
        if (strcmp(value, "client-local") != 0 && strcmp(value, "balanced") != 0)
            return bad_value(err, errlen, key, value, "client-local or balanced");
        c->queue_leader_balanced = strcmp(value, "balanced") == 0;
        return 0;
    }
    if (strcmp(key, "cluster.secret_file") == 0)
        return set_string(&c->cluster_secret_file, key, value, err, errlen);
    if (strcmp(key, "cluster_formation.peer_discovery_backend") == 0) {
        if (strcmp(value, "classic_config") != 0 &&
            strcmp(value, "rabbit_peer_discovery_classic_config") != 0)
            return bad_value(err, errlen, key, value,
                             "classic_config (the only peer discovery backend warren has)");
        return 0;
    }
    if (key_suffix_word(key, "cluster_formation.classic_config.nodes.", word, sizeof word)) {
        if (strncmp(value, "warren@", 7) != 0 || strchr(value + 7, ':') == NULL)
            return bad_value(err, errlen, key, value,
                             "a node name warren@HOST:PORT (its cluster.listener)");
        strv_add(&c->cluster_nodes, &c->n_cluster_nodes, value);
        return 0;
    }
    if (key_suffix_word(key, "auth_mechanisms.", word, sizeof word)) {
        if (strcmp(value, "PLAIN") != 0 && strcmp(value, "AMQPLAIN") != 0 &&
            strcmp(value, "EXTERNAL") != 0)
            return bad_value(err, errlen, key, value, "PLAIN, AMQPLAIN or EXTERNAL");
        strv_add(&c->auth_mechanisms, &c->n_auth_mechanisms, value);
        return 0;
    }
    if (strcmp(key, "listeners.tcp") == 0) {
        if (strcmp(value, "none") != 0)
            return bad_value(err, errlen, key, value,
                             "'none' (listeners are set as listeners.tcp.NAME = ADDRESS)");
        listeners_clear(c);
        c->listeners_builtin = 0;
        return 0;
    }
    if (strcmp(key, "server_properties.product") == 0)
        return set_string(&c->product, key, value, err, errlen);
    if (strcmp(key, "server_properties.version") == 0)
        return set_string(&c->product_version, key, value, err, errlen);
    if (strcmp(key, "cluster_name") == 0)
        return set_string(&c->cluster_name, key, value, err, errlen);
    if (strcmp(key, "default_user") == 0)
        return set_string(&c->default_user, key, value, err, errlen);
    if (strcmp(key, "default_pass") == 0)
        return set_string(&c->default_pass, key, value, err, errlen);
    if (strcmp(key, "default_vhost") == 0)
        return set_string(&c->default_vhost, key, value, err, errlen);
    if (strcmp(key, "default_permissions.configure") == 0)
        return set_string(&c->default_perms[0], key, value, err, errlen);
    if (strcmp(key, "default_permissions.write") == 0)
        return set_string(&c->default_perms[1], key, value, err, errlen);
    if (strcmp(key, "default_permissions.read") == 0)
        return set_string(&c->default_perms[2], key, value, err, errlen);
    if (strncmp(key, "default_user_tags.", 18) == 0 && key[18]) {
        int on;
        if (parse_bool(value, &on) < 0)
            return bad_value(err, errlen, key, value, "true or false");
        return set_tag(&c->default_user_tags, key + 18, on);
    }
    if (strcmp(key, "data_dir") == 0)
        return set_string(&c->data_dir, key, value, err, errlen);
    if (strcmp(key, "load_definitions") == 0)
        return set_string(&c->load_definitions, key, value, err, errlen);
    if (strcmp(key, "collect_statistics_interval") == 0) {
        if (parse_u64(value, &n) < 0 || n < 100 || n > 3600000)
            return bad_value(err, errlen, key, value, "milliseconds, 100..3600000");
        c->stats_interval = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "heartbeat") == 0) {
        if (parse_u64(value, &n) < 0)
            return bad_value(err, errlen, key, value, "a non-negative integer (seconds)");
        if (n > 65535) {
            seterr(err, errlen, "%s: must be between 0 (disabled) and 65535 seconds, got %s", key,
                   value);
            return WR_EINVAL;
        }
        c->heartbeat = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "frame_max") == 0) {
        if (parse_bytesize(value, &n) < 0)
            return bad_value(err, errlen, key, value,
                             "a non-negative integer (bytes, optionally with KB, MB or GB)");
        if (n != 0 && (n < 4096 || n > UINT32_MAX)) {
            seterr(err, errlen,
                   "%s: must be 0 (no limit) or between 4096 and 4294967295 bytes, got %s", key,
                   value);
            return WR_EINVAL;
        }
        c->frame_max = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "channel_max") == 0) {
        if (parse_u64(value, &n) < 0)
            return bad_value(err, errlen, key, value, "a non-negative integer");
        if (n > 65535) {
            seterr(err, errlen, "%s: must be between 0 (no limit) and 65535, got %s", key, value);
            return WR_EINVAL;
        }
        c->channel_max = (uint16_t)n;
        return 0;
    }
    if (strcmp(key, "max_message_size") == 0) {
        /* RabbitMQ 3.10 refuses more than 512 MiB. */
        if (parse_u64(value, &n) < 0 || n == 0 || n > (512u << 20))
            return bad_value(err, errlen, key, value, "a number of bytes from 1 to 536870912");
        c->max_message_size = n;
        return 0;
    }
    if (strcmp(key, "connection_max") == 0) {
        if (strcmp(value, "infinity") == 0) {
            c->connection_max = 0;
            return 0;
        }
        if (parse_u64(value, &n) < 0 || n == 0)
            return bad_value(err, errlen, key, value, "a positive integer or infinity");
        c->connection_max = n;
        return 0;
    }
    if (strcmp(key, "consumer_timeout") == 0) {
        if (parse_u64(value, &n) < 0 || n == 0)
            return bad_value(err, errlen, key, value, "a positive integer (milliseconds)");
        c->consumer_timeout_ms = n;
        return 0;
    }
    if (strcmp(key, "vm_memory_high_watermark.relative") == 0) {
        char *end;
        double f = strtod(value, &end);
        if (end == value || *end != '\0' || !(f > 0.0) || f > 1.0)
            return bad_value(err, errlen, key, value, "a fraction of RAM, above 0 and at most 1");
        c->mem_high_watermark_relative = f;
        c->mem_high_watermark_bytes = 0;
        return 0;
    }
    if (strcmp(key, "store.segment_size") == 0) {
        if (parse_bytesize(value, &n) < 0 || n < 4096 || n > (1u << 30))
            return bad_value(err, errlen, key, value, "a size between 4KB and 1GB");
        c->segment_size = n;
        return 0;
    }
    if (strcmp(key, "disk_free_limit.absolute") == 0) {
        if (parse_bytesize(value, &n) < 0)
            return bad_value(err, errlen, key, value, "a size in bytes (suffixes KB, MB, GB)");
        c->disk_free_limit = n;
        return 0;
    }
    if (strcmp(key, "vm_memory_high_watermark.absolute") == 0) {
        if (parse_bytesize(value, &n) < 0 || n == 0)
            return bad_value(err, errlen, key, value, "a size in bytes (suffixes KB, MB, GB)");
        c->mem_high_watermark_bytes = n;
        return 0;
    }
    if (strcmp(key, "log.console.level") == 0) {
        int level = wr_log_parse_level(value);
        if (level < 0)
            return bad_value(err, errlen, key, value,
                             "one of debug, info, notice, warning, error, critical, alert, "
                             "emergency, none");
        c->log_level = level;
        return 0;
    }
    if (strcmp(key, "log.console") == 0) {
        /* warren always logs to stderr; the key is accepted (and checked)
         * so that RabbitMQ configuration files keep working. */
        if (parse_bool(value, &b) < 0)
            return bad_value(err, errlen, key, value, "true or false");
        return 0;
    }
    if (strcmp(key, "log.file") == 0) {
        if (strcmp(value, "false") == 0)
            return 0;
        seterr(err, errlen,
               "%s: logging to a file is not supported (warren logs to stderr); only 'false' is "
               "accepted",
               key);
        return WR_EINVAL;
    }
    if (strcmp(key, "loopback_users") == 0) {
        if (strcmp(value, "none") != 0)
            return bad_value(err, errlen, key, value,
                             "'none' (use loopback_users.USER = true|false for one user)");
        loopback_clear(c);
        return 0;
    }
    if (key_suffix_word(key, "loopback_users.", word, sizeof word)) {
        if (parse_bool(value, &b) < 0)
            return bad_value(err, errlen, key, value, "true or false");
        if (b)
            loopback_add(c, word);
        else
            loopback_remove(c, word);
        return 0;
    }
    seterr(err, errlen, "unknown key '%s'", key);
    return WR_EINVAL;
}

int wr_config_set_kv(wr_config_t *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL) {
        seterr(err, errlen, "'%s': expected KEY=VALUE", kv);
        return WR_EINVAL;
    }
    const char *ks = kv, *ke = eq;
    while (ks < ke && (*ks == ' ' || *ks == '\t'))
        ks++;
    while (ke > ks && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    char *key = wr_xstrndup(ks, (size_t)(ke - ks));
    int rc = wr_config_set(c, key, eq + 1, err, errlen);
    free(key);
    return rc;
}

/* ---- file -------------------------------------------------------------- */

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/*
 * Parses one line in place.  Returns 1 with *key and *value pointing into
 * line for a setting, 0 for a blank or comment line, or -1 with a message
 * in err.
 */
static int parse_line(char *line, char **key, char **value, char *err, size_t errlen)
{
    char *p = line;
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;

    char *eq = strchr(p, '=');
    if (eq == NULL) {
        if (strncmp(p, "include", 7) == 0 && is_blank(p[7])) {
            seterr(err, errlen, "include directives are not supported");
            return -1;
        }
        seterr(err, errlen, "expected 'key = value', found no '='");
        return -1;
    }
    char *ke = eq;
    while (ke > p && is_blank(ke[-1]))
        ke--;
    if (ke == p) {
        seterr(err, errlen, "missing key before '='");
        return -1;
    }
    *ke = '\0';
    *key = p;

    char *v = eq + 1;
    while (is_blank(*v))
        v++;
    if (*v == '\'') {
        char *close = strchr(v + 1, '\'');
        if (close == NULL) {
            seterr(err, errlen, "%s: unterminated quoted value", *key);
            return -1;
        }
        char *rest = close + 1;
        while (is_blank(*rest))
            rest++;
        if (*rest != '\0' && *rest != '#') {
            seterr(err, errlen, "%s: unexpected text after the quoted value", *key);
            return -1;
        }
        *close = '\0';
        *value = v + 1;
        return 1;
    }
    /* Unquoted: a '#' starts a comment, as in cuttlefish. */
    char *hash = strchr(v, '#');
    char *ve = hash ? hash : v + strlen(v);
    while (ve > v && is_blank(ve[-1]))
        ve--;
    if (ve == v) {
        seterr(err, errlen, "%s: missing value after '='", *key);
        return -1;
    }
    *ve = '\0';
    *value = v;
    return 1;
}

int wr_config_load_file(wr_config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return WR_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    char msg[512];

    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (strlen(line) != len) {
            seterr(err, errlen, "%s:%u: line contains a NUL byte", path, lineno);
            rc = WR_EINVAL;
            break;
        }
        char *key, *value;
        int k = parse_line(line, &key, &value, msg, sizeof msg);
        if (k == 0)
            continue;
        if (k > 0 && wr_config_set(c, key, value, msg, sizeof msg) == 0)
            continue;
        seterr(err, errlen, "%s:%u: %s", path, lineno, msg);
        rc = WR_EINVAL;
        break;
    }
    if (rc == 0 && ferror(f)) {
        seterr(err, errlen, "%s: read error", path);
        rc = WR_EIO;
    }
    free(line);
    fclose(f);
    return rc;
}
