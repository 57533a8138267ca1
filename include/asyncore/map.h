/*
 * asyncore/map.h -- socket maps: asyncore's socket_map over an event_base.
 *
 * A map is the set of dispatchers served by one libevent event_base.  The
 * base is either the map's own or one the caller passes in, so dispatchers
 * can live beside the caller's own events, bufferevents and evhttp.  A
 * caller's base must outlive the map; a map's own base is freed with it.
 *
 * A default map exists for code that names none: every function that takes
 * a map treats NULL as asyncore_map_default().
 *
 * After fork(), the child shares its parent's sockets and, through the
 * base, its kernel event state.  A child that inherits a map calls
 * event_reinit(asyncore_map_base(map)) first; it may then go on using the
 * map, or asyncore_close_all() / asyncore_map_free() it, which closes only
 * the child's copies of the descriptors: the parent's connections go on
 * undisturbed.
 */
#ifndef ASYNCORE_MAP_H
#define ASYNCORE_MAP_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create a map on @base, or on a new event_base of its own if @base is
 * NULL.  Returns NULL with errno ENOMEM (or that of event_base_new()), or
 * EMFILE (below).
 *
 * DESCRIPTOR LIMIT OF THE SELECT BACKEND
 *   libevent's select backend (chosen when epoll and poll are not, e.g.
 *   under EVENT_NOEPOLL=1 EVENT_NOPOLL=1) can watch only descriptors below
 *   FD_SETSIZE (1024): glibc aborts the process on a larger one.  On such a
 *   map every call that would give libevent one fails cleanly with EMFILE
 *   instead -- asyncore_create_socket(), asyncore_set_socket(),
 *   asyncore_accept() (which closes the connection), the default
 *   handle_accept (which backs off), asyncore_file_dispatcher_new() (except
 *   for regular files, never polled), and asyncore_map_new() itself for its
 *   wake-up descriptor -- as if the process were out of descriptors.
 *   Thousands of connections (15,000 is routine) need the epoll backend
 *   (the default on Linux) or poll.
 */
ASYNCORE_API asyncore_map *asyncore_map_new(struct event_base *base);

/**
 * Close every dispatcher of the map (their destroy hooks run unless they are
 * held) and free it, and its base if it owns it.  NULL is the default map,
 * as everywhere (nothing is done if there is none).  First, until none of them
 * is left: the call_soon callbacks still queued run, the dispatchers are
 * closed, the pending timers are released (their free hooks run) -- each of
 * which may queue, create or arm more of the others.  Dispatchers still
 * held then outlive the map, closed and detached from it (dispatcher.h,
 * LIFETIME 7).  Freeing the default map is allowed: a new one is made when
 * next asked for.
 *
 * Returns 0, or -1 with EBUSY, where nothing is freed, when the map is in
 * use by the caller: from inside the map's loop, and -- also when the
 * program runs the map's base itself (event_base_loop) -- from inside a
 * hook, predicate or destroy hook that a dispatch or a method of the map
 * runs, a timer callback or a timer's free hook run as it fires, a
 * call_soon callback, or the hooks that asyncore_map_free() itself runs.
 * Holds the program took with asyncore_dispatcher_hold() do not count.
 */
ASYNCORE_API int asyncore_map_free(asyncore_map *map);

/** The default map, created on first use; NULL with ENOMEM. */
ASYNCORE_API asyncore_map *asyncore_map_default(void);

/**
 * The map's event_base, for the caller's own events.  With a NULL @map, the
 * default map's (created if needed: NULL with ENOMEM if that fails).
 */
ASYNCORE_API struct event_base *asyncore_map_base(asyncore_map *map);

/**
 * The number of dispatchers in the map, i.e. with an open descriptor (the
 * len() of asyncore's socket_map).  asyncore_loop() runs while it is > 0.
 */
ASYNCORE_API size_t asyncore_map_count(asyncore_map *map);

/**
 * With @on != 0, every loop iteration re-evaluates readable()/writable() of
 * every dispatcher before waiting, as asyncore's poll() did: code ported
 * as-is whose predicates depend on outside state then works unchanged, at
 * O(dispatchers) per iteration.  Off by default: the predicates are then
 * asked once when the loop is entered and after each dispatch (see
 * dispatcher.h, INTEREST).  Returns 0 or -1 (EINVAL).
 */
ASYNCORE_API int asyncore_map_set_reevaluate(asyncore_map *map, int on);

/**
 * Replace the map's log sink (NULL restores the default, stderr) and its
 * argument.  Returns 0 or -1 (EINVAL).
 */
ASYNCORE_API int asyncore_map_set_log(asyncore_map *map, asyncore_log_fn fn,
                                      void *arg);

/**
 * Set the log types that dispatchers created on this map from now on ignore
 * (a mask of asyncore_log_type; default ASYNCORE_LOG_WARNING, as asyncore's
 * ignore_log_types).  Returns 0 or -1 (EINVAL).
 */
ASYNCORE_API int asyncore_map_set_ignore_log_types(asyncore_map *map,
                                                   unsigned mask);

/**
 * asyncore.close_all(): close every dispatcher of the map.  Safe from inside
 * any hook, including one of a dispatcher it closes.  Returns 0.
 */
ASYNCORE_API int asyncore_close_all(asyncore_map *map);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_MAP_H */
