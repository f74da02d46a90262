/* cmeta.c - the cluster's replicated metadata (see cmeta.h). */
#include "broker/cmeta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "broker/cluster.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/queue.h"
#include "broker/quorum.h"
#include "broker/vhost.h"
#include "cluster/rgroup.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"

/* Commands: [u8 op][u64 origin][u64 ticket] then the op's fields.  Ops 1
 * and 2 are the first version's quorum queue commands, without origin and
 * ticket, still read from old logs. */
enum {
    OP_QQ_DECLARE_V1 = 1,
    OP_QQ_DELETE_V1 = 2,
    OP_QQ_DECLARE = 16, /* vhost, name, args */
    OP_QQ_DELETE,       /* vhost, name */
    OP_X_DECLARE,       /* vhost, name, type, flags, args */
    OP_X_DELETE,        /* vhost, name */
    OP_BIND,            /* vhost, source, dest_is_queue, dest, key, args */
    OP_UNBIND,          /* same */
    OP_ORIGIN,          /* snapshots only: the highest ticket applied from origin */
    OP_ADMIN,           /* an admin module command (blob) */
    OP_ADMIN_STATE,     /* snapshots only, first: the admin module's state (blob) */
    OP_NODE_FORGET,     /* u64 node id: forget_cluster_node */
};

enum { X_DURABLE = 1, X_AUTO_DELETE = 2, X_INTERNAL = 4 };

/* The metadata group's id (quorum queues' ids are hashes, never 1). */
#define GROUP_ID 1
/* Pending commands are sent again after this long without being applied. */
#define RESEND_MS 3000

typedef struct cmd {
    uint8_t op;
    uint64_t origin, ticket;
    wr_bytes_t vhost, name, type, dest, key, args;
    uint8_t flags, dest_is_queue;
    uint64_t node; /* OP_NODE_FORGET */
} cmd_t;

typedef struct pend {
    uint64_t ticket;
    wr_buf_t cmd;
    int64_t sent_at; /* 0: not handed to a leader yet */
    void *owner;
    void (*done)(void *ctx, int applied);
    void *ctx;
} pend_t;

typedef struct origin {
    uint64_t id, ticket;
} origin_t;

static struct {
    wr_rgroup_t *g;
    int leader;
    uint64_t leader_id;
    int applying;
    size_t closing;
    uint64_t next_ticket;
    pend_t *pend; /* in ticket order */
    size_t n_pend, cap_pend;
    origin_t *orig; /* the highest ticket applied, per origin */
    size_t n_orig;
    wr_cmeta_admin_t admin;
} cm;

/* ---- encoding ---- */

static void put_str(wr_buf_t *b, wr_bytes_t s)
{
    wr_buf_put_u16(b, (uint16_t)s.n);
    wr_buf_put(b, s.p, s.n);
}

static void put_blob(wr_buf_t *b, wr_bytes_t s)
{
    wr_buf_put_u32(b, (uint32_t)s.n);
    wr_buf_put(b, s.p, s.n);
}

static void put_head(wr_buf_t *b, uint8_t op, uint64_t origin, uint64_t ticket)
{
    wr_buf_put_u8(b, op);
    wr_buf_put_u64(b, origin);
    wr_buf_put_u64(b, ticket);
}

static int get_str(const uint8_t *p, size_t n, size_t *off, wr_bytes_t *out)
{
    if (n - *off < 2)
        return -1;
    size_t l = wr_get_u16(p + *off);
    if (n - *off - 2 < l)
        return -1;
    *out = (wr_bytes_t){p + *off + 2, l};
    *off += 2 + l;
    return 0;
}

static int get_blob(const uint8_t *p, size_t n, size_t *off, wr_bytes_t *out)
{
    if (n - *off < 4)
        return -1;
    size_t l = wr_get_u32(p + *off);
    if (n - *off - 4 < l)
        return -1;
    *out = (wr_bytes_t){p + *off + 4, l};
    *off += 4 + l;
    return 0;
}

static int get_u8(const uint8_t *p, size_t n, size_t *off, uint8_t *out)
{
    if (n - *off < 1)
        return -1;
    *out = p[(*off)++];
    return 0;
}

static int parse(const uint8_t *p, size_t n, cmd_t *c)
{
    memset(c, 0, sizeof *c);
    if (n < 1)
        return -1;
    c->op = p[0];
    size_t off = 1;
    if (c->op == OP_QQ_DECLARE_V1 || c->op == OP_QQ_DELETE_V1) {
        c->op = c->op == OP_QQ_DECLARE_V1 ? OP_QQ_DECLARE : OP_QQ_DELETE;
    } else {
        if (n < 17)
            return -1;
        c->origin = wr_get_u64(p + 1);
        c->ticket = wr_get_u64(p + 9);
        off = 17;
    }
    switch (c->op) {
    case OP_QQ_DECLARE:
        return get_str(p, n, &off, &c->vhost) || get_str(p, n, &off, &c->name) ||
                       get_blob(p, n, &off, &c->args)
                   ? -1
                   : 0;
    case OP_QQ_DELETE:
    case OP_X_DELETE:
        return get_str(p, n, &off, &c->vhost) || get_str(p, n, &off, &c->name) ? -1 : 0;
    case OP_X_DECLARE:
        return get_str(p, n, &off, &c->vhost) || get_str(p, n, &off, &c->name) ||
                       get_str(p, n, &off, &c->type) || get_u8(p, n, &off, &c->flags) ||
                       get_blob(p, n, &off, &c->args)
                   ? -1
                   : 0;
    case OP_BIND:
    case OP_UNBIND:
        return get_str(p, n, &off, &c->vhost) || get_str(p, n, &off, &c->name) ||
                       get_u8(p, n, &off, &c->dest_is_queue) || get_str(p, n, &off, &c->dest) ||
                       get_str(p, n, &off, &c->key) || get_blob(p, n, &off, &c->args)
                   ? -1
                   : 0;
    case OP_ORIGIN:
        return 0;
    case OP_ADMIN:
    case OP_ADMIN_STATE:
        return get_blob(p, n, &off, &c->args);
    case OP_NODE_FORGET:
        if (n - off < 8)
            return -1;
        c->node = wr_get_u64(p + off);
        return 0;
    default:
        return -1;
    }
}

static void encode_queue(wr_buf_t *b, uint64_t origin, uint64_t ticket, const wr_queue_t *q)
{
    put_head(b, OP_QQ_DECLARE, origin, ticket);
    put_str(b, wr_bytes_of(q->vhost->name));
    put_str(b, (wr_bytes_t){(const uint8_t *)q->name, q->name_len});
    put_blob(b, (wr_bytes_t){q->args_raw.p, q->args_raw.len});
}

static void encode_exchange(wr_buf_t *b, uint64_t origin, uint64_t ticket, const wr_exchange_t *x)
{
    put_head(b, OP_X_DECLARE, origin, ticket);
    put_str(b, wr_bytes_of(x->vhost->name));
    put_str(b, (wr_bytes_t){(const uint8_t *)x->name, x->name_len});
    put_str(b, wr_bytes_of(x->delayed ? "x-delayed-message" : wr_extype_name(x->type)));
    wr_buf_put_u8(b, (uint8_t)((x->durable ? X_DURABLE : 0) | (x->auto_delete ? X_AUTO_DELETE : 0) |
                               (x->internal ? X_INTERNAL : 0)));
    put_blob(b, (wr_bytes_t){x->args_raw.p, x->args_raw.len});
}

static void encode_bind(wr_buf_t *b, uint8_t op, uint64_t origin, uint64_t ticket,
                        const char *vhost, wr_bytes_t source, int dest_is_queue, wr_bytes_t dest,
                        wr_bytes_t key, wr_bytes_t args)
{
    put_head(b, op, origin, ticket);
    put_str(b, wr_bytes_of(vhost));
    put_str(b, source);
    wr_buf_put_u8(b, (uint8_t)(dest_is_queue != 0));
    put_str(b, dest);
    put_str(b, key);
    put_blob(b, args);
}

/* Is the binding one the log carries: to an exchange or a quorum queue? */
static int replicated_binding(const wr_binding_t *b)
{
    return b->dx != NULL || (b->dq != NULL && wr_queue_is_quorum(b->dq));
}

static void encode_binding(wr_buf_t *b, const wr_binding_t *bd)
{
    wr_bytes_t dest = bd->dq ? (wr_bytes_t){(const uint8_t *)bd->dq->name, bd->dq->name_len}
                             : (wr_bytes_t){(const uint8_t *)bd->dx->name, bd->dx->name_len};
    encode_bind(b, OP_BIND, 0, 0, bd->source->vhost->name,
                (wr_bytes_t){(const uint8_t *)bd->source->name, bd->source->name_len},
                bd->dq != NULL, dest, (wr_bytes_t){(const uint8_t *)bd->key, bd->key_len},
                (wr_bytes_t){bd->args.p, bd->args.len});
}

/* ---- proposing ---- */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Hands one command to the leader: 0 if it went (proposed here or sent
 * over the link), -1 if there is no leader to take it now. */
static int send_one(const uint8_t *p, size_t n)
{
    if (cm.g && cm.leader && wr_rgroup_propose(cm.g, p, n))
        return 0;
    if (cm.leader_id && cm.leader_id != wr_cluster_self_id() &&
        wr_cluster_send(cm.leader_id, WR_CLUSTER_META_PROPOSE, p, n) == 0)
        return 0;
    return -1;
}

/* Sends every pending command again, in ticket order (duplicates are
 * skipped where they apply).  Stops at the first that cannot go, so that
 * a later command never overtakes an earlier one. */
static void resend_all(void)
{
    int64_t now = wr_now_ms();
    for (size_t i = 0; i < cm.n_pend; i++) {
        if (send_one(cm.pend[i].cmd.p, cm.pend[i].cmd.len) != 0)
            return;
        cm.pend[i].sent_at = now;
    }
}

static uint64_t propose(wr_buf_t *b)
{
    if (cm.n_pend == cm.cap_pend) {
        cm.cap_pend = cm.cap_pend ? cm.cap_pend * 2 : 16;
        cm.pend = wr_xrealloc(cm.pend, cm.cap_pend * sizeof *cm.pend);
    }
    pend_t *pd = &cm.pend[cm.n_pend++];
    memset(pd, 0, sizeof *pd);
    pd->ticket = wr_get_u64(b->p + 9);
    pd->cmd = *b;
    /* Behind an unsent one it waits its turn (resend_all). */
    int blocked = cm.n_pend > 1 && cm.pend[cm.n_pend - 2].sent_at == 0;
    if (!blocked && send_one(b->p, b->len) == 0)
        pd->sent_at = wr_now_ms();
    return pd->ticket;
}

static uint64_t new_ticket(void)
{
    return cm.next_ticket++;
}

static int replicating(void)
{
    return wr_cluster_enabled() && !cm.applying && cm.g != NULL;
}

int wr_cmeta_replicating(void)
{
    return replicating();
}

void wr_cmeta_set_admin(const wr_cmeta_admin_t *a)
{
    cm.admin = *a;
}

uint64_t wr_cmeta_forget_node(uint64_t id)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    put_head(&b, OP_NODE_FORGET, wr_cluster_self_id(), new_ticket());
    wr_buf_put_u64(&b, id);
    return propose(&b);
}

uint64_t wr_cmeta_admin(const void *p, size_t n)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    put_head(&b, OP_ADMIN, wr_cluster_self_id(), new_ticket());
    put_blob(&b, (wr_bytes_t){p, n});
    return propose(&b);
}

uint64_t wr_cmeta_queue_declared(const wr_queue_t *q)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    encode_queue(&b, wr_cluster_self_id(), new_ticket(), q);
    return propose(&b);
}

static uint64_t delete_cmd(uint8_t op, const char *vhost, wr_bytes_t name)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    put_head(&b, op, wr_cluster_self_id(), new_ticket());
    put_str(&b, wr_bytes_of(vhost));
    put_str(&b, name);
    return propose(&b);
}

uint64_t wr_cmeta_queue_deleted(const char *vhost, wr_bytes_t name)
{
    return delete_cmd(OP_QQ_DELETE, vhost, name);
}

uint64_t wr_cmeta_exchange_declared(const wr_exchange_t *x)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    encode_exchange(&b, wr_cluster_self_id(), new_ticket(), x);
    return propose(&b);
}

uint64_t wr_cmeta_exchange_deleted(const char *vhost, wr_bytes_t name)
{
    return delete_cmd(OP_X_DELETE, vhost, name);
}

uint64_t wr_cmeta_bound(int bind, const char *vhost, wr_bytes_t source, int dest_is_queue,
                        wr_bytes_t dest, wr_bytes_t key, wr_bytes_t args)
{
    if (!replicating())
        return 0;
    wr_buf_t b;
    wr_buf_init(&b);
    encode_bind(&b, bind ? OP_BIND : OP_UNBIND, wr_cluster_self_id(), new_ticket(), vhost, source,
                dest_is_queue, dest, key, args);
    return propose(&b);
}

void wr_cmeta_wait(uint64_t ticket, void *owner, void (*done)(void *ctx, int applied), void *ctx)
{
    for (size_t i = 0; i < cm.n_pend; i++)
        if (cm.pend[i].ticket == ticket) {
            cm.pend[i].owner = owner;
            cm.pend[i].done = done;
            cm.pend[i].ctx = ctx;
            return;
        }
    /* Not pending: the group is closed (applying is never synchronous
     * with proposing); nothing more will come, answer now. */
    done(ctx, 1);
}

void wr_cmeta_cancel(void *owner)
{
    for (size_t i = 0; i < cm.n_pend; i++)
        if (cm.pend[i].owner == owner && cm.pend[i].done) {
            void (*done)(void *, int) = cm.pend[i].done;
            cm.pend[i].done = NULL;
            cm.pend[i].owner = NULL;
            done(cm.pend[i].ctx, 0);
        }
}

uint64_t wr_cmeta_next_ticket(void)
{
    return cm.next_ticket;
}

size_t wr_cmeta_pending(void)
{
    return cm.n_pend;
}

/* This node applied its own command of ticket: it and any earlier one
 * (which, if not applied, a later ticket overtook and is lost) are done. */
static void settle_own(uint64_t ticket)
{
    size_t k = 0;
    while (k < cm.n_pend && cm.pend[k].ticket <= ticket)
        k++;
    for (size_t i = 0; i < k; i++) {
        pend_t *pd = &cm.pend[i];
        if (pd->ticket != ticket)
            wr_warn("cluster: metadata command %llu was overtaken by a later one and is lost",
                    (unsigned long long)pd->ticket);
        if (pd->done)
            pd->done(pd->ctx, 1);
        wr_buf_free(&pd->cmd);
    }
    if (k == 0)
        return;
    memmove(cm.pend, cm.pend + k, (cm.n_pend - k) * sizeof *cm.pend);
    cm.n_pend -= k;
}

/* ---- applying ---- */

static origin_t *origin_of(uint64_t id)
{
    for (size_t i = 0; i < cm.n_orig; i++)
        if (cm.orig[i].id == id)
            return &cm.orig[i];
    cm.orig = wr_xrealloc(cm.orig, (cm.n_orig + 1) * sizeof *cm.orig);
    cm.orig[cm.n_orig] = (origin_t){id, 0};
    return &cm.orig[cm.n_orig++];
}

static void apply_exchange(wr_vhost_t *vh, const cmd_t *c)
{
    wr_actor_t op = {NULL, NULL};
    wr_reply_t r;
    wr_exchange_spec_t s = {c->name,
                            c->type,
                            0,
                            (uint8_t)((c->flags & X_DURABLE) != 0),
                            (uint8_t)((c->flags & X_AUTO_DELETE) != 0),
                            (uint8_t)((c->flags & X_INTERNAL) != 0),
                            c->args};
    if (wr_op_exchange_declare(vh, &s, &op, &r) == 0)
        return;
    wr_exchange_t *x = wr_vhost_exchange(vh, c->name);
    if (r.code == WR_AMQP_PRECONDITION_FAILED && x && !x->builtin) {
        /* Declared otherwise here (two nodes raced): the log's later
         * declaration wins on every node. */
        wr_exchange_delete(x);
        if (wr_op_exchange_declare(vh, &s, &op, &r) == 0)
            return;
    }
    wr_warn("cluster: cannot apply the declaration of exchange '%.*s' in vhost '%s': %s",
            (int)c->name.n, (const char *)c->name.p, vh->name, r.text);
}

static void apply_bind(wr_vhost_t *vh, const cmd_t *c)
{
    if (c->dest_is_queue) {
        /* Only a quorum queue is the same queue on every node. */
        wr_queue_t *q = wr_vhost_queue(vh, c->dest);
        if (q == NULL || !wr_queue_is_quorum(q))
            return;
    }
    if (wr_vhost_exchange(vh, c->name) == NULL ||
        (!c->dest_is_queue && wr_vhost_exchange(vh, c->dest) == NULL))
        return; /* deleted since (a later command), or never here */
    wr_actor_t op = {NULL, NULL};
    wr_reply_t r;
    if (wr_op_bind(vh, c->op == OP_BIND, c->name, c->dest_is_queue, c->dest, c->key, c->args, &op,
                   &r) != 0)
        wr_warn("cluster: cannot apply a binding of exchange '%.*s' in vhost '%s': %s",
                (int)c->name.n, (const char *)c->name.p, vh->name, r.text);
}

static void forget_done(void *ud, int status)
{
    (void)ud;
    if (status != 0 && status != WR_ECLOSED)
        wr_warn("cluster: cannot remove a forgotten node from the metadata group: %s",
                wr_strerror(status));
}

/* The metadata leader removes forgotten nodes from the metadata group. */
static void remove_forgotten(void)
{
    uint64_t ids[64];
    size_t n = wr_cluster_forgotten(ids, 64);
    for (size_t i = 0; i < n; i++)
        if (cm.g && cm.leader && wr_rgroup_role(cm.g, ids[i]) >= 0)
            wr_rgroup_remove(cm.g, ids[i], forget_done, NULL);
}

static void apply_cmd(const cmd_t *c)
{
    if (c->op == OP_NODE_FORGET) {
        if (c->node == wr_cluster_self_id()) {
            wr_error("cluster: this node was forgotten by the cluster (forget_cluster_node); "
                     "reset its data directory before it joins again");
            return;
        }
        wr_cluster_forget(c->node);
        remove_forgotten();
        wr_quorum_forget();
        return;
    }
    if (c->op == OP_ADMIN) {
        if (cm.admin.apply)
            cm.admin.apply(c->args.p, c->args.n);
        return;
    }
    wr_vhost_t *vh = wr_broker_vhost(c->vhost);
    if (vh == NULL) {
        wr_warn("cluster: metadata names vhost '%.*s', which this node does not have",
                (int)c->vhost.n, (const char *)c->vhost.p);
        return;
    }
    wr_actor_t op = {NULL, NULL};
    wr_reply_t r;
    switch (c->op) {
    case OP_QQ_DECLARE: {
        wr_queue_t *q = wr_vhost_queue(vh, c->name);
        if (q != NULL) {
            if (!wr_queue_is_quorum(q))
                wr_warn("cluster: quorum queue '%.*s' in vhost '%s' is a classic queue here",
                        (int)c->name.n, (const char *)c->name.p, vh->name);
            return;
        }
        wr_queue_spec_t s = {0};
        s.name = c->name;
        s.durable = 1;
        s.args = c->args;
        s.allow_reserved = 1;
        if (wr_op_queue_declare(vh, &s, &op, &q, &r) != 0)
            wr_warn("cluster: cannot declare quorum queue '%.*s' here: %s", (int)c->name.n,
                    (const char *)c->name.p, r.text);
        break;
    }
    case OP_QQ_DELETE: {
        wr_queue_t *q = wr_vhost_queue(vh, c->name);
        if (q && wr_queue_is_quorum(q))
            wr_op_queue_delete(vh, c->name, 0, 0, &op, NULL, NULL, &r);
        break;
    }
    case OP_X_DECLARE:
        apply_exchange(vh, c);
        break;
    case OP_X_DELETE:
        wr_op_exchange_delete(vh, c->name, 0, &op, &r);
        break;
    case OP_BIND:
    case OP_UNBIND:
        apply_bind(vh, c);
        break;
    default:
        break;
    }
}

static void on_apply(void *ud, uint64_t index, const void *vp, size_t n)
{
    (void)ud;
    (void)index;
    cmd_t c;
    if (parse(vp, n, &c) != 0) {
        wr_warn("cluster: skipping a malformed metadata command (%zu bytes)", n);
        return;
    }
    if (c.origin) {
        origin_t *o = origin_of(c.origin);
        if (c.ticket <= o->ticket)
            return; /* sent again, and applied already */
        o->ticket = c.ticket;
    }
    cm.applying = 1;
    apply_cmd(&c);
    cm.applying = 0;
    if (c.origin == wr_cluster_self_id() && c.origin)
        settle_own(c.ticket);
}

/* ---- snapshots ---- */

static void put_record(wr_buf_t *out, wr_buf_t *rec)
{
    wr_buf_put_u32(out, (uint32_t)rec->len);
    wr_buf_put(out, rec->p, rec->len);
    rec->len = 0;
}

/* The replicated topology: exchanges and quorum queues first, then the
 * bindings between them, then the highest ticket of each origin. */
static int on_snapshot(void *ud, wr_buf_t *out)
{
    (void)ud;
    wr_buf_t rec;
    wr_buf_init(&rec);
    if (cm.admin.snapshot) {
        wr_buf_t st;
        wr_buf_init(&st);
        cm.admin.snapshot(&st);
        put_head(&rec, OP_ADMIN_STATE, 0, 0);
        put_blob(&rec, (wr_bytes_t){st.p, st.len});
        put_record(out, &rec);
        wr_buf_free(&st);
    }
    size_t i = 0;
    wr_vhost_t *vh;
    while ((vh = wr_broker_vhost_next(&i)) != NULL) {
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->exchanges, &k, &sl)) {
            const wr_exchange_t *x = sl->value;
            if (x->builtin)
                continue;
            encode_exchange(&rec, 0, 0, x);
            put_record(out, &rec);
        }
        k = 0;
        while (wr_map_next(&vh->queues, &k, &sl)) {
            const wr_queue_t *q = sl->value;
            if (!wr_queue_is_quorum(q))
                continue;
            encode_queue(&rec, 0, 0, q);
            put_record(out, &rec);
        }
    }
    i = 0;
    while ((vh = wr_broker_vhost_next(&i)) != NULL) {
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->exchanges, &k, &sl)) {
            const wr_exchange_t *x = sl->value;
            for (const wr_binding_t *b = x->bindings; b; b = b->src_next) {
                if (!replicated_binding(b))
                    continue;
                encode_binding(&rec, b);
                put_record(out, &rec);
            }
        }
    }
    for (size_t j = 0; j < cm.n_orig; j++) {
        put_head(&rec, OP_ORIGIN, cm.orig[j].id, cm.orig[j].ticket);
        put_record(out, &rec);
    }
    uint64_t gone[64];
    size_t ng = wr_cluster_forgotten(gone, 64);
    for (size_t j = 0; j < ng; j++) {
        put_head(&rec, OP_NODE_FORGET, 0, 0);
        wr_buf_put_u64(&rec, gone[j]);
        put_record(out, &rec);
    }
    wr_buf_free(&rec);
    return 0;
}

/* A key naming a replicated object, for the sweep after a restore. */
static void object_key(wr_buf_t *k, char kind, wr_bytes_t vhost, wr_bytes_t name)
{
    k->len = 0;
    wr_buf_put_u8(k, (uint8_t)kind);
    put_str(k, vhost);
    put_str(k, name);
}

typedef struct doomed {
    char kind;     /* 'X', 'Q' or 'B' */
    wr_buf_t data; /* a name, or an encoded binding */
    wr_vhost_t *vh;
} doomed_t;

/* Removes every replicated object of this node that the restored state
 * (the keys in have) does not name. */
static void sweep(const wr_map_t *have)
{
    doomed_t *d = NULL;
    size_t nd = 0;
    wr_buf_t k;
    wr_buf_init(&k);
    size_t i = 0;
    wr_vhost_t *vh;
    while ((vh = wr_broker_vhost_next(&i)) != NULL) {
        size_t j = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&vh->exchanges, &j, &sl)) {
            const wr_exchange_t *x = sl->value;
            wr_bytes_t xn = {(const uint8_t *)x->name, x->name_len};
            if (!x->builtin) {
                object_key(&k, 'X', wr_bytes_of(vh->name), xn);
                if (wr_map_get(have, (wr_bytes_t){k.p, k.len}) == NULL) {
                    d = wr_xrealloc(d, (nd + 1) * sizeof *d);
                    d[nd] = (doomed_t){'X', {0}, vh};
                    wr_buf_init(&d[nd].data);
                    wr_buf_put(&d[nd++].data, x->name, x->name_len);
                    continue;
                }
            }
            for (const wr_binding_t *b = x->bindings; b; b = b->src_next) {
                if (!replicated_binding(b))
                    continue;
                wr_buf_t e;
                wr_buf_init(&e);
                encode_binding(&e, b);
                if (wr_map_get(have, (wr_bytes_t){e.p + 17, e.len - 17}) == NULL) {
                    d = wr_xrealloc(d, (nd + 1) * sizeof *d);
                    d[nd++] = (doomed_t){'B', e, vh};
                } else {
                    wr_buf_free(&e);
                }
            }
        }
        j = 0;
        while (wr_map_next(&vh->queues, &j, &sl)) {
            const wr_queue_t *q = sl->value;
            if (!wr_queue_is_quorum(q))
                continue;
            object_key(&k, 'Q', wr_bytes_of(vh->name),
                       (wr_bytes_t){(const uint8_t *)q->name, q->name_len});
            if (wr_map_get(have, (wr_bytes_t){k.p, k.len}) == NULL) {
                d = wr_xrealloc(d, (nd + 1) * sizeof *d);
                d[nd] = (doomed_t){'Q', {0}, vh};
                wr_buf_init(&d[nd].data);
                wr_buf_put(&d[nd++].data, q->name, q->name_len);
            }
        }
    }
    wr_buf_free(&k);
    /* Bindings first (by their description: removing one may auto-delete
     * an exchange), then queues and exchanges. */
    wr_actor_t op = {NULL, NULL};
    wr_reply_t r;
    for (size_t j = 0; j < nd; j++) {
        if (d[j].kind != 'B')
            continue;
        cmd_t c;
        if (parse(d[j].data.p, d[j].data.len, &c) == 0 &&
            wr_vhost_exchange(d[j].vh, c.name) != NULL)
            wr_op_bind(d[j].vh, 0, c.name, c.dest_is_queue, c.dest, c.key, c.args, &op, &r);
    }
    for (size_t j = 0; j < nd; j++) {
        wr_bytes_t name = {d[j].data.p, d[j].data.len};
        if (d[j].kind == 'Q') {
            wr_info("cluster: quorum queue '%.*s' in vhost '%s' is gone from the cluster",
                    (int)name.n, (const char *)name.p, d[j].vh->name);
            wr_op_queue_delete(d[j].vh, name, 0, 0, &op, NULL, NULL, &r);
        } else if (d[j].kind == 'X') {
            wr_op_exchange_delete(d[j].vh, name, 0, &op, &r);
        }
        wr_buf_free(&d[j].data);
    }
    for (size_t j = 0; j < nd; j++)
        if (d[j].kind == 'B')
            wr_buf_free(&d[j].data);
    free(d);
}

static int on_restore(void *ud, const void *vp, size_t n)
{
    (void)ud;
    const uint8_t *p = vp;
    size_t off = 0, records = 0;
    wr_map_t have;
    wr_map_init(&have);
    wr_buf_t k;
    wr_buf_init(&k);
    cm.applying = 1;
    while (n - off >= 4) {
        uint32_t l = wr_get_u32(p + off);
        if (n - off - 4 < l) {
            cm.applying = 0;
            wr_map_free(&have);
            wr_buf_free(&k);
            return WR_ECORRUPT;
        }
        cmd_t c;
        if (parse(p + off + 4, l, &c) == 0) {
            if (c.op == OP_ORIGIN) {
                origin_t *o = origin_of(c.origin);
                if (c.ticket > o->ticket)
                    o->ticket = c.ticket;
            } else if (c.op == OP_ADMIN_STATE) {
                if (cm.admin.restore)
                    cm.admin.restore(c.args.p, c.args.n);
            } else if (c.op == OP_NODE_FORGET) {
                apply_cmd(&c);
            } else if (c.op != OP_ADMIN) {
                apply_cmd(&c);
                if (c.op == OP_BIND) {
                    /* A binding's key: its encoding without the head. */
                    k.len = 0;
                    wr_buf_put(&k, p + off + 4 + 17, l - 17);
                } else {
                    object_key(&k, c.op == OP_X_DECLARE ? 'X' : 'Q', c.vhost, c.name);
                }
                wr_map_put(&have, (wr_bytes_t){k.p, k.len}, (void *)1);
            }
        }
        off += 4 + l;
        records++;
    }
    sweep(&have);
    wr_info("cluster: metadata restored from a snapshot (%zu records)", records);
    cm.applying = 0;
    wr_map_free(&have);
    wr_buf_free(&k);
    return 0;
}

static void on_leader_changed(void *ud, int is_leader, uint64_t leader_id)
{
    (void)ud;
    cm.leader = is_leader;
    cm.leader_id = leader_id;
    if (is_leader)
        remove_forgotten();
    if (leader_id)
        resend_all();
}

/* ---- life ---- */

int wr_cmeta_open(const char *data_dir, char *err, size_t errlen)
{
    if (!wr_cluster_enabled() || cm.g)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cluster", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return WR_EIO;
    }
    snprintf(dir, sizeof dir, "%s/cluster/metadata", data_dir);
    /* Tickets increase across restarts: they start at the wall clock. */
    cm.next_ticket = (uint64_t)wall_us();
    wr_rnet_t *net;
    int rc = wr_cluster_net(&net, err, errlen);
    if (rc != 0)
        return rc;
    const wr_rgroup_member_t *members;
    size_t n = wr_cluster_members(&members);
    wr_rgroup_cbs_t cbs = {on_apply, on_snapshot, on_restore, on_leader_changed};
    wr_rgroup_opts_t opts;
    wr_rgroup_opts_default(&opts);
    opts.snapshot_threshold = wr_broker.cfg->metadata_snapshot_threshold;
    opts.snapshot_trailing = opts.snapshot_threshold / 8;
    opts.install_snapshot_timeout_ms = 2000; /* a snapshot of the topology is small */
    return wr_rgroup_open(&cm.g, net, GROUP_ID, dir, wr_cluster_self_id(), NULL, members, n, &cbs,
                          NULL, &opts, err, errlen);
}

static void closed(void *ud)
{
    (void)ud;
    cm.closing--;
}

void wr_cmeta_close(void)
{
    for (size_t i = 0; i < cm.n_pend; i++) {
        if (cm.pend[i].done)
            cm.pend[i].done(cm.pend[i].ctx, 0);
        wr_buf_free(&cm.pend[i].cmd);
    }
    free(cm.pend);
    cm.pend = NULL;
    cm.n_pend = cm.cap_pend = 0;
    free(cm.orig);
    cm.orig = NULL;
    cm.n_orig = 0;
    if (cm.g == NULL)
        return;
    cm.closing++;
    wr_rgroup_close(cm.g, closed, NULL);
    cm.g = NULL;
    cm.leader = 0;
}

size_t wr_cmeta_closing(void)
{
    return cm.closing;
}

int wr_cmeta_applying(void)
{
    return cm.applying;
}

void wr_cmeta_on_propose(uint64_t from, const uint8_t *p, size_t n)
{
    if (cm.g && cm.leader && wr_rgroup_propose(cm.g, p, n))
        return;
    /* Leadership moved on: pass it on; if there is nowhere to pass it,
     * its origin sends it again. */
    if (cm.leader_id && cm.leader_id != from && cm.leader_id != wr_cluster_self_id())
        wr_cluster_send(cm.leader_id, WR_CLUSTER_META_PROPOSE, p, n);
}

void wr_cmeta_peer_up(uint64_t node)
{
    if (cm.n_pend && cm.leader_id == node)
        resend_all();
}

void wr_cmeta_tick(void)
{
    uint64_t gone[1];
    if (wr_cluster_enabled() && wr_cluster_forgotten(gone, 1)) {
        /* A removal refused (another change in flight) is tried again. */
        remove_forgotten();
        wr_quorum_forget();
    }
    if (cm.n_pend == 0)
        return;
    int64_t now = wr_now_ms();
    if (cm.pend[0].sent_at == 0 || now - cm.pend[0].sent_at >= RESEND_MS)
        resend_all();
}
