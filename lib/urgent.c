/*
 * urgent.c -- urgent (TCP out-of-band) data for handle_expt.
 *
 * libevent 2.1 has no priority-band event, and a lone MSG_OOB byte wakes
 * none of its backends (poll(2) reports only POLLPRI).  Each map therefore
 * keeps a private epoll instance watching EPOLLPRI for the dispatchers that
 * have a handle_expt hook and are readable; libevent watches that epoll
 * descriptor for EV_READ like any other, so this works under every backend.
 * Edge-triggered registration keeps an unread urgent byte, or a hang-up
 * (always reported by epoll), from waking the loop again and again.
 *
 * Urgent data that arrives with normal data is the socket's read dispatch
 * business instead (events.c): reading normal data past the urgent mark
 * clears the socket's urgent state, so handle_read would erase what this
 * channel had yet to see.  The read dispatch takes the urgent state before
 * handle_read runs (asyncore__urgent_pending) and runs handle_expt after
 * handle_read and handle_write, in asyncore's order; this channel then
 * leaves such a socket to it and serves lone urgent bytes, which do not
 * make a socket readable.
 *
 * An epoll instance is shared with the children of fork(): a child that
 * deleted its copies of the sockets from it (asyncore_close_all() after
 * event_reinit()) would silence the parent's urgent data, and a child's
 * loop could take the parent's events.  So the first use of the channel in
 * another process gives it an instance of its own (urgent_after_fork).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "asyncore-internal.h"

/* At most this many urgent events are served per wake-up, to stay fair. */
#define URGENT_BATCH 64

/* asyncore's handle_expt_event: a pending socket error means the
 * connection is gone, anything else is urgent data. */
static void expt_event(asyncore_dispatcher *d)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        d->last_error = err;
        asyncore_handle_close(d);
        return;
    }
    ASYNCORE__HOOK(d, handle_expt)(d);
}

void asyncore__urgent_dispatch(asyncore_dispatcher *d)
{
    expt_event(d);
}

/* Whether urgent data of @d is pending now: one poll() of its socket. */
int asyncore__urgent_pending(asyncore_dispatcher *d)
{
    struct pollfd pfd = { .fd = d->fd, .events = POLLPRI };

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLPRI) != 0;
}

/*
 * Whether the read dispatch of @d will see its urgent data: normal data is
 * there too (a lone urgent byte does not make a TCP socket readable), and
 * libevent watches the socket for reading, so its level-triggered read
 * readiness is reported in this pass or the next (a transport maps
 * readiness on its own: not there).
 */
static int read_dispatch_takes_it(asyncore_dispatcher *d)
{
    struct pollfd pfd = { .fd = d->fd, .events = POLLIN };

    if (!(d->armed & EV_READ) || asyncore__transport(d) != NULL)
        return 0;
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0;
}

static int urgent_open(asyncore_map *map);

/* Leave the inherited instance to the parent (closing our descriptor of it
 * touches nothing there) and register what we watch in a new one. */
static void urgent_after_fork(asyncore_map *map)
{
    struct epoll_event ev = { .events = EPOLLPRI | EPOLLET };
    asyncore_dispatcher *d;

    event_free(map->urgent_ev);
    close(map->urgent_fd);
    map->urgent_ev = NULL;
    map->urgent_fd = -1;
    if (map->urgent_count == 0)
        return;
    if (urgent_open(map) < 0)
        goto fail;
    TAILQ_FOREACH(d, &map->dispatchers, link) {
        if (!d->urgent_watched)
            continue;
        ev.data.ptr = d;
        if (epoll_ctl(map->urgent_fd, EPOLL_CTL_ADD, d->fd, &ev) < 0)
            goto fail;
    }
    return;
fail:
    /* Nothing is watched any more: the next interest change adds again. */
    TAILQ_FOREACH(d, &map->dispatchers, link)
        d->urgent_watched = 0;
    map->urgent_count = 0;
    asyncore_log_info(NULL, ASYNCORE_LOG_ERROR,
                      "cannot watch urgent data after fork: errno %d", errno);
}

/* True, after handing the channel over, when @map's urgent instance was
 * opened by another process (we are a child of fork()). */
static int urgent_forked(asyncore_map *map)
{
    if (map->urgent_fd < 0 || map->urgent_pid == getpid())
        return 0;
    urgent_after_fork(map);
    return 1;
}

/*
 * Events are taken one at a time: a hook may close another dispatcher
 * whose event would otherwise already sit in our batch with a stale
 * pointer.  Closing removes a dispatcher from the epoll set synchronously.
 */
static void urgent_cb(evutil_socket_t fd, short what, void *arg)
{
    struct epoll_event ev;
    asyncore_dispatcher *d;
    int i;

    (void)what;
    if (urgent_forked(arg))
        return; /* those events were the parent's */
    for (i = 0; i < URGENT_BATCH; i++) {
        if (epoll_wait(fd, &ev, 1, 0) <= 0)
            break;
        d = ev.data.ptr;
        if (!(ev.events & EPOLLPRI) || d->closed || read_dispatch_takes_it(d))
            continue;
        asyncore__hold(d);
        expt_event(d);
        if (!d->closed)
            asyncore__interest_update(d);
        asyncore__release(d);
    }
}

static int urgent_open(asyncore_map *map)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);

    if (fd < 0)
        return -1;
    if (!asyncore__fd_watchable(map, fd)) {
        close(fd);
        errno = EMFILE;
        return -1;
    }
    map->urgent_ev = event_new(map->base, fd, EV_READ | EV_PERSIST, urgent_cb,
                               map);
    if (map->urgent_ev == NULL || event_add(map->urgent_ev, NULL) < 0) {
        if (map->urgent_ev != NULL)
            event_free(map->urgent_ev);
        map->urgent_ev = NULL;
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    map->urgent_fd = fd;
    map->urgent_pid = getpid();
    return 0;
}

/* Watch urgent data of @d iff @want and it can matter to @d at all. */
void asyncore__urgent_update(asyncore_dispatcher *d, int want)
{
    asyncore_map *map = d->map;
    struct epoll_event ev = { .events = EPOLLPRI | EPOLLET };

    want = want && !d->closed && d->fd >= 0 && !d->accepting &&
           d->io_kind == ASYNCORE__IO_SOCKET && d->expt_hook;
    if (want == (int)d->urgent_watched)
        return;
    if (urgent_forked(map) && want == (int)d->urgent_watched)
        return;
    if (!want) {
        (void)epoll_ctl(map->urgent_fd, EPOLL_CTL_DEL, d->fd, NULL);
        d->urgent_watched = 0;
        map->urgent_count--;
        return;
    }
    if (map->urgent_fd < 0 && urgent_open(map) < 0)
        goto fail;
    ev.data.ptr = d;
    if (epoll_ctl(map->urgent_fd, EPOLL_CTL_ADD, d->fd, &ev) < 0)
        goto fail;
    d->urgent_watched = 1;
    map->urgent_count++;
    return;
fail:
    d->last_error = errno;
    asyncore_log_info(d, ASYNCORE_LOG_ERROR,
                      "cannot watch urgent data: errno %d", d->last_error);
}

void asyncore__urgent_free(asyncore_map *map)
{
    if (map->urgent_ev != NULL)
        event_free(map->urgent_ev);
    if (map->urgent_fd >= 0)
        close(map->urgent_fd);
    map->urgent_ev = NULL;
    map->urgent_fd = -1;
}
