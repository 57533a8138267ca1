/*
 * asyncore/thread.h -- one map per thread: waking a map from another
 * thread, and listeners that share a port.
 *
 * THREADS.  A map and its dispatchers belong to one thread: the thread that
 * runs asyncore_loop() on it.  Every function of the library, except the two
 * below marked THREAD-SAFE, must be called from that thread only (or from
 * another thread while the owner provably is not using the map, e.g. before
 * the owner is started with pthread_create() or after it was joined).  The
 * default map is no exception; it is best left to one thread.
 *
 * Exactly two functions may be called from any thread at any time while the
 * map exists:
 *   asyncore_map_call_soon_threadsafe()   queue a callback for the map's thread
 *   asyncore_map_wake()                   make the map's loop stop waiting
 * They need no threading set-up of libevent (no evthread_use_pthreads()):
 * each map has a wake-up descriptor (an eventfd) of its own and a mutex, and
 * work on any event_base, the map's own or the caller's.
 *
 * After fork(), the child's copy of a map gets a wake-up descriptor of its
 * own when its loop first runs (after event_reinit(), see map.h); until
 * then a wake-up may reach either process.  Callbacks queued before the
 * fork are queued in both copies.  Fork only while no other thread is
 * inside these two functions (the child would inherit a locked mutex).
 *
 * A server can use every core by running N threads, each with its own map
 * and its own listening dispatcher bound to the same port with
 * asyncore_set_reuse_port(): the kernel spreads the connections over the
 * listeners, and no map is shared between threads.
 */
#ifndef ASYNCORE_THREAD_H
#define ASYNCORE_THREAD_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A callback queued with asyncore_map_call_soon_threadsafe().  It runs in
 * the map's thread with the map it was queued on and the caller's @arg, and
 * may call anything of the library on that map (close, create, loop_stop,
 * queue more callbacks), except asyncore_map_free() and asyncore_loop() on
 * it, which fail with EBUSY there.
 */
typedef void (*asyncore_map_callback)(asyncore_map *map, void *arg);

/**
 * THREAD-SAFE.  Queue @cb(@map, @arg) to run in the map's thread, inside
 * asyncore_loop(), at the loop's next iteration, and wake the loop if it is
 * waiting.  Callbacks run in the order they were queued (callbacks queued
 * by one thread run in that thread's order), each exactly once: by the
 * loop, or else by asyncore_map_free(), which runs the callbacks still
 * queued before it closes the dispatchers, and again those that the
 * destroy hooks and the timers' free hooks it runs queue, until none is
 * left (so that whatever @arg owns is always released by @cb).  Callbacks queued while callbacks run wait for
 * the next iteration, so I/O is never starved.  A waiting loop returns from
 * its wait to run them: that counts as an iteration of asyncore_loop().
 *
 * Unlike the rest of the library, NULL is not the default map here (the
 * default map is created on first use, which is not thread-safe): @map must
 * be a map that exists and is not being freed.  Not async-signal-safe (it
 * takes a mutex and allocates).  Returns 0, or -1 with errno EINVAL (@map
 * or @cb is NULL) or ENOMEM (nothing was queued).
 */
ASYNCORE_API int asyncore_map_call_soon_threadsafe(asyncore_map *map,
                                                   asyncore_map_callback cb,
                                                   void *arg);

/**
 * THREAD-SAFE and async-signal-safe (it is one write(2)).  Make the map's
 * loop return from its current wait: the iteration ends, which counts as an
 * iteration of asyncore_loop() (so asyncore_poll() and loop(timeout, 1)
 * return; loop(timeout, ASYNCORE_FOREVER) goes on with its next one).  If
 * the loop is not waiting, its next wait returns at once.  Nothing else
 * happens: to stop the loop, queue a callback that calls
 * asyncore_loop_stop() or asyncore_close_all().  @map: as for
 * asyncore_map_call_soon_threadsafe().  Returns 0, or -1 with EINVAL (@map
 * is NULL).
 */
ASYNCORE_API int asyncore_map_wake(asyncore_map *map);

/**
 * Set SO_REUSEPORT on the dispatcher's socket, so that other sockets (of
 * this or another thread or process of the same user) can bind the same
 * address and port and the kernel spreads incoming connections over their
 * listeners.  Call it after asyncore_create_socket() and BEFORE bind: every
 * socket of the group must set it before binding.  Errors: EINVAL (NULL),
 * EBADF (closed), ENOTSOCK (no socket yet, or a file dispatcher),
 * ENOPROTOOPT (no SO_REUSEPORT on this system), those of setsockopt(2).
 */
ASYNCORE_API int asyncore_set_reuse_port(asyncore_dispatcher *d);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_THREAD_H */
