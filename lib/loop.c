/*
 * loop.c -- asyncore.loop() as iterations of event_base_loop(EVLOOP_ONCE).
 *
 * libevent 2.1 has no prepare/check hooks, so whatever must happen before
 * every wait (re-evaluating all predicates in compatibility mode, serving
 * always-ready files, seeing that nothing is armed) happens here, around
 * each EVLOOP_ONCE.  When none of that can happen before the next wait,
 * one event_base_loop() runs the iterations instead (run_on), until
 * something that needs the checks happens and asks for them
 * (asyncore__loop_recheck).
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "asyncore-internal.h"

/* asyncore's poll() asked every dispatcher before every select(): done
 * when a loop is entered, and before every iteration in re-evaluation
 * mode. */
static void reevaluate_all(asyncore_map *map)
{
    asyncore_dispatcher *d, *next;

    for (d = TAILQ_FIRST(&map->dispatchers); d != NULL; d = next) {
        /* A predicate may close any dispatcher: ours is held while they
         * run.  If it closed ours, letting go of it may run its destroy
         * hook, which may close others: the next one is read only after
         * that, from the start of the list.  An open one is still the
         * map's, so letting go of it runs nothing. */
        asyncore__hold(d);
        asyncore__interest_update(d);
        if (d->closed) {
            asyncore__release(d);
            next = TAILQ_FIRST(&map->dispatchers);
        } else {
            next = TAILQ_NEXT(d, link);
            asyncore__release(d);
        }
    }
}

/* Files that cannot be polled are always ready, as select() reports them. */
static void activate_always_ready(asyncore_map *map)
{
    struct asyncore__ext *x;

    TAILQ_FOREACH(x, &map->always_ready, ready_link)
        event_active(asyncore__event(x->d), x->d->armed, 0);
}

static struct timeval seconds_to_tv(double s)
{
    struct timeval tv;

    if (s > 1e9)
        s = 1e9;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

/*
 * One pass, as one asyncore.poll(): a single wait of at most @timeout and
 * one dispatch of what it reported.  EVLOOP_NONBLOCK alone is not that:
 * libevent goes on dispatching until nothing is ready, which is never for
 * a dispatcher that is always ready (the default writable() on a connected
 * socket, a regular file).  EVLOOP_ONCE | EVLOOP_NONBLOCK polls once,
 * dispatches the batch and returns.
 */
static int iterate(asyncore_map *map, double timeout)
{
    struct timeval tv;
    int flags = EVLOOP_ONCE;
    int timed = 0;
    int rc;

    if (map->reevaluate)
        reevaluate_all(map);
    if (!TAILQ_EMPTY(&map->always_ready)) {
        /* Ready now: select() would not wait either. */
        activate_always_ready(map);
        flags |= EVLOOP_NONBLOCK;
    } else if (timeout == 0) {
        flags |= EVLOOP_NONBLOCK;
    } else if (timeout > 0) {
        tv = seconds_to_tv(timeout);
        evtimer_add(map->timer, &tv);
        timed = 1;
    }
    /* thread.c's wake-up event is always added: it alone is not armed. */
    if (timeout < 0 && !(flags & EVLOOP_NONBLOCK) &&
        asyncore__thread_base_idle(map)) {
        errno = EDEADLK;
        return -1;
    }
    rc = event_base_loop(map->base, flags);
    /* Only if added: with no timeout (the usual asyncore_loop(-1)) this
     * runs once per round trip, and event_del of a pending-less timer
     * still takes libevent's lock and walks its checks. */
    if (timed)
        evtimer_del(map->timer);
    if (rc < 0) {
        errno = EIO;
        return -1;
    }
    if (rc == 1 && timeout < 0 && !(flags & EVLOOP_NONBLOCK)) {
        errno = EDEADLK; /* nothing armed and no timeout: would never wake */
        return -1;
    }
    return 0;
}

/*
 * Whether the next iterations need no per-iteration work of ours: no limit
 * on their count (nothing to count), no re-evaluation, no always-ready
 * file, and a dispatcher armed, so that the dead-wait check (EDEADLK) could
 * not fail.  The wait's bound does not matter then: an iteration that times
 * out does nothing but start the next one (asyncore.loop(30.0) with no
 * count is the usual call), so the iterations may as well wait without one.
 * One priority only: then an event_base_loop() that gets a loopexit during
 * a batch of callbacks ends exactly where an EVLOOP_ONCE would, after the
 * whole batch.
 */
static int can_run_on(asyncore_map *map, int count)
{
    return count < 0 && !map->reevaluate && map->armed > 0 &&
           TAILQ_EMPTY(&map->always_ready) &&
           event_base_get_npriorities(map->base) == 1;
}

/* Iterations in one event_base_loop(), until asyncore__loop_recheck(),
 * asyncore_loop_stop() or the caller's own loopexit/loopbreak ends it. */
static int run_on(asyncore_map *map, double timeout)
{
    int rc;

    map->running_on = 1;
    rc = event_base_loop(map->base, 0);
    map->running_on = 0;
    if (rc < 0) {
        errno = EIO;
        return -1;
    }
    /* Nothing pending at all: a dead wait, as in iterate() -- unless the
     * caller gave a timeout, whose iterations would go on timing out. */
    if (rc == 1 && timeout < 0) {
        errno = EDEADLK;
        return -1;
    }
    return 0;
}

/*
 * Something the loop checks between iterations changed (nothing is armed
 * any more, which is also how the map empties; re-evaluation turned on; an
 * always-ready file armed): end run_on's event_base_loop after the batch of
 * callbacks in progress -- where an EVLOOP_ONCE iteration would have ended
 * -- so that the next iteration runs its checks.  A loopexit, unlike a
 * loopbreak, lets the rest of the batch run first.
 */
void asyncore__loop_recheck(asyncore_map *map)
{
    if (!map->running_on)
        return;
    map->running_on = 0;
    if (event_base_loopexit(map->base, NULL) < 0)
        event_base_loopbreak(map->base); /* out of memory: at least stop */
}

int asyncore_loop(asyncore_map *map, double timeout, int count)
{
    int rc = 0;

    map = asyncore__map_get(map);
    if (map == NULL)
        return -1;
    if (isnan(timeout)) {
        errno = EINVAL;
        return -1;
    }
    if (map->running) {
        errno = EBUSY;
        return -1;
    }
    map->running = 1;
    map->stop = 0;
    /* State set outside any hook since the last call (a buffer filled
     * right after connect, as asyncore's documented HTTP client does) is
     * seen before the first wait: asyncore asked the predicates before
     * every select().  Once per call, O(dispatchers); re-evaluation mode
     * asks them before every iteration anyway. */
    if (count != 0 && !map->reevaluate)
        reevaluate_all(map);
    asyncore__thread_loop_begin(map); /* thread.c: watch for wake-ups */
    while (map->count > 0 && count != 0 && !map->stop) {
        if (can_run_on(map, count)) {
            if (run_on(map, timeout) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (iterate(map, timeout) < 0) {
            rc = -1;
            break;
        }
        if (count > 0)
            count--;
    }
    asyncore__thread_loop_end(map);
    map->running = 0;
    map->stop = 0;
    return rc;
}

int asyncore_poll(asyncore_map *map, double timeout)
{
    return asyncore_loop(map, timeout, 1);
}

int asyncore_loop_stop(asyncore_map *map)
{
    map = asyncore__map_get(map);
    if (map == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (map->running) {
        map->stop = 1;
        event_base_loopbreak(map->base);
    }
    return 0;
}
