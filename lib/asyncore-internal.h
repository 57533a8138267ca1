/*
 * asyncore-internal.h -- private declarations shared by the library's files
 * beyond the core (core.h, which this includes): urgent data, threads,
 * timers.  Extensions declare what they share in ext.h.  Not installed.
 * Cross-file internals carry a double underscore.
 */
#ifndef ASYNCORE_INTERNAL_H
#define ASYNCORE_INTERNAL_H

#include "core.h"

/* urgent.c: EPOLLPRI side channel for handle_expt; the read dispatch
 * takes the urgent state before handle_read and dispatches it after. */
void asyncore__urgent_update(asyncore_dispatcher *d, int want);
int asyncore__urgent_pending(asyncore_dispatcher *d);
void asyncore__urgent_dispatch(asyncore_dispatcher *d);
void asyncore__urgent_free(asyncore_map *map);

/* thread.c: wake-up and call_soon_threadsafe (the map's side). */
int asyncore__thread_init(asyncore_map *map);
void asyncore__thread_loop_begin(asyncore_map *map);
void asyncore__thread_loop_end(asyncore_map *map);
int asyncore__thread_base_idle(asyncore_map *map);
void asyncore__thread_shutdown(asyncore_map *map);
int asyncore__thread_pending(asyncore_map *map);
void asyncore__thread_free(asyncore_map *map);

/* timer.c: timers on a map. */
void asyncore__timers_free(asyncore_map *map);

#endif /* ASYNCORE_INTERNAL_H */
