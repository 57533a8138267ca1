/*
 * events.c -- the event mapping: libevent readiness to asyncore's events,
 * and the interest set derived from readable()/writable().
 *
 * This is asyncore 3.11's handle_read_event/handle_write_event/readwrite
 * with one deliberate difference: once a hook closed the dispatcher, no
 * further hook of it runs for the readiness being dispatched.
 */
#include "config.h"

#include <errno.h>

#include "asyncore-internal.h" /* core.h, and urgent.c's side */

/* ---- the order: the transport and the watchers ------------------------ */

/*
 * Every call into a transport or a watcher goes through the loops below,
 * which keep the re-entrancy rule for them: the dispatcher is held across
 * each call, and a call that closed it ends the walk (nothing more of it
 * runs).  Their order is written here and nowhere else (core.h).
 */

/* The watchers' connect_done in slot order: 1 if one took the outcome
 * over, or the dispatcher closed. */
static int watchers_connect_done(asyncore_dispatcher *d, int err, int over)
{
    int i, taken = 0;

    asyncore__hold(d);
    for (i = 0; i < ASYNCORE__WATCH_SLOTS && !taken && !d->closed; i++) {
        const struct asyncore__watcher_ops *w = d->ext->watch[i].ops;

        if (w != NULL && w->connect_done != NULL)
            taken = w->connect_done(d, err, over);
    }
    taken |= d->closed;
    asyncore__release(d);
    return taken;
}

void asyncore__watchers_connect_start(asyncore_dispatcher *d)
{
    int i;

    if (d->ext == NULL)
        return;
    asyncore__hold(d);
    for (i = 0; i < ASYNCORE__WATCH_SLOTS && !d->closed; i++) {
        const struct asyncore__watcher_ops *w = d->ext->watch[i].ops;

        if (w != NULL && w->connect_start != NULL)
            w->connect_start(d);
    }
    asyncore__release(d);
}

static void watchers_activity(asyncore_dispatcher *d)
{
    int i;

    for (i = 0; i < ASYNCORE__WATCH_SLOTS && !d->closed; i++) {
        const struct asyncore__watcher_ops *w = d->ext->watch[i].ops;

        if (w != NULL && w->activity != NULL)
            w->activity(d);
    }
}

enum watcher_hook { W_DISARM, W_CLOSE, W_DESTROY };

/* The watchers' disarm, close or destroy, in slot order: no user code runs
 * in these, so no hold -- destroy runs on a dispatcher whose last
 * reference is gone. */
static void watchers_each(asyncore_dispatcher *d, enum watcher_hook hook)
{
    int i;

    for (i = 0; i < ASYNCORE__WATCH_SLOTS; i++) {
        const struct asyncore__watcher_ops *w = d->ext->watch[i].ops;
        void (*fn)(asyncore_dispatcher *);

        if (w == NULL)
            continue;
        fn = hook == W_DISARM  ? w->disarm
             : hook == W_CLOSE ? w->close
                               : w->destroy;
        if (fn != NULL)
            fn(d);
    }
}

/* asyncore_close(): the watchers' close, then the transport's. */
void asyncore__ext_close(asyncore_dispatcher *d)
{
    const struct asyncore__transport_ops *tp;

    watchers_each(d, W_CLOSE);
    tp = d->ext->transport;
    if (tp != NULL && tp->close != NULL)
        tp->close(d);
    if (d->ext->redispatch != NULL) {
        event_free(d->ext->redispatch);
        d->ext->redispatch = NULL;
    }
}

/* The last release: the transport's destroy, then the watchers'. */
void asyncore__ext_destroy(asyncore_dispatcher *d)
{
    const struct asyncore__transport_ops *tp = d->ext->transport;

    if (tp != NULL && tp->destroy != NULL)
        tp->destroy(d);
    watchers_each(d, W_DESTROY);
    if (d->ext->redispatch != NULL)
        event_free(d->ext->redispatch);
}

/*
 * A connect finished (write or read readiness while connecting).  The
 * socket's pending error decides: an error goes to handle_error and
 * handle_connect never runs; otherwise handle_connect runs exactly once and
 * the dispatcher becomes connected afterwards, in asyncore's order.  With a
 * transport, connected means its own stage is done too; watchers hear of
 * each stage's end (the order: core.h).
 */
void asyncore__connect_event(asyncore_dispatcher *d)
{
    const struct asyncore__transport_ops *tp = asyncore__transport(d);
    int err = 0, r;
    socklen_t len = sizeof(err);

    if (tp == NULL || tp->handshaking == NULL || !tp->handshaking(d)) {
        if (d->io_kind == ASYNCORE__IO_SOCKET &&
            getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        /* The socket's attempt is over; the whole connect too, unless a
         * transport's stage follows. */
        if (d->ext != NULL &&
            watchers_connect_done(d, err, err != 0 || tp == NULL ||
                                              tp->connect_event == NULL))
            return;
        if (err != 0) {
            d->last_error = err;
            asyncore_handle_error(d, err, "connect");
            /* The attempt is over.  Reading SO_ERROR cleared the error, so
             * if handle_error left the dispatcher open, its next readiness
             * must not be taken for a connect that succeeded. */
            d->connecting = 0;
            return;
        }
    }
    if (tp != NULL && tp->connect_event != NULL) {
        asyncore__hold(d);
        r = tp->connect_event(d);
        /* Up or failed: the connect is over for the watchers (after a
         * failure that closed, nothing of them is left to hear it). */
        if (r != ASYNCORE__CONNECT_WAITING && !d->closed)
            (void)watchers_connect_done(d, 0, 1);
        if (d->closed)
            r = ASYNCORE__CONNECT_FAILED;
        asyncore__release(d);
        if (r != ASYNCORE__CONNECT_UP)
            return;
    }
    if (!d->connect_done) {
        d->connect_done = 1;
        ASYNCORE__HOOK(d, handle_connect)(d);
        if (d->closed)
            return;
    }
    d->connected = 1;
    d->connecting = 0;
}

/* Returns 1 if handle_read ran: @d was not connecting then, so a connect
 * in progress afterwards is an attempt the hook started (write_event). */
static ASYNCORE__ALWAYS_INLINE int read_event(asyncore_dispatcher *d)
{
    if (d->accepting) {
        /* Listeners are never connected; they spawn connected sockets. */
        ASYNCORE__HOOK(d, handle_accept)(d);
        return 0;
    }
    if (!d->connected && d->connecting) {
        asyncore__connect_event(d);
        if (d->closed || !d->connected)
            return 0;
    }
    ASYNCORE__HOOK(d, handle_read)(d);
    return 1;
}

/*
 * @after_read: handle_read ran in this dispatch.  Readiness is measured
 * before any hook runs (rule 3 of asyncore-internal.h): if handle_read
 * started a connect (asyncore_connect(), asyncore_connect_host() -- whose
 * look-up evdns still owns), the write readiness reported with it belongs
 * to the socket as it was, not to the new attempt, whose outcome a later
 * dispatch reports.
 */
static ASYNCORE__ALWAYS_INLINE void write_event(asyncore_dispatcher *d,
                                                int after_read)
{
    if (d->accepting)
        return; /* a listener's write readiness means nothing */
    if (!d->connected && d->connecting) {
        if (after_read)
            return;
        asyncore__connect_event(d);
        if (d->closed || !d->connected)
            return;
    }
    ASYNCORE__HOOK(d, handle_write)(d);
}

/*
 * Decided once, when the dispatcher is made (its tables are fixed while it
 * uses them): whether urgent data has a hook to go to, and which predicates
 * are asyncore's defaults or dispatcher_with_send's writable().  Those have
 * no side effect, so they are answered without the call -- the same answer
 * for an open dispatcher, which is when they are asked.
 */
void asyncore__hooks_decide(asyncore_dispatcher *d)
{
    int (*writable)(asyncore_dispatcher *) = ASYNCORE__HOOK(d, writable);

    d->expt_hook = d->handlers->handle_expt != NULL ||
                   (d->defaults != NULL && d->defaults->handle_expt != NULL);
    d->readable_true = ASYNCORE__HOOK(d, readable) == asyncore_default_readable;
    d->writable_true = writable == asyncore_default_writable;
    d->writable_queued = writable == asyncore_with_send_writable;
}

static inline int ask_readable(asyncore_dispatcher *d)
{
    return d->readable_true || ASYNCORE__HOOK(d, readable)(d);
}

static inline int ask_writable(asyncore_dispatcher *d)
{
    if (d->writable_queued)
        return !d->connected || asyncore__queued(d) > 0;
    return d->writable_true || ASYNCORE__HOOK(d, writable)(d);
}

/* What the rare block changes: the events a watcher withholds, then what
 * the transport needs of the descriptor (its update first: the state step
 * that interest, being pure, does not take).  Buffered input that no
 * readiness will announce is dispatched in the next iteration: a zero
 * delay fires then, never in this one, so a handle_read that leaves the
 * bytes there cannot spin the loop. */
static ASYNCORE__NOINLINE short ext_interest(asyncore_dispatcher *d, short want)
{
    static const struct timeval now = { 0, 0 };
    const struct asyncore__transport_ops *tp = d->ext->transport;

    want &= (short)~d->ext->withheld;
    if (tp == NULL || d->closed)
        return want;
    if (tp->update != NULL)
        tp->update(d, want);
    if (tp->interest != NULL)
        want = tp->interest(d, want);
    if (want & ASYNCORE__EV_PENDING) {
        want &= (short)~ASYNCORE__EV_PENDING;
        if (d->ext->redispatch != NULL)
            evtimer_add(d->ext->redispatch, &now);
    }
    return want;
}

/* send.c's limit: a long send queue pauses reading, whatever readable()
 * said (it was still asked: asyncore code may count on that).  The queue's
 * evbuffer is made only when a send is refused, so the usual connection
 * answers at its first test. */
static inline int queue_full(const asyncore_dispatcher *d)
{
    return d->out != NULL && d->send_limit != 0 &&
           evbuffer_get_length(d->out) >= d->send_limit;
}

/* The predicates' answer as libevent interest; 0 once one of them closed. */
static ASYNCORE__ALWAYS_INLINE short wanted_events(asyncore_dispatcher *d)
{
    short want = ask_readable(d) ? EV_READ : 0;

    if (d->closed)
        return 0;
    if (queue_full(d))
        want = 0;
    /* Listeners never ask for write interest (asyncore's poll does not). */
    if (!d->accepting && ask_writable(d))
        want |= EV_WRITE;
    if (d->ext != NULL)
        want = ext_interest(d, want);
    return want;
}

static ASYNCORE__NOINLINE void interest_change(asyncore_dispatcher *d,
                                                short want);

/*
 * Ask the predicates and touch libevent only if the answer changed: a
 * steady connection must cost no epoll_ctl() per dispatch.
 */
static ASYNCORE__ALWAYS_INLINE void interest_update_held(asyncore_dispatcher *d)
{
    short want = wanted_events(d);

    if (d->closed)
        return;
    /* urgent.c has nothing to do for a dispatcher without handle_expt
     * that is not watched: the common case costs no call. */
    if (d->expt_hook || d->urgent_watched)
        asyncore__urgent_update(d, (want & EV_READ) != 0);
    if (want != d->armed)
        interest_change(d, want);
}

/* The transport takes the readiness it needs (a handshake, its pending
 * output) and says which hooks the rest stands for, or that its connect
 * stage runs now; then the watchers note the activity.  The dispatch holds
 * @d; one that closed gets no hook. */
static ASYNCORE__NOINLINE short ext_event(asyncore_dispatcher *d, short what)
{
    const struct asyncore__transport_ops *tp = d->ext->transport;

    if (tp != NULL && tp->event != NULL) {
        what = tp->event(d, what);
        if (what & ASYNCORE__EV_CONNECT) {
            if (!d->closed)
                asyncore__connect_event(d);
            /* Readiness that served the connect is used up; the hooks get
             * theirs in the next iteration, once the interest is the
             * user's. */
            what = 0;
        }
    }
    if (!d->closed)
        watchers_activity(d);
    return d->closed ? 0 : what;
}

/* A transport's buffered input (ASYNCORE__EV_PENDING): a dispatch without
 * readiness, which its event turns into a read if readable() still holds. */
static void redispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    asyncore_dispatcher *d = arg;

    (void)fd;
    (void)what;
    asyncore__event_cb(d->fd, 0, d);
}

/*
 * A dispatch of a dispatcher watched for urgent data (urgent.c): the
 * urgent state is taken before handle_read can read past the mark, which
 * clears it, and handle_expt runs after the other events, in asyncore's
 * order.  Out of line: the usual dispatcher has no handle_expt.
 */
static ASYNCORE__NOINLINE void dispatch_urgent(asyncore_dispatcher *d,
                                               short what)
{
    int urgent = asyncore__urgent_pending(d);

    if (read_event(d)) {
        if ((what & EV_WRITE) && !d->closed)
            write_event(d, 1);
    } else if ((what & EV_WRITE) && !d->closed) {
        write_event(d, 0);
    }
    if (urgent && !d->closed)
        asyncore__urgent_dispatch(d);
}

/*
 * The one libevent callback of every dispatcher.  A reference is held for
 * the whole dispatch so that a hook may close (and so release) the
 * dispatcher without the memory going away under us; it also makes
 * asyncore_map_free() from a hook fail with EBUSY (map.c).
 */
void asyncore__event_cb(evutil_socket_t fd, short what, void *arg)
{
    asyncore_dispatcher *d = arg;

    (void)fd;
    asyncore__hold(d);
    if (d->ext != NULL)
        what = ext_event(d, what);
    /* urgent.c: a dispatcher watched for urgent data takes the rare path. */
    if ((what & EV_READ) && d->urgent_watched) {
        dispatch_urgent(d, what);
    } else if ((what & EV_READ) && read_event(d)) {
        /* Two calls of write_event, each with its constant: no flag lives
         * across handle_read (the hot path keeps its registers). */
        if ((what & EV_WRITE) && !d->closed)
            write_event(d, 1);
    } else if ((what & EV_WRITE) && !d->closed) {
        write_event(d, 0);
    }
    /* Our hold already covers the predicates: no second one. */
    if (!d->closed && d->fd >= 0)
        interest_update_held(d);
    asyncore__release(d);
}

/*
 * Record what is armed.  map->armed counts the dispatchers whose event is
 * added to libevent: while it is not zero the base cannot be idle, which
 * lets asyncore_loop() run many iterations in one event_base_loop (loop.c);
 * when it drops to zero the loop must check for a dead wait again.
 */
static void set_armed(asyncore_dispatcher *d, short want)
{
    asyncore_map *map = d->map;

    if (!d->always_ready && !d->armed != !want) {
        if (want)
            map->armed++;
        else if (--map->armed == 0)
            asyncore__loop_recheck(map);
    }
    d->armed = want;
}

/*
 * Regular files cannot be polled; asyncore_loop() activates them instead.
 * The event is assigned (never added) so that event_active() has a base and
 * a callback; it is deleted when leaving the list so that an activation
 * still queued in this iteration does not reach a dispatcher that no
 * longer wants it, or one that closed.
 */
static void arm_always_ready(asyncore_dispatcher *d, short want)
{
    asyncore_map *map = d->map;
    struct event *ev = asyncore__event(d);

    if (want && !d->armed) {
        event_assign(ev, map->base, d->fd, want | EV_PERSIST,
                     asyncore__event_cb, d);
        TAILQ_INSERT_TAIL(&map->always_ready, d->ext, ready_link);
        asyncore__loop_recheck(map); /* loop.c activates it per iteration */
    } else if (!want && d->armed) {
        TAILQ_REMOVE(&map->always_ready, d->ext, ready_link);
        event_del(ev);
    }
    d->armed = want;
}

/*
 * A change of interest (read to read+write and back) deletes the event and
 * adds it again, which libevent's epoll backend turns into EPOLL_CTL_DEL
 * plus EPOLL_CTL_ADD.  Adding the map's bridge event with the new interest
 * first makes it one EPOLL_CTL_MOD: libevent then sees the descriptor stay
 * watched throughout, and the delete and the add that follow change nothing
 * it must tell the kernel.  (Its changelist mode would merge the calls too,
 * but is unsafe with dup()ed descriptors, which file dispatchers may get.)
 * The bridge is deleted before anything can dispatch it.  NULL if it cannot
 * be had: then the change simply costs the two calls.
 */
static struct event *bridge_add(asyncore_dispatcher *d, short want)
{
    asyncore_map *map = d->map;

    if (map->bridge == NULL &&
        (map->bridge = event_new(map->base, -1, 0, asyncore__event_cb, d)) == NULL)
        return NULL;
    event_assign(map->bridge, map->base, d->fd, want | EV_PERSIST,
                 asyncore__event_cb, d);
    return event_add(map->bridge, NULL) == 0 ? map->bridge : NULL;
}

static void arm(asyncore_dispatcher *d, short want)
{
    struct event *ev = asyncore__event(d);
    struct event *bridge = NULL;

    if (d->armed && want)
        bridge = bridge_add(d, want);
    if (d->armed)
        event_del(ev);
    if (want) {
        event_assign(ev, d->map->base, d->fd, want | EV_PERSIST,
                     asyncore__event_cb, d);
        if (event_add(ev, NULL) < 0) {
            d->last_error = errno ? errno : EINVAL;
            if (bridge != NULL)
                event_del(bridge);
            set_armed(d, 0);
            asyncore_handle_error(d, d->last_error, "event_add");
            return;
        }
    }
    if (bridge != NULL)
        event_del(bridge);
    set_armed(d, want);
}

/* The interest changed: arm the new set (the rare path of a dispatch). */
static ASYNCORE__NOINLINE void interest_change(asyncore_dispatcher *d,
                                                short want)
{
    if (d->always_ready)
        arm_always_ready(d, want);
    else
        arm(d, want);
}

/*
 * readable() and writable() are hooks and may close the dispatcher.  Called
 * from a method (create_socket, set_socket, listen, connect, a buffered
 * send) no dispatch holds it, so without this hold asyncore_close() would
 * free it under the predicate's caller.  Callers must not touch @d after
 * this returns unless they hold it themselves.
 */
void asyncore__interest_update(asyncore_dispatcher *d)
{
    if (d->closed || d->fd < 0)
        return;
    asyncore__hold(d);
    interest_update_held(d);
    asyncore__release(d);
}

void asyncore__interest_disarm(asyncore_dispatcher *d)
{
    if (d->urgent_watched)
        asyncore__urgent_update(d, 0);
    if (d->armed && d->always_ready)
        TAILQ_REMOVE(&d->map->always_ready, d->ext, ready_link);
    /* Also cancels an always-ready activation still queued. */
    if (d->armed)
        event_del(asyncore__event(d));
    set_armed(d, 0);
    /* What a watcher keeps of the interest goes with it. */
    if (d->ext != NULL)
        watchers_each(d, W_DISARM);
}

/* ---- installing extensions -------------------------------------------- */

int asyncore__transport_set(asyncore_dispatcher *d,
                            const struct asyncore__transport_ops *ops,
                            void *state)
{
    struct asyncore__ext *x = asyncore__ext(d);

    if (x == NULL)
        return -1;
    /* Only an interest can ask for a redispatch. */
    if (ops->interest != NULL && x->redispatch == NULL &&
        (x->redispatch = evtimer_new(d->map->base, redispatch_cb, d)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    x->transport = ops;
    x->transport_state = state;
    return 0;
}

void asyncore__transport_clear(asyncore_dispatcher *d)
{
    if (d->ext == NULL)
        return;
    d->ext->transport = NULL;
    d->ext->transport_state = NULL;
}

int asyncore__watch_set(asyncore_dispatcher *d, int slot,
                        const struct asyncore__watcher_ops *ops, void *state)
{
    struct asyncore__ext *x = asyncore__ext(d);

    if (x == NULL)
        return -1;
    x->watch[slot].ops = ops;
    x->watch[slot].state = state;
    return 0;
}

void asyncore__watch_clear(asyncore_dispatcher *d, int slot)
{
    if (d->ext == NULL)
        return;
    d->ext->watch[slot].ops = NULL;
    d->ext->watch[slot].state = NULL;
}
