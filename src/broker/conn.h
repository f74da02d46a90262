/*
 * conn.h - AMQP connections and channels: the protocol state machines that
 * turn frames from a socket into broker operations and broker events into
 * frames.
 *
 * Connection states:
 *
 *   HEADER --"AMQP 0-9-1"--> START_OK --start-ok (auth ok)--> TUNE_OK
 *     --tune-ok--> OPEN_WAIT --open--> OPEN
 *   any --hard error or close sent--> CLOSING --close-ok / timeout--> DEAD
 *   OPEN or CLOSING --peer sent close--> (close-ok sent) CLOSED
 *     --peer hangs up, or 30 s--> DEAD
 *   START_OK or TUNE_OK --unexpected method--> (3 s of silence) DEAD
 * DEAD means the socket is closing (gracefully: see net/sock.h).  A CLOSED
 * connection answers every further connection.close with close-ok and
 * ignores everything else, as RabbitMQ does, so a client whose threads
 * close at once gets a close-ok for each and reads EOF, not a reset.
 *
 * Heartbeats (RabbitMQ's rabbit_heartbeat, from tune-ok on, with the
 * interval T of the client's tune-ok; 0 disables both directions): every
 * T/2 a heartbeat goes out if nothing was sent since the previous check
 * (the first check always sends one); every T the bytes received are
 * compared, and two checks in a row without any close the connection.
 *
 * Channel states: (absent) --open--> OPEN --soft error--> CLOSING
 *   --close-ok--> (absent);  OPEN --close--> (close-ok sent) (absent).
 * A CLOSING channel ignores everything but close and close-ok, as the spec
 * requires; its consumers and unacked deliveries are released at once.
 *
 * Content assembly: a basic.publish moves the channel to "expect header",
 * the header frame allocates the message, body frames fill it; any other
 * frame in between is a 505 UNEXPECTED_FRAME connection error.
 */
#ifndef WR_CONN_H
#define WR_CONN_H

#include "core/durable.h"
#include "broker/queue.h"
#include "broker/vhost.h"
#include "core/config.h"
#include "core/map.h"
#include "net/sock.h"
#include "proto/spec_gen.h"

typedef struct wr_conn wr_conn_t;
typedef struct wr_channel wr_channel_t;
typedef struct wr_user wr_user_t;

/* A consumer created by basic.consume on a channel. */
typedef struct wr_chconsumer {
    wr_consumer_t base; /* must be first */
    wr_channel_t *ch;
    uint32_t prefetch; /* 0 = unlimited */
    uint32_t unacked;
    uint8_t tag_len;
    char tag[256];
} wr_chconsumer_t;

/* A delivery that is out, awaiting ack/nack/reject. */
typedef struct wr_unacked {
    wr_queue_t *queue;         /* NULL: settled (a hole in the deque) */
    wr_chconsumer_t *consumer; /* NULL for basic.get or a cancelled consumer */
    wr_qent_t ent;
    int64_t delivered_at;
} wr_unacked_t;

/* A publish or settlement held back by a transaction until tx.commit. */
typedef struct wr_txop {
    int kind; /* 0 publish, 1 ack, 2 nack/reject */
    wr_msg_t *msg;
    uint8_t mandatory;
    uint8_t multiple;
    uint8_t requeue;
    uint64_t tag;
} wr_txop_t;

/* A publisher confirm waiting for a durability domain (core/durable.h),
 * or behind one that is.  A publish that waits on several domains has one
 * entry per domain, all but the last marked more: only the last answers. */
typedef struct wr_pending_confirm {
    uint64_t seq;
    wr_durable_t *d; /* the domain to wait for, or NULL */
    uint64_t ticket; /* ... and the ticket in it */
    uint8_t nack;
    uint8_t commit; /* a tx.commit-ok to send once durable, not a confirm */
    uint8_t more;   /* another entry for the same publish or commit follows */
} wr_pending_confirm_t;

enum { WR_CH_OPEN = 1, WR_CH_CLOSING };
enum { WR_CONTENT_NONE, WR_CONTENT_HEADER, WR_CONTENT_BODY };

struct wr_channel {
    wr_conn_t *conn;
    uint16_t id;
    uint8_t state;
    uint8_t flow_active;
    uint8_t confirm;
    uint8_t tx;
    uint8_t content;
    uint8_t confirm_dirty;

    /* The basic.publish whose content is being assembled. */
    uint8_t pub_mandatory;
    uint8_t pub_exchange_len;
    uint8_t pub_rk_len;
    char pub_exchange[256];
    char pub_rk[256];
    wr_msg_t *assembling;
    /* The exchange, and the queue of the default exchange, this channel
     * last published to: valid while the vhost's names_gen is unchanged,
     * they spare the two name lookups of most publishes. */
    wr_exchange_t *pub_x;
    wr_queue_t *pub_q;
    uint64_t pub_x_gen, pub_q_gen;
    /* pub_x's topic permission for this user, if one applies (checked on
     * the routing key of every publish). */
    const struct wr_topic_perm *pub_topic;

    /* Publisher confirms: tags up to confirm_ready may be acked; tags up to
     * confirm_sent have been answered. */
    uint64_t pub_seq;
    uint64_t confirm_ready;
    uint64_t confirm_sent;

    /* Deliveries out: a deque indexed by delivery tag - ua_base. */
    uint64_t next_tag;
    uint64_t ua_base;
    wr_unacked_t *ua;
    size_t ua_head, ua_count, ua_cap;
    uint32_t n_unacked;

    uint32_t prefetch_consumer; /* basic.qos global=false: for new consumers */
    uint32_t prefetch_channel;  /* basic.qos global=true: shared */

    wr_map_t consumers; /* tag -> wr_chconsumer_t */

    /* Direct reply-to: the consumer of the pseudo-queue
     * amq.rabbitmq.reply-to, which is no queue at all.  While it exists
     * the channel is registered under reply_suffix, the opaque part of the
     * reply-to names it hands out; replies published to those names are
     * written straight to this channel. */
    uint64_t uid; /* unique among all channels ever opened */
    uint8_t has_reply;
    uint8_t reply_tag_len;
    uint8_t reply_suffix_len;
    char reply_tag[256];
    char reply_suffix[64];
    char last_queue[256]; /* the last queue declared, for empty names */
    uint8_t last_queue_len;

    wr_txop_t *txops;
    size_t n_txops, cap_txops;

    wr_channel_t *next, *prev;  /* in conn->channel_list */
    wr_channel_t *confirm_next; /* in the list of channels with confirms to send */

    /* Confirms waiting for the store, in publish order. */
    wr_pending_confirm_t *pc;
    size_t pc_head, pc_count, pc_cap;
    uint8_t part_nack;          /* an earlier part of the front publish failed */
    wr_durable_waiter_t waiter; /* on the domain the oldest pending confirm waits for */

    wr_counters_t st; /* message statistics (broker/stats.h) */
    wr_rates_t rt;
};

enum {
    WR_CONN_HEADER,
    WR_CONN_START_OK,
    WR_CONN_TUNE_OK,
    WR_CONN_OPEN_WAIT,
    WR_CONN_OPEN,
    WR_CONN_CLOSING,
    WR_CONN_CLOSED,
    WR_CONN_DEAD
};

struct wr_conn {
    wr_sock_t *sock;
    uint8_t state;
    uint8_t discard_input; /* after an unparseable frame */
    uint8_t cap_cancel_notify;
    uint8_t cap_blocked;
    uint8_t cap_auth_close;
    uint8_t blocked_sent; /* connection.blocked sent, unblocked not yet */
    uint8_t held;         /* reading stopped by the alarm (it published) */
    uint32_t meta_waits;  /* answers waiting for the cluster's metadata log */
    uint16_t channel_max;
    uint32_t frame_max;
    uint16_t heartbeat;
    uint8_t hb_started; /* the first heartbeat check is done */
    uint8_t hb_silent;  /* receive checks in a row with nothing read */
    uint32_t hb_ticks;  /* timer firings (every T/2) */
    uint64_t hb_out;    /* bytes produced at the last send check */
    uint64_t hb_in;     /* bytes read at the last receive check */
    int64_t deadline;   /* handshake, close-ok or hang-up deadline, 0 = none */
    char *user;
    wr_user_t *auth_user; /* the logged-in user (broker/access.h) */
    uint8_t counted;      /* in its vhost's and user's connection counts */
    wr_vhost_t *vhost;
    wr_buf_t client_props;
    int64_t connected_at;    /* wall clock, ms since the epoch */
    char auth_mechanism[16]; /* "PLAIN", "AMQPLAIN" */
    wr_channel_t **channels; /* by id, grown on demand */
    uint32_t n_channel_slots;
    uint32_t n_channels;
    wr_channel_t *channel_list;
    wr_conn_t *next, *prev; /* all connections */
    /* recv_oct/send_oct at the last statistics tick, and the rates. */
    uint64_t prev_in, prev_out;
    float rate_in, rate_out;
};

/* Every connection, for listings: the first, then c->next. */
wr_conn_t *wr_conn_first(void);

/* The socket handler for AMQP connections and the accept callback. */
extern const wr_sock_handler_t wr_conn_handler;
void wr_conn_accept(wr_sock_t *s);

/* Once-a-second housekeeping: heartbeats, handshake and close deadlines,
 * consumer (ack) timeouts, x-expires. */
void wr_conn_tick(void);
/* Flushes coalesced publisher confirms of every connection. */
void wr_conn_flush_confirms(void);
/* Closes every connection with 320 CONNECTION_FORCED (shutdown). */
void wr_conn_shutdown_all(const char *reason);
/* Resource alarms (memory now, disk with the store): while any is on,
 * clients that support it get connection.blocked, and a connection that
 * publishes stops being read until the alarm clears, as in RabbitMQ. */
#define WR_ALARM_MEMORY 1
#define WR_ALARM_DISK   2
void wr_conn_set_alarm(int source, int on);
/* An answer of c waits for the cluster's metadata log (broker/cmeta.h):
 * while any does, c's frames stay unread, so its next methods see the
 * change made.  Release resumes reading on the next loop pass. */
void wr_conn_meta_hold(wr_conn_t *c);
void wr_conn_meta_release(wr_conn_t *c);
int wr_conn_alarm_active(void);
/* Raises or clears the memory alarm from the message memory in use;
 * called once per loop pass. */
void wr_conn_check_memory(void);
/* Called by a channel for basic.publish while an alarm is on. */
void wr_conn_hold_publisher(wr_conn_t *c);

/* Releases every connection's broker state at once and closes the sockets
 * (final teardown; the loop must run once more to free them). */
void wr_conn_close_all_now(void);
size_t wr_conn_count(void);

/*
 * The authentication backend: where credentials are checked.  Only the
 * internal database exists today; connection.update-secret asks it, so a
 * token backend (OAuth 2) can refuse a new secret later.
 */
typedef struct wr_auth_backend {
    const char *name;
    /* connection.update-secret: 0 to accept the new secret for user, or
     * -1 with the reason in why. */
    int (*update_secret)(const char *user, wr_bytes_t secret, char *why, size_t whylen);
} wr_auth_backend_t;
extern const wr_auth_backend_t wr_auth_internal;

/* Broker-wide state the protocol layer uses; set up by wr_broker_init. */
typedef struct wr_broker {
    wr_config_t *cfg;
    const wr_auth_backend_t *auth; /* NULL: wr_auth_internal */
    int alarms;                    /* WR_ALARM_* bits in force */
    wr_map_t vhosts;               /* name -> wr_vhost_t: the vhost registry */
} wr_broker_t;
extern wr_broker_t wr_broker;

/* The vhost registry.  Adding or removing a vhost here only makes it
 * visible or invisible to connection.open: creating its store, persisting
 * it and closing its connections is the control plane's (admin/). */
wr_vhost_t *wr_broker_vhost(wr_bytes_t name);
void wr_broker_vhost_add(wr_vhost_t *vh);
void wr_broker_vhost_remove(wr_vhost_t *vh);
/* Iterates the registry: *i starts at 0; NULL at the end. */
wr_vhost_t *wr_broker_vhost_next(size_t *i);
/* Closes every connection on vh with a hard error (320 when its vhost is
 * deleted) and releases what they hold at once; returns how many. */
size_t wr_conn_close_vhost(wr_vhost_t *vh, uint16_t code, const char *text);
/* The same for every connection of a user (deleted). */
size_t wr_conn_close_user(const wr_user_t *u, uint16_t code, const char *text);

#endif

/* ---- shared between conn.c and channel.c ---- */

/* Appends a method frame to the connection's output. */
void wr_conn_send_method(wr_conn_t *c, uint16_t channel, const wr_method_t *m);
/* Sends connection.close with a hard error and stops processing input. */
void wr_conn_error(wr_conn_t *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends channel.close with a soft error (or escalates a hard code to the
 * connection) and releases the channel's resources. */
void wr_channel_error(wr_channel_t *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

wr_channel_t *wr_channel_new(wr_conn_t *c, uint16_t id);
/* Releases consumers, requeues unacked deliveries, drops partial content
 * and transaction state; the channel stays allocated (CLOSING or freed by
 * the caller). */
void wr_channel_release(wr_channel_t *ch);
/* Durability domain d goes away (a quorum queue closed): every pending
 * confirm or commit that waits on it is decided now (its unresolved
 * tickets were marked lost first). */
void wr_channel_forget_domain(wr_durable_t *d);
/* The answer to a basic.get on q: e (the channel takes it over) or NULL
 * for get-empty.  Quorum queues answer once the get is applied. */
void wr_channel_get_answer(wr_channel_t *ch, wr_queue_t *q, wr_qent_t *e, int no_ack);
void wr_channel_free(wr_channel_t *ch);
void wr_channel_method(wr_channel_t *ch, wr_method_t *m);
/* basic.publish's arguments: the content frames that follow are its
 * message (the connection's fast path decodes the method itself). */
void wr_channel_publish(wr_channel_t *ch, wr_bytes_t exchange, wr_bytes_t routing_key,
                        int mandatory, int immediate);
void wr_channel_header(wr_channel_t *ch, wr_bytes_t payload);
void wr_channel_body(wr_channel_t *ch, wr_bytes_t payload);
/* Points every unacknowledged delivery stored in segment seg of vh's store
 * at its new location after compaction (every channel on vh). */
void wr_conn_relocate(wr_vhost_t *vh, uint32_t seg, const wr_reloc_t *tab, size_t n);
/* Sends pending publisher confirms. */
void wr_channel_flush_confirms(wr_channel_t *ch);
/* Closes the channel with 406 if its oldest unacked delivery is older
 * than timeout_ms. */
void wr_channel_check_timeout(wr_channel_t *ch, int64_t now, uint64_t timeout_ms);
