/*
 * asyncore/common.h -- shared declarations of libasyncore.
 *
 * Conventions used by every public function of the library:
 *  - Functions that can fail return -1 (or NULL) and set errno; they never
 *    print, abort or change signal dispositions.
 *  - A NULL map argument means the default map (asyncore_map_default()).
 *  - A NULL dispatcher or handler-table argument fails with EINVAL.
 *  - A map and its dispatchers belong to one thread.  Nothing is thread-safe
 *    but asyncore_map_call_soon_threadsafe() and asyncore_map_wake()
 *    (asyncore/thread.h).
 */
#ifndef ASYNCORE_COMMON_H
#define ASYNCORE_COMMON_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Symbols of the public API; everything else is hidden (-fvisibility). */
#if defined(ASYNCORE_BUILDING) && defined(__GNUC__)
#define ASYNCORE_API __attribute__((visibility("default")))
#else
#define ASYNCORE_API
#endif

#if defined(__GNUC__)
#define ASYNCORE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ASYNCORE_PRINTF(f, a)
#endif

struct event_base;

/** A socket map: the set of dispatchers served by one libevent event_base. */
typedef struct asyncore_map asyncore_map;

/** One socket (or file) and its event, driven by a table of handlers. */
typedef struct asyncore_dispatcher asyncore_dispatcher;

/**
 * Log types, as the strings asyncore's log_info() takes.  They are bits so
 * that a set of them can be ignored (asyncore's ignore_log_types).
 */
typedef enum asyncore_log_type {
    ASYNCORE_LOG_INFO = 1,
    ASYNCORE_LOG_WARNING = 2,
    ASYNCORE_LOG_ERROR = 4
} asyncore_log_type;

/**
 * A log sink.  @d is the dispatcher the message is about (NULL for none),
 * @msg one line without its newline, @arg the pointer given with the sink.
 * The default sink writes "TYPE: MSG\n" to stderr.
 */
typedef void (*asyncore_log_fn)(const asyncore_dispatcher *d,
                                asyncore_log_type type, const char *msg,
                                void *arg);

/** "info", "warning" or "error"; "unknown" for anything else. */
ASYNCORE_API const char *asyncore_log_type_name(asyncore_log_type type);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_COMMON_H */
