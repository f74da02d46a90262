/*
 * conn.c - the AMQP connection: protocol header, handshake (start, tune,
 * open), frame dispatch to channels, heartbeats, close in both directions,
 * and the broker-wide housekeeping tick (see conn.h for the states).
 */
#include "broker/conn.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/access.h"
#include "broker/cmeta.h"
#include "net/tls.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/frame.h"
#include "proto/table.h"

wr_broker_t wr_broker;

static wr_conn_t *all_conns;
static size_t n_conns;

static int alarm_on; /* any alarm in force */
static char alarm_reason[64];

static const uint8_t protocol_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

#define HANDSHAKE_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS     3000
/* RabbitMQ's: after close-ok the peer has 30 s to hang up; a handshake
 * error before tuning is answered by 3 s of silence, then a hang-up. */
#define CLOSED_TIMEOUT_MS      30000
#define SILENT_CLOSE_DELAY_MS  3000
#define WARREN_PRODUCT         "warren"
#define WARREN_PRODUCT_VERSION "0.1.0"

/* The internal user database keeps no state that a new secret could
 * change: RabbitMQ 3.10 accepts update-secret with it whatever the
 * secret, and so does warren. */
static int internal_update_secret(const char *user, wr_bytes_t secret, char *why, size_t n)
{
    (void)user;
    (void)secret;
    (void)why;
    (void)n;
    return 0;
}

const wr_auth_backend_t wr_auth_internal = {"internal", internal_update_secret};

wr_conn_t *wr_conn_first(void)
{
    return all_conns;
}

size_t wr_conn_count(void)
{
    return n_conns;
}

void wr_conn_send_method(wr_conn_t *c, uint16_t channel, const wr_method_t *m)
{
    wr_buf_t *b = wr_sock_out(c->sock);
    size_t st = wr_frame_begin(b, 1, channel);
    wr_method_encode(b, m);
    wr_frame_end(b, st);
}

static void send_close(wr_conn_t *c, uint16_t code, uint32_t method_id, const char *text)
{
    wr_method_t m = {.id = WR_M_CONNECTION_CLOSE};
    m.u.connection_close.reply_code = code;
    m.u.connection_close.reply_text = wr_bytes_of(text);
    m.u.connection_close.class_id = (uint16_t)(method_id >> 16);
    m.u.connection_close.method_id = (uint16_t)method_id;
    wr_conn_send_method(c, 0, &m);
}

/* Releases every channel's resources and the connection's exclusive
 * queues; runs once, when the connection stops being usable. */
/* Takes the connection out of its vhost's and user's counts (it is going
 * or gone), once. */
static void uncount(wr_conn_t *c)
{
    if (!c->counted)
        return;
    c->counted = 0;
    wr_stats_count(WR_NS_CONNECTIONS_CLOSED);
    if (c->vhost)
        c->vhost->n_connections--;
    if (c->auth_user)
        c->auth_user->n_connections--;
}

static void release_all(wr_conn_t *c)
{
    uncount(c);
    while (c->channel_list) {
        wr_channel_t *ch = c->channel_list;
        wr_channel_release(ch);
        wr_channel_free(ch);
    }
    if (c->vhost) {
        /* Exclusive queues die with their connection. */
        wr_map_t *qs = &c->vhost->queues;
        for (int again = 1; again;) {
            again = 0;
            size_t i = 0;
            wr_map_slot_t *s;
            while (wr_map_next(qs, &i, &s)) {
                wr_queue_t *q = s->value;
                if (q->exclusive && q->owner == c) {
                    wr_queue_delete(q);
                    again = 1;
                    break;
                }
            }
        }
    }
}

void wr_conn_error(wr_conn_t *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    if (c->state >= WR_CONN_CLOSING)
        return;
    char text[512];
    int n = snprintf(text, sizeof text, "%s - ", wr_amqp_reply_name(code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    va_end(ap);
    text[255] = '\0'; /* a reply-text is a short string */
    wr_warn("closing connection %s: %s", c->sock->peer, text);
    send_close(c, code, method_id, text);
    c->state = WR_CONN_CLOSING;
    c->deadline = wr_now_ms() + CLOSE_TIMEOUT_MS;
    release_all(c);
}

/* ---- handshake ---- */

static void put_bool(wr_buf_t *b, const char *key, int v)
{
    wr_table_put_key(b, wr_bytes_of(key));
    wr_field_t f = wr_field_bool(v);
    wr_field_put(b, &f);
}

static void put_str(wr_buf_t *b, const char *key, const char *v)
{
    wr_table_put_key(b, wr_bytes_of(key));
    wr_field_t f = wr_field_longstr(wr_bytes_of(v));
    wr_field_put(b, &f);
}

static void send_start(wr_conn_t *c)
{
    wr_buf_t props;
    wr_buf_init(&props);
    size_t top = wr_table_begin(&props);
    wr_table_put_key(&props, WR_BYTES_LIT("capabilities"));
    wr_buf_put_u8(&props, 'F');
    size_t caps = wr_table_begin(&props);
    put_bool(&props, "publisher_confirms", 1);
    put_bool(&props, "exchange_exchange_bindings", 1);
    put_bool(&props, "basic.nack", 1);
    put_bool(&props, "consumer_cancel_notify", 1);
    put_bool(&props, "connection.blocked", 1);
    put_bool(&props, "consumer_priorities", 1);
    put_bool(&props, "authentication_failure_close", 1);
    put_bool(&props, "per_consumer_qos", 1);
    put_bool(&props, "direct_reply_to", 1);
    wr_table_end(&props, caps);
    const wr_config_t *cfg = wr_broker.cfg;
    put_str(&props, "cluster_name", cfg->cluster_name ? cfg->cluster_name : "warren@localhost");
    put_str(&props, "copyright", "Copyright (c) the warren authors");
    put_str(&props, "information", "warren, an AMQP 0-9-1 message broker");
    put_str(&props, "platform", "C/libuv");
    put_str(&props, "product", cfg->product ? cfg->product : WARREN_PRODUCT);
    put_str(&props, "version",
            cfg->product_version ? cfg->product_version : WARREN_PRODUCT_VERSION);
    wr_table_end(&props, top);

    wr_method_t m = {.id = WR_M_CONNECTION_START};
    m.u.connection_start.version_major = 0;
    m.u.connection_start.version_minor = 9;
    m.u.connection_start.server_properties = (wr_bytes_t){props.p + 4, props.len - 4};
    char mechs[64] = "PLAIN AMQPLAIN";
    if (cfg->n_auth_mechanisms) {
        mechs[0] = '\0';
        for (size_t i = 0; i < cfg->n_auth_mechanisms; i++)
            snprintf(mechs + strlen(mechs), sizeof mechs - strlen(mechs), "%s%s", i ? " " : "",
                     cfg->auth_mechanisms[i]);
    }
    m.u.connection_start.mechanisms = wr_bytes_of(mechs);
    m.u.connection_start.locales = WR_BYTES_LIT("en_US");
    wr_conn_send_method(c, 0, &m);
    wr_buf_free(&props);
}

static int client_cap(wr_bytes_t props, const char *name)
{
    wr_field_t caps, v;
    return wr_table_get(props, "capabilities", &caps) && caps.type == 'F' &&
           wr_table_get(caps.v.bytes, name, &v) && v.type == 't' && v.v.i;
}

/* Extracts user and password from a PLAIN or AMQPLAIN response. */
static int parse_credentials(wr_bytes_t mech, wr_bytes_t resp, wr_bytes_t *user, wr_bytes_t *pass)
{
    if (wr_bytes_eq_str(mech, "PLAIN")) {
        /* [authzid] NUL authcid NUL passwd */
        const uint8_t *p = resp.p, *end = resp.p + resp.n;
        const uint8_t *z1 = memchr(p, 0, resp.n);
        if (z1 == NULL)
            return WR_EINVAL;
        const uint8_t *z2 = memchr(z1 + 1, 0, (size_t)(end - z1 - 1));
        if (z2 == NULL)
            return WR_EINVAL;
        *user = (wr_bytes_t){z1 + 1, (size_t)(z2 - z1 - 1)};
        *pass = (wr_bytes_t){z2 + 1, (size_t)(end - z2 - 1)};
        return 0;
    }
    if (wr_bytes_eq_str(mech, "AMQPLAIN")) {
        wr_field_t l, pw;
        if (wr_table_validate(resp, WR_TABLE_MAX_DEPTH) != 0 || !wr_table_get(resp, "LOGIN", &l) ||
            l.type != 'S' || !wr_table_get(resp, "PASSWORD", &pw) || pw.type != 'S')
            return WR_EINVAL;
        *user = l.v.bytes;
        *pass = pw.v.bytes;
        return 0;
    }
    return WR_ENOTFOUND;
}

static void hang_up(wr_conn_t *c)
{
    c->state = WR_CONN_DEAD;
    wr_sock_close(c->sock);
}

static void refuse_login(wr_conn_t *c, wr_bytes_t mech, const char *why)
{
    wr_stats_count(WR_NS_AUTH_AMQP_FAILED);
    wr_warn("connection %s: login refused: %s", c->sock->peer, why);
    if (c->cap_auth_close) {
        wr_conn_error(c, WR_AMQP_ACCESS_REFUSED, 0,
                      "Login was refused using authentication mechanism %.*s. For details see "
                      "the broker logfile.",
                      (int)mech.n, mech.p);
    } else {
        c->state = WR_CONN_DEAD;
        wr_sock_close(c->sock);
    }
}

static void on_start_ok(wr_conn_t *c, const wr_connection_start_ok_t *m)
{
    wr_buf_put(&c->client_props, m->client_properties.p, m->client_properties.n);
    wr_bytes_t props = {c->client_props.p, c->client_props.len};
    c->cap_cancel_notify = (uint8_t)client_cap(props, "consumer_cancel_notify");
    c->cap_blocked = (uint8_t)client_cap(props, "connection.blocked");
    c->cap_auth_close = (uint8_t)client_cap(props, "authentication_failure_close");

    wr_bytes_t user, pass;
    const wr_config_t *cfg = wr_broker.cfg;
    int offered = cfg->n_auth_mechanisms == 0 && !wr_bytes_eq_str(m->mechanism, "EXTERNAL");
    for (size_t i = 0; i < cfg->n_auth_mechanisms; i++)
        offered |= wr_bytes_eq_str(m->mechanism, cfg->auth_mechanisms[i]);
    char cert_name[512];
    int r = WR_ENOTFOUND;
    if (offered && wr_bytes_eq_str(m->mechanism, "EXTERNAL")) {
        /* The TLS client certificate is the credential: its CN or DN, as
         * ssl_cert_login_from says, names the user. */
        if (c->sock->tls == NULL || wr_tls_peer_name(c->sock->tls, cfg->ssl_cert_login_cn,
                                                     cert_name, sizeof cert_name) != 0) {
            refuse_login(c, m->mechanism, "EXTERNAL: no verified client certificate");
            return;
        }
        user = wr_bytes_of(cert_name);
        pass = (wr_bytes_t){NULL, 0};
        r = 1;
    } else if (offered) {
        r = parse_credentials(m->mechanism, m->response, &user, &pass);
    }
    if (r == WR_ENOTFOUND) {
        /* Before the connection is tuned RabbitMQ just hangs up. */
        wr_warn("connection %s: unsupported authentication mechanism '%.*s'", c->sock->peer,
                (int)m->mechanism.n, (const char *)m->mechanism.p);
        hang_up(c);
        return;
    }
    wr_user_t *u = r >= 0 ? wr_access_user(user) : NULL;
    if (u == NULL || (r == 0 && !wr_access_check_password(u, pass))) {
        char why[700];
        if (r < 0)
            snprintf(why, sizeof why, "malformed %.*s response", (int)m->mechanism.n,
                     (const char *)m->mechanism.p);
        else
            snprintf(why, sizeof why, "user '%.*s': %s", (int)user.n, (const char *)user.p,
                     u == NULL ? "no such user" : "invalid credentials");
        refuse_login(c, m->mechanism, why);
        return;
    }
    if (!c->sock->is_loopback && wr_config_is_loopback_user(cfg, user)) {
        refuse_login(c, m->mechanism, "user can only connect via localhost");
        return;
    }
    wr_stats_count(WR_NS_AUTH_AMQP_OK);
    c->user = wr_xstrndup((const char *)user.p, user.n);
    c->auth_user = u;
    snprintf(c->auth_mechanism, sizeof c->auth_mechanism, "%.*s", (int)m->mechanism.n,
             (const char *)m->mechanism.p);
    wr_method_t t = {.id = WR_M_CONNECTION_TUNE};
    t.u.connection_tune.channel_max = cfg->channel_max;
    t.u.connection_tune.frame_max = cfg->frame_max;
    t.u.connection_tune.heartbeat = (uint16_t)cfg->heartbeat;
    wr_conn_send_method(c, 0, &t);
    c->state = WR_CONN_TUNE_OK;
}

/* Everything this connection has produced, sent or still queued. */
static uint64_t bytes_produced(const wr_sock_t *s)
{
    return s->bytes_out + wr_sock_queued(s);
}

static void heartbeat_timeout(wr_conn_t *c)
{
    /* RabbitMQ hangs up without a connection.close. */
    wr_warn("connection %s: missed heartbeats from client, timeout: %us", c->sock->peer,
            c->heartbeat);
    c->state = WR_CONN_DEAD;
    release_all(c);
    wr_sock_close(c->sock);
}

/* Every T/2 (see conn.h): the receive check (every other firing) first,
 * so a connection that timed out gets no last heartbeat; then the send
 * check. */
static void heartbeat_cb(wr_sock_t *s)
{
    wr_conn_t *c = s->ud;
    if (c->state >= WR_CONN_CLOSING) {
        wr_sock_set_timer(s, 0, NULL);
        return;
    }
    if (++c->hb_ticks % 2 == 0) {
        /* A connection we stopped reading (blocked publisher,
         * back-pressure) is not silent by its own doing: as RabbitMQ
         * pauses its monitor, the count starts again once reading
         * resumes. */
        if (s->read_held || s->read_paused || s->bytes_in != c->hb_in) {
            c->hb_in = s->bytes_in;
            c->hb_silent = 0;
        } else if (c->hb_silent < 1) {
            c->hb_silent++;
        } else {
            heartbeat_timeout(c);
            return;
        }
    }
    if (!c->hb_started || bytes_produced(s) == c->hb_out)
        wr_frame_put_heartbeat(wr_sock_out(s));
    c->hb_started = 1;
    c->hb_out = bytes_produced(s);
}

static void on_tune_ok(wr_conn_t *c, const wr_connection_tune_ok_t *m)
{
    const wr_config_t *cfg = wr_broker.cfg;
    uint32_t server_frame_max = cfg->frame_max ? cfg->frame_max : UINT32_MAX;
    uint32_t fm = m->frame_max ? m->frame_max : UINT32_MAX;
    uint16_t server_ch = cfg->channel_max ? cfg->channel_max : 65535;
    uint16_t chm = m->channel_max ? m->channel_max : 65535;
    /* Out-of-range tune-ok values: RabbitMQ closes the socket without a
     * connection.close, as the connection is not open yet. */
    if (fm < WR_AMQP_FRAME_MIN_SIZE || fm > server_frame_max || chm > server_ch) {
        wr_warn("connection %s: refused tune-ok (channel_max %u, frame_max %u)", c->sock->peer,
                m->channel_max, m->frame_max);
        hang_up(c);
        return;
    }
    c->frame_max = fm;
    c->channel_max = chm;
    c->heartbeat = m->heartbeat;
    c->state = WR_CONN_OPEN_WAIT;
    /* As RabbitMQ: the client's value, whatever we offered. */
    if (c->heartbeat)
        wr_sock_set_timer(c->sock, (uint64_t)c->heartbeat * 500, heartbeat_cb);
}

static void on_open(wr_conn_t *c, const wr_connection_open_t *m)
{
    wr_vhost_t *vh = wr_broker_vhost(m->virtual_host);
    if (vh == NULL) {
        wr_conn_error(c, WR_AMQP_NOT_ALLOWED, WR_M_CONNECTION_OPEN, "vhost %.*s not found",
                      (int)m->virtual_host.n, m->virtual_host.p);
        return;
    }
    /* RabbitMQ's order: the vhost's limit, the user's, then access. */
    if (vh->max_connections >= 0 && vh->n_connections >= vh->max_connections) {
        wr_conn_error(c, WR_AMQP_NOT_ALLOWED, WR_M_CONNECTION_OPEN,
                      "access to vhost '%s' refused for user '%s': connection limit (%" PRId64
                      ") is reached",
                      vh->name, c->user, vh->max_connections);
        return;
    }
    wr_user_t *u = c->auth_user;
    if (u->max_connections >= 0 && u->n_connections >= u->max_connections) {
        wr_conn_error(c, WR_AMQP_NOT_ALLOWED, WR_M_CONNECTION_OPEN,
                      "connection refused for user '%s': user connection limit (%" PRId64
                      ") is reached",
                      c->user, u->max_connections);
        return;
    }
    if (!wr_access_vhost(c->auth_user, vh)) {
        wr_conn_error(c, WR_AMQP_NOT_ALLOWED, WR_M_CONNECTION_OPEN,
                      "access to vhost '%s' refused for user '%s'", vh->name, c->user);
        return;
    }
    c->vhost = vh;
    c->state = WR_CONN_OPEN;
    c->counted = 1;
    wr_stats_count(WR_NS_CONNECTIONS_OPENED);
    vh->n_connections++;
    u->n_connections++;
    c->deadline = 0;
    wr_method_t r = {.id = WR_M_CONNECTION_OPEN_OK};
    wr_conn_send_method(c, 0, &r);
    wr_info("connection %s: user '%s' opened vhost '%s'", c->sock->peer, c->user, c->vhost->name);
}

/* ---- frame dispatch ---- */

/* Sends close-ok and waits for the peer to hang up (see conn.h). */
static void closed_by_peer(wr_conn_t *c)
{
    wr_method_t r = {.id = WR_M_CONNECTION_CLOSE_OK};
    wr_conn_send_method(c, 0, &r);
    if (c->state < WR_CONN_CLOSING)
        release_all(c);
    c->state = WR_CONN_CLOSED;
    c->deadline = wr_now_ms() + CLOSED_TIMEOUT_MS;
    wr_sock_set_timer(c->sock, 0, NULL);
}

/* Before the connection is tuned RabbitMQ answers a protocol error with
 * silence and hangs up after a delay; input is ignored meanwhile. */
static void silent_close(wr_conn_t *c, const char *why, uint32_t method_id)
{
    wr_warn("connection %s: %s %s during the handshake; closing", c->sock->peer, why,
            wr_method_name(method_id));
    c->discard_input = 1;
    c->deadline = wr_now_ms() + SILENT_CLOSE_DELAY_MS;
}

static void update_secret(wr_conn_t *c, const wr_connection_update_secret_t *m)
{
    const wr_auth_backend_t *auth = wr_broker.auth ? wr_broker.auth : &wr_auth_internal;
    char why[200] = "";
    if (auth->update_secret(c->user, m->new_secret, why, sizeof why) != 0) {
        wr_conn_error(c, WR_AMQP_NOT_ALLOWED, WR_M_CONNECTION_UPDATE_SECRET,
                      "Refused to update secret: %s", why);
        return;
    }
    wr_info("connection %s: user '%s' updated its secret (reason: %.*s)", c->sock->peer, c->user,
            (int)m->reason.n, (const char *)m->reason.p);
    wr_method_t r = {.id = WR_M_CONNECTION_UPDATE_SECRET_OK};
    wr_conn_send_method(c, 0, &r);
}

static void connection_method(wr_conn_t *c, wr_method_t *m)
{
    if (c->state == WR_CONN_CLOSED)
        return; /* handle_frame answered a close; nothing else matters */
    if (m->id == WR_M_CONNECTION_CLOSE) {
        closed_by_peer(c);
        return;
    }
    if (m->id == WR_M_CONNECTION_CLOSE_OK) {
        if (c->state == WR_CONN_CLOSING) {
            c->state = WR_CONN_DEAD;
            wr_sock_close(c->sock);
        }
        return;
    }
    if (c->state == WR_CONN_CLOSING)
        return;
    uint32_t expect = c->state == WR_CONN_START_OK    ? WR_M_CONNECTION_START_OK
                      : c->state == WR_CONN_TUNE_OK   ? WR_M_CONNECTION_TUNE_OK
                      : c->state == WR_CONN_OPEN_WAIT ? WR_M_CONNECTION_OPEN
                                                      : 0;
    if (m->id == WR_M_CONNECTION_BLOCKED || m->id == WR_M_CONNECTION_UNBLOCKED) {
        return; /* a client may not block us; ignore as RabbitMQ does */
    }
    if (c->state == WR_CONN_OPEN) {
        if (m->id == WR_M_CONNECTION_UPDATE_SECRET) {
            update_secret(c, &m->u.connection_update_secret);
            return;
        }
        wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m->id,
                      "unexpected method in connection state running");
        return;
    }
    if (m->id != expect) {
        /* RabbitMQ's state names: starting, tuning, opening. */
        if (c->state == WR_CONN_OPEN_WAIT)
            wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m->id,
                          "unexpected method in connection state opening");
        else
            silent_close(c, "unexpected method", m->id);
        return;
    }
    switch (m->id) {
    case WR_M_CONNECTION_START_OK:
        on_start_ok(c, &m->u.connection_start_ok);
        break;
    case WR_M_CONNECTION_TUNE_OK:
        on_tune_ok(c, &m->u.connection_tune_ok);
        break;
    case WR_M_CONNECTION_OPEN:
        on_open(c, &m->u.connection_open);
        break;
    }
}

static wr_channel_t *get_channel(wr_conn_t *c, uint16_t id)
{
    return id < c->n_channel_slots ? c->channels[id] : NULL;
}

static void channel_frame_method(wr_conn_t *c, uint16_t chid, wr_method_t *m)
{
    wr_channel_t *ch = get_channel(c, chid);
    if (ch == NULL) {
        if (m->id != WR_M_CHANNEL_OPEN) {
            if (m->id == WR_M_CHANNEL_CLOSE_OK)
                return; /* a late close-ok for a channel we already forgot */
            wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m->id, "expected 'channel.open'");
            return;
        }
        /* Like RabbitMQ, channel_max limits how many are open at once,
         * not the channel numbers. */
        if (c->n_channels >= c->channel_max) {
            wr_conn_error(c, WR_AMQP_NOT_ALLOWED, 0,
                          "number of channels opened (%u) has reached the negotiated "
                          "channel_max (%u)",
                          c->n_channels, c->channel_max);
            return;
        }
        wr_user_t *u = c->auth_user;
        if (u && u->max_channels >= 0 && u->n_channels >= u->max_channels) {
            wr_conn_error(c, WR_AMQP_NOT_ALLOWED, 0,
                          "number of channels opened for user '%s' has reached the maximum "
                          "allowed user limit of (%" PRId64 ")",
                          u->name, u->max_channels);
            return;
        }
        wr_channel_new(c, chid);
        wr_method_t r = {.id = WR_M_CHANNEL_OPEN_OK};
        wr_conn_send_method(c, chid, &r);
        return;
    }
    if (ch->state == WR_CH_CLOSING) {
        if (m->id == WR_M_CHANNEL_CLOSE_OK) {
            wr_channel_free(ch);
        } else if (m->id == WR_M_CHANNEL_CLOSE) {
            wr_method_t r = {.id = WR_M_CHANNEL_CLOSE_OK};
            wr_conn_send_method(c, chid, &r);
        }
        return; /* everything else is dropped while closing */
    }
    if (ch->content != WR_CONTENT_NONE) {
        /* The ids are those of the unfinished publish, as RabbitMQ's. */
        wr_conn_error(c, WR_AMQP_UNEXPECTED_FRAME, WR_M_BASIC_PUBLISH,
                      ch->content == WR_CONTENT_HEADER
                          ? "expected content header for class 60, got non content header "
                            "frame instead"
                          : "expected content body, got non content body frame instead");
        return;
    }
    if (m->id == WR_M_CHANNEL_OPEN) {
        wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m->id, "second 'channel.open' seen");
        return;
    }
    wr_channel_method(ch, m);
}

/* basic.publish on an open channel, decoded in place: most frames a
 * broker reads are publishes, and the generic path (decode into the
 * method union, then dispatch) costs about twice as much.  Returns 0,
 * having done nothing, for anything unusual (a short or malformed payload,
 * a channel that is not simply open), which then takes the generic path
 * and gets its exact error there. */
static int publish_fast(wr_conn_t *c, const wr_frame_t *f)
{
    const uint8_t *p = f->payload.p;
    size_t n = f->payload.n;
    /* class, method, reserved short, exchange length */
    if (n < 4 + 2 + 1 || wr_get_u32(p) != WR_M_BASIC_PUBLISH || c->state != WR_CONN_OPEN)
        return 0;
    wr_channel_t *ch = f->channel ? get_channel(c, f->channel) : NULL;
    if (ch == NULL || ch->state != WR_CH_OPEN || ch->content != WR_CONTENT_NONE)
        return 0;
    size_t xl = p[6];
    if (n < 7 + xl + 1)
        return 0;
    size_t rl = p[7 + xl];
    if (n != 7 + xl + 1 + rl + 1)
        return 0; /* truncated, or bytes left over */
    uint8_t bits = p[n - 1];
    wr_channel_publish(ch, (wr_bytes_t){p + 7, xl}, (wr_bytes_t){p + 8 + xl, rl}, bits & 1,
                       bits & 2);
    return 1;
}

static void handle_frame(wr_conn_t *c, const wr_frame_t *f)
{
    if (c->state == WR_CONN_CLOSED) {
        /* Every further connection.close gets its close-ok. */
        if (f->type == 1 && f->channel == 0 && f->payload.n >= 4 &&
            wr_get_u32(f->payload.p) == WR_M_CONNECTION_CLOSE) {
            wr_method_t r = {.id = WR_M_CONNECTION_CLOSE_OK};
            wr_conn_send_method(c, 0, &r);
        }
        return;
    }
    if (f->type == 8) {
        if (f->payload.n != 0)
            wr_conn_error(c, WR_AMQP_FRAME_ERROR, 0, "type 8, heartbeat frame with a payload");
        else if (f->channel != 0)
            wr_conn_error(c, WR_AMQP_UNEXPECTED_FRAME, 0, "type 8, heartbeat on channel %u",
                          f->channel);
        return;
    }
    if (f->type == 1) {
        if (publish_fast(c, f))
            return;
        wr_method_t m;
        int r = wr_method_decode(f->payload.p, f->payload.n, &m);
        if (r == WR_ENOTFOUND) {
            wr_conn_error(c, WR_AMQP_NOT_IMPLEMENTED, m.id, "unknown method %u.%u", m.id >> 16,
                          m.id & 0xffff);
            return;
        }
        if (r != 0) {
            wr_conn_error(c, WR_AMQP_FRAME_ERROR, r == WR_EFRAME && f->payload.n < 4 ? 0 : m.id,
                          "cannot decode method frame (%s)", wr_strerror(r));
            return;
        }
        int conn_class = (m.id >> 16) == WR_CLASS_CONNECTION;
        if (f->channel == 0) {
            if (!conn_class) {
                if (c->state == WR_CONN_OPEN)
                    wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m.id,
                                  "unexpected method in connection state running");
                else
                    wr_conn_error(c, WR_AMQP_COMMAND_INVALID, m.id,
                                  "method %s is not allowed on channel 0", wr_method_name(m.id));
                return;
            }
            connection_method(c, &m);
            return;
        }
        /* A connection method on another channel is a method that channel
         * cannot take: 503 if it is open, 504 if not (channel.c). */
        if (c->state == WR_CONN_CLOSING)
            return;
        if (c->state != WR_CONN_OPEN) {
            wr_conn_error(c, WR_AMQP_CHANNEL_ERROR, m.id, "connection not yet open");
            return;
        }
        channel_frame_method(c, f->channel, &m);
        return;
    }
    /* Content header or body. */
    if (c->state == WR_CONN_CLOSING)
        return;
    wr_channel_t *ch = f->channel ? get_channel(c, f->channel) : NULL;
    if (ch == NULL || c->state != WR_CONN_OPEN) {
        wr_conn_error(c, WR_AMQP_UNEXPECTED_FRAME, 0,
                      "expected method frame, got non method frame instead");
        return;
    }
    if (ch->state == WR_CH_CLOSING)
        return;
    if (f->type == 2)
        wr_channel_header(ch, f->payload);
    else
        wr_channel_body(ch, f->payload);
}

static void on_read(wr_sock_t *s)
{
    wr_conn_t *c = s->ud;
    const uint8_t *p = s->in.p;
    size_t n = s->in.len, off = 0;
    if (c->state == WR_CONN_DEAD || c->discard_input) {
        wr_sock_consume(s, n);
        return;
    }
    if (c->state == WR_CONN_HEADER) {
        size_t k = n < 8 ? n : 8;
        if (memcmp(p, protocol_header, k) != 0 || (n >= 8 && p[4] != 0)) {
            /* Tell the peer which protocol we speak, then hang up. */
            wr_buf_put(wr_sock_out(s), protocol_header, 8);
            c->state = WR_CONN_DEAD;
            wr_sock_close(s);
            wr_sock_consume(s, n);
            return;
        }
        if (n < 8)
            return;
        off = 8;
        c->state = WR_CONN_START_OK;
        send_start(c);
    }
    /* A held publisher's remaining input waits in the buffer until the
     * alarm clears (see wr_conn_set_alarm). */
    while (off < n && c->state != WR_CONN_DEAD && !c->held && !c->meta_waits) {
        wr_frame_t f;
        uint32_t fmax = c->state >= WR_CONN_OPEN_WAIT ? c->frame_max : WR_AMQP_FRAME_MIN_SIZE;
        /* Like RabbitMQ, accept payloads up to frame_max itself (8 octets
         * of slack), for clients that forget the frame overhead. */
        long r = wr_frame_parse(
            p + off, n - off,
            fmax > UINT32_MAX - WR_FRAME_OVERHEAD ? fmax : fmax + WR_FRAME_OVERHEAD, &f);
        if (r == 0)
            break;
        if (r < 0) {
            if (r == WR_ETOOBIG)
                wr_conn_error(c, WR_AMQP_FRAME_ERROR, 0,
                              "frame size %u exceeds the negotiated frame_max %u",
                              n - off >= 7 ? wr_get_u32(p + off + 3) + 8 : 0, fmax);
            else
                wr_conn_error(c, WR_AMQP_FRAME_ERROR, 0, "malformed frame (%s)",
                              p[off] == 1 || p[off] == 2 || p[off] == 3 || p[off] == 8
                                  ? "bad frame end octet"
                                  : "unknown frame type");
            c->discard_input = 1;
            off = n;
            break;
        }
        off += (size_t)r;
        handle_frame(c, &f);
    }
    wr_sock_consume(s, off);
    wr_queue_run_pending();
}

static void on_drain(wr_sock_t *s)
{
    wr_conn_t *c = s->ud;
    /* Deliveries held back by congestion may flow again. */
    for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next) {
        size_t i = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&ch->consumers, &i, &sl)) {
            wr_chconsumer_t *cc = sl->value;
            if (cc->base.queue)
                wr_queue_kick(cc->base.queue);
        }
    }
    wr_queue_run_pending();
}

static void on_close(wr_sock_t *s)
{
    wr_conn_t *c = s->ud;
    if (c->state < WR_CONN_CLOSING)
        wr_info("connection %s closed by peer", s->peer);
    wr_cmeta_cancel(c);
    release_all(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n_conns--;
    free(c->channels);
    free(c->user);
    wr_buf_free(&c->client_props);
    free(c);
    wr_queue_run_pending();
}

const wr_sock_handler_t wr_conn_handler = {on_read, on_drain, on_close};

/* ---- waiting for the cluster's metadata log ---- */

void wr_conn_meta_hold(wr_conn_t *c)
{
    if (c->meta_waits++ == 0)
        wr_sock_hold_read(c->sock, 1);
}

void wr_conn_meta_release(wr_conn_t *c)
{
    /* The frames that came meanwhile are read on the next loop pass (the
     * release comes from a Raft callback; they may propose again). */
    if (--c->meta_waits == 0 && !c->held)
        wr_sock_hold_read(c->sock, 0);
}

void wr_conn_accept(wr_sock_t *s)
{
    wr_conn_t *c = wr_xcalloc(1, sizeof *c);
    c->sock = s;
    s->ud = c;
    c->state = WR_CONN_HEADER;
    c->frame_max = WR_AMQP_FRAME_MIN_SIZE;
    c->deadline = wr_now_ms() + HANDSHAKE_TIMEOUT_MS;
    wr_buf_init(&c->client_props);
    uint64_t cmax = wr_broker.cfg ? wr_broker.cfg->connection_max : 0;
    if (cmax && n_conns >= cmax) {
        /* As RabbitMQ: over connection_max the socket is closed at once. */
        wr_warn("connection from %s refused: connection_max (%" PRIu64 ") reached", s->peer, cmax);
        c->state = WR_CONN_DEAD;
    }
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) == 0)
        c->connected_at = tv.tv_sec * 1000 + tv.tv_usec / 1000;
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    n_conns++;
    wr_debug("accepted connection from %s", s->peer);
    if (c->state == WR_CONN_DEAD)
        wr_sock_close(s);
}

/* ---- housekeeping ---- */

static void tick_conn(wr_conn_t *c, int64_t now)
{
    if (c->deadline && now >= c->deadline && c->state != WR_CONN_DEAD) {
        if (c->state < WR_CONN_OPEN && !c->discard_input)
            wr_warn("connection %s: handshake timeout", c->sock->peer);
        if (c->state < WR_CONN_CLOSING)
            release_all(c);
        c->state = WR_CONN_DEAD;
        wr_sock_close(c->sock);
        return;
    }
    if (c->state == WR_CONN_OPEN) {
        uint64_t to = wr_broker.cfg->consumer_timeout_ms;
        for (wr_channel_t *ch = c->channel_list, *next; ch; ch = next) {
            next = ch->next;
            wr_channel_check_timeout(ch, now, to);
        }
    }
}

static void tick_queues(wr_vhost_t *vh, int64_t now)
{
    for (int again = 1; again;) {
        again = 0;
        size_t i = 0;
        wr_map_slot_t *s;
        while (wr_map_next(&vh->queues, &i, &s)) {
            wr_queue_t *q = s->value;
            if (q->args.expires > 0 && q->n_consumers == 0 &&
                now - q->last_used >= q->args.expires) {
                wr_info("queue '%s' expired (x-expires)", q->name);
                wr_queue_delete(q);
                again = 1;
                break;
            }
        }
    }
}

void wr_conn_tick(void)
{
    int64_t now = wr_now_ms();
    for (wr_conn_t *c = all_conns, *next; c; c = next) {
        next = c->next;
        tick_conn(c, now);
    }
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
        tick_queues(vh, now);
    wr_queue_run_pending();
}

int wr_conn_alarm_active(void)
{
    return alarm_on;
}

void wr_conn_hold_publisher(wr_conn_t *c)
{
    if (!c->held) {
        c->held = 1;
        wr_sock_hold_read(c->sock, 1);
    }
}

void wr_conn_set_alarm(int source, int on)
{
    int before = wr_broker.alarms;
    wr_broker.alarms = on ? before | source : before & ~source;
    if (wr_broker.alarms == before)
        return;
    const char *what = source == WR_ALARM_DISK ? "disk" : "memory";
    if (on)
        wr_warn("%s alarm set: blocking publishers", what);
    else
        wr_info("%s alarm cleared", what);
    /* RabbitMQ's reasons: "low on memory", "low on disk", or both. */
    snprintf(alarm_reason, sizeof alarm_reason, "%s",
             wr_broker.alarms == (WR_ALARM_MEMORY | WR_ALARM_DISK) ? "low on memory & disk"
             : wr_broker.alarms & WR_ALARM_DISK                    ? "low on disk"
                                                                   : "low on memory");
    int now_on = wr_broker.alarms != 0;
    if (now_on == alarm_on)
        return;
    alarm_on = now_on;
    for (wr_conn_t *c = all_conns; c; c = c->next) {
        if (c->state != WR_CONN_OPEN)
            continue;
        if (alarm_on && c->cap_blocked && !c->blocked_sent) {
            wr_method_t b = {.id = WR_M_CONNECTION_BLOCKED};
            b.u.connection_blocked.reason = wr_bytes_of(alarm_reason);
            wr_conn_send_method(c, 0, &b);
            c->blocked_sent = 1;
        } else if (!alarm_on) {
            if (c->blocked_sent) {
                wr_method_t u = {.id = WR_M_CONNECTION_UNBLOCKED};
                wr_conn_send_method(c, 0, &u);
                c->blocked_sent = 0;
            }
            if (c->held) {
                c->held = 0;
                wr_sock_hold_read(c->sock, c->meta_waits != 0);
                if (c->sock->in.len && !c->meta_waits)
                    on_read(c->sock); /* what arrived before the hold */
            }
        }
    }
}

void wr_conn_check_memory(void)
{
    const wr_config_t *cfg = wr_broker.cfg;
    static uint64_t limit;
    if (limit == 0)
        limit = cfg->mem_high_watermark_bytes
                    ? cfg->mem_high_watermark_bytes
                    : (uint64_t)((double)uv_get_total_memory() * cfg->mem_high_watermark_relative);
    int mem = wr_broker.alarms & WR_ALARM_MEMORY;
    if (!mem && wr_msg_mem_bytes > limit)
        wr_conn_set_alarm(WR_ALARM_MEMORY, 1);
    else if (mem && wr_msg_mem_bytes < limit - limit / 10)
        wr_conn_set_alarm(WR_ALARM_MEMORY, 0);
}

void wr_conn_relocate(wr_vhost_t *vh, uint32_t seg, const wr_reloc_t *tab, size_t n)
{
    for (wr_conn_t *c = all_conns; c; c = c->next)
        for (wr_channel_t *ch = c->channel_list; ch; ch = ch->next)
            for (size_t i = 0; i < ch->ua_count; i++) {
                wr_unacked_t *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
                if (u->queue && u->queue->vhost == vh && u->ent.loc.seg == seg) {
                    const wr_reloc_t *r = wr_reloc_find(tab, n, u->ent.loc.off);
                    if (r)
                        u->ent.loc = r->new_loc;
                }
            }
}

size_t wr_conn_close_vhost(wr_vhost_t *vh, uint16_t code, const char *text)
{
    size_t n = 0;
    for (wr_conn_t *c = all_conns; c; c = c->next) {
        if (c->vhost != vh)
            continue;
        if (c->state < WR_CONN_CLOSING)
            wr_conn_error(c, code, 0, "%s", text);
        else
            release_all(c);
        uncount(c);
        c->vhost = NULL; /* closing: nothing looks at it again */
        n++;
    }
    return n;
}

size_t wr_conn_close_user(const wr_user_t *u, uint16_t code, const char *text)
{
    size_t n = 0;
    for (wr_conn_t *c = all_conns; c; c = c->next) {
        if (c->auth_user != u)
            continue;
        if (c->state < WR_CONN_CLOSING) {
            if (c->state < WR_CONN_OPEN) {
                hang_up(c);
            } else {
                wr_conn_error(c, code, 0, "%s", text);
            }
        }
        release_all(c);
        c->auth_user = NULL;
        n++;
    }
    return n;
}

/* ---- the vhost registry ---- */

wr_vhost_t *wr_broker_vhost(wr_bytes_t name)
{
    return wr_map_get(&wr_broker.vhosts, name);
}

void wr_broker_vhost_add(wr_vhost_t *vh)
{
    wr_map_put(&wr_broker.vhosts, wr_bytes_of(vh->name), vh);
}

void wr_broker_vhost_remove(wr_vhost_t *vh)
{
    wr_map_del(&wr_broker.vhosts, wr_bytes_of(vh->name));
    if (wr_broker.vhosts.count == 0) {
        wr_map_free(&wr_broker.vhosts);
        wr_map_init(&wr_broker.vhosts);
    }
}

wr_vhost_t *wr_broker_vhost_next(size_t *i)
{
    wr_map_slot_t *sl;
    return wr_map_next(&wr_broker.vhosts, i, &sl) ? sl->value : NULL;
}

void wr_conn_close_all_now(void)
{
    for (wr_conn_t *c = all_conns; c; c = c->next) {
        release_all(c);
        c->vhost = NULL;
        c->state = WR_CONN_DEAD;
        wr_sock_close(c->sock);
    }
    wr_sock_flush_all();
    wr_sock_abort_all();
}

void wr_conn_shutdown_all(const char *reason)
{
    for (wr_conn_t *c = all_conns; c; c = c->next) {
        if (c->state == WR_CONN_OPEN) {
            wr_conn_error(c, WR_AMQP_CONNECTION_FORCED, 0, "%s", reason);
        } else if (c->state != WR_CONN_DEAD) {
            c->state = WR_CONN_DEAD;
            wr_sock_close(c->sock);
        }
    }
}
