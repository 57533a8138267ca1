/*
 * io.c -- what a failed transfer means.  The transfers themselves are
 * inline in asyncore-internal.h (asyncore__raw_send/recv).
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "asyncore-internal.h"

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
