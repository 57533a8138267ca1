/*
 * io.c -- raw transfers.  Sockets use send/recv (MSG_NOSIGNAL: a library
 * must not let SIGPIPE kill its host, nor change its signal dispositions);
 * file dispatchers use read/write, as asyncore's file_wrapper does; TLS
 * dispatchers go through their transport (tls.c), which carries plaintext.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "asyncore-internal.h"

ssize_t asyncore__raw_send(asyncore_dispatcher *d, const void *buf, size_t len)
{
    if (d->io_kind == ASYNCORE__IO_FILE)
        return write(d->fd, buf, len);
    if (d->tls != NULL) /* tls.c: plaintext in, records out */
        return asyncore__tls_send(d, buf, len);
    return send(d->fd, buf, len, MSG_NOSIGNAL);
}

ssize_t asyncore__raw_recv(asyncore_dispatcher *d, void *buf, size_t len)
{
    if (d->io_kind == ASYNCORE__IO_FILE)
        return read(d->fd, buf, len);
    if (d->tls != NULL)
        return asyncore__tls_recv(d, buf, len);
    return recv(d->fd, buf, len, 0);
}

/* asyncore's _DISCONNECTED: errors that mean "the connection is gone". */
int asyncore__is_disconnect(int err)
{
    switch (err) {
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
    case ECONNABORTED:
    case EPIPE:
    case EBADF:
        return 1;
    default:
        return 0;
    }
}
