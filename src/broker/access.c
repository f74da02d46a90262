/* access.c - users and permissions (see access.h). */
#include "broker/access.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t wr_access_gen = 1;
static wr_map_t users; /* name -> wr_user_t */

#define SALT_LEN 4

wr_user_t *wr_access_user(wr_bytes_t name)
{
    return wr_map_get(&users, name);
}

wr_user_t *wr_access_user_next(size_t *i)
{
    wr_map_slot_t *sl;
    return wr_map_next(&users, i, &sl) ? sl->value : NULL;
}

size_t wr_access_user_count(void)
{
    return users.count;
}

const char *wr_access_user_name(const wr_user_t *u)
{
    return u->name;
}

static char *dup(const char *s)
{
    return s ? wr_xstrndup(s, strlen(s)) : NULL;
}

unsigned wr_access_tag_flags(const char *tags)
{
    static const struct {
        const char *name;
        unsigned flag;
    } known[] = {
        {"administrator", WR_TAG_ADMINISTRATOR}, {"monitoring", WR_TAG_MONITORING},
        {"policymaker", WR_TAG_POLICYMAKER},     {"management", WR_TAG_MANAGEMENT},
        {"impersonator", WR_TAG_IMPERSONATOR},
    };
    unsigned f = 0;
    for (const char *p = tags; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strlen(known[i].name) == n && memcmp(known[i].name, p, n) == 0)
                f |= known[i].flag;
        p += n;
    }
    return f;
}

/* ---- password hashes ---- */

static const EVP_MD *algo_md(wr_hash_algo_t a)
{
    return a == WR_HASH_SHA512 ? EVP_sha512() : a == WR_HASH_MD5 ? EVP_md5() : EVP_sha256();
}

const char *wr_access_algo_name(wr_hash_algo_t a)
{
    return a == WR_HASH_SHA512 ? "rabbit_password_hashing_sha512"
           : a == WR_HASH_MD5  ? "rabbit_password_hashing_md5"
                               : "rabbit_password_hashing_sha256";
}

/* digest(salt + password) into out; returns its length. */
static unsigned digest(wr_hash_algo_t a, const uint8_t *salt, wr_bytes_t pw, uint8_t *out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 0;
    EVP_DigestInit_ex(c, algo_md(a), NULL);
    EVP_DigestUpdate(c, salt, SALT_LEN);
    EVP_DigestUpdate(c, pw.p, pw.n);
    EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
    return n;
}

static char *make_hash(const char *password)
{
    uint8_t raw[SALT_LEN + EVP_MAX_MD_SIZE];
    if (RAND_bytes(raw, SALT_LEN) != 1)
        abort(); /* no randomness: no safe salt */
    unsigned n = digest(WR_HASH_SHA256, raw, wr_bytes_of(password), raw + SALT_LEN);
    char *out = wr_xmalloc(4 * ((SALT_LEN + n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, raw, (int)(SALT_LEN + n));
    return out;
}

/* Decodes a stored hash; its length, or -1 if it is not base64 of a salt
 * and a digest of the algorithm's size. */
static int decode_hash(const char *b64, wr_hash_algo_t a, uint8_t *out)
{
    size_t len = strlen(b64);
    if (len == 0 || len % 4 || len > 4 * ((SALT_LEN + EVP_MAX_MD_SIZE + 2) / 3))
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    for (size_t i = len; i > 0 && b64[i - 1] == '='; i--)
        n--;
    return n == SALT_LEN + EVP_MD_get_size(algo_md(a)) ? n : -1;
}

int wr_access_check_password(const wr_user_t *u, wr_bytes_t password)
{
    /* As RabbitMQ's internal backend: an empty password never logs in,
     * whatever was stored. */
    if (u->hash == NULL || password.n == 0)
        return 0;
    uint8_t stored[SALT_LEN + EVP_MAX_MD_SIZE + 3], got[EVP_MAX_MD_SIZE];
    int n = decode_hash(u->hash, u->algo, stored);
    if (n < 0)
        return 0;
    unsigned m = digest(u->algo, stored, password, got);
    return (int)m == n - SALT_LEN && CRYPTO_memcmp(got, stored + SALT_LEN, m) == 0;
}

/* ---- users ---- */

static wr_user_t *user_new(const char *name, const char *tags)
{
    wr_user_t *u = wr_xcalloc(1, sizeof *u);
    u->name = dup(name);
    u->tags = dup(tags ? tags : "");
    u->flags = wr_access_tag_flags(u->tags);
    u->max_connections = -1;
    u->max_channels = -1;
    wr_map_init(&u->perms);
    wr_map_init(&u->topic);
    wr_map_put(&users, wr_bytes_of(u->name), u);
    wr_access_gen++;
    return u;
}

wr_user_t *wr_access_user_add(const char *name, const char *password, const char *tags)
{
    if (wr_access_user(wr_bytes_of(name)))
        return NULL;
    wr_user_t *u = user_new(name, tags);
    u->hash = password ? make_hash(password) : NULL;
    return u;
}

/* The algorithm called algo (RabbitMQ's module name; NULL: SHA-256),
 * and a check that hash (if any) is one of it.  -1 with err if not. */
static int parse_hash(const char *name, const char *hash, const char *algo, wr_hash_algo_t *out,
                      char *err, size_t errlen)
{
    wr_hash_algo_t a = WR_HASH_SHA256;
    if (algo == NULL || strcmp(algo, "rabbit_password_hashing_sha256") == 0)
        a = WR_HASH_SHA256;
    else if (strcmp(algo, "rabbit_password_hashing_sha512") == 0)
        a = WR_HASH_SHA512;
    else if (strcmp(algo, "rabbit_password_hashing_md5") == 0)
        a = WR_HASH_MD5;
    else {
        snprintf(err, errlen, "user '%s': unknown hashing_algorithm '%s'", name, algo);
        return -1;
    }
    uint8_t tmp[SALT_LEN + EVP_MAX_MD_SIZE + 3];
    if (hash && *hash && decode_hash(hash, a, tmp) < 0) {
        snprintf(err, errlen, "user '%s': password_hash is not a %s hash", name,
                 wr_access_algo_name(a));
        return -1;
    }
    *out = a;
    return 0;
}

wr_user_t *wr_access_user_add_hashed(const char *name, const char *hash, const char *algo,
                                     const char *tags, char *err, size_t errlen)
{
    if (wr_access_user(wr_bytes_of(name))) {
        snprintf(err, errlen, "user '%s' already exists", name);
        return NULL;
    }
    wr_hash_algo_t a;
    if (parse_hash(name, hash, algo, &a, err, errlen) != 0)
        return NULL;
    wr_user_t *u = user_new(name, tags);
    u->hash = hash && *hash ? dup(hash) : NULL;
    u->algo = a;
    return u;
}

int wr_access_set_hash(wr_user_t *u, const char *hash, const char *algo, char *err, size_t errlen)
{
    wr_hash_algo_t a;
    if (parse_hash(u->name, hash, algo, &a, err, errlen) != 0)
        return -1;
    free(u->hash);
    u->hash = hash && *hash ? dup(hash) : NULL;
    u->algo = a;
    wr_access_gen++;
    return 0;
}

static void pattern_free(wr_pattern_t *p)
{
    if (p->compiled)
        regfree(&p->re);
    free(p->src);
    p->src = NULL;
    p->compiled = 0;
}

/* Patterns that regcomp would compile into a huge automaton are refused
 * before it sees them: over WR_PATTERN_MAX bytes, or with a quantifier
 * applied to a quantifier ("a++", "a*{2}"), which POSIX leaves undefined
 * and PCRE reads as possessive or lazy (not supported here). */
#define WR_PATTERN_MAX 4096

static const char *pattern_problem(const char *src)
{
    if (strlen(src) > WR_PATTERN_MAX)
        return "longer than 4096 bytes";
    int prev_quant = 0;
    for (const char *p = src; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            prev_quant = 0;
            continue;
        }
        if (*p == '[') {
            /* A bracket expression: its characters are literal ("]" first
             * is one of them). */
            p++;
            if (*p == '^')
                p++;
            if (*p == ']')
                p++;
            while (*p && *p != ']')
                p++;
            if (!*p)
                break;
            prev_quant = 0;
            continue;
        }
        int quant = *p == '*' || *p == '+' || *p == '?' || *p == '{';
        if (quant && prev_quant)
            return "a quantifier follows a quantifier (possessive and lazy quantifiers are not "
                   "supported)";
        if (*p == '{') {
            while (*p && *p != '}')
                p++;
            if (!*p)
                break;
        }
        prev_quant = quant;
    }
    return NULL;
}

static int pattern_set(wr_pattern_t *p, const char *src, char *err, size_t errlen)
{
    const char *why = pattern_problem(src);
    if (why) {
        snprintf(err, errlen, "invalid regular expression '%.100s%s': %s", src,
                 strlen(src) > 100 ? "..." : "", why);
        return -1;
    }
    wr_pattern_t n = {dup(src), {0}, 0};
    if (*src) {
        int rc = regcomp(&n.re, src, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char reason[128];
            regerror(rc, &n.re, reason, sizeof reason);
            snprintf(err, errlen, "invalid regular expression '%s': %s", src, reason);
            free(n.src);
            return -1;
        }
        n.compiled = 1;
    }
    pattern_free(p);
    *p = n;
    return 0;
}

int wr_access_pattern_set(wr_pattern_t *p, const char *src, char *err, size_t errlen)
{
    return pattern_set(p, src, err, errlen);
}

int wr_pattern_match(const wr_pattern_t *p, wr_bytes_t key)
{
    if (!p->compiled)
        return 0;
    char buf[512];
    char *s = key.n < sizeof buf ? buf : wr_xmalloc(key.n + 1);
    memcpy(s, key.p, key.n);
    s[key.n] = '\0';
    /* A name with a NUL byte cannot be matched as a C string: refuse. */
    int ok = memchr(key.p, 0, key.n) == NULL && regexec(&p->re, s, 0, NULL, 0) == 0;
    if (s != buf)
        free(s);
    return ok;
}

static void perms_free(wr_perms_t *p)
{
    for (int i = 0; i < 3; i++)
        pattern_free(&p->p[i]);
    free(p);
}

static void topic_free(wr_topic_perm_t *t)
{
    while (t) {
        wr_topic_perm_t *next = t->next;
        free(t->exchange);
        free(t->write_src);
        free(t->read_src);
        pattern_free(&t->write);
        pattern_free(&t->read);
        free(t);
        t = next;
    }
}

void wr_access_user_delete(wr_user_t *u)
{
    wr_map_del(&users, wr_bytes_of(u->name));
    size_t i = 0;
    wr_map_slot_t *sl;
    while (wr_map_next(&u->perms, &i, &sl))
        perms_free(sl->value);
    i = 0;
    while (wr_map_next(&u->topic, &i, &sl))
        topic_free(sl->value);
    wr_map_free(&u->perms);
    wr_map_free(&u->topic);
    free(u->name);
    free(u->hash);
    free(u->tags);
    free(u);
    wr_access_gen++;
}

void wr_access_reset(void)
{
    while (users.count) {
        size_t i = 0;
        wr_access_user_delete(wr_access_user_next(&i));
    }
    wr_map_free(&users);
    wr_map_init(&users);
}

void wr_access_set_password(wr_user_t *u, const char *password)
{
    free(u->hash);
    u->hash = password ? make_hash(password) : NULL;
    u->algo = WR_HASH_SHA256;
    wr_access_gen++;
}

void wr_access_set_tags(wr_user_t *u, const char *tags)
{
    free(u->tags);
    u->tags = dup(tags ? tags : "");
    u->flags = wr_access_tag_flags(u->tags);
    wr_access_gen++;
}

/* ---- permissions ---- */

int wr_access_set_perms(wr_user_t *u, const char *vhost, const char *configure, const char *write,
                        const char *read, char *err, size_t errlen)
{
    wr_bytes_t key = wr_bytes_of(vhost);
    if (configure == NULL) {
        wr_perms_t *old = wr_map_del(&u->perms, key);
        if (old)
            perms_free(old);
        wr_access_gen++;
        return 0;
    }
    wr_perms_t *p = wr_xcalloc(1, sizeof *p);
    const char *src[3] = {configure, write, read};
    for (int i = 0; i < 3; i++) {
        if (pattern_set(&p->p[i], src[i], err, errlen) != 0) {
            perms_free(p);
            return -1;
        }
    }
    wr_perms_t *old = wr_map_put(&u->perms, key, p);
    if (old)
        perms_free(old);
    wr_access_gen++;
    return 0;
}

const wr_perms_t *wr_access_perms(const wr_user_t *u, const char *vhost)
{
    return wr_map_get(&u->perms, wr_bytes_of(vhost));
}

void wr_access_forget_vhost(const char *vhost)
{
    size_t i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));) {
        wr_access_set_perms(u, vhost, NULL, NULL, NULL, NULL, 0);
        wr_access_clear_topic(u, vhost, NULL);
    }
}

/* Replaces {username} and {vhost} in a topic pattern, regex-escaping the
 * values. */
static char *expand(const char *src, const char *user, const char *vhost)
{
    wr_buf_t b;
    wr_buf_init(&b);
    for (const char *p = src; *p;) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(p, "{username}", 10) == 0)
            val = user, skip = 10;
        else if (strncmp(p, "{vhost}", 7) == 0)
            val = vhost, skip = 7;
        if (val) {
            for (const char *v = val; *v; v++) {
                if (strchr("\\^$.|?*+()[]{}", *v))
                    wr_buf_put(&b, "\\", 1);
                wr_buf_put(&b, v, 1);
            }
            p += skip;
        } else {
            wr_buf_put(&b, p++, 1);
        }
    }
    char *s = wr_xstrndup((const char *)b.p, b.len);
    wr_buf_free(&b);
    return s;
}

int wr_access_set_topic(wr_user_t *u, const char *vhost, const char *exchange, const char *write,
                        const char *read, char *err, size_t errlen)
{
    wr_topic_perm_t *t = wr_xcalloc(1, sizeof *t);
    char *w = expand(write, u->name, vhost), *r = expand(read, u->name, vhost);
    int rc = pattern_set(&t->write, w, err, errlen);
    if (rc == 0)
        rc = pattern_set(&t->read, r, err, errlen);
    free(w);
    free(r);
    if (rc != 0) {
        topic_free(t);
        return -1;
    }
    t->exchange = dup(exchange);
    t->write_src = dup(write);
    t->read_src = dup(read);
    wr_access_clear_topic(u, vhost, exchange);
    wr_bytes_t key = wr_bytes_of(vhost);
    t->next = wr_map_get(&u->topic, key);
    wr_map_put(&u->topic, key, t);
    wr_access_gen++;
    return 0;
}

void wr_access_clear_topic(wr_user_t *u, const char *vhost, const char *exchange)
{
    wr_bytes_t key = wr_bytes_of(vhost);
    wr_topic_perm_t *head = wr_map_get(&u->topic, key);
    wr_topic_perm_t **pp = &head;
    while (*pp) {
        wr_topic_perm_t *t = *pp;
        if (exchange == NULL || strcmp(t->exchange, exchange) == 0) {
            *pp = t->next;
            t->next = NULL;
            topic_free(t);
        } else {
            pp = &t->next;
        }
    }
    if (head)
        wr_map_put(&u->topic, key, head);
    else
        wr_map_del(&u->topic, key);
    wr_access_gen++;
}

const wr_topic_perm_t *wr_access_topic_list(const wr_user_t *u, const char *vhost)
{
    return wr_map_get(&u->topic, wr_bytes_of(vhost));
}

int wr_access_resource(const wr_user_t *u, const wr_vhost_t *vh, wr_perm_t perm, wr_bytes_t name)
{
    const wr_perms_t *p = wr_access_perms(u, vh->name);
    return p && wr_pattern_match(&p->p[perm], name);
}

int wr_access_vhost(const wr_user_t *u, const wr_vhost_t *vh)
{
    return wr_access_perms(u, vh->name) != NULL;
}

const wr_topic_perm_t *wr_access_topic_for(const wr_user_t *u, const wr_exchange_t *x)
{
    if (x->type != WR_EX_TOPIC || u->topic.count == 0)
        return NULL;
    for (const wr_topic_perm_t *t = wr_access_topic_list(u, x->vhost->name); t; t = t->next)
        if (strlen(t->exchange) == x->name_len && memcmp(t->exchange, x->name, x->name_len) == 0)
            return t;
    return NULL;
}
