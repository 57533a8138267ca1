/*
 * tls-none.c -- the TLS API of a library configured --without-openssl:
 * present, so that programs link and ask at run time, but every call that
 * would start or configure TLS fails with ENOTSUP; the accessors answer as
 * for a dispatcher without TLS.  See asyncore/tls.h.
 */
#include "config.h"

#include <errno.h>

#include "ext.h"

/* No transport switch can happen: a class's buffers are never reached. */
void asyncore__buffers_register(const struct asyncore__buffers_ops *ops)
{
    (void)ops;
}

void asyncore__output_drained(asyncore_dispatcher *d)
{
    (void)d;
}

asyncore_tls_context *asyncore_tls_client_context_new(const char *ca_file)
{
    (void)ca_file;
    errno = ENOTSUP;
    return NULL;
}

asyncore_tls_context *asyncore_tls_server_context_new(const char *cert_file,
                                                      const char *key_file)
{
    (void)cert_file;
    (void)key_file;
    errno = ENOTSUP;
    return NULL;
}

void asyncore_tls_context_free(asyncore_tls_context *ctx)
{
    (void)ctx;
}

int asyncore_tls_load_ca(asyncore_tls_context *ctx, const char *ca_file,
                         const char *ca_dir)
{
    (void)ctx;
    (void)ca_file;
    (void)ca_dir;
    errno = ENOTSUP;
    return -1;
}

int asyncore_tls_set_verify(asyncore_tls_context *ctx, int on)
{
    (void)ctx;
    (void)on;
    errno = ENOTSUP;
    return -1;
}

struct ssl_ctx_st *asyncore_tls_context_ssl_ctx(asyncore_tls_context *ctx)
{
    (void)ctx;
    errno = ENOTSUP;
    return NULL;
}

int asyncore_tls_start_client(asyncore_dispatcher *d, asyncore_tls_context *ctx,
                              const char *hostname)
{
    (void)d;
    (void)ctx;
    (void)hostname;
    errno = ENOTSUP;
    return -1;
}

int asyncore_tls_start_server(asyncore_dispatcher *d, asyncore_tls_context *ctx)
{
    (void)d;
    (void)ctx;
    errno = ENOTSUP;
    return -1;
}

int asyncore_tls_stop(asyncore_dispatcher *d)
{
    (void)d;
    errno = ENOTSUP;
    return -1;
}

int asyncore_tls_active(const asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

const char *asyncore_tls_last_error(const asyncore_dispatcher *d)
{
    (void)d;
    return NULL;
}

int asyncore_tls_truncated(const asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

struct ssl_st *asyncore_tls_ssl(const asyncore_dispatcher *d)
{
    (void)d;
    return NULL;
}
