/*
 * access.h - users, passwords, tags, permissions and topic permissions:
 * RabbitMQ's internal authentication and authorisation backend.
 *
 * Passwords are stored as RabbitMQ stores them, so that a definitions
 * export logs in unchanged: base64 of a 4-byte random salt followed by
 * HASH(salt + password), with HASH SHA-256 (rabbit_password_hashing_sha256,
 * the default), SHA-512 or MD5 (accepted on import).  A user without a
 * password hash cannot log in with a password (only EXTERNAL).  The
 * comparison takes the same time wherever the hashes differ.
 *
 * Permissions are three regular expressions per user and vhost, matched
 * against resource names: configure (declare, delete), write (publish to
 * an exchange, bind to a queue or exchange as destination) and read
 * (consume, get, purge, bind from an exchange as source).  An empty
 * pattern matches nothing, as in RabbitMQ.  RabbitMQ uses PCRE; this uses
 * POSIX extended expressions (compiled once, when set), which agree on
 * the patterns permissions are written with (^, $, ., *, +, ?, [..], |,
 * groups and escapes).  Topic permissions add write and read patterns per
 * exchange on the routing key of topic exchanges; "{username}" and
 * "{vhost}" in them are replaced with the user's and vhost's names,
 * regex-escaped.
 *
 * Every change bumps wr_access_gen: caches of checks made under an older
 * value (a channel's publish cache) check again.
 */
#ifndef WR_ACCESS_H
#define WR_ACCESS_H

#include <regex.h>

#include "broker/ops.h"
#include "core/map.h"

enum {
    WR_TAG_ADMINISTRATOR = 1,
    WR_TAG_MONITORING = 2,
    WR_TAG_POLICYMAKER = 4,
    WR_TAG_MANAGEMENT = 8,
    WR_TAG_IMPERSONATOR = 16,
};

typedef enum wr_hash_algo {
    WR_HASH_SHA256,
    WR_HASH_SHA512,
    WR_HASH_MD5,
} wr_hash_algo_t;

/* One pattern and its compiled form; an empty pattern matches nothing. */
typedef struct wr_pattern {
    char *src;
    regex_t re;
    uint8_t compiled;
} wr_pattern_t;

typedef struct wr_perms {
    wr_pattern_t p[3]; /* WR_PERM_CONFIGURE, _WRITE, _READ */
} wr_perms_t;

typedef struct wr_topic_perm {
    char *exchange;
    wr_pattern_t write, read;   /* with {username}/{vhost} expanded */
    char *write_src, *read_src; /* as given */
    struct wr_topic_perm *next;
} wr_topic_perm_t;

struct wr_user {
    char *name;
    char *hash; /* base64(salt + digest), or NULL: no password */
    wr_hash_algo_t algo;
    char *tags;                            /* comma-separated, as given */
    unsigned flags;                        /* WR_TAG_* among them */
    wr_map_t perms;                        /* vhost name -> wr_perms_t */
    wr_map_t topic;                        /* vhost name -> wr_topic_perm_t list */
    int64_t max_connections, max_channels; /* -1 = no limit */
    uint32_t n_connections;                /* open, counted from connection.open-ok */
    uint32_t n_channels;                   /* open on those connections */
};

extern uint64_t wr_access_gen;

wr_user_t *wr_access_user(wr_bytes_t name);
/* Iterates users: *i starts at 0; NULL at the end. */
wr_user_t *wr_access_user_next(size_t *i);
size_t wr_access_user_count(void);
const char *wr_access_user_name(const wr_user_t *u);

/* Adds a user with a password (NULL: none) hashed with SHA-256; NULL if
 * the name exists. */
wr_user_t *wr_access_user_add(const char *name, const char *password, const char *tags);
/* Adds a user with a stored hash (definitions import); algo by RabbitMQ's
 * module name.  NULL with err if the name exists or the hash is bad. */
wr_user_t *wr_access_user_add_hashed(const char *name, const char *hash, const char *algo,
                                     const char *tags, char *err, size_t errlen);
void wr_access_user_delete(wr_user_t *u);
/* Replaces u's stored hash (NULL or "": no password); -1 with err if the
 * hash or algorithm is bad (u unchanged). */
int wr_access_set_hash(wr_user_t *u, const char *hash, const char *algo, char *err, size_t errlen);
void wr_access_set_password(wr_user_t *u, const char *password); /* NULL clears it */
void wr_access_set_tags(wr_user_t *u, const char *tags);
const char *wr_access_algo_name(wr_hash_algo_t a);
/* 1 if password is the user's (constant time in the digest). */
int wr_access_check_password(const wr_user_t *u, wr_bytes_t password);
/* Deletes every user (teardown). */
void wr_access_reset(void);

/* Sets or clears (all NULL) a user's permissions on a vhost.  -1 with err
 * if a pattern does not compile. */
int wr_access_set_perms(wr_user_t *u, const char *vhost, const char *configure, const char *write,
                        const char *read, char *err, size_t errlen);
const wr_perms_t *wr_access_perms(const wr_user_t *u, const char *vhost);
/* Removes every permission on vhost (it was deleted). */
void wr_access_forget_vhost(const char *vhost);

int wr_access_set_topic(wr_user_t *u, const char *vhost, const char *exchange, const char *write,
                        const char *read, char *err, size_t errlen);
/* Clears topic permissions of u on vhost: one exchange's, or all (NULL). */
void wr_access_clear_topic(wr_user_t *u, const char *vhost, const char *exchange);
const wr_topic_perm_t *wr_access_topic_list(const wr_user_t *u, const char *vhost);

/* 1 if u may perm the resource called name in vh. */
int wr_access_resource(const wr_user_t *u, const wr_vhost_t *vh, wr_perm_t perm, wr_bytes_t name);
/* 1 if u has any permissions on vh (connection.open). */
int wr_access_vhost(const wr_user_t *u, const wr_vhost_t *vh);
/* The topic permission of u for exchange x in its vhost, or NULL if none
 * applies (not a topic exchange, or no topic permission for it). */
const wr_topic_perm_t *wr_access_topic_for(const wr_user_t *u, const wr_exchange_t *x);
/* Compiles src into p (replacing what p held), with the checks of
 * permissions' patterns; -1 with the reason in err (p unchanged). */
int wr_access_pattern_set(wr_pattern_t *p, const char *src, char *err, size_t errlen);
/* 1 if key matches the pattern (an empty pattern: nothing). */
int wr_pattern_match(const wr_pattern_t *p, wr_bytes_t key);

/* Parses "administrator,monitoring" into WR_TAG_* flags. */
unsigned wr_access_tag_flags(const char *tags);

#endif
