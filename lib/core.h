/*
 * core.h -- the core's private declarations: the dispatcher and the map,
 * references, the re-entrancy rule, and the interfaces through which the
 * extensions plug in (transports and watchers).  Names no extension:
 * doc/architecture.md draws the layers.  Not installed.  Cross-file
 * internals carry a double underscore.
 */
#ifndef ASYNCORE_CORE_H
#define ASYNCORE_CORE_H

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

/* What a dispatcher's descriptor is: a socket, or something else (a file
 * dispatcher's, which socket methods refuse).  How bytes move is its
 * transport's business (struct asyncore__transport_ops). */
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
    /* What the hook tables say, decided once (asyncore__hooks_decide):
     * they are fixed while the dispatcher uses them (dispatcher.h), and a
     * dispatch then skips urgent.c for the usual dispatcher without
     * handle_expt, and answers the predicates whose answer is known
     * without a call. */
    unsigned expt_hook : 1;       /* the handlers or defaults set one */
    unsigned readable_true : 1;   /* asyncore's default readable() */
    unsigned writable_true : 1;   /* asyncore's default writable() */
    unsigned writable_queued : 1; /* dispatcher_with_send's */
    /* What few dispatchers use, in a block of its own: NULL until one of
     * them needs it (a transport, a watcher), so a plain connection pays
     * one pointer for it all and the hot path tests just that pointer. */
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

/*
 * EXTENSIONS: transports and watchers.
 *
 * The core (this header, dispatcher.c, events.c) moves bytes of a plain
 * socket inline and knows nothing else by name.  What a few dispatchers
 * add is reached through their ext block, in two kinds:
 *
 * A TRANSPORT moves the bytes instead of send()/recv(): it may carry them
 * over a protocol of its own (a handshake, records, a shutdown) or over
 * another kind of descriptor.  One at most per dispatcher; its table:
 *
 *   send, recv     asyncore_send()/asyncore_recv() without the socket:
 *                  bytes or -1 with errno, as send(2)/recv(2).  No user
 *                  code.
 *   handshaking    (may be NULL) the socket's connect is over and
 *                  "connecting" now means the transport's own stage: the
 *                  core then skips the socket's outcome.
 *   connect_event  (may be NULL) the transport's stage of a connect, after
 *                  the socket's: ASYNCORE__CONNECT_UP, _WAITING or _FAILED
 *                  (reported by the transport through handle_error: may
 *                  run user code, may close).  The transport may drop
 *                  itself here (asyncore__transport_clear).
 *   update         (may be NULL) before interest is asked: the predicates'
 *                  answer @want, and a step of the transport's state that
 *                  follows from the dispatcher's (a handshake to begin on a
 *                  socket that is connected now).  May change connected
 *                  and connecting; runs no user code.
 *   interest       (may be NULL) PURE: what the transport needs of the
 *                  descriptor for the user's @want, EV_READ|EV_WRITE, plus
 *                  ASYNCORE__EV_PENDING when input is buffered that no
 *                  readiness will announce (the core then dispatches it
 *                  again without readiness in the next iteration).  No side
 *                  effect: it may be asked any number of times.
 *   event          (may be NULL) readiness in, readiness for the user's
 *                  hooks out; ASYNCORE__EV_CONNECT asks the core to run the
 *                  connect stage now (nothing else is dispatched then).
 *                  May run user code (a failed flush reports) and close.
 *   close          (may be NULL) asyncore_close(), before the descriptor
 *                  goes: a last word to the peer, no waiting, no user code.
 *   destroy        (may be NULL) the last release: free the state (a
 *                  transport may keep it past close for its accessors).
 *
 * A WATCHER observes a dispatcher without moving bytes (a timer on it, a
 * connect it steers, an interest it withholds).  Each has a slot of its
 * own; the slots' order (ext.h) is the order in which they are called:
 *
 *   connect_start  (may be NULL) asyncore_connect() began an attempt.
 *   connect_done   (may be NULL) a connect stage ended: @err is the
 *                  socket's outcome (0 after the transport's stage), @over
 *                  says nothing of this connect is left to wait for.
 *                  Returns 1 if the watcher took the outcome over (another
 *                  attempt follows): nothing else hears of it.  No user
 *                  code.
 *   activity       (may be NULL) a dispatch with readiness.  No user code.
 *   disarm         (may be NULL) the descriptor's interest was withdrawn
 *                  (close, a dropped socket): what belongs to the interest
 *                  goes.  No user code.
 *   close          (may be NULL) asyncore_close(): nothing of the watcher
 *                  may reach the dispatcher from now on.  No user code.
 *   destroy        (may be NULL) the last release: free the state.
 *
 * THE ORDER, for every dispatcher, written once in events.c:
 *   a dispatch:  the transport's event, then the watchers' activity, then
 *                the hooks;
 *   an attempt:  asyncore_connect() in progress: the watchers'
 *                connect_start;
 *   a connect:   the socket's outcome (unless the transport is
 *                handshaking), the watchers' connect_done (the first to
 *                take it over ends it), handle_error on failure; then the
 *                transport's connect_event, the watchers' connect_done once
 *                it is over, and handle_connect when it is up;
 *   interest:    the predicates, the withheld events, the transport's
 *                update, then its interest;
 *   close:       disarm (watchers' disarm), the watchers' close, the
 *                transport's close, the descriptor; destroy: the user's
 *                destroy hooks, the transport's destroy, the watchers'.
 * The loops that call them hold the dispatcher across each call and stop
 * at the first one that closed it (rule 1 and 3 above).
 */
#define ASYNCORE__EV_PENDING 0x4000 /* interest: dispatch again, no readiness */
#define ASYNCORE__EV_CONNECT 0x4000 /* event: run the connect stage */

enum {
    ASYNCORE__CONNECT_FAILED = -1,
    ASYNCORE__CONNECT_WAITING = 0,
    ASYNCORE__CONNECT_UP = 1
};

struct asyncore__transport_ops {
    const char *name;
    ssize_t (*send)(asyncore_dispatcher *d, const void *buf, size_t len);
    ssize_t (*recv)(asyncore_dispatcher *d, void *buf, size_t len);
    int (*handshaking)(const asyncore_dispatcher *d);
    int (*connect_event)(asyncore_dispatcher *d);
    void (*update)(asyncore_dispatcher *d, short want);
    short (*interest)(const asyncore_dispatcher *d, short want);
    short (*event)(asyncore_dispatcher *d, short what);
    void (*close)(asyncore_dispatcher *d);
    void (*destroy)(asyncore_dispatcher *d);
};

struct asyncore__watcher_ops {
    const char *name;
    void (*connect_start)(asyncore_dispatcher *d);
    int (*connect_done)(asyncore_dispatcher *d, int err, int over);
    void (*activity)(asyncore_dispatcher *d);
    void (*disarm)(asyncore_dispatcher *d);
    void (*close)(asyncore_dispatcher *d);
    void (*destroy)(asyncore_dispatcher *d);
};

/* Watcher slots per dispatcher; ext.h names them, in their order. */
#define ASYNCORE__WATCH_SLOTS 3

struct asyncore__watch {
    const struct asyncore__watcher_ops *ops; /* NULL: the slot is free */
    void *state;
};

/* A dispatcher's rarely used state (d->ext), made by asyncore__ext() on
 * first use and freed with the dispatcher. */
struct asyncore__ext {
    asyncore_dispatcher *d; /* the owner, for map->always_ready's walk */
    /* The transport under recv/send (NULL: the socket's own) and its
     * state, the transport's alone. */
    const struct asyncore__transport_ops *transport;
    void *transport_state;
    /* events.c: dispatches a transport's buffered input (interest said
     * ASYNCORE__EV_PENDING); made with the transport, freed at close. */
    struct event *redispatch;
    struct asyncore__watch watch[ASYNCORE__WATCH_SLOTS];
    /* events.c: in map->always_ready while an always-ready file is armed
     * (asyncore_file_dispatcher_new makes the block for those at once). */
    TAILQ_ENTRY(asyncore__ext) ready_link;
    /* Events a watcher keeps from libevent, whatever the predicates say
     * (EV_READ of a listener waiting for descriptors). */
    unsigned char withheld;
    /* Holds an extension keeps across frames (a look-up in flight), among
     * the ASYNCORE__HOLD_LONG units of d->refs: not the program's, so
     * asyncore_dispatcher_release() leaves them (asyncore__hold_ext). */
    unsigned ext_holds;
};

TAILQ_HEAD(asyncore__ext_list, asyncore__ext);

/* d's transport, or NULL for a socket's own send/recv. */
static inline const struct asyncore__transport_ops *
asyncore__transport(const asyncore_dispatcher *d)
{
    return d->ext != NULL ? d->ext->transport : NULL;
}

/* The state of @d's transport if it is @ops, else NULL. */
static inline void *asyncore__transport_state(const asyncore_dispatcher *d,
                                              const struct asyncore__transport_ops *ops)
{
    return d->ext != NULL && d->ext->transport == ops ? d->ext->transport_state
                                                       : NULL;
}

/* The state in @d's watcher slot @slot, or NULL. */
static inline void *asyncore__watch_state(const asyncore_dispatcher *d, int slot)
{
    return d->ext != NULL ? d->ext->watch[slot].state : NULL;
}

/* dispatcher.c: install @ops with @state as @d's transport (made ready to
 * redispatch); -1 with ENOMEM.  Clear it again (the state is the caller's
 * to free). */
int asyncore__transport_set(asyncore_dispatcher *d,
                            const struct asyncore__transport_ops *ops,
                            void *state);
void asyncore__transport_clear(asyncore_dispatcher *d);

/* dispatcher.c: fill or free watcher slot @slot; -1 with ENOMEM. */
int asyncore__watch_set(asyncore_dispatcher *d, int slot,
                        const struct asyncore__watcher_ops *ops, void *state);
void asyncore__watch_clear(asyncore_dispatcher *d, int slot);

/* Extensions' per-map slots; ext.h names them. */
#define ASYNCORE__MAP_SLOTS 1

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
    /* Extensions' per-map state (ext.h names the slots), each freed by its
     * own function when the map goes. */
    struct asyncore__map_slot {
        void *state;
        void (*free)(asyncore_map *map);
    } ext[ASYNCORE__MAP_SLOTS];
    /* urgent.c: the process that opened urgent_fd (another one is a child
     * of fork() that must not touch it). */
    pid_t urgent_pid;
    /* map.c: descriptors from this one on cannot be watched by the base's
     * backend (FD_SETSIZE under select, INT_MAX otherwise). */
    int fd_limit;
};

/* map.c */
asyncore_map *asyncore__map_get(asyncore_map *map);
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

/* An extension's hold across frames (@d has its ext block): a long hold
 * that asyncore_dispatcher_release() cannot drop for the program.
 * asyncore__ext_hold_end() gives it up without a release, when the caller's
 * own frame hold takes over before it runs hooks. */
static inline void asyncore__hold_ext(asyncore_dispatcher *d)
{
    d->ext->ext_holds++;
    asyncore__hold_long(d);
}

static inline void asyncore__ext_hold_end(asyncore_dispatcher *d)
{
    d->ext->ext_holds--;
    d->refs -= ASYNCORE__HOLD_LONG;
}

static inline void asyncore__release_ext(asyncore_dispatcher *d)
{
    d->ext->ext_holds--;
    asyncore__release_long(d);
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
void asyncore__hooks_decide(asyncore_dispatcher *d);
/* events.c: the hooks around the transport and the watchers (the order). */
void asyncore__watchers_connect_start(asyncore_dispatcher *d);
void asyncore__ext_close(asyncore_dispatcher *d);
void asyncore__ext_destroy(asyncore_dispatcher *d);

/* Hook lookup: handlers, then the class's defaults, then asyncore's. */
#define ASYNCORE__HOOK(d, name)                                            \
    ((d)->handlers->name                                                   \
         ? (d)->handlers->name                                             \
         : ((d)->defaults && (d)->defaults->name ? (d)->defaults->name     \
                                                 : asyncore_default_##name))

/* io.c: what a failed transfer means. */
int asyncore__is_disconnect(int err);

/* dispatcher.c: send without the buffered layer, the failure half. */
ssize_t asyncore__send_failed(asyncore_dispatcher *d);

/* log.c */
void asyncore__log(const asyncore_dispatcher *d, asyncore_log_type type,
                   const char *msg);

/*
 * Raw transfers, errors as -1/errno: the transport's if there is one, else
 * the socket's send/recv (MSG_NOSIGNAL: a library must not let SIGPIPE
 * kill its host, nor change its signal dispositions).  Inline: one of each
 * per echoed message.
 */
static inline ssize_t asyncore__raw_send(asyncore_dispatcher *d,
                                         const void *buf, size_t len)
{
    if (d->ext != NULL && d->ext->transport != NULL)
        return d->ext->transport->send(d, buf, len);
    return send(d->fd, buf, len, MSG_NOSIGNAL);
}

static inline ssize_t asyncore__raw_recv(asyncore_dispatcher *d, void *buf,
                                         size_t len)
{
    if (d->ext != NULL && d->ext->transport != NULL)
        return d->ext->transport->recv(d, buf, len);
    return recv(d->fd, buf, len, 0);
}

/*
 * A connected socket with nothing rare about it (no transport, no
 * watcher: no ext block): what send and recv may hand straight to the
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

#endif /* ASYNCORE_CORE_H */
