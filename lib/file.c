/*
 * file.c -- file_dispatcher: a dispatcher over a pipe, tty or file.  Its
 * transport moves the bytes with read/write, as asyncore's file_wrapper
 * does; it has no connect stage, no interest and no readiness of its own.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ext.h"

/*
 * Whether epoll can watch @fd.  Besides regular files and block devices it
 * refuses character devices that have no poll support, /dev/null among
 * them (a common stdin); event_add() would fail there under epoll only,
 * while select() and poll() call such a device always ready, as asyncore
 * saw it.  Asking a throwaway epoll set is the one reliable test.
 */
static int epoll_can_watch(int fd)
{
    struct epoll_event ev = { .events = EPOLLIN };
    int ep = epoll_create1(EPOLL_CLOEXEC), ok;

    if (ep < 0)
        return 1; /* cannot tell: let event_add() decide */
    ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 || errno != EPERM;
    close(ep);
    return ok;
}

/*
 * write() to a pipe (or FIFO) whose reader is gone raises SIGPIPE, whose
 * default action kills the process; dispatcher.h promises that a send never
 * does, and a library must not change the process's signal dispositions.
 * A socket takes send(MSG_NOSIGNAL).  Anything else is written with
 * SIGPIPE blocked in the calling thread; a SIGPIPE that the write made
 * pending is consumed (sigtimedwait with a zero timeout) before the mask is
 * restored -- unless one was pending already, which belongs to the program
 * and is left alone.  Three more system calls per write, for file
 * dispatchers only; a write that did not fail with EPIPE costs no wait.
 */
static ssize_t file_write(asyncore_dispatcher *d, const void *buf, size_t len)
{
    static const struct timespec zero = { 0, 0 };
    sigset_t pipe_set, old, pending;
    int was_pending, err;
    ssize_t n;

    if (d->file_socket)
        return send(d->fd, buf, len, MSG_NOSIGNAL);
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0)
        return write(d->fd, buf, len); /* cannot happen with a valid set */
    sigemptyset(&pending);
    was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    n = write(d->fd, buf, len);
    err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

static ssize_t file_read(asyncore_dispatcher *d, void *buf, size_t len)
{
    return read(d->fd, buf, len);
}

static const struct asyncore__transport_ops file_transport = {
    .name = "file",
    .send = file_write,
    .recv = file_read,
};

asyncore_dispatcher *asyncore_file_dispatcher_new(asyncore_map *map,
                                                  const asyncore_handlers *handlers,
                                                  void *user_data, int fd)
{
    asyncore_dispatcher *d;
    asyncore_map *resolved;
    struct asyncore__ext *ext = NULL;
    struct stat st;
    int dup_fd, flags, always_ready;

    if (handlers == NULL || fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        return NULL;
    /* Work on our own descriptor, as asyncore's file_wrapper does. */
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return NULL;
    flags = fcntl(dup_fd, F_GETFL);
    if (flags < 0 || fcntl(dup_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        goto fail;
    /* epoll refuses regular files; select and poll call them ready.  Those
     * join map->always_ready through their d->ext, which carries the
     * transport of every file dispatcher: made here, where running out of
     * memory can still be a failed creation. */
    always_ready = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
                   (S_ISCHR(st.st_mode) && !epoll_can_watch(dup_fd));
    /* An always-ready file is never given to the backend. */
    if (!always_ready && (resolved = asyncore__map_get(map)) != NULL &&
        !asyncore__fd_watchable(resolved, dup_fd))
        goto fail;
    if ((ext = calloc(1, sizeof(*ext))) == NULL)
        goto fail;
    d = asyncore_dispatcher_new(map, handlers, user_data);
    if (d == NULL) {
        free(ext);
        goto fail;
    }
    ext->d = d;
    ext->transport = &file_transport; /* no interest: no redispatch */
    d->ext = ext;
    d->io_kind = ASYNCORE__IO_FILE;
    d->file_socket = S_ISSOCK(st.st_mode) != 0;
    d->always_ready = always_ready != 0;
    d->connected = 1;
    d->connect_done = 1;
    asyncore__adopt_fd(d, dup_fd, AF_UNSPEC);
    /* A predicate that closes the dispatcher already here must not leave
     * the caller with a freed pointer: report it as a failed creation. */
    asyncore__hold(d);
    asyncore__interest_update(d);
    if (d->closed) {
        asyncore__release(d);
        errno = ECANCELED;
        return NULL;
    }
    asyncore__release(d);
    return d;
fail:
    {
        int err = errno;
        close(dup_fd);
        errno = err;
    }
    return NULL;
}
