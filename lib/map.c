/*
 * map.c -- socket maps: a set of dispatchers over one event_base.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "asyncore-internal.h"

static asyncore_map *default_map;

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    /* The timer only bounds an iteration's wait; waking is its whole job. */
    (void)fd;
    (void)what;
    (void)arg;
}

asyncore_map *asyncore_map_new(struct event_base *base)
{
    asyncore_map *map = calloc(1, sizeof(*map));

    if (map == NULL)
        return NULL;
    if (base == NULL) {
        base = event_base_new();
        if (base == NULL) {
            free(map);
            errno = ENOMEM;
            return NULL;
        }
        map->own_base = 1;
    }
    map->base = base;
    /* libevent's select backend passes descriptors to FD_SET, which glibc
     * checks: one at FD_SETSIZE or above aborts the process. */
    map->fd_limit = strcmp(event_base_get_method(base), "select") == 0
                        ? FD_SETSIZE
                        : INT_MAX;
    map->timer = evtimer_new(base, timer_cb, map);
    if (map->timer == NULL) {
        if (map->own_base)
            event_base_free(base);
        free(map);
        errno = ENOMEM;
        return NULL;
    }
    /* thread.c: the wake-up descriptor exists from the start, so that
     * other threads never have to create anything on the map. */
    if (asyncore__thread_init(map) < 0) {
        int err = errno;

        event_free(map->timer);
        if (map->own_base)
            event_base_free(base);
        free(map);
        errno = err;
        return NULL;
    }
    map->ignore_log = ASYNCORE_LOG_WARNING;
    map->urgent_fd = -1;
    TAILQ_INIT(&map->dispatchers);
    TAILQ_INIT(&map->held);
    TAILQ_INIT(&map->always_ready);
    return map;
}

/*
 * Everything that can run user code, until nothing is left to run: queued
 * call_soon callbacks, the destroy hooks of the dispatchers closed here,
 * the free hooks of the pending timers.  Each may queue, create or arm
 * more of the others (a destroy hook that queues a callback, a timer's
 * free hook that makes a dispatcher), so the three are repeated until all
 * are empty at once.  map->running is set throughout: a map_free or a loop
 * from inside fails with EBUSY.
 */
static void map_quiesce(asyncore_map *map)
{
    map->running = 1;
    do {
        asyncore__thread_shutdown(map); /* thread.c: run queued callbacks */
        asyncore_close_all(map);
        asyncore__timers_free(map); /* timer.c: after the destroy hooks */
    } while (!TAILQ_EMPTY(&map->dispatchers) || !LIST_EMPTY(&map->timers) ||
             asyncore__thread_pending(map));
    map->running = 0;
}

/* Closed dispatchers still held outlive the map: they forget it, and the
 * calls that need it fail (map.h, dispatcher.h). */
static void detach_held(asyncore_map *map)
{
    asyncore_dispatcher *d;

    while ((d = TAILQ_FIRST(&map->held)) != NULL) {
        TAILQ_REMOVE(&map->held, d, link);
        d->held_closed = 0;
        d->map = NULL;
    }
}

/*
 * Whether user code of the map is on the stack: a library frame holds one
 * of its dispatchers (a dispatch, a predicate, a hook called by a method,
 * a destroy hook run by a dispatch's release), or a timer callback runs.
 * The program's own holds do not count (asyncore__hold_long).
 */
static int map_in_use(asyncore_map *map)
{
    asyncore_dispatcher *d;

    if (map->busy)
        return 1;
    TAILQ_FOREACH(d, &map->dispatchers, link)
        if (ASYNCORE__HOLDS_INSIDE(d) > 1) /* beyond the map's own */
            return 1;
    TAILQ_FOREACH(d, &map->held, link)
        if (ASYNCORE__HOLDS_INSIDE(d) > 0)
            return 1;
    return 0;
}

static void map_ext_free(asyncore_map *map)
{
    int i;

    for (i = 0; i < ASYNCORE__MAP_SLOTS; i++)
        if (map->ext[i].free != NULL && map->ext[i].state != NULL)
            map->ext[i].free(map);
}

int asyncore_map_free(asyncore_map *map)
{
    /* NULL is the default map, as everywhere; without one there is
     * nothing to free, and making one to free it would be waste. */
    if (map == NULL)
        map = default_map;
    if (map == NULL)
        return 0;
    /* Inside the map's loop, or inside a hook or callback of it while the
     * program runs the base itself: the caller is still using it. */
    if (map->running || map_in_use(map)) {
        errno = EBUSY;
        return -1;
    }
    map_quiesce(map);
    detach_held(map);
    asyncore__urgent_free(map);
    asyncore__thread_free(map);
    map_ext_free(map); /* the extensions' per-map state */
    event_free(map->timer);
    if (map->bridge != NULL) /* events.c */
        event_free(map->bridge);
    if (map->own_base)
        event_base_free(map->base);
    if (map == default_map)
        default_map = NULL;
    free(map);
    return 0;
}

asyncore_map *asyncore_map_default(void)
{
    if (default_map == NULL)
        default_map = asyncore_map_new(NULL);
    return default_map;
}

/*
 * Whether the map's backend can watch @fd; if not, 0 with errno EMFILE:
 * as far as this map is concerned, the process is out of descriptors.
 * Checked where a descriptor joins the map (asyncore__adopt_fd, accept,
 * file_dispatcher_new, urgent.c's epoll instance), so that no call hands
 * libevent one it would abort on.
 */
int asyncore__fd_watchable(const asyncore_map *map, int fd)
{
    if (fd < map->fd_limit)
        return 1;
    errno = EMFILE;
    return 0;
}

/* Every public entry point taking a map treats NULL as the default map. */
asyncore_map *asyncore__map_get(asyncore_map *map)
{
    return map != NULL ? map : asyncore_map_default();
}

struct event_base *asyncore_map_base(asyncore_map *map)
{
    map = asyncore__map_get(map);
    return map != NULL ? map->base : NULL;
}

size_t asyncore_map_count(asyncore_map *map)
{
    map = asyncore__map_get(map);
    return map != NULL ? map->count : 0;
}

int asyncore_map_set_reevaluate(asyncore_map *map, int on)
{
    map = asyncore__map_get(map);
    if (map == NULL) {
        errno = EINVAL;
        return -1;
    }
    map->reevaluate = on != 0;
    if (map->reevaluate) /* loop.c: from the next iteration on */
        asyncore__loop_recheck(map);
    return 0;
}

int asyncore_map_set_log(asyncore_map *map, asyncore_log_fn fn, void *arg)
{
    map = asyncore__map_get(map);
    if (map == NULL) {
        errno = EINVAL;
        return -1;
    }
    map->log_fn = fn;
    map->log_arg = arg;
    return 0;
}

int asyncore_map_set_ignore_log_types(asyncore_map *map, unsigned mask)
{
    map = asyncore__map_get(map);
    if (map == NULL || mask > 0xff) {
        errno = EINVAL;
        return -1;
    }
    map->ignore_log = mask;
    return 0;
}

/*
 * Closing removes a dispatcher from the list at once, so taking the head
 * again is safe whatever the hooks it triggers close or create.  New
 * dispatchers created by destroy hooks are closed too, as asyncore's
 * close_all leaves the map empty.
 */
int asyncore_close_all(asyncore_map *map)
{
    asyncore_dispatcher *d;

    map = asyncore__map_get(map);
    if (map == NULL)
        return 0;
    while ((d = TAILQ_FIRST(&map->dispatchers)) != NULL)
        asyncore_close(d);
    return 0;
}

/* A dispatcher is listed from creation to close, even before it has a
 * socket, so that close_all and map_free reach every one of them. */
void asyncore__map_attach(asyncore_map *map, asyncore_dispatcher *d)
{
    TAILQ_INSERT_TAIL(&map->dispatchers, d, link);
}

void asyncore__map_detach(asyncore_map *map, asyncore_dispatcher *d)
{
    TAILQ_REMOVE(&map->dispatchers, d, link);
    if (d->fd >= 0)
        map->count--;
}
