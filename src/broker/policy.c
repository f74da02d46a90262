/* policy.c - policies and effective arguments (see policy.h). */
#include "broker/policy.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/table.h"

static char *dup(const char *s)
{
    return s ? wr_xstrndup(s, strlen(s)) : NULL;
}

const char *wr_policy_apply_to_name(int apply_to)
{
    return apply_to == WR_APPLY_QUEUES      ? "queues"
           : apply_to == WR_APPLY_EXCHANGES ? "exchanges"
                                            : "all";
}

static void policy_free(wr_policy_t *p)
{
    free(p->name);
    free(p->pattern.src);
    if (p->pattern.compiled)
        regfree(&p->pattern.re);
    free(p->definition);
    free(p->dlx);
    free(p->dlrk);
    free(p->alternate);
    free(p->queue_mode);
    free(p);
}

/* ~p of a JSON value as Erlang prints it in RabbitMQ's messages. */
static void erl_term(const json_t *v, char *out, size_t n)
{
    if (json_is_string(v))
        snprintf(out, n, "<<\"%s\">>", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_true(v) || json_is_false(v))
        snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
    else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, n, "%s", t ? t : "?");
        free(t);
    }
}

/* The keys a policy may set, and for operator policies the subset. */
typedef struct key {
    const char *name;
    int op;   /* allowed in operator policies */
    int kind; /* 0 string, 1 integer >= min, 2 overflow, 3 queue-mode, 4 dead-letter-strategy */
    int64_t min;
    const char *what; /* for "~p is not a valid WHAT" */
} policy_key_t;

static const policy_key_t keys[] = {
    {"alternate-exchange", 0, 0, 0, "alternate exchange name"},
    {"dead-letter-exchange", 0, 0, 0, "dead letter exchange name"},
    {"dead-letter-routing-key", 0, 0, 0, "dead letter routing key"},
    {"message-ttl", 1, 1, 0, "message TTL"},
    {"expires", 1, 1, 1, "queue expiry"},
    {"max-length", 1, 1, 0, "maximum length"},
    {"max-length-bytes", 1, 1, 0, "maximum length in bytes"},
    {"delivery-limit", 1, 1, 0, "delivery limit"},
    {"overflow", 0, 2, 0, "overflow value"},
    {"queue-mode", 0, 3, 0, "queue-mode value"},
    {"dead-letter-strategy", 0, 4, 0, "dead-letter-strategy"},
};

static const policy_key_t *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int parse_overflow(const char *s)
{
    if (strcmp(s, "drop-head") == 0)
        return WR_OVERFLOW_DROP_HEAD;
    if (strcmp(s, "reject-publish") == 0)
        return WR_OVERFLOW_REJECT_PUBLISH;
    if (strcmp(s, "reject-publish-dlx") == 0)
        return WR_OVERFLOW_REJECT_PUBLISH_DLX;
    return -1;
}

/* Checks and parses a definition into p.  -1 with RabbitMQ's message. */
static int parse_definition(wr_policy_t *p, int op, const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *d = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (d == NULL || !json_is_object(d)) {
        json_decref(d);
        snprintf(err, errlen, "JSON decoding error. Reason: badarg");
        return -1;
    }
    if (json_object_size(d) == 0) {
        json_decref(d);
        snprintf(err, errlen, "Validation failed\n\nno policy provided\n");
        return -1;
    }
    /* Unknown keys first, all of them, as RabbitMQ lists them. */
    wr_buf_t bad;
    wr_buf_init(&bad);
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        const policy_key_t *key = find_key(k);
        if (key == NULL || (op && !key->op)) {
            char term[300], item[400];
            erl_term(v, term, sizeof term);
            int n = snprintf(item, sizeof item, "%s{<<\"%s\">>,%s}", bad.len ? "," : "", k, term);
            wr_buf_put(&bad, item, (size_t)n);
        }
    }
    if (bad.len) {
        snprintf(err, errlen, "Validation failed\n\n[%.*s] are not recognised policy settings\n",
                 (int)bad.len, (const char *)bad.p);
        wr_buf_free(&bad);
        json_decref(d);
        return -1;
    }
    wr_buf_free(&bad);
    json_object_foreach(d, k, v)
    {
        const policy_key_t *key = find_key(k);
        int ok;
        switch (key->kind) {
        case 0:
            ok = json_is_string(v);
            break;
        case 1:
            ok = json_is_integer(v) && json_integer_value(v) >= key->min;
            break;
        case 2:
            ok = json_is_string(v) && parse_overflow(json_string_value(v)) >= 0;
            break;
        case 4:
            ok = json_is_string(v) && (strcmp(json_string_value(v), "at-most-once") == 0 ||
                                       strcmp(json_string_value(v), "at-least-once") == 0);
            break;
        default:
            ok = json_is_string(v) && (strcmp(json_string_value(v), "default") == 0 ||
                                       strcmp(json_string_value(v), "lazy") == 0);
        }
        if (!ok) {
            char term[300];
            erl_term(v, term, sizeof term);
            snprintf(err, errlen, "Validation failed\n\n%s is not a valid %s\n", term, key->what);
            json_decref(d);
            return -1;
        }
    }
    p->message_ttl = p->expires = p->max_length = p->max_length_bytes = p->delivery_limit = -1;
    p->overflow = p->dl_strategy = -1;
    json_object_foreach(d, k, v)
    {
        if (strcmp(k, "message-ttl") == 0)
            p->message_ttl = json_integer_value(v);
        else if (strcmp(k, "expires") == 0)
            p->expires = json_integer_value(v);
        else if (strcmp(k, "max-length") == 0)
            p->max_length = json_integer_value(v);
        else if (strcmp(k, "max-length-bytes") == 0)
            p->max_length_bytes = json_integer_value(v);
        else if (strcmp(k, "delivery-limit") == 0)
            p->delivery_limit = json_integer_value(v);
        else if (strcmp(k, "overflow") == 0)
            p->overflow = parse_overflow(json_string_value(v));
        else if (strcmp(k, "dead-letter-exchange") == 0)
            p->dlx = dup(json_string_value(v));
        else if (strcmp(k, "dead-letter-routing-key") == 0)
            p->dlrk = dup(json_string_value(v));
        else if (strcmp(k, "alternate-exchange") == 0)
            p->alternate = dup(json_string_value(v));
        else if (strcmp(k, "queue-mode") == 0)
            p->queue_mode = dup(json_string_value(v));
        else if (strcmp(k, "dead-letter-strategy") == 0)
            p->dl_strategy = strcmp(json_string_value(v), "at-least-once") == 0;
    }
    p->definition = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(d);
    return 0;
}

static wr_policy_t **list_of(wr_vhost_t *vh, int op)
{
    return op ? &vh->op_policies : &vh->policies;
}

const wr_policy_t *wr_policy_list(const wr_vhost_t *vh, int op)
{
    return op ? vh->op_policies : vh->policies;
}

int wr_policy_set(wr_vhost_t *vh, int op, const char *name, const char *pattern,
                  const char *definition, int64_t priority, const char *apply_to, char *err,
                  size_t errlen)
{
    if (name == NULL || *name == '\0' || pattern == NULL || definition == NULL) {
        snprintf(err, errlen,
                 "Validation failed\n\na policy needs a name, a pattern and a "
                 "definition\n");
        return -1;
    }
    wr_policy_t *p = wr_xcalloc(1, sizeof *p);
    p->priority = priority;
    if (apply_to == NULL || strcmp(apply_to, "all") == 0)
        p->apply_to = WR_APPLY_ALL;
    else if (strcmp(apply_to, "queues") == 0)
        p->apply_to = WR_APPLY_QUEUES;
    else if (strcmp(apply_to, "exchanges") == 0)
        p->apply_to = WR_APPLY_EXCHANGES;
    else {
        snprintf(err, errlen, "Validation failed\n\n'%s' is not a valid apply-to value\n",
                 apply_to);
        policy_free(p);
        return -1;
    }
    char why[300];
    if (wr_access_pattern_set(&p->pattern, pattern, why, sizeof why) != 0) {
        snprintf(err, errlen,
                 "Validation failed\n\npattern should be regular expression but is "
                 "invalid: %s\n",
                 why);
        policy_free(p);
        return -1;
    }
    if (parse_definition(p, op, definition, err, errlen) != 0) {
        policy_free(p);
        return -1;
    }
    p->name = dup(name);
    /* Insert by name, replacing one of the same name. */
    wr_policy_t **pp = list_of(vh, op), *old = NULL;
    while (*pp && strcmp((*pp)->name, name) < 0)
        pp = &(*pp)->next;
    if (*pp && strcmp((*pp)->name, name) == 0) {
        old = *pp;
        p->next = old->next;
    } else {
        p->next = *pp;
    }
    *pp = p;
    wr_policy_apply_all(vh);
    if (old)
        policy_free(old);
    return 0;
}

int wr_policy_clear(wr_vhost_t *vh, int op, const char *name)
{
    for (wr_policy_t **pp = list_of(vh, op); *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            wr_policy_t *p = *pp;
            *pp = p->next;
            wr_policy_apply_all(vh);
            policy_free(p);
            return 0;
        }
    }
    return -1;
}

void wr_policy_free_all(wr_vhost_t *vh)
{
    for (int op = 0; op < 2; op++) {
        wr_policy_t **pp = list_of(vh, op);
        while (*pp) {
            wr_policy_t *p = *pp;
            *pp = p->next;
            policy_free(p);
        }
    }
}

/* The policy of the list that applies to an object called name: the
 * highest priority among those matching (the list is by name, so the
 * first of equal priorities is the first by name). */
static const wr_policy_t *choose(const wr_policy_t *list, int kind, const char *name, size_t n)
{
    const wr_policy_t *best = NULL;
    for (const wr_policy_t *p = list; p; p = p->next)
        if ((p->apply_to & kind) &&
            wr_pattern_match(&p->pattern, (wr_bytes_t){(const uint8_t *)name, n}) &&
            (best == NULL || p->priority > best->priority))
            best = p;
    return best;
}

/* The stricter of a declared argument (-1: none) and the policies'. */
static int64_t strictest(int64_t arg, int64_t pol, int64_t opv)
{
    int64_t v = arg;
    if (pol >= 0 && (v < 0 || pol < v))
        v = pol;
    if (opv >= 0 && (v < 0 || opv < v))
        v = opv;
    return v;
}

static int has_arg(const wr_queue_t *q, const char *key)
{
    wr_field_t f;
    return q->args_raw.len && wr_table_get((wr_bytes_t){q->args_raw.p, q->args_raw.len}, key, &f);
}

void wr_policy_apply_queue(wr_queue_t *q)
{
    if (q->delay)
        return; /* x-delayed-message's hidden queues keep their own args */
    wr_vhost_t *vh = q->vhost;
    const wr_policy_t *p = choose(vh->policies, WR_APPLY_QUEUES, q->name, q->name_len);
    const wr_policy_t *o = choose(vh->op_policies, WR_APPLY_QUEUES, q->name, q->name_len);
    if (p == NULL && o == NULL && q->policy == NULL && q->op_policy == NULL)
        return; /* nothing applies now or before: args are the declared ones */
    wr_queue_args_t a;
    char err[256];
    if (wr_queue_args_parse((wr_bytes_t){q->args_raw.p, q->args_raw.len},
                            (wr_bytes_t){(const uint8_t *)q->name, q->name_len}, vh->name, &a, err,
                            sizeof err) != 0)
        return; /* it was accepted when declared; cannot happen */
    static const wr_policy_t none = {.message_ttl = -1,
                                     .expires = -1,
                                     .max_length = -1,
                                     .max_length_bytes = -1,
                                     .delivery_limit = -1,
                                     .overflow = -1,
                                     .dl_strategy = -1};
    const wr_policy_t *pp = p ? p : &none, *oo = o ? o : &none;
    int64_t old_len = q->args.max_length, old_bytes = q->args.max_length_bytes;
    a.message_ttl = strictest(a.message_ttl, pp->message_ttl, oo->message_ttl);
    a.expires = strictest(a.expires, pp->expires, oo->expires);
    a.max_length = strictest(a.max_length, pp->max_length, oo->max_length);
    a.max_length_bytes = strictest(a.max_length_bytes, pp->max_length_bytes, oo->max_length_bytes);
    a.delivery_limit = strictest(a.delivery_limit > 0 ? a.delivery_limit : -1, pp->delivery_limit,
                                 oo->delivery_limit);
    if (a.delivery_limit < 0)
        a.delivery_limit = 0;
    if (pp->overflow >= 0 && !has_arg(q, "x-overflow"))
        a.overflow = pp->overflow;
    if (pp->dlx && a.dlx == NULL)
        a.dlx = dup(pp->dlx);
    if (pp->dlrk && a.dlrk == NULL)
        a.dlrk = dup(pp->dlrk);
    if (pp->dl_strategy >= 0 && !has_arg(q, "x-dead-letter-strategy"))
        a.dl_at_least_once = (uint8_t)pp->dl_strategy;
    wr_queue_set_args(q, &a);
    q->policy = p;
    q->op_policy = o;
    if ((a.max_length >= 0 && (old_len < 0 || a.max_length < old_len)) ||
        (a.max_length_bytes >= 0 && (old_bytes < 0 || a.max_length_bytes < old_bytes)))
        wr_queue_enforce_limits(q);
}

void wr_policy_apply_exchange(wr_exchange_t *x)
{
    if (x->builtin && x->name_len == 0)
        return; /* the default exchange takes no policy */
    const wr_policy_t *p = choose(x->vhost->policies, WR_APPLY_EXCHANGES, x->name, x->name_len);
    if (p == NULL && x->policy == NULL)
        return;
    x->policy = p;
    free(x->alternate);
    x->alternate = NULL;
    wr_field_t f;
    if (x->args_raw.len &&
        wr_table_get((wr_bytes_t){x->args_raw.p, x->args_raw.len}, "alternate-exchange", &f) &&
        f.type == 'S')
        x->alternate = wr_xstrndup((const char *)f.v.bytes.p, f.v.bytes.n);
    else if (p && p->alternate)
        x->alternate = dup(p->alternate);
}

void wr_policy_apply_all(wr_vhost_t *vh)
{
    /* Enforcing a limit may dead-letter into queues of this vhost and
     * even delete some (x-expires is not run here, but auto-delete is not
     * triggered by dropping either): collect first, then apply. */
    size_t n = vh->queues.count, k = 0;
    wr_queue_t **qs = wr_xmalloc((n ? n : 1) * sizeof *qs);
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&vh->queues, &i, &sl)) {
        wr_queue_t *q = sl->value;
        q->refs++;
        qs[k++] = q;
    }
    for (size_t j = 0; j < k; j++) {
        if (!qs[j]->deleted)
            wr_policy_apply_queue(qs[j]);
        wr_queue_unref(qs[j]);
    }
    free(qs);
    i = 0;
    while (wr_map_next(&vh->exchanges, &i, &sl))
        wr_policy_apply_exchange(sl->value);
    vh->names_gen++; /* channels' caches saw the old arguments */
}

const wr_policy_t *wr_policy_of_queue(const wr_queue_t *q, int op)
{
    return op ? q->op_policy : q->policy;
}
