/*
 * defaults.c -- asyncore's default hooks, used where a handler table and its
 * class's defaults leave an entry NULL, and callable by overrides.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "asyncore-internal.h"

void asyncore_default_handle_read(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled read event");
}

void asyncore_default_handle_write(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled write event");
}

void asyncore_default_handle_expt(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_WARNING,
                      "unhandled incoming priority event");
}

void asyncore_default_handle_connect(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled connect event");
}

/* Accept one connection per readiness, as asyncore does; level-triggered
 * polling brings us back for the rest. */
void asyncore_default_handle_accept(asyncore_dispatcher *d)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd;

    if (d == NULL)
        return;
    fd = asyncore_accept(d, (struct sockaddr *)&ss, &len);
    if (fd >= 0) {
        ASYNCORE__HOOK(d, handle_accepted)(d, fd, (struct sockaddr *)&ss, len);
        return;
    }
    if (errno != EAGAIN) {
        d->last_error = errno;
        asyncore_handle_error(d, d->last_error, "accept");
    }
}

void asyncore_default_handle_accepted(asyncore_dispatcher *d, int fd,
                                      const struct sockaddr *addr,
                                      socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    if (fd >= 0)
        close(fd);
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled accepted event");
}

void asyncore_default_handle_close(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled close event");
    if (d != NULL && !d->closed)
        asyncore_close(d);
}

/* One compact line (asyncore's compact_traceback has no C counterpart),
 * then close as asyncore does. */
void asyncore_default_handle_error(asyncore_dispatcher *d, int err,
                                   const char *op)
{
    char repr[160];
    const char *tls = asyncore_tls_last_error(d); /* tls.c: OpenSSL's words */

    if (d == NULL)
        return;
    asyncore_dispatcher_repr(d, repr, sizeof(repr));
    asyncore_log_info(d, ASYNCORE_LOG_ERROR,
                      "uncaptured error, closing channel %s (%s: errno %d: %s%s%s)",
                      repr, op ? op : "?", err, strerror(err),
                      tls ? ": " : "", tls ? tls : "");
    asyncore_handle_close(d);
}

int asyncore_default_readable(asyncore_dispatcher *d)
{
    (void)d;
    return 1;
}

int asyncore_default_writable(asyncore_dispatcher *d)
{
    (void)d;
    return 1;
}

/* Each hook runs only on an open dispatcher: handle_close at most once. */
void asyncore_handle_close(asyncore_dispatcher *d)
{
    if (d == NULL || d->closed)
        return;
    asyncore__hold(d);
    ASYNCORE__HOOK(d, handle_close)(d);
    asyncore__release(d);
}

void asyncore_handle_error(asyncore_dispatcher *d, int err, const char *op)
{
    if (d == NULL || d->closed)
        return;
    d->last_error = err;
    asyncore__hold(d);
    ASYNCORE__HOOK(d, handle_error)(d, err, op);
    asyncore__release(d);
}
