/*
 * tls.h - TLS for sockets, with OpenSSL over memory BIOs.
 *
 * The socket layer (net/sock.c) keeps reading and writing the descriptor
 * itself, in batches, exactly as for plain TCP; TLS sits between the
 * descriptor and the protocol's buffers.  Ciphertext read from the kernel
 * is fed in one piece and decrypted into the socket's input buffer; at
 * flush time the whole queued plaintext is encrypted in one pass into the
 * ciphertext the socket then writes.  OpenSSL never touches a descriptor,
 * so the loop, back-pressure and graceful close stay the socket layer's.
 *
 * A context (wr_tls_ctx_t) is made once per TLS listener from the
 * ssl_options.* settings: certificate chain, key, CA certificates, peer
 * verification, versions (TLS 1.2 and 1.3 by default; SSLv3, 1.0 and 1.1
 * are refused) and ciphers.  Renegotiation is disabled, and session
 * tickets are off (no key to rotate).
 */
#ifndef WR_TLS_H
#define WR_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct wr_tls_ctx wr_tls_ctx_t;
typedef struct wr_tls wr_tls_t;

typedef struct wr_tls_config {
    const char *certfile, *keyfile, *cacertfile;
    int verify_peer;             /* ssl_options.verify = verify_peer */
    int fail_if_no_peer_cert;    /* ... and a client without one is refused */
    const char *const *versions; /* "tlsv1.2", "tlsv1.3"; NULL: both */
    size_t n_versions;
    const char *const *ciphers; /* OpenSSL names (1.2 suites and 1.3 ones); NULL: defaults */
    size_t n_ciphers;
} wr_tls_config_t;

/* Makes a server context; NULL with the reason in err. */
wr_tls_ctx_t *wr_tls_ctx_new(const wr_tls_config_t *cfg, char *err, size_t errlen);
void wr_tls_ctx_free(wr_tls_ctx_t *ctx);

/* A server-side session for one connection. */
wr_tls_t *wr_tls_new(wr_tls_ctx_t *ctx);
void wr_tls_free(wr_tls_t *t);

/* Feeds n bytes of ciphertext: decrypted application data is appended
 * to plain, and what TLS must send back (handshake records, alerts) to
 * wire.  Returns 0, or -1 when the session failed (a handshake failure,
 * a bad record, the peer's close_notify): the socket should send what is
 * in wire and close.  *why gets a reason for the log. */
int wr_tls_feed(wr_tls_t *t, const uint8_t *p, size_t n, wr_buf_t *plain, wr_buf_t *wire,
                const char **why);
/* Encrypts n bytes of plaintext, appending the records to wire; -1 if
 * the session cannot send (failed, or not yet handshaken: the caller
 * keeps the plaintext until wr_tls_ready). */
int wr_tls_encrypt(wr_tls_t *t, const uint8_t *p, size_t n, wr_buf_t *wire);
/* The handshake is done: application data can flow. */
int wr_tls_ready(const wr_tls_t *t);
/* Appends a close_notify alert to wire (once). */
void wr_tls_close_notify(wr_tls_t *t, wr_buf_t *wire);

/* The verified peer certificate's subject: its CN, or the whole DN in
 * RFC 4514 form as RabbitMQ's ssl_cert_login_from = distinguished_name
 * prints it.  0, or -1 when there is no verified peer certificate. */
int wr_tls_peer_name(const wr_tls_t *t, int common_name, char *out, size_t outlen);
/* "TLSv1.3" and the cipher, for listings; "" before the handshake. */
const char *wr_tls_version(const wr_tls_t *t);
const char *wr_tls_cipher(const wr_tls_t *t);

#endif
