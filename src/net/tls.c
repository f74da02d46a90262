/* tls.c - TLS over memory BIOs (see tls.h). */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wr_tls_ctx {
    SSL_CTX *ctx;
};

struct wr_tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext in (we write, OpenSSL reads) */
    BIO *wbio; /* ciphertext out (OpenSSL writes, we read) */
    uint8_t ready;
    uint8_t failed;
    uint8_t notified;
};

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

static int version_of(const char *name)
{
    if (strcmp(name, "tlsv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(name, "tlsv1.3") == 0)
        return TLS1_3_VERSION;
    return -1;
}

wr_tls_ctx_t *wr_tls_ctx_new(const wr_tls_config_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL) {
        ssl_error(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
    if (cfg->n_versions) {
        lo = TLS1_3_VERSION + 1;
        hi = 0;
        for (size_t i = 0; i < cfg->n_versions; i++) {
            int v = version_of(cfg->versions[i]);
            if (v < 0) {
                snprintf(err, errlen,
                         "ssl_options.versions: '%s' is not supported (tlsv1.2 and tlsv1.3 are)",
                         cfg->versions[i]);
                SSL_CTX_free(c);
                return NULL;
            }
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    SSL_CTX_set_min_proto_version(c, lo);
    SSL_CTX_set_max_proto_version(c, hi);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    if (cfg->certfile == NULL || cfg->keyfile == NULL) {
        snprintf(err, errlen, "a TLS listener needs ssl_options.certfile and ssl_options.keyfile");
        SSL_CTX_free(c);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(c, cfg->certfile) != 1) {
        ssl_error(err, errlen, "ssl_options.certfile");
        SSL_CTX_free(c);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(c, cfg->keyfile, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        ssl_error(err, errlen, "ssl_options.keyfile");
        SSL_CTX_free(c);
        return NULL;
    }
    if (cfg->cacertfile && SSL_CTX_load_verify_locations(c, cfg->cacertfile, NULL) != 1) {
        ssl_error(err, errlen, "ssl_options.cacertfile");
        SSL_CTX_free(c);
        return NULL;
    }
    if (cfg->cacertfile) {
        /* Tell clients which CAs their certificate may come from. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->cacertfile);
        if (names)
            SSL_CTX_set_client_CA_list(c, names);
    }
    int mode = SSL_VERIFY_NONE;
    if (cfg->verify_peer)
        mode = SSL_VERIFY_PEER | (cfg->fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(c, mode, NULL);
    if (cfg->n_ciphers) {
        /* TLS 1.3 suites and older cipher names are set apart. */
        char v12[2048] = "", v13[1024] = "";
        for (size_t i = 0; i < cfg->n_ciphers; i++) {
            const char *n = cfg->ciphers[i];
            char *dst = strncmp(n, "TLS_", 4) == 0 ? v13 : v12;
            size_t cap = dst == v13 ? sizeof v13 : sizeof v12;
            if (*dst)
                strncat(dst, ":", cap - strlen(dst) - 1);
            strncat(dst, n, cap - strlen(dst) - 1);
        }
        if ((*v12 && SSL_CTX_set_cipher_list(c, v12) != 1) ||
            (*v13 && SSL_CTX_set_ciphersuites(c, v13) != 1)) {
            ssl_error(err, errlen, "ssl_options.ciphers");
            SSL_CTX_free(c);
            return NULL;
        }
    }
    wr_tls_ctx_t *t = wr_xcalloc(1, sizeof *t);
    t->ctx = c;
    return t;
}

void wr_tls_ctx_free(wr_tls_ctx_t *ctx)
{
    if (ctx) {
        SSL_CTX_free(ctx->ctx);
        free(ctx);
    }
}

wr_tls_t *wr_tls_new(wr_tls_ctx_t *ctx)
{
    wr_tls_t *t = wr_xcalloc(1, sizeof *t);
    t->ssl = SSL_new(ctx->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL)
        abort(); /* out of memory, as wr_xmalloc treats it */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    return t;
}

void wr_tls_free(wr_tls_t *t)
{
    if (t) {
        SSL_free(t->ssl); /* frees both BIOs */
        free(t);
    }
}

static void drain(wr_tls_t *t, wr_buf_t *wire)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
        uint8_t *p = wr_buf_reserve(wire, pending);
        int n = BIO_read(t->wbio, p, (int)pending);
        if (n <= 0)
            break;
        wire->len += (size_t)n;
    }
}

int wr_tls_feed(wr_tls_t *t, const uint8_t *p, size_t n, wr_buf_t *plain, wr_buf_t *wire,
                const char **why)
{
    *why = NULL;
    if (t->failed)
        return -1;
    while (n > 0) {
        int w = BIO_write(t->rbio, p, (int)(n > 1u << 30 ? 1u << 30 : n));
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    if (!t->ready) {
        int r = SSL_do_handshake(t->ssl);
        drain(t, wire);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            unsigned long ee = ERR_peek_last_error();
            *why = ee ? ERR_reason_error_string(ee) : "handshake failed";
            if (*why == NULL)
                *why = "handshake failed";
            ERR_clear_error();
            t->failed = 1;
            return -1;
        }
        t->ready = 1;
    }
    for (;;) {
        uint8_t *dst = wr_buf_reserve(plain, 16384);
        int r = SSL_read(t->ssl, dst, 16384);
        if (r > 0) {
            plain->len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        drain(t, wire);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            *why = "the peer sent close_notify";
        } else {
            unsigned long ee = ERR_peek_last_error();
            *why = ee ? ERR_reason_error_string(ee) : "TLS error";
            if (*why == NULL)
                *why = "TLS error";
        }
        ERR_clear_error();
        t->failed = 1;
        return -1;
    }
}

int wr_tls_encrypt(wr_tls_t *t, const uint8_t *p, size_t n, wr_buf_t *wire)
{
    if (t->failed || !t->ready)
        return -1;
    while (n > 0) {
        int chunk = (int)(n > 1u << 30 ? 1u << 30 : n);
        int w = SSL_write(t->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            t->failed = 1;
            drain(t, wire);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    drain(t, wire);
    return 0;
}

int wr_tls_ready(const wr_tls_t *t)
{
    return t->ready && !t->failed;
}

void wr_tls_close_notify(wr_tls_t *t, wr_buf_t *wire)
{
    if (t->notified || !t->ready)
        return;
    t->notified = 1;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    drain(t, wire);
}

int wr_tls_peer_name(const wr_tls_t *t, int common_name, char *out, size_t outlen)
{
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    if (cert == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK) {
        X509_free(cert);
        return -1;
    }
    X509_NAME *name = X509_get_subject_name(cert);
    int rc = -1;
    if (common_name) {
        int n = X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)outlen);
        rc = n > 0 ? 0 : -1;
    } else {
        BIO *b = BIO_new(BIO_s_mem());
        if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
            int n = BIO_read(b, out, (int)outlen - 1);
            if (n > 0) {
                out[n] = '\0';
                rc = 0;
            }
        }
        BIO_free(b);
    }
    X509_free(cert);
    return rc;
}

const char *wr_tls_version(const wr_tls_t *t)
{
    return t->ready ? SSL_get_version(t->ssl) : "";
}

const char *wr_tls_cipher(const wr_tls_t *t)
{
    const char *c = t->ready ? SSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}
