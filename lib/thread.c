/*
 * thread.c -- one map per thread: a thread-safe wake-up and callback queue
 * on each map, and SO_REUSEPORT for listeners that share a port.
 *
 * Each map has an eventfd and a mutex-protected FIFO of callbacks.  Other
 * threads append to the FIFO and write the eventfd; a persistent libevent
 * event on the map's base, added only while asyncore_loop() runs, reads it
 * and runs the callbacks in the loop's thread.  This needs nothing from
 * libevent's own threading support (evthread_use_pthreads()), so it works on
 * any base, including a caller's that was never made thread-aware: the only
 * state other threads touch is the FIFO, under our mutex, and the eventfd.
 *
 * The event is not left added outside asyncore_loop() so that a caller
 * running its own event_base_dispatch() on a shared base still sees it
 * return when its own events are done.
 *
 * A child of fork() shares the eventfd with its parent: a wake-up of one
 * could be read by the other.  The child's copy of the map therefore gets
 * an eventfd of its own when its loop first starts (as urgent.c does for
 * its epoll instance).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "asyncore-internal.h"

struct call {
    struct call *next;
    asyncore_map_callback cb;
    void *arg;
};

struct asyncore__thread {
    pthread_mutex_t lock;
    struct call *head;   /* the FIFO, under lock */
    struct call **tail;  /* under lock */
    int notified;        /* the eventfd was written since the last drain;
                            under lock, so N callbacks cost one write */
    int fd;              /* the eventfd; replaced only after fork(), under
                            lock, and read atomically by asyncore_map_wake */
    pid_t pid;           /* the process that opened fd */
    struct event *ev;    /* EV_READ|EV_PERSIST on fd; the map's thread only */
    int added;           /* ev is added (asyncore_loop is running) */
};

static int load_fd(struct asyncore__thread *t)
{
    return __atomic_load_n(&t->fd, __ATOMIC_RELAXED);
}

/* Take the whole FIFO, leaving it empty; the caller runs it unlocked. */
static struct call *take_all(struct asyncore__thread *t)
{
    struct call *list;

    pthread_mutex_lock(&t->lock);
    list = t->head;
    t->head = NULL;
    t->tail = &t->head;
    t->notified = 0;
    pthread_mutex_unlock(&t->lock);
    return list;
}

/* Run and free a list taken from the FIFO; returns how many ran. */
static size_t run_list(asyncore_map *map, struct call *c)
{
    struct call *next;
    size_t n = 0;

    for (; c != NULL; c = next) {
        next = c->next;
        c->cb(map, c->arg);
        free(c);
        n++;
    }
    return n;
}

/* Empty the eventfd.  EAGAIN (already empty) is the normal outcome of a
 * wake-up that was coalesced into an earlier read. */
static void drain_fd(int fd)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

/*
 * The eventfd is read BEFORE the FIFO is taken: a thread that queues after
 * our read either finds notified still set (and its callback is in the list
 * we take) or finds it cleared by take_all and writes the eventfd again, so
 * no callback can be left queued with the eventfd empty.  Callbacks queued
 * while this batch runs wait for the next iteration.
 */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    asyncore_map *map = arg;

    (void)what;
    drain_fd((int)fd);
    run_list(map, take_all(map->thread));
}

static int write_fd(int fd)
{
    uint64_t one = 1;

    for (;;) {
        if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
            return 0;
        if (errno == EINTR)
            continue;
        /* EAGAIN: the counter is about to overflow, so it is certainly
         * readable already and the loop will wake. */
        return errno == EAGAIN ? 0 : -1;
    }
}

int asyncore__thread_init(asyncore_map *map)
{
    struct asyncore__thread *t = calloc(1, sizeof(*t));
    int err;

    if (t == NULL)
        return -1;
    t->tail = &t->head;
    t->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->fd < 0 || !asyncore__fd_watchable(map, t->fd)) {
        err = errno;
        if (t->fd >= 0)
            close(t->fd);
        free(t);
        errno = err;
        return -1;
    }
    t->pid = getpid();
    t->ev = event_new(map->base, t->fd, EV_READ | EV_PERSIST, wake_cb, map);
    err = t->ev == NULL ? ENOMEM : pthread_mutex_init(&t->lock, NULL);
    if (err != 0) {
        if (t->ev != NULL)
            event_free(t->ev);
        close(t->fd);
        free(t);
        errno = err;
        return -1;
    }
    map->thread = t;
    return 0;
}

/*
 * In a child of fork(): give the map an eventfd of its own.  Callbacks the
 * parent had queued are in the child's copy of the queue too; they run here
 * as they would in the parent.  If no eventfd can be had, the inherited one
 * is kept: wake-ups may then be lost to the other process, not callbacks.
 */
static void thread_after_fork(asyncore_map *map, struct asyncore__thread *t)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), old;

    if (fd < 0) {
        /* The map's own sink: asyncore__log(NULL, ...) would go to the
         * default map, which this thread may not own. */
        static const char msg[] = "cannot make a wake-up descriptor after fork";

        if (map->log_fn != NULL)
            map->log_fn(NULL, ASYNCORE_LOG_ERROR, msg, map->log_arg);
        else
            fprintf(stderr, "%s: %s\n",
                    asyncore_log_type_name(ASYNCORE_LOG_ERROR), msg);
        return;
    }
    event_assign(t->ev, map->base, fd, EV_READ | EV_PERSIST, wake_cb, map);
    pthread_mutex_lock(&t->lock);
    old = t->fd;
    __atomic_store_n(&t->fd, fd, __ATOMIC_RELAXED);
    t->pid = getpid();
    t->notified = t->head != NULL && write_fd(fd) == 0;
    pthread_mutex_unlock(&t->lock);
    close(old);
}

/* asyncore_loop() is starting or ending in the map's thread. */
void asyncore__thread_loop_begin(asyncore_map *map)
{
    struct asyncore__thread *t = map->thread;

    if (t->pid != getpid())
        thread_after_fork(map, t);

    /* Should the add fail, callbacks still run at the next wake-up of
     * another cause or at free; nothing is lost. */
    t->added = event_add(t->ev, NULL) == 0;
}

void asyncore__thread_loop_end(asyncore_map *map)
{
    struct asyncore__thread *t = map->thread;

    if (t->added)
        event_del(t->ev);
    t->added = 0;
}

/* True if nothing but our own wake-up event is pending or active on the
 * base: the loop could then only be woken by another thread, which
 * asyncore_loop() does not count on (EDEADLK, as without threads). */
int asyncore__thread_base_idle(asyncore_map *map)
{
    int n = event_base_get_num_events(map->base, EVENT_BASE_COUNT_ADDED |
                                                     EVENT_BASE_COUNT_ACTIVE |
                                                     EVENT_BASE_COUNT_VIRTUAL);

    return n <= (map->thread->added ? 1 : 0);
}

/*
 * asyncore_map_free(): callbacks still queued run now, in this thread,
 * while the map is whole (map.c sets map->running around it, which makes
 * asyncore_loop() and asyncore_map_free() on it fail with EBUSY inside
 * them, as inside the loop).  Destroy hooks of the dispatchers closed here
 * may queue more, so repeat until both the queue and the map are empty;
 * map.c repeats this again after the timers' free hooks.
 */
void asyncore__thread_shutdown(asyncore_map *map)
{
    struct call *list;

    while ((list = take_all(map->thread)) != NULL) {
        run_list(map, list);
        asyncore_close_all(map);
    }
}

/* Whether callbacks are queued (map.c repeats its shutdown steps until
 * none is). */
int asyncore__thread_pending(asyncore_map *map)
{
    struct asyncore__thread *t = map->thread;
    int pending;

    pthread_mutex_lock(&t->lock);
    pending = t->head != NULL;
    pthread_mutex_unlock(&t->lock);
    return pending;
}

void asyncore__thread_free(asyncore_map *map)
{
    struct asyncore__thread *t = map->thread;

    if (t == NULL)
        return;
    event_free(t->ev);
    close(t->fd);
    pthread_mutex_destroy(&t->lock);
    free(t);
    map->thread = NULL;
}

/* ---- the thread-safe entry points ------------------------------------------ */

int asyncore_map_call_soon_threadsafe(asyncore_map *map,
                                      asyncore_map_callback cb, void *arg)
{
    struct asyncore__thread *t;
    struct call *c;

    if (map == NULL || cb == NULL) {
        errno = EINVAL;
        return -1;
    }
    c = malloc(sizeof(*c));
    if (c == NULL) {
        errno = ENOMEM;
        return -1;
    }
    c->next = NULL;
    c->cb = cb;
    c->arg = arg;
    t = map->thread;
    pthread_mutex_lock(&t->lock);
    *t->tail = c;
    t->tail = &c->next;
    if (!t->notified) {
        /* A failed write (which eventfd does not do short of a bad
         * descriptor) leaves notified clear: the next call tries again. */
        t->notified = write_fd(load_fd(t)) == 0;
    }
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int asyncore_map_wake(asyncore_map *map)
{
    if (map == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* No lock: a bare write keeps this async-signal-safe.  An extra
     * readable eventfd costs at most one early return from a wait. */
    return write_fd(load_fd(map->thread));
}

/* ---- SO_REUSEPORT ---------------------------------------------------------- */

int asyncore_set_reuse_port(asyncore_dispatcher *d)
{
    int on = 1;

    if (asyncore__check(d) < 0)
        return -1;
    if (d->fd < 0 || d->io_kind != ASYNCORE__IO_SOCKET) {
        errno = ENOTSOCK;
        return -1;
    }
#ifdef SO_REUSEPORT
    return setsockopt(d->fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
#else
    (void)on;
    errno = ENOPROTOOPT;
    return -1;
#endif
}
