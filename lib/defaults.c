/*
 * defaults.c -- asyncore's default hooks, used where a handler table and its
 * class's defaults leave an entry NULL, and callable by overrides.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ext.h"

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

/* How long a listener stops accepting after running out of descriptors or
 * memory: long enough for connections to end and give some back, short
 * enough that clients waiting in the backlog hardly notice. */
#define ACCEPT_BACKOFF 0.1

/* Failures that say "not now" rather than "this listener is broken". */
static int accept_resource_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* The back-off's state, in its watcher slot: made on the first failure. */
struct backoff {
    asyncore_timer *timer; /* pending while the read interest is withheld */
    unsigned burst : 1;    /* a failure was logged; no accept since */
};

static struct backoff *backoff_of(const asyncore_dispatcher *d)
{
    return asyncore__watch_state(d, ASYNCORE__WATCH_BACKOFF);
}

static void accept_resume(asyncore_timer *t, void *arg)
{
    asyncore_dispatcher *d = arg;

    (void)t;
    backoff_of(d)->timer = NULL; /* a one-shot timer: released on return */
    d->ext->withheld &= (unsigned char)~EV_READ;
    asyncore__interest_update(d); /* read interest again, if readable() */
}

/* The interest went (close, a dropped socket): so does its suspension. */
static void backoff_disarm(asyncore_dispatcher *d)
{
    struct backoff *b = backoff_of(d);

    if (b->timer != NULL) {
        asyncore_timer_cancel(b->timer);
        b->timer = NULL;
        d->ext->withheld &= (unsigned char)~EV_READ;
    }
}

static void backoff_destroy(asyncore_dispatcher *d)
{
    free(backoff_of(d));
}

static const struct asyncore__watcher_ops backoff_watcher = {
    .name = "accept back-off",
    .disarm = backoff_disarm,
    .destroy = backoff_destroy,
};

/*
 * The connection that could not be accepted stays in the backlog, so the
 * listener stays readable: accepting again at once would spin, and
 * asyncore's answer (handle_error closes the listener) takes the whole
 * server down for a passing shortage.  Instead the listener's read interest
 * is withheld (d->ext->withheld) until a one-shot timer gives it back, and
 * the first failure of a burst is logged; a successful accept ends the
 * burst.  Returns -1 if the timer cannot be set (the caller then reports
 * the error as any other).  Closing the listener cancels the timer (the
 * watcher's disarm).
 */
static int accept_back_off(asyncore_dispatcher *d, int err)
{
    struct backoff *b = backoff_of(d);

    if (b == NULL) {
        if ((b = calloc(1, sizeof(*b))) == NULL)
            return -1;
        if (asyncore__watch_set(d, ASYNCORE__WATCH_BACKOFF, &backoff_watcher,
                                b) < 0) {
            free(b);
            return -1;
        }
    }
    if (b->timer == NULL) {
        b->timer = asyncore_call_later(d->map, ACCEPT_BACKOFF, accept_resume, d);
        if (b->timer == NULL)
            return -1;
    }
    d->ext->withheld |= EV_READ;
    if (!b->burst) {
        b->burst = 1;
        asyncore_log_info(d, ASYNCORE_LOG_ERROR,
                          "cannot accept (errno %d: %s): pausing the listener, "
                          "retrying every %d ms",
                          err, strerror(err), (int)(ACCEPT_BACKOFF * 1000));
    }
    return 0;
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
        if (backoff_of(d) != NULL)
            backoff_of(d)->burst = 0;
        ASYNCORE__HOOK(d, handle_accepted)(d, fd, (struct sockaddr *)&ss, len);
        return;
    }
    if (errno == EAGAIN)
        return;
    d->last_error = errno;
    if (accept_resource_error(d->last_error) &&
        accept_back_off(d, d->last_error) == 0)
        return;
    asyncore_handle_error(d, d->last_error, "accept");
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

/* The log function is user code too: when a default is called directly
 * (not through a dispatch or asyncore_handle_*), only this hold keeps @d
 * for what follows the log line. */
void asyncore_default_handle_close(asyncore_dispatcher *d)
{
    if (d == NULL) {
        asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled close event");
        return;
    }
    asyncore__hold(d);
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "unhandled close event");
    if (!d->closed)
        asyncore_close(d);
    asyncore__release(d);
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
    asyncore__hold(d); /* see asyncore_default_handle_close */
    asyncore_log_info(d, ASYNCORE_LOG_ERROR,
                      "uncaptured error, closing channel %s (%s: errno %d: %s%s%s)",
                      repr, op ? op : "?", err, strerror(err),
                      tls ? ": " : "", tls ? tls : "");
    asyncore_handle_close(d);
    asyncore__release(d);
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
