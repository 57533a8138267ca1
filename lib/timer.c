/*
 * timer.c -- one-shot and periodic timers on a map (timer.h).
 *
 * A timer is one allocation: our bookkeeping, then its struct event.  It
 * is listed on its map from creation to release, so that map_free can
 * release the pending ones.  The libevent callback wraps the user's: while
 * it runs, a cancel only marks the timer, and the release happens once the
 * user's callback returned -- so a callback may cancel itself, re-arm
 * itself, or cancel a timer that is due in the same iteration (event_del
 * takes it off libevent's active queue).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "asyncore-internal.h"

struct asyncore_timer {
    LIST_ENTRY(asyncore_timer) link; /* in map->timers until released */
    asyncore_map *map;
    asyncore_timer_fn cb;
    void *arg;
    void (*free_fn)(void *arg);
    unsigned periodic : 1;
    unsigned running : 1;   /* the user's callback is on the stack */
    unsigned cancelled : 1; /* cancelled from inside that callback */
    /* The struct event follows (event_get_struct_event_size() bytes). */
};

static size_t event_offset(void)
{
    return (sizeof(struct asyncore_timer) + sizeof(void *) - 1) /
           sizeof(void *) * sizeof(void *);
}

static struct event *timer_event(asyncore_timer *t)
{
    return (struct event *)((char *)t + event_offset());
}

/* A delay as a timeval; far futures are clamped as the loop's timeout is. */
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

static void release(asyncore_timer *t)
{
    event_del(timer_event(t));
    LIST_REMOVE(t, link);
    t->cancelled = 1; /* a cancel from the free hook does nothing */
    if (t->free_fn != NULL)
        t->free_fn(t->arg);
    free(t);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    asyncore_timer *t = arg;
    asyncore_map *map = t->map; /* @t may be released below */

    (void)fd;
    (void)what;
    /* The map is in use while the callback and the free hook run:
     * asyncore_map_free() from inside fails with EBUSY (map.c), so @t
     * cannot be released under us by anything but its own cancel, which
     * only marks it, and the base is not freed under libevent. */
    asyncore__map_enter(map);
    t->running = 1;
    t->cb(t, t->arg);
    t->running = 0;
    /* A one-shot that its callback did not re-arm is done. */
    if (t->cancelled || (!t->periodic && !evtimer_pending(timer_event(t), NULL)))
        release(t);
    asyncore__map_leave(map);
}

static asyncore_timer *timer_new(asyncore_map *map, double seconds, int periodic,
                                 asyncore_timer_fn cb, void *arg)
{
    asyncore_timer *t;
    struct timeval tv;

    if (cb == NULL || to_timeval(seconds, &tv) < 0 ||
        (periodic && !(seconds > 0))) {
        errno = EINVAL;
        return NULL;
    }
    map = asyncore__map_get(map);
    if (map == NULL)
        return NULL;
    t = calloc(1, event_offset() + event_get_struct_event_size());
    if (t == NULL)
        return NULL;
    t->map = map;
    t->cb = cb;
    t->arg = arg;
    t->periodic = periodic != 0;
    if (event_assign(timer_event(t), map->base, -1, periodic ? EV_PERSIST : 0,
                     timer_cb, t) < 0 ||
        event_add(timer_event(t), &tv) < 0) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    LIST_INSERT_HEAD(&map->timers, t, link);
    return t;
}

asyncore_timer *asyncore_call_later(asyncore_map *map, double seconds,
                                    asyncore_timer_fn cb, void *arg)
{
    return timer_new(map, seconds, 0, cb, arg);
}

asyncore_timer *asyncore_call_every(asyncore_map *map, double interval,
                                    asyncore_timer_fn cb, void *arg)
{
    return timer_new(map, interval, 1, cb, arg);
}

int asyncore_timer_cancel(asyncore_timer *t)
{
    if (t == NULL || t->cancelled)
        return 0;
    if (t->running) {
        /* Released by timer_cb once the callback returns. */
        event_del(timer_event(t));
        t->cancelled = 1;
        return 0;
    }
    release(t);
    return 0;
}

int asyncore_timer_rearm(asyncore_timer *t, double seconds)
{
    struct timeval tv;

    if (t == NULL || to_timeval(seconds, &tv) < 0 ||
        (t->periodic && !(seconds > 0))) {
        errno = EINVAL;
        return -1;
    }
    if (t->cancelled) {
        errno = ECANCELED;
        return -1;
    }
    /* For a persistent event this also makes @tv the new interval. */
    if (event_add(timer_event(t), &tv) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int asyncore_timer_set_free(asyncore_timer *t, void (*free_fn)(void *arg))
{
    if (t == NULL) {
        errno = EINVAL;
        return -1;
    }
    t->free_fn = free_fn;
    return 0;
}

/* map_free: every timer still listed is pending (a callback's own timer
 * cannot be here: map_free is EBUSY inside a timer callback).  A free hook
 * may cancel other timers or make new ones: take the head again each
 * time. */
void asyncore__timers_free(asyncore_map *map)
{
    asyncore_timer *t;

    while ((t = LIST_FIRST(&map->timers)) != NULL)
        release(t);
}
