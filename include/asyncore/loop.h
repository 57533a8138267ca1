/*
 * asyncore/loop.h -- asyncore.loop() over libevent.
 */
#ifndef ASYNCORE_LOOP_H
#define ASYNCORE_LOOP_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A @count for asyncore_loop() that sets no limit (asyncore's None). */
#define ASYNCORE_FOREVER (-1)

/**
 * asyncore.loop(): run iterations while the map has dispatchers, at most
 * @count of them (ASYNCORE_FOREVER: no limit; 0: none).  Each iteration
 * is one pass, as one asyncore.poll(): it waits at most @timeout seconds
 * for events (a negative @timeout: no limit; 0: just poll), dispatches
 * once what was ready, and ends -- also when a dispatcher is ready again
 * at once (the default writable() on a connected socket, a regular file),
 * so asyncore_poll(map, 0) fits in a program's own main loop, once per
 * tick.  @count counts these passes, whatever the timeout and the kind of
 * dispatcher.  Events of the caller's own on the same base are dispatched
 * too.
 *
 * When it is entered (with a @count other than 0) it asks readable() and
 * writable() of every dispatcher of the map once, as asyncore asked them
 * before every select(): state set outside any hook since the last call --
 * the Python documentation's HTTP client fills its buffer right after
 * connect() -- is seen.  That costs O(dispatchers) per call, not per
 * iteration: asyncore_poll() once per tick pays it every tick, a loop with
 * ASYNCORE_FOREVER once.  Within a call, see dispatcher.h, INTEREST.
 *
 * Returns 0 when the map is empty, @count iterations ran, or
 * asyncore_loop_stop() was called.  Returns -1 with errno EBUSY when the
 * map's loop is already running (a hook tried to re-enter it), EINVAL when
 * @timeout is NaN, EDEADLK when
 * @timeout is negative and nothing at all is armed (the loop would sleep
 * forever), or the errno of a libevent failure.
 */
ASYNCORE_API int asyncore_loop(asyncore_map *map, double timeout, int count);

/** One iteration: asyncore.poll().  Same as asyncore_loop(map, timeout, 1). */
ASYNCORE_API int asyncore_poll(asyncore_map *map, double timeout);

/**
 * Ask the running loop of @map to return after the callback that is
 * running now (asyncore's ExitNow).  Without a running loop it does
 * nothing: a later asyncore_loop() runs normally.  Returns 0, or -1
 * (EINVAL).
 */
ASYNCORE_API int asyncore_loop_stop(asyncore_map *map);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_LOOP_H */
