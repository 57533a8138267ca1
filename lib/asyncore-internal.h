/*
 * asyncore-internal.h -- private declarations shared by the library's files.
 * Not installed.  Cross-file internals carry a double underscore.
 */
#ifndef ASYNCORE_INTERNAL_H
#define ASYNCORE_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "asyncore.h"

/*
 * THE RE-ENTRANCY RULE -- read this before calling user code.
 *
 * User code is every hook, predicate (readable/writable), destroy hook,
 * free hook (of a reference, a producer, a timer), producer more(), timer
 * callback, call_soon callback and log function.  It may do anything:
 * close, release or free what we are working on (its dispatcher, another
 * one, its timer, its map), re-enter the library through any public entry
 * point, and push or discard what we are in the middle of sending.  So
 * every path that runs user code follows three rules:
 *
 *  1. Hold what you touch across the call -- one pattern everywhere:
 *
 *         asyncore__hold(d);
 *         hook(d);                 (or anything that may run one)
 *         if (!d->closed) ...;     (rule 3)
 *         asyncore__release(d);    (may run the destroy hooks: d is gone)
 *
 *     The dispatch does it once for all its hooks; asyncore_handle_close()
 *     and asyncore_handle_error() for theirs; a method that runs a
 *     predicate or a hook, for its call.  This transient hold also tells
 *     asyncore_map_free() that user code of the map is on the stack: it
 *     fails with EBUSY instead of freeing the base under a running
 *     libevent callback (holds that outlive a frame use
 *     asyncore__hold_long() and do not count).  A callback without a
 *     dispatcher (a timer) marks its map with asyncore__map_enter()/
 *     asyncore__map_leave() instead.  What is read after the release (a
 *     value of the dispatcher, errno) is copied to a local before the
 *     call: after the release, the pointer may be gone.
 *  2. Never call user code from inside a libevent buffer operation:
 *     evbuffer_drain/pullup/free run the cleanup callbacks of references,
 *     and evbuffer is not re-entrant (libevent-notes).  Cleanup callbacks
 *     only queue the release; the queue runs after the evbuffer call has
 *     returned (chat.c, run_releases).
 *  3. Re-check state after every call: closed (d->closed) -- no hook runs
 *     on a closed dispatcher, nothing is queued on it -- and what the call
 *     may have replaced: readiness measured before a hook that started a
 *     connect (events.c, write_event's after_read), an output queue
 *     dropped under a send or a producer (chat.c's out_gen).
 *
 * A public entry point reached from user code is itself such a path: it
 * holds its dispatcher (or works only on copies) before it can run a hook.
 */

/* The hot path of a dispatch is a handful of tests; the compiler must not
 * fold the rare paths into it (their register saves would cost every
 * dispatch) nor keep its small steps out of line. */
#if defined(__GNUC__)
#define ASYNCORE__NOINLINE __attribute__((noinline))
#define ASYNCORE__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ASYNCORE__NOINLINE
#define ASYNCORE__ALWAYS_INLINE inline
#endif

/* How a dispatcher moves bytes: sockets use recv/send, files read/write. */
enum asyncore__io_kind { ASYNCORE__IO_SOCKET = 0, ASYNCORE__IO_FILE = 1 };

struct asyncore_dispatcher {
    asyncore_map *map;
    const asyncore_handlers *handlers;
    const asyncore_handlers *defaults; /* the class's, may be NULL */
    void *user_data;
    struct evbuffer *out;              /* dispatcher_with_send's queue */
    TAILQ_ENTRY(asyncore_dispatcher) link; /* in map->dispatchers while open */
    int fd;
    int refs;           /* the map's (until close), hooks', holders' */
    int last_error;
    /* send.c: reading pauses while this many bytes or more are queued;
     * 0 for never.  32 bits keep the struct at its size (larger limits
     * are clamped: a 4 GiB queue is no limit in practice). */
    uint32_t send_limit;
    /* Narrow on purpose, for the same reason: AF_* values are small, and
     * -1 is "no socket". */
    signed char family;
    unsigned char armed; /* EV_READ|EV_WRITE currently added to libevent */
    unsigned char ignore_log;
    unsigned char addrlen; /* of asyncore's addr, 0 for none; <= 128 */
    unsigned connected : 1;
    unsigned accepting : 1;
    unsigned connecting : 1;
    unsigned closed : 1;
    unsigned connect_done : 1; /* handle_connect ran for this connection */
    unsigned buffered : 1;     /* dispatcher_with_send */
    unsigned io_kind : 1;      /* enum asyncore__io_kind */
    unsigned always_ready : 1; /* regular file: cannot be polled */
    unsigned urgent_watched : 1;
    unsigned has_area : 1;
    /* Closed but held: on map->held, so that asyncore_map_free() can
     * detach it (d->map = NULL) before the map goes. */
    unsigned held_closed : 1;
    /* file.c: a file dispatcher over a socket (writes use send()). */
    unsigned file_socket : 1;
    /* What the hook tables say, decided once (asyncore__hooks_resolve):
     * they are fixed while the dispatcher uses them (dispatcher.h), and a
     * dispatch then skips urgent.c for the usual dispatcher without
     * handle_expt, and answers the predicates whose answer is known
     * without a call. */
    unsigned expt_hook : 1;       /* the handlers or defaults set one */
    unsigned readable_true : 1;   /* asyncore's default readable() */
    unsigned writable_true : 1;   /* asyncore's default writable() */
    unsigned writable_queued : 1; /* dispatcher_with_send's */
    /* What few dispatchers use, in a block of its own: NULL until one of
     * them needs it, so a plain connection pays one pointer for it all and
     * the hot path tests just that pointer. */
    struct asyncore__ext *ext;
    /* asyncore's addr (asyncore__addr): an IPv4 one (or shorter) in place,
     * a longer one in a block of its own -- a separate allocation per
     * accepted connection would cost a heap chunk of its own. */
    union {
        struct sockaddr_in in;
        struct sockaddr *heap;
    } addr;
    /* The struct event (event_get_struct_event_size() bytes), then the
     * inline area, follow in the same allocation. */
};

TAILQ_HEAD(asyncore__dispatcher_list, asyncore_dispatcher);

/* A dispatcher's rarely used state (d->ext), made by asyncore__ext() on
 * first use and freed with the dispatcher. */
struct asyncore__ext {
    asyncore_dispatcher *d; /* the owner, for map->always_ready's walk */
    /* timeout.c: connect/idle timeouts, NULL until one is set. */
    struct asyncore__timeouts *timeouts;
    /* resolve.c: a connect by host name, from the look-up until an attempt
     * at one of its addresses succeeded or every one failed; else NULL. */
    struct asyncore__resolve *resolve;
    /* tls.c: the TLS transport under recv/send, NULL for plain sockets. */
    struct asyncore__tls *tls;
    /* defaults.c: the default handle_accept's back-off after EMFILE and the
     * like -- a pending one-shot timer that gives the read interest back
     * (NULL otherwise; cancelled by asyncore__interest_disarm). */
    asyncore_timer *accept_backoff;
    /* events.c: in map->always_ready while an always-ready file is armed
     * (asyncore_file_dispatcher_new makes the block for those at once). */
    TAILQ_ENTRY(asyncore__ext) ready_link;
    unsigned accept_paused : 1; /* read interest withheld until it fires */
    unsigned accept_burst : 1;  /* a failure was logged; no accept since */
};

TAILQ_HEAD(asyncore__ext_list, asyncore__ext);

/* A member of d's block, or NULL (0) without one. */
#define ASYNCORE__EXT(d, member) ((d)->ext != NULL ? (d)->ext->member : 0)

struct asyncore_map {
    struct event_base *base;
    int own_base;
    int running;          /* asyncore_loop() is on the stack */
    int stop;             /* asyncore_loop_stop() was asked */
    int reevaluate;
    unsigned ignore_log;  /* default for new dispatchers */
    size_t count;         /* open dispatchers with a descriptor */
    size_t armed;         /* dispatchers whose event is added to libevent */
    int running_on;       /* loop.c: in one event_base_loop of many turns */
    int busy;             /* timer callbacks on the stack (timer.c):
                           * asyncore_map_free() is EBUSY meanwhile */
    struct asyncore__dispatcher_list dispatchers;
    /* Closed dispatchers still held, linked through d->link: detached
     * (d->map = NULL) by asyncore_map_free(). */
    struct asyncore__dispatcher_list held;
    struct asyncore__ext_list always_ready; /* their blocks, in fact */
    struct event *timer;  /* bounds one loop iteration */
    struct event *bridge; /* events.c: holds a descriptor while its
                           * dispatcher's event is re-armed; NULL until used */
    /* timer.c: pending timers (zeroed = empty), freed by map_free. */
    LIST_HEAD(asyncore__timer_list, asyncore_timer) timers;
    asyncore_log_fn log_fn;
    void *log_arg;
    /* Urgent-data side channel (urgent.c). */
    int urgent_fd;
    struct event *urgent_ev;
    size_t urgent_count;
    /* thread.c: call_soon_threadsafe queue and wake-up descriptor. */
    struct asyncore__thread *thread;
    /* resolve.c: the resolver (NULL until first used) and the look-ups
     * evdns has not reported back yet, cancelled ones included. */
    struct evdns_base *dns;
    struct asyncore__resolve *lookups;
    /* urgent.c: the process that opened urgent_fd (another one is a child
     * of fork() that must not touch it). */
    pid_t urgent_pid;
    /* map.c: descriptors from this one on cannot be watched by the base's
     * backend (FD_SETSIZE under select, INT_MAX otherwise). */
    int fd_limit;
};

/* map.c */
asyncore_map *asyncore__map_resolve(asyncore_map *map);
int asyncore__fd_watchable(const asyncore_map *map, int fd);
void asyncore__map_attach(asyncore_map *map, asyncore_dispatcher *d);
void asyncore__map_detach(asyncore_map *map, asyncore_dispatcher *d);

/* dispatcher.c */
struct event *asyncore__event(asyncore_dispatcher *d);
void asyncore__destroy(asyncore_dispatcher *d);
int asyncore__adopt_fd(asyncore_dispatcher *d, int fd, int family);
void asyncore__drop_socket(asyncore_dispatcher *d);
int asyncore__set_addr(asyncore_dispatcher *d, const struct sockaddr *sa,
                       socklen_t len);
struct asyncore__ext *asyncore__ext(asyncore_dispatcher *d);

/* asyncore's addr, or NULL: where asyncore__set_addr() put it. */
static inline const struct sockaddr *asyncore__addr(const asyncore_dispatcher *d)
{
    if (d->addrlen == 0)
        return NULL;
    if (d->addrlen > sizeof(d->addr.in))
        return d->addr.heap;
    return (const struct sockaddr *)&d->addr.in;
}

/* Common argument check of methods: 0, or -1 with EINVAL/EBADF.  Inline:
 * asyncore_send() and asyncore_recv() run it on every round trip. */
static inline int asyncore__check(const asyncore_dispatcher *d)
{
    if (d == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (d->closed) {
        errno = EBADF;
        return -1;
    }
    return 0;
}

/* dispatcher_with_send's queue length, whether or not the dispatcher is
 * open (asyncore_send_pending() says 0 once it closed). */
static inline size_t asyncore__queued(const asyncore_dispatcher *d)
{
    return d->out == NULL ? 0 : evbuffer_get_length(d->out);
}

/*
 * References: inline, as every dispatch and every buffered send takes one;
 * the last release of a closed dispatcher destroys it (dispatcher.c).
 *
 * d->refs counts two kinds in one int.  The low 16 bits are the library's
 * own holds -- the map's (until close), and the transient ones of a library
 * frame on the stack around user code (asyncore__hold: a dispatch, a
 * predicate, a hook called by a method).  Holds that outlive a frame --
 * the program's (asyncore_dispatcher_hold) and a look-up's in flight --
 * count in units of ASYNCORE__HOLD_LONG.  So a map can tell, without a
 * counter on the hot path, whether user code of one of its dispatchers is
 * on the stack (map.c, asyncore_map_free: EBUSY).
 */
#define ASYNCORE__HOLD_LONG (1 << 16)
#define ASYNCORE__HOLDS_INSIDE(d) ((d)->refs & (ASYNCORE__HOLD_LONG - 1))

static inline void asyncore__hold(asyncore_dispatcher *d)
{
    d->refs++;
}

static inline void asyncore__release(asyncore_dispatcher *d)
{
    if (--d->refs <= 0)
        asyncore__destroy(d);
}

static inline void asyncore__hold_long(asyncore_dispatcher *d)
{
    d->refs += ASYNCORE__HOLD_LONG;
}

static inline void asyncore__release_long(asyncore_dispatcher *d)
{
    d->refs -= ASYNCORE__HOLD_LONG - 1;
    asyncore__release(d);
}

/* Rule 1 for a map: a callback that libevent runs without a dispatcher to
 * hold (a timer) marks the map in use while user code runs, so that a
 * map_free from inside fails with EBUSY even when the program runs the
 * base itself. */
static inline void asyncore__map_enter(asyncore_map *map)
{
    map->busy++;
}

static inline void asyncore__map_leave(asyncore_map *map)
{
    map->busy--;
}

/* loop.c: an iteration must run its own checks before the next wait. */
void asyncore__loop_recheck(asyncore_map *map);

/* events.c: the event mapping and the interest set. */
void asyncore__event_cb(evutil_socket_t fd, short what, void *arg);
void asyncore__interest_update(asyncore_dispatcher *d);
void asyncore__interest_disarm(asyncore_dispatcher *d);
void asyncore__connect_event(asyncore_dispatcher *d);
void asyncore__hooks_resolve(asyncore_dispatcher *d);

/* Hook lookup: handlers, then the class's defaults, then asyncore's. */
#define ASYNCORE__HOOK(d, name)                                            \
    ((d)->handlers->name                                                   \
         ? (d)->handlers->name                                             \
         : ((d)->defaults && (d)->defaults->name ? (d)->defaults->name     \
                                                 : asyncore_default_##name))

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

/* io.c: what a failed transfer means. */
int asyncore__is_disconnect(int err);

/* dispatcher.c: send without the buffered layer, the failure half. */
ssize_t asyncore__send_failed(asyncore_dispatcher *d);

/* log.c */
void asyncore__log(const asyncore_dispatcher *d, asyncore_log_type type,
                   const char *msg);

/* timer.c and timeout.c: timers on a map, per-dispatcher timeouts. */
void asyncore__timers_free(asyncore_map *map);
void asyncore__timeouts_free(asyncore_dispatcher *d);
void asyncore__timeout_activity(asyncore_dispatcher *d);
void asyncore__timeout_connect_start(asyncore_dispatcher *d);
void asyncore__timeout_connect_done(asyncore_dispatcher *d);

/* resolve.c: connect by host name through evdns, without blocking. */
int asyncore__resolve_is_name(const char *host);
int asyncore__resolve_connect(asyncore_dispatcher *d, const char *host,
                              unsigned port);
int asyncore__resolve_connect_event(asyncore_dispatcher *d, int err);
void asyncore__resolve_cancel(asyncore_dispatcher *d);
void asyncore__resolve_map_free(asyncore_map *map);

/* tls.c: the TLS transport.  io.c sends and receives through it, events.c
 * lets it drive the handshake and map readiness and interest, dispatcher.c
 * closes and frees it. */
ssize_t asyncore__tls_send(asyncore_dispatcher *d, const void *buf, size_t len);
ssize_t asyncore__tls_recv(asyncore_dispatcher *d, void *buf, size_t len);
int asyncore__tls_handshaking(const asyncore_dispatcher *d);
int asyncore__tls_connect_event(asyncore_dispatcher *d);
short asyncore__tls_interest(asyncore_dispatcher *d, short want);
short asyncore__tls_event(asyncore_dispatcher *d, short what);
void asyncore__tls_close(asyncore_dispatcher *d);
void asyncore__tls_free(asyncore_dispatcher *d);

/*
 * A dispatcher class that buffers input or queues output of its own
 * (chat.c) registers how a transport switch (tls.c: starting or stopping
 * TLS on a live connection) reaches those buffers; neither file knows the
 * other's state.  @drop_input: input read before the switch is dropped, and
 * no further record of it is delivered (the class's record-cutting loop
 * stops).  @mark_output: put a mark behind the output queued now and return
 * 1, or return 0 if nothing is queued (no mark), or -1 (ENOMEM); when the
 * class's sending reaches the mark, or drops its queue with the mark in it,
 * it calls asyncore__output_drained().  Neither runs user code.
 */
struct asyncore__buffers_ops {
    const asyncore_handlers *defaults; /* the class's table: d->defaults */
    void (*drop_input)(asyncore_dispatcher *d);
    int (*mark_output)(asyncore_dispatcher *d);
};
void asyncore__buffers_register(const struct asyncore__buffers_ops *ops);
void asyncore__output_drained(asyncore_dispatcher *d);

/*
 * Raw transfers by io kind, errors as -1/errno.  Sockets use send/recv
 * (MSG_NOSIGNAL: a library must not let SIGPIPE kill its host, nor change
 * its signal dispositions); file dispatchers use read/write, as asyncore's
 * file_wrapper does, with SIGPIPE kept from the process as well (file.c);
 * TLS dispatchers go through their transport (tls.c), which carries
 * plaintext.  Inline: one of each per echoed message.
 */
ssize_t asyncore__file_write(asyncore_dispatcher *d, const void *buf,
                             size_t len);

static inline ssize_t asyncore__raw_send(asyncore_dispatcher *d,
                                         const void *buf, size_t len)
{
    if (d->io_kind == ASYNCORE__IO_FILE) /* file.c: no SIGPIPE either */
        return asyncore__file_write(d, buf, len);
    if (d->ext != NULL && d->ext->tls != NULL) /* tls.c: plaintext in */
        return asyncore__tls_send(d, buf, len);
    return send(d->fd, buf, len, MSG_NOSIGNAL);
}

static inline ssize_t asyncore__raw_recv(asyncore_dispatcher *d, void *buf,
                                         size_t len)
{
    if (d->io_kind == ASYNCORE__IO_FILE)
        return read(d->fd, buf, len);
    if (d->ext != NULL && d->ext->tls != NULL)
        return asyncore__tls_recv(d, buf, len);
    return recv(d->fd, buf, len, 0);
}

/*
 * A connected socket with nothing rare about it (no TLS, timeouts or
 * look-up: no ext block): what send and recv may hand straight to the
 * kernel.  The three flags share a word, so the compiler makes them one
 * masked test; anything else takes the checked path, which is the same
 * code as before the shortcut.
 */
static inline int asyncore__plain_socket(const asyncore_dispatcher *d)
{
    return d->connected && !d->closed && d->io_kind == ASYNCORE__IO_SOCKET &&
           d->ext == NULL && d->fd >= 0;
}

/* asyncore's dispatcher.send(): the socket's answer mapped to hooks.  The
 * success path is inline; a failure may run hooks (asyncore__send_failed). */
static inline ssize_t asyncore__send_plain(asyncore_dispatcher *d,
                                           const void *buf, size_t len)
{
    ssize_t n;

    if (d->fd < 0) {
        errno = ENOTSOCK;
        return -1;
    }
    n = asyncore__raw_send(d, buf, len);
    return n >= 0 ? n : asyncore__send_failed(d);
}

#endif /* ASYNCORE_INTERNAL_H */
