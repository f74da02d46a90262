/*
 * test_conn.c - the AMQP connection driven in-process through a detached
 * socket: handshake, loopback-only users, the resource alarm
 * (connection.blocked and holding publishers), publish/get, heartbeats
 * (the socket timer fired by hand), close and update-secret.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/access.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "core/log.h"
#include "core/loop.h"
#include "proto/frame.h"
#include "proto/table.h"
#include "test.h"

static wr_vhost_t *vh0; /* the vhost "/", in the registry */
static wr_config_t cfg;

static void setup(void)
{
    if (wr_loop == NULL) {
        wr_loop = uv_default_loop();
        wr_log_set_level(WR_LOG_NONE);
    }
    wr_config_init(&cfg);
    wr_broker.cfg = &cfg;
    vh0 = wr_vhost_new("/");
    wr_broker_vhost_add(vh0);
    wr_user_t *guest = wr_access_user_add("guest", "guest", "administrator");
    wr_access_set_perms(guest, "/", ".*", ".*", ".*", NULL, 0);
}

static void teardown(wr_sock_t *s)
{
    if (s)
        wr_sock_detached_free(s);
    wr_broker_vhost_remove(vh0);
    wr_vhost_free(vh0);
    wr_access_reset();
    vh0 = NULL;
    wr_config_free(&cfg);
    uv_run(wr_loop, UV_RUN_NOWAIT);
}

static void send_method(wr_sock_t *s, uint16_t ch, const wr_method_t *m)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t st = wr_frame_begin(&b, 1, ch);
    wr_method_encode(&b, m);
    wr_frame_end(&b, st);
    wr_sock_feed(s, b.p, b.len);
    wr_queue_run_pending();
    wr_conn_flush_confirms();
    wr_buf_free(&b);
}

/* Finds the first method frame with the given id in the socket's output
 * and decodes it into *out (the output stays; wr_sock_detached_drain
 * drops it). */
static int take_method(wr_sock_t *s, uint32_t id, wr_method_t *out)
{
    size_t off = 0;
    while (off < s->out.len) {
        wr_frame_t f;
        long r = wr_frame_parse(s->out.p + off, s->out.len - off, 1u << 30, &f);
        if (r <= 0)
            return 0;
        off += (size_t)r;
        if (f.type == 1 && wr_method_decode(f.payload.p, f.payload.n, out) == 0 && out->id == id) {
            /* out holds views into the buffer: keep the bytes until the
             * next take by consuming lazily (tests read fields at once). */
            return 1;
        }
    }
    return 0;
}

/* How many method frames with the given id the socket's output holds. */
static int count_methods(wr_sock_t *s, uint32_t id)
{
    int n = 0;
    size_t off = 0;
    wr_method_t m;
    wr_frame_t f;
    long r;
    while (off < s->out.len &&
           (r = wr_frame_parse(s->out.p + off, s->out.len - off, 1u << 30, &f)) > 0) {
        off += (size_t)r;
        if (f.type == 1 && wr_method_decode(f.payload.p, f.payload.n, &m) == 0 && m.id == id)
            n++;
    }
    return n;
}

static uint16_t tune_heartbeat; /* the heartbeat handshake() sends in tune-ok */

static wr_sock_t *handshake(int loopback, const char *user, const char *pass)
{
    wr_sock_t *s = wr_sock_new_detached(&wr_conn_handler, loopback);
    wr_conn_accept(s);
    static const uint8_t hdr[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    wr_sock_feed(s, hdr, 8);
    wr_method_t m = {.id = WR_M_CONNECTION_START_OK};
    wr_buf_t props, resp;
    wr_buf_init(&props);
    wr_buf_init(&resp);
    size_t top = wr_table_begin(&props);
    wr_table_put_key(&props, WR_BYTES_LIT("capabilities"));
    wr_buf_put_u8(&props, 'F');
    size_t caps = wr_table_begin(&props);
    wr_table_put_key(&props, WR_BYTES_LIT("connection.blocked"));
    wr_field_t t = wr_field_bool(1);
    wr_field_put(&props, &t);
    wr_table_put_key(&props, WR_BYTES_LIT("authentication_failure_close"));
    wr_field_put(&props, &t);
    wr_table_end(&props, caps);
    wr_table_end(&props, top);
    wr_buf_put_u8(&resp, 0);
    wr_buf_put(&resp, user, strlen(user));
    wr_buf_put_u8(&resp, 0);
    wr_buf_put(&resp, pass, strlen(pass));
    m.u.connection_start_ok.client_properties = (wr_bytes_t){props.p + 4, props.len - 4};
    m.u.connection_start_ok.mechanism = WR_BYTES_LIT("PLAIN");
    m.u.connection_start_ok.response = (wr_bytes_t){resp.p, resp.len};
    m.u.connection_start_ok.locale = WR_BYTES_LIT("en_US");
    send_method(s, 0, &m);
    wr_buf_free(&props);
    wr_buf_free(&resp);
    wr_conn_t *c = s->ud;
    if (c->state != WR_CONN_TUNE_OK)
        return s;
    wr_method_t t2 = {.id = WR_M_CONNECTION_TUNE_OK};
    t2.u.connection_tune_ok.channel_max = 100;
    t2.u.connection_tune_ok.frame_max = 131072;
    t2.u.connection_tune_ok.heartbeat = tune_heartbeat;
    send_method(s, 0, &t2);
    wr_method_t o = {.id = WR_M_CONNECTION_OPEN};
    o.u.connection_open.virtual_host = WR_BYTES_LIT("/");
    send_method(s, 0, &o);
    return s;
}

/* Heartbeat frames in the socket's output. */
static int count_heartbeats(wr_sock_t *s)
{
    int n = 0;
    size_t off = 0;
    wr_frame_t f;
    long r;
    while (off < s->out.len &&
           (r = wr_frame_parse(s->out.p + off, s->out.len - off, 1u << 30, &f)) > 0) {
        off += (size_t)r;
        n += f.type == 8;
    }
    return n;
}

/* Fires the heartbeat timer once (flushing first, as the loop would);
 * returns how many heartbeats it queued. */
static int fire(wr_sock_t *s)
{
    wr_sock_flush_all();
    wr_sock_detached_drain(s);
    if (!wr_sock_detached_fire_timer(s))
        return -1; /* no timer */
    return count_heartbeats(s);
}

static void test_conn_heartbeats(void)
{
    setup();
    tune_heartbeat = 2;
    wr_sock_t *s = handshake(1, "guest", "guest");
    tune_heartbeat = 0;
    wr_conn_t *c = s->ud;
    CHECK_EQ(c->state, WR_CONN_OPEN);
    CHECK_EQ(s->timer_ms, 1000); /* T/2 */
    /* The handshake's output holds no heartbeat. */
    CHECK_EQ(count_heartbeats(s), 0);
    /* The first check always beats; then every check with nothing sent. */
    CHECK_EQ(fire(s), 1);
    CHECK_EQ(fire(s), 1);
    /* Something sent since the last check: no beat. */
    wr_method_t o = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &o);
    CHECK_EQ(fire(s), 0);
    CHECK_EQ(fire(s), 1); /* receive check here saw the channel.open */
    /* Silence from the client: checks at 6 and 8 find nothing new; the
     * second closes the connection, without a last beat. */
    CHECK_EQ(fire(s), 1);
    CHECK_EQ(fire(s), 1);
    CHECK_EQ(fire(s), 1);
    CHECK_EQ(c->state, WR_CONN_OPEN);
    wr_sock_flush_all();
    wr_sock_detached_drain(s);
    CHECK(wr_sock_detached_fire_timer(s));
    CHECK_EQ(count_heartbeats(s), 0);
    CHECK_EQ(c->state, WR_CONN_DEAD);
    CHECK(s->closing);
    CHECK(!wr_sock_detached_fire_timer(s));
    teardown(s);

    /* Client heartbeats keep it alive. */
    setup();
    tune_heartbeat = 1;
    s = handshake(1, "guest", "guest");
    tune_heartbeat = 0;
    c = s->ud;
    CHECK_EQ(s->timer_ms, 500);
    static const uint8_t hb[8] = {8, 0, 0, 0, 0, 0, 0, 0xce};
    for (int i = 0; i < 20; i++) {
        wr_sock_feed(s, hb, sizeof hb);
        CHECK_EQ(fire(s), 1);
    }
    CHECK_EQ(c->state, WR_CONN_OPEN);
    teardown(s);

    /* heartbeat = 0 in tune-ok: no timer at all. */
    setup();
    s = handshake(1, "guest", "guest");
    CHECK_EQ(s->timer_ms, 0);
    CHECK(!wr_sock_detached_fire_timer(s));
    teardown(s);
}

static void test_conn_close_waits_for_peer(void)
{
    setup();
    tune_heartbeat = 5;
    wr_sock_t *s = handshake(1, "guest", "guest");
    tune_heartbeat = 0;
    wr_conn_t *c = s->ud;
    wr_method_t o = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &o);
    wr_sock_detached_drain(s);
    wr_method_t cl = {.id = WR_M_CONNECTION_CLOSE};
    cl.u.connection_close.reply_code = 200;
    cl.u.connection_close.reply_text = WR_BYTES_LIT("bye");
    send_method(s, 0, &cl);
    CHECK_EQ(count_methods(s, WR_M_CONNECTION_CLOSE_OK), 1);
    CHECK_EQ(c->state, WR_CONN_CLOSED);
    CHECK_EQ(c->n_channels, 0); /* released at once */
    CHECK(!s->closing);         /* the peer hangs up, or the deadline does */
    CHECK(c->deadline > 0);
    CHECK(!wr_sock_detached_fire_timer(s)); /* heartbeats stopped */
    /* Each further close gets its close-ok; anything else is dropped. */
    send_method(s, 0, &cl);
    send_method(s, 0, &cl);
    send_method(s, 2, &o);
    CHECK_EQ(count_methods(s, WR_M_CONNECTION_CLOSE_OK), 3);
    CHECK_EQ(count_methods(s, WR_M_CHANNEL_OPEN_OK), 0);
    CHECK_EQ(c->state, WR_CONN_CLOSED);
    teardown(s);
}

static int refuse_secret(const char *user, wr_bytes_t secret, char *why, size_t n)
{
    (void)user;
    snprintf(why, n, "token %.*s expired", (int)secret.n, (const char *)secret.p);
    return -1;
}

static void test_conn_update_secret(void)
{
    setup();
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_conn_t *c = s->ud;
    wr_sock_detached_drain(s);
    wr_method_t u = {.id = WR_M_CONNECTION_UPDATE_SECRET};
    u.u.connection_update_secret.new_secret = WR_BYTES_LIT("abc");
    u.u.connection_update_secret.reason = WR_BYTES_LIT("refresh");
    send_method(s, 0, &u);
    CHECK_EQ(count_methods(s, WR_M_CONNECTION_UPDATE_SECRET_OK), 1);
    CHECK_EQ(c->state, WR_CONN_OPEN);
    /* A backend that refuses the secret closes the connection with 530. */
    static const wr_auth_backend_t refusing = {"refusing", refuse_secret};
    wr_broker.auth = &refusing;
    wr_sock_detached_drain(s);
    send_method(s, 0, &u);
    wr_broker.auth = NULL;
    wr_method_t m;
    CHECK(take_method(s, WR_M_CONNECTION_CLOSE, &m));
    CHECK_EQ(m.u.connection_close.reply_code, WR_AMQP_NOT_ALLOWED);
    CHECK(wr_bytes_eq_str(m.u.connection_close.reply_text,
                          "NOT_ALLOWED - Refused to update secret: token abc expired"));
    CHECK_EQ(m.u.connection_close.class_id, 10);
    CHECK_EQ(m.u.connection_close.method_id, 70);
    teardown(s);
}

static void test_conn_handshake_and_channel(void)
{
    setup();
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_method_t r;
    CHECK(take_method(s, WR_M_CONNECTION_START, &r));
    CHECK(take_method(s, WR_M_CONNECTION_TUNE, &r));
    CHECK_EQ(r.u.connection_tune.channel_max, 2047);
    CHECK_EQ(r.u.connection_tune.frame_max, 131072);
    CHECK_EQ(r.u.connection_tune.heartbeat, 60);
    CHECK(take_method(s, WR_M_CONNECTION_OPEN_OK, &r));
    wr_method_t o = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &o);
    CHECK(take_method(s, WR_M_CHANNEL_OPEN_OK, &r));
    CHECK_EQ(((wr_conn_t *)s->ud)->n_channels, 1);
    teardown(s);
}

static void test_conn_guest_refused_from_remote(void)
{
    setup();
    wr_sock_t *s = handshake(0, "guest", "guest");
    wr_method_t r;
    CHECK(take_method(s, WR_M_CONNECTION_CLOSE, &r));
    CHECK_EQ(r.u.connection_close.reply_code, 403);
    CHECK(memcmp(r.u.connection_close.reply_text.p, "ACCESS_REFUSED - ", 17) == 0);
    teardown(s);
}

static void test_conn_remote_allowed_when_loopback_users_none(void)
{
    setup();
    char err[128];
    CHECK_EQ(wr_config_set(&cfg, "loopback_users", "none", err, sizeof err), 0);
    wr_sock_t *s = handshake(0, "guest", "guest");
    wr_method_t r;
    CHECK(take_method(s, WR_M_CONNECTION_OPEN_OK, &r));
    teardown(s);
}

static void test_conn_bad_password(void)
{
    setup();
    wr_sock_t *s = handshake(1, "guest", "wrong");
    wr_method_t r;
    CHECK(take_method(s, WR_M_CONNECTION_CLOSE, &r));
    CHECK_EQ(r.u.connection_close.reply_code, 403);
    teardown(s);
}

static void test_conn_alarm_blocks_publishers(void)
{
    setup();
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_method_t r, m = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &m);
    wr_sock_detached_drain(s);

    wr_conn_set_alarm(WR_ALARM_MEMORY, 1);
    CHECK(take_method(s, WR_M_CONNECTION_BLOCKED, &r));
    CHECK(wr_bytes_eq_str(r.u.connection_blocked.reason, "low on memory"));
    CHECK(!s->read_held);
    wr_method_t p = {.id = WR_M_BASIC_PUBLISH};
    p.u.basic_publish.routing_key = WR_BYTES_LIT("q");
    send_method(s, 1, &p);
    CHECK(!s->read_held); /* held once the message is complete */
    /* An empty-bodied content header completes it; a method right behind
     * it in the same read must wait for the alarm to clear. */
    wr_buf_t c;
    wr_buf_init(&c);
    size_t st = wr_frame_begin(&c, 2, 1);
    wr_buf_put_u16(&c, 60);
    wr_buf_put_u16(&c, 0);
    wr_buf_put_u64(&c, 0);
    wr_buf_put_u16(&c, 0);
    wr_frame_end(&c, st);
    wr_method_t o2 = {.id = WR_M_CHANNEL_OPEN};
    st = wr_frame_begin(&c, 1, 2);
    wr_method_encode(&c, &o2);
    wr_frame_end(&c, st);
    wr_sock_feed(s, c.p, c.len);
    wr_buf_free(&c);
    CHECK(s->read_held); /* a publisher is no longer read */
    CHECK(!take_method(s, WR_M_CHANNEL_OPEN_OK, &r));

    wr_sock_detached_drain(s);
    wr_conn_set_alarm(WR_ALARM_MEMORY, 0);
    CHECK(take_method(s, WR_M_CONNECTION_UNBLOCKED, &r));
    CHECK(!s->read_held);
    CHECK(take_method(s, WR_M_CHANNEL_OPEN_OK, &r)); /* the held input ran */
    teardown(s);
}

/* Feeds a content header (class 60, body_len, delivery mode 2 if
 * persistent, else no properties) and one body frame on channel ch. */
static void feed_content(wr_sock_t *s, uint16_t ch, const char *body, int persistent)
{
    wr_buf_t c;
    wr_buf_init(&c);
    size_t st = wr_frame_begin(&c, 2, ch);
    wr_buf_put_u16(&c, 60);
    wr_buf_put_u16(&c, 0);
    wr_buf_put_u64(&c, strlen(body));
    if (persistent) {
        wr_buf_put_u16(&c, WR_PROP_DELIVERY_MODE);
        wr_buf_put_u8(&c, 2);
    } else {
        wr_buf_put_u16(&c, 0);
    }
    wr_frame_end(&c, st);
    st = wr_frame_begin(&c, 3, ch);
    wr_buf_put(&c, body, strlen(body));
    wr_frame_end(&c, st);
    wr_sock_feed(s, c.p, c.len);
    wr_buf_free(&c);
}

/* Writes what the store buffered and waits (up to 10 s) until generation
 * gen is synced; returns whether it was. */
static int store_sync(wr_store_t *st, uint64_t gen)
{
    wr_store_flush(st);
    for (int i = 0; i < 10000 && wr_store_synced_gen(st) < gen; i++) {
        uv_run(wr_loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return wr_store_synced_gen(st) >= gen;
}

/* setup() with a message store in a fresh directory dir (a mkdtemp
 * template, rewritten); *store is the store, NULL if it failed. */
static void setup_with_store(char *dir, wr_store_t **store)
{
    setup();
    *store = NULL;
    CHECK(mkdtemp(dir) != NULL);
    char err[256];
    CHECK_EQ(wr_persist_open(vh0, dir, 0, err, sizeof err), 0);
    *store = vh0->store;
}

static void teardown_with_store(wr_sock_t *s, const char *dir)
{
    wr_sock_detached_free(s);
    wr_persist_close(vh0);
    teardown(NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

/* tx.commit-ok for a transaction with persistent messages waits for the
 * store's fsync, as a publisher confirm does; one without waits for
 * nothing. */
static void test_conn_tx_commit_waits_for_sync(void)
{
    char dir[] = "/tmp/warren-test-tx-XXXXXX";
    wr_store_t *store;
    setup_with_store(dir, &store);
    CHECK(store != NULL);
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_method_t r, m = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &m);
    wr_method_t d = {.id = WR_M_QUEUE_DECLARE};
    d.u.queue_declare.queue = WR_BYTES_LIT("txq");
    d.u.queue_declare.durable = 1;
    send_method(s, 1, &d);
    CHECK(take_method(s, WR_M_QUEUE_DECLARE_OK, &r));
    wr_method_t ts = {.id = WR_M_TX_SELECT};
    send_method(s, 1, &ts);
    CHECK(take_method(s, WR_M_TX_SELECT_OK, &r));
    /* Let the declare's own records reach the disk first. */
    CHECK(store_sync(store, wr_store_gen(store)));
    wr_sock_detached_drain(s);

    wr_method_t p = {.id = WR_M_BASIC_PUBLISH};
    p.u.basic_publish.routing_key = WR_BYTES_LIT("txq");
    send_method(s, 1, &p);
    feed_content(s, 1, "durable", 1);
    wr_method_t tc = {.id = WR_M_TX_COMMIT};
    send_method(s, 1, &tc);
    /* Routed and written to the store's buffer, not yet synced: no answer. */
    wr_queue_t *q = wr_vhost_queue(vh0, WR_BYTES_LIT("txq"));
    CHECK_EQ(wr_queue_ready(q), 1);
    uint64_t gen = wr_store_gen(store);
    CHECK(wr_store_synced_gen(store) < gen);
    CHECK(!take_method(s, WR_M_TX_COMMIT_OK, &r));
    CHECK(store_sync(store, gen));
    CHECK(take_method(s, WR_M_TX_COMMIT_OK, &r));
    wr_sock_detached_drain(s);

    /* A transient message: answered at once. */
    send_method(s, 1, &p);
    feed_content(s, 1, "transient", 0);
    send_method(s, 1, &tc);
    CHECK(take_method(s, WR_M_TX_COMMIT_OK, &r));
    CHECK_EQ(wr_queue_ready(q), 2);
    wr_sock_detached_drain(s);

    /* An empty commit behind one still waiting answers in order. */
    send_method(s, 1, &p);
    feed_content(s, 1, "durable2", 1);
    send_method(s, 1, &tc);
    send_method(s, 1, &tc);
    CHECK(!take_method(s, WR_M_TX_COMMIT_OK, &r));
    CHECK(store_sync(store, wr_store_gen(store)));
    CHECK_EQ(count_methods(s, WR_M_TX_COMMIT_OK), 2);
    CHECK_EQ(count_methods(s, WR_M_CONNECTION_CLOSE), 0);

    teardown_with_store(s, dir);
}

/* A failed sync fails the transactions waiting for it: the connection is
 * closed with 541, and every channel waiting goes with it (two here, so
 * that the channel list of wr_channel_store_synced changes under it). */
static void test_conn_tx_commit_store_failure_closes(void)
{
    char dir[] = "/tmp/warren-test-txf-XXXXXX";
    wr_store_t *store;
    setup_with_store(dir, &store);
    CHECK(store != NULL);
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_method_t r;
    for (uint16_t ch = 1; ch <= 2; ch++) {
        wr_method_t m = {.id = WR_M_CHANNEL_OPEN};
        send_method(s, ch, &m);
        wr_method_t d = {.id = WR_M_QUEUE_DECLARE};
        d.u.queue_declare.queue = WR_BYTES_LIT("txfq");
        d.u.queue_declare.durable = 1;
        send_method(s, ch, &d);
        wr_method_t ts = {.id = WR_M_TX_SELECT};
        send_method(s, ch, &ts);
    }
    CHECK(store_sync(store, wr_store_gen(store)));
    wr_sock_detached_drain(s);
    for (uint16_t ch = 1; ch <= 2; ch++) {
        wr_method_t p = {.id = WR_M_BASIC_PUBLISH};
        p.u.basic_publish.routing_key = WR_BYTES_LIT("txfq");
        send_method(s, ch, &p);
        feed_content(s, ch, "lost", 1);
        wr_method_t tc = {.id = WR_M_TX_COMMIT};
        send_method(s, ch, &tc);
    }
    CHECK(!take_method(s, WR_M_TX_COMMIT_OK, &r));
    /* As the store reports a failed fdatasync of that generation. */
    wr_durable_update(&vh0->durable, wr_store_synced_gen(store), wr_store_gen(store));
    CHECK(!take_method(s, WR_M_TX_COMMIT_OK, &r));
    CHECK(take_method(s, WR_M_CONNECTION_CLOSE, &r));
    CHECK_EQ(r.u.connection_close.reply_code, 541);
    teardown_with_store(s, dir);
}

static void test_conn_publish_and_get(void)
{
    setup();
    wr_sock_t *s = handshake(1, "guest", "guest");
    wr_method_t r, m = {.id = WR_M_CHANNEL_OPEN};
    send_method(s, 1, &m);
    wr_method_t d = {.id = WR_M_QUEUE_DECLARE};
    d.u.queue_declare.queue = WR_BYTES_LIT("q1");
    send_method(s, 1, &d);
    CHECK(take_method(s, WR_M_QUEUE_DECLARE_OK, &r));
    wr_sock_detached_drain(s);
    wr_method_t p = {.id = WR_M_BASIC_PUBLISH};
    p.u.basic_publish.routing_key = WR_BYTES_LIT("q1");
    send_method(s, 1, &p);
    feed_content(s, 1, "hello", 0);
    wr_queue_t *q = wr_vhost_queue(vh0, WR_BYTES_LIT("q1"));
    CHECK(q != NULL);
    CHECK_EQ(wr_queue_ready(q), 1);
    wr_method_t g = {.id = WR_M_BASIC_GET};
    g.u.basic_get.queue = WR_BYTES_LIT("q1");
    g.u.basic_get.no_ack = 1;
    send_method(s, 1, &g);
    CHECK(take_method(s, WR_M_BASIC_GET_OK, &r));
    CHECK_EQ(r.u.basic_get_ok.delivery_tag, 1);
    CHECK_EQ(wr_queue_ready(q), 0);
    /* The body frame follows the get-ok and its header. */
    CHECK(memmem(s->out.p, s->out.len, "hello", 5) != NULL);
    teardown(s);
}

WR_SUITE(conn)
{
    RUN(test_conn_handshake_and_channel);
    RUN(test_conn_guest_refused_from_remote);
    RUN(test_conn_remote_allowed_when_loopback_users_none);
    RUN(test_conn_bad_password);
    RUN(test_conn_alarm_blocks_publishers);
    RUN(test_conn_publish_and_get);
    RUN(test_conn_tx_commit_waits_for_sync);
    RUN(test_conn_tx_commit_store_failure_closes);
    RUN(test_conn_heartbeats);
    RUN(test_conn_close_waits_for_peer);
    RUN(test_conn_update_secret);
}
