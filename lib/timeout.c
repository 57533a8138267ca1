/*
 * timeout.c -- per-dispatcher connect and idle timeouts (timer.h).
 *
 * A dispatcher's timeouts live in a block allocated when the first one is
 * set, with one libevent timer per timeout set; a dispatcher without
 * timeouts only carries a NULL pointer.  asyncore_close() frees the block,
 * so no timeout callback can reach a closed dispatcher.
 *
 * The idle timer is not re-armed on every dispatch: that would cost a
 * heap operation per read.  A dispatch only stores the time (the
 * watcher's activity hook); when the timer expires it compares with that time and, if
 * the dispatcher was active meanwhile, sleeps again for the remainder.
 * The time is CLOCK_MONOTONIC (a vDSO read, no lock, unlike
 * event_base_gettimeofday_cached() on a threaded base), so a wall clock
 * step neither fires nor delays an idle timeout.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "ext.h"

/* An idle timer that fires this close to its deadline counts as expired:
 * libevent measured its delay from its cached time, which may be a little
 * older than the time we stored when arming it. */
#define IDLE_SLACK 0.001

struct asyncore__timeouts {
    struct event *connect_ev; /* NULL unless a connect timeout is set */
    struct event *idle_ev;    /* NULL unless an idle timeout is set */
    struct timeval connect_tv;
    struct timeval idle_tv;
    double idle;              /* the idle timeout, seconds */
    double last;              /* last read or write dispatch, monotonic */
    unsigned attempt;         /* connects started, to tell them apart */
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int to_timeval(double s, struct timeval *tv)
{
    if (isnan(s) || s < 0) {
        errno = EINVAL;
        return -1;
    }
    if (s > 1e9)
        s = 1e9;
    tv->tv_sec = (time_t)s;
    tv->tv_usec = (suseconds_t)((s - (double)tv->tv_sec) * 1e6);
    return 0;
}

static const struct asyncore__watcher_ops timeouts_watcher;

/* The dispatcher's block (its watcher slot), or NULL. */
static struct asyncore__timeouts *timeouts_of(const asyncore_dispatcher *d)
{
    return asyncore__watch_state(d, ASYNCORE__WATCH_TIMEOUTS);
}

/* The dispatcher's block, made on first use; NULL with ENOMEM. */
static struct asyncore__timeouts *timeouts_get(asyncore_dispatcher *d)
{
    struct asyncore__timeouts *to = timeouts_of(d);

    if (to != NULL)
        return to;
    if ((to = calloc(1, sizeof(*to))) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (asyncore__watch_set(d, ASYNCORE__WATCH_TIMEOUTS, &timeouts_watcher,
                            to) < 0) {
        free(to);
        errno = ENOMEM;
        return NULL;
    }
    return to;
}

static void drop_event(struct event **ev)
{
    if (*ev != NULL)
        event_free(*ev);
    *ev = NULL;
}

/* asyncore_close(): no timeout fires from now on. */
static void timeouts_close(asyncore_dispatcher *d)
{
    struct asyncore__timeouts *to = timeouts_of(d);

    if (to == NULL)
        return;
    asyncore__watch_clear(d, ASYNCORE__WATCH_TIMEOUTS);
    drop_event(&to->connect_ev);
    drop_event(&to->idle_ev);
    free(to);
}

/* ---- connect -------------------------------------------------------------- */

/*
 * The connect did not complete in time.  If handle_error leaves the
 * dispatcher open and this attempt still in progress, the attempt's socket
 * goes: handle_connect must never follow a timeout.
 */
static void connect_expired(evutil_socket_t fd, short what, void *arg)
{
    asyncore_dispatcher *d = arg;
    unsigned attempt = timeouts_of(d)->attempt;

    (void)fd;
    (void)what;
    if (!d->connecting || d->connected)
        return;
    asyncore__hold(d);
    asyncore_handle_error(d, ETIMEDOUT, "connect");
    if (!d->closed && d->connecting && d->fd >= 0 &&
        timeouts_of(d)->attempt == attempt)
        asyncore__drop_socket(d);
    asyncore__release(d);
}

static void timeouts_connect_start(asyncore_dispatcher *d)
{
    struct asyncore__timeouts *to = timeouts_of(d);

    if (to == NULL || to->connect_ev == NULL)
        return;
    to->attempt++;
    evtimer_add(to->connect_ev, &to->connect_tv);
}

/* This attempt is over -- unless a transport's stage follows the socket's
 * (a TLS handshake is still part of connecting: handle_connect waits for
 * it), so the clock runs on until @over. */
static int timeouts_connect_done(asyncore_dispatcher *d, int err, int over)
{
    struct asyncore__timeouts *to = timeouts_of(d);

    (void)err;
    if (over && to != NULL && to->connect_ev != NULL)
        evtimer_del(to->connect_ev);
    return 0;
}

int asyncore_set_connect_timeout(asyncore_dispatcher *d, double seconds)
{
    struct asyncore__timeouts *to;
    struct timeval tv;

    if (asyncore__check(d) < 0 || to_timeval(seconds, &tv) < 0)
        return -1;
    if (seconds == 0) {
        if (timeouts_of(d) != NULL)
            drop_event(&timeouts_of(d)->connect_ev);
        return 0;
    }
    if ((to = timeouts_get(d)) == NULL)
        return -1;
    if (to->connect_ev == NULL &&
        (to->connect_ev = evtimer_new(d->map->base, connect_expired, d)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    to->connect_tv = tv;
    if (d->connecting && !d->connected)
        evtimer_add(to->connect_ev, &tv);
    return 0;
}

/* ---- idle ------------------------------------------------------------------ */

/* A dispatch: a timestamp, no timer. */
static void timeouts_activity(asyncore_dispatcher *d)
{
    struct asyncore__timeouts *to = timeouts_of(d);

    if (to->idle_ev != NULL)
        to->last = now();
}

static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
    asyncore_dispatcher *d = arg;
    struct asyncore__timeouts *to = timeouts_of(d);
    double t = now(), left = to->last + to->idle - t;
    struct timeval tv;

    (void)fd;
    (void)what;
    if (left > IDLE_SLACK) {
        /* Active meanwhile: sleep for what is left of the timeout. */
        to_timeval(left, &tv);
        evtimer_add(to->idle_ev, &tv);
        return;
    }
    to->last = t;
    asyncore__hold(d);
    ASYNCORE__HOOK(d, handle_timeout)(d);
    /* The hook may have closed @d (freeing the block), turned the timeout
     * off or set a new one: look again. */
    to = timeouts_of(d);
    if (!d->closed && to != NULL && to->idle_ev != NULL &&
        !evtimer_pending(to->idle_ev, NULL))
        evtimer_add(to->idle_ev, &to->idle_tv);
    asyncore__release(d);
}

int asyncore_set_idle_timeout(asyncore_dispatcher *d, double seconds)
{
    struct asyncore__timeouts *to;
    struct timeval tv;

    if (asyncore__check(d) < 0 || to_timeval(seconds, &tv) < 0)
        return -1;
    if (seconds == 0) {
        if (timeouts_of(d) != NULL)
            drop_event(&timeouts_of(d)->idle_ev);
        return 0;
    }
    if ((to = timeouts_get(d)) == NULL)
        return -1;
    if (to->idle_ev == NULL &&
        (to->idle_ev = evtimer_new(d->map->base, idle_expired, d)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    to->idle = seconds;
    to->idle_tv = tv;
    to->last = now();
    evtimer_add(to->idle_ev, &tv);
    return 0;
}

static const struct asyncore__watcher_ops timeouts_watcher = {
    .name = "timeouts",
    .connect_start = timeouts_connect_start,
    .connect_done = timeouts_connect_done,
    .activity = timeouts_activity,
    .close = timeouts_close,
};

void asyncore_default_handle_timeout(asyncore_dispatcher *d)
{
    if (d == NULL || d->closed)
        return;
    asyncore__hold(d); /* the log function may close (defaults.c) */
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "idle timeout");
    asyncore_handle_close(d);
    asyncore__release(d);
}
