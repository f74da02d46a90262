/* test_access.c - users, password hashes, permissions, topic permissions. */
#include <stdlib.h>

#include "broker/access.h"
#include "broker/vhost.h"
#include "test.h"

static void test_rabbitmq_hash_logs_in(void)
{
    /* guest/guest as Debian's RabbitMQ 3.10.8 exported it. */
    char err[200];
    wr_user_t *u = wr_access_user_add_hashed(
        "guest", "NCwvCdvgAjIdp7EJG6NyMkuMADsySWq8RXzSWiTlzr2NVTb4",
        "rabbit_password_hashing_sha256", "administrator", err, sizeof err);
    CHECK(u != NULL);
    CHECK(wr_access_check_password(u, WR_BYTES_LIT("guest")));
    CHECK(!wr_access_check_password(u, WR_BYTES_LIT("guesT")));
    CHECK(!wr_access_check_password(u, WR_BYTES_LIT("")));
    CHECK(u->flags == WR_TAG_ADMINISTRATOR);
    wr_access_reset();
}

static void test_bad_hashes_are_refused(void)
{
    char err[200];
    CHECK(wr_access_user_add_hashed("a", "not base64!", NULL, "", err, sizeof err) == NULL);
    CHECK(strstr(err, "password_hash") != NULL);
    /* A SHA-256 hash is not a SHA-512 one (wrong length). */
    CHECK(wr_access_user_add_hashed("a", "NCwvCdvgAjIdp7EJG6NyMkuMADsySWq8RXzSWiTlzr2NVTb4",
                                    "rabbit_password_hashing_sha512", "", err, sizeof err) == NULL);
    CHECK(wr_access_user_add_hashed("a", "", "rabbit_password_hashing_sha3", "", err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "unknown hashing_algorithm") != NULL);
    /* No hash at all: a user that cannot log in with a password. */
    wr_user_t *u = wr_access_user_add_hashed("nopw", "", NULL, "", err, sizeof err);
    CHECK(u != NULL && u->hash == NULL);
    CHECK(!wr_access_check_password(u, WR_BYTES_LIT("x")));
    wr_access_reset();
}

static void test_own_hashes_are_salted(void)
{
    wr_user_t *a = wr_access_user_add("a", "secret", "");
    wr_user_t *b = wr_access_user_add("b", "secret", "");
    CHECK(a && b && strcmp(a->hash, b->hash) != 0);
    CHECK(strlen(a->hash) == 48); /* base64 of 4 + 32 bytes */
    CHECK(wr_access_check_password(a, WR_BYTES_LIT("secret")));
    CHECK(wr_access_user_add("a", "x", "") == NULL); /* exists */
    wr_access_set_password(a, "other");
    CHECK(!wr_access_check_password(a, WR_BYTES_LIT("secret")));
    CHECK(wr_access_check_password(a, WR_BYTES_LIT("other")));
    wr_access_set_password(a, NULL);
    CHECK(!wr_access_check_password(a, WR_BYTES_LIT("other")));
    wr_access_reset();
}

static void test_tags(void)
{
    CHECK(wr_access_tag_flags("monitoring, policymaker,custom") ==
          (WR_TAG_MONITORING | WR_TAG_POLICYMAKER));
    CHECK(wr_access_tag_flags("impersonator") == WR_TAG_IMPERSONATOR);
    CHECK(wr_access_tag_flags("") == 0);
    CHECK(wr_access_tag_flags("administratorx") == 0);
}

static void test_permissions(void)
{
    wr_vhost_t *vh = wr_vhost_new("v");
    wr_user_t *u = wr_access_user_add("u", "pw", "");
    char err[200];
    CHECK(!wr_access_vhost(u, vh));
    uint64_t gen = wr_access_gen;
    CHECK_EQ(wr_access_set_perms(u, "v", "^c.*", "^w.*", "", err, sizeof err), 0);
    CHECK(wr_access_gen != gen);
    CHECK(wr_access_vhost(u, vh));
    CHECK(wr_access_resource(u, vh, WR_PERM_CONFIGURE, WR_BYTES_LIT("cq")));
    CHECK(!wr_access_resource(u, vh, WR_PERM_CONFIGURE, WR_BYTES_LIT("wq")));
    CHECK(wr_access_resource(u, vh, WR_PERM_WRITE, WR_BYTES_LIT("wq")));
    /* An empty pattern matches nothing, not everything. */
    CHECK(!wr_access_resource(u, vh, WR_PERM_READ, WR_BYTES_LIT("")));
    CHECK(!wr_access_resource(u, vh, WR_PERM_READ, WR_BYTES_LIT("r")));
    /* A bad pattern changes nothing. */
    CHECK(wr_access_set_perms(u, "v", "(", ".*", ".*", err, sizeof err) != 0);
    CHECK(strstr(err, "'('") != NULL);
    CHECK(!wr_access_resource(u, vh, WR_PERM_READ, WR_BYTES_LIT("r")));
    /* Nested quantifiers would blow regcomp up (found by fuzz_ctl). */
    CHECK(wr_access_set_perms(u, "v", "^a+++++++++++++++++++++++", ".*", ".*", err, sizeof err) !=
          0);
    CHECK(strstr(err, "quantifier follows a quantifier") != NULL);
    CHECK_EQ(wr_access_set_perms(u, "v", "^[*+?]+x{2}y*$", ".*", ".*", err, sizeof err), 0);
    CHECK(wr_access_resource(u, vh, WR_PERM_CONFIGURE, WR_BYTES_LIT("*+xxyy")));
    /* A name with a NUL byte never matches. */
    CHECK(!wr_access_resource(u, vh, WR_PERM_CONFIGURE, (wr_bytes_t){(const uint8_t *)"c\0x", 3}));
    wr_access_forget_vhost("v");
    CHECK(!wr_access_vhost(u, vh));
    wr_access_reset();
    wr_vhost_free(vh);
}

static void test_topic_permissions(void)
{
    wr_vhost_t *vh = wr_vhost_new("v.1");
    wr_user_t *u = wr_access_user_add("a.b", "pw", "");
    char err[200];
    CHECK_EQ(
        wr_access_set_topic(u, "v.1", "amq.topic", "^{username}\\.", "^{vhost}$", err, sizeof err),
        0);
    const wr_exchange_t *x = wr_vhost_exchange(vh, WR_BYTES_LIT("amq.topic"));
    const wr_topic_perm_t *t = wr_access_topic_for(u, x);
    CHECK(t != NULL);
    /* The variables are regex-escaped: "a.b" does not match "axb". */
    CHECK(wr_pattern_match(&t->write, WR_BYTES_LIT("a.b.x")));
    CHECK(!wr_pattern_match(&t->write, WR_BYTES_LIT("axb.x")));
    CHECK(wr_pattern_match(&t->read, WR_BYTES_LIT("v.1")));
    CHECK(!wr_pattern_match(&t->read, WR_BYTES_LIT("v11")));
    CHECK(strcmp(t->write_src, "^{username}\\.") == 0);
    /* Not on direct exchanges. */
    CHECK(wr_access_topic_for(u, wr_vhost_exchange(vh, WR_BYTES_LIT("amq.direct"))) == NULL);
    wr_access_clear_topic(u, "v.1", "amq.topic");
    CHECK(wr_access_topic_for(u, x) == NULL);
    wr_access_reset();
    wr_vhost_free(vh);
}

WR_SUITE(access)
{
    RUN(test_rabbitmq_hash_logs_in);
    RUN(test_bad_hashes_are_refused);
    RUN(test_own_hashes_are_salted);
    RUN(test_tags);
    RUN(test_permissions);
    RUN(test_topic_permissions);
}
