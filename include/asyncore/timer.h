/*
 * asyncore/timer.h -- timers on a map, and per-dispatcher timeouts.
 *
 * TIMERS
 *   asyncore_call_later() runs a callback once, @seconds from now;
 *   asyncore_call_every() runs it every @interval seconds until cancelled.
 *   Timers are libevent timer events on the map's base, so the loop never
 *   sleeps past a pending timer, and a timer firing is a wake-up like any
 *   other: one iteration of asyncore_loop() (its @count) dispatches every
 *   timer and socket that is due.
 *
 *   A pending timer does NOT keep asyncore_loop() running: as asyncore's
 *   loop, it runs while the map has dispatchers, and returns when a hook
 *   (or a timer callback) closes the last one.  To wait for timers alone,
 *   run the map's base yourself (asyncore_map_base(), event_base_loop()).
 *
 * LIFETIME OF A TIMER HANDLE
 *   The asyncore_timer pointer stays valid until the timer is released:
 *    - a one-shot timer, when its callback returns -- unless the callback
 *      re-armed it (asyncore_timer_rearm());
 *    - any timer, when asyncore_timer_cancel() returns, or when its own
 *      callback that called asyncore_timer_cancel() returns;
 *    - every timer still pending, in asyncore_map_free().
 *   On release the free hook (asyncore_timer_set_free()) is called with the
 *   callback's argument, exactly once.  After the release the pointer must
 *   not be used again: a program that keeps it should clear its copy in the
 *   callback of a one-shot timer (and in the free hook).  Cancelling a timer
 *   is safe from any hook and any timer callback, including its own; once
 *   cancelled, its callback never runs again.  asyncore_map_free() from a
 *   timer callback, or from the free hook of a timer released as its
 *   callback returns, fails with EBUSY -- also when the program runs the
 *   base itself -- and frees nothing: free the map once the loop returned.
 *
 * DISPATCHER TIMEOUTS
 *   asyncore_set_connect_timeout() bounds a connect: when it has not
 *   completed in time, handle_error(d, ETIMEDOUT, "connect") runs and
 *   handle_connect never does.  asyncore_set_idle_timeout() calls the
 *   handle_timeout hook (default: close) when the dispatcher saw no read
 *   and no write dispatch for that long.  Each costs one libevent timer,
 *   allocated when the timeout is set; dispatchers without timeouts carry
 *   nothing.  asyncore_close() clears them: no timeout hook runs after it.
 */
#ifndef ASYNCORE_TIMER_H
#define ASYNCORE_TIMER_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A timer on a map (see LIFETIME OF A TIMER HANDLE). */
typedef struct asyncore_timer asyncore_timer;

/**
 * A timer callback: @t is the timer that fired (valid during the call),
 * @arg the pointer given at its creation.  It may cancel or re-arm @t,
 * create and cancel other timers, and create and close dispatchers.
 */
typedef void (*asyncore_timer_fn)(asyncore_timer *t, void *arg);

/**
 * Call @cb(t, @arg) once, @seconds (>= 0; 0: in the next loop iteration)
 * from now, on @map (NULL: the default map).  Returns the timer, or NULL
 * with errno EINVAL (@cb NULL, @seconds negative or NaN) or ENOMEM.  Safe
 * inside any hook.
 */
ASYNCORE_API asyncore_timer *asyncore_call_later(asyncore_map *map,
                                                 double seconds,
                                                 asyncore_timer_fn cb,
                                                 void *arg);

/**
 * Call @cb(t, @arg) every @interval (> 0) seconds from now until the timer
 * is cancelled.  The schedule does not drift with the callbacks' run time;
 * a loop that fell behind runs a late timer once, not once per missed
 * interval.  Returns the timer, or NULL with errno EINVAL (@cb NULL,
 * @interval not > 0) or ENOMEM.  Safe inside any hook.
 */
ASYNCORE_API asyncore_timer *asyncore_call_every(asyncore_map *map,
                                                 double interval,
                                                 asyncore_timer_fn cb,
                                                 void *arg);

/**
 * Cancel @t: its callback never runs again, and it is released (its free
 * hook runs) before this returns -- or, when called from @t's own
 * callback, right after that callback returns.  A NULL @t, and a second
 * cancel from inside that same callback, do nothing.  Returns 0.  A
 * released timer (a one-shot whose callback returned, a timer cancelled
 * before) must not be passed: see LIFETIME.  Safe inside any hook.
 */
ASYNCORE_API int asyncore_timer_cancel(asyncore_timer *t);

/**
 * Schedule @t again, @seconds from now.  A one-shot timer fires once more
 * then (from inside its callback this keeps it alive; on a pending one it
 * moves the deadline); a periodic timer fires @seconds from now and every
 * @seconds after.  Returns 0, or -1 with errno EINVAL (@t NULL, @seconds
 * negative or NaN, or 0 for a periodic timer) or ECANCELED (@t was
 * cancelled inside its running callback).
 */
ASYNCORE_API int asyncore_timer_rearm(asyncore_timer *t, double seconds);

/**
 * Set the hook that releases @t's callback argument: @free_fn(arg) runs
 * exactly once, when @t is released (see LIFETIME), NULL for none.
 * Returns 0, or -1 with errno EINVAL (@t NULL).
 */
ASYNCORE_API int asyncore_timer_set_free(asyncore_timer *t,
                                         void (*free_fn)(void *arg));

/* ---- per-dispatcher timeouts --------------------------------------------- */

/**
 * Give @d's connects @seconds to complete (0: no limit, the default).
 * The clock starts when a connect goes in progress (asyncore_connect()
 * returned 0 with the dispatcher connecting), or at this call if @d is
 * connecting now.  Over TLS the handshake is part of the connect: the
 * clock stops when handle_connect is about to run or the handshake fails.
 * When it runs out, @d's handle_error runs with ETIMEDOUT
 * and op "connect" (asyncore_dispatcher_last_error() is ETIMEDOUT) and
 * handle_connect never runs for that attempt; if handle_error leaves @d
 * open (the default closes it), the attempt's socket is closed and @d stays
 * open without one, so that it can try again (asyncore_create_socket(),
 * asyncore_connect()) -- except over TLS, whose timed-out transport is
 * spent (tls.h).  Returns 0, or -1 with errno EINVAL (@d NULL,
 * @seconds negative or NaN), EBADF (closed) or ENOMEM.  Safe inside hooks.
 */
ASYNCORE_API int asyncore_set_connect_timeout(asyncore_dispatcher *d,
                                              double seconds);

/**
 * Call @d's handle_timeout hook when @seconds (0: never, the default) pass
 * without a read or write dispatch of @d, counting from this call.  The
 * hook runs again after every further @seconds of inactivity while @d stays
 * open.  Data pushed and sent at once (not from a write dispatch) is not
 * activity; a dispatcher that waits to write to a peer that does not read
 * is idle.  Returns 0, or -1 with errno EINVAL, EBADF or ENOMEM.  Safe
 * inside hooks, including handle_timeout.
 */
ASYNCORE_API int asyncore_set_idle_timeout(asyncore_dispatcher *d,
                                           double seconds);

/**
 * asyncore's default handle_timeout: log the warning "idle timeout", then
 * run handle_close (which closes by default), as the default handle_error
 * does.  Does nothing for a NULL or closed dispatcher.
 */
ASYNCORE_API void asyncore_default_handle_timeout(asyncore_dispatcher *d);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_TIMER_H */
