/*
 * dispatcher.c -- a dispatcher's life: creation, its socket, its methods,
 * close and release.  The event mapping lives in events.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include <event2/buffer.h>

#include "asyncore-internal.h"

/* Every connection pays for each byte of the struct (bench/RESULTS.md,
 * idle memory): a new field must find room in what is there. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct asyncore_dispatcher) <= 104,
               "struct asyncore_dispatcher grew");

/* The inline area must be aligned for any type a user may keep in it. */
#define AREA_ALIGN _Alignof(max_align_t)

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static size_t event_offset(void)
{
    return align_up(sizeof(struct asyncore_dispatcher), sizeof(void *));
}

static size_t area_offset(void)
{
    return align_up(event_offset() + event_get_struct_event_size(), AREA_ALIGN);
}

struct event *asyncore__event(asyncore_dispatcher *d)
{
    return (struct event *)((char *)d + event_offset());
}

asyncore_dispatcher *asyncore_dispatcher_new_ex(asyncore_map *map,
                                                const asyncore_handlers *handlers,
                                                const asyncore_handlers *defaults,
                                                void *user_data, size_t area_size)
{
    asyncore_dispatcher *d;
    size_t size;

    if (handlers == NULL || area_size > SIZE_MAX / 2) {
        errno = EINVAL;
        return NULL;
    }
    map = asyncore__map_get(map);
    if (map == NULL)
        return NULL;
    size = area_size ? area_offset() + area_size
                     : event_offset() + event_get_struct_event_size();
    d = calloc(1, size);
    if (d == NULL)
        return NULL;
    d->map = map;
    d->handlers = handlers;
    d->defaults = defaults;
    d->user_data = user_data;
    d->fd = -1;
    d->family = -1;
    d->refs = 1; /* the map's, dropped by asyncore_close() */
    d->ignore_log = (unsigned char)map->ignore_log;
    d->has_area = area_size != 0;
    asyncore__hooks_decide(d);
    asyncore__map_attach(map, d);
    return d;
}

asyncore_dispatcher *asyncore_dispatcher_new(asyncore_map *map,
                                             const asyncore_handlers *handlers,
                                             void *user_data)
{
    return asyncore_dispatcher_new_ex(map, handlers, NULL, user_data, 0);
}

/* Methods that need a socket: the above, plus ENOTSOCK before one exists. */
static int check_socket(const asyncore_dispatcher *d)
{
    if (asyncore__check(d) < 0)
        return -1;
    if (d->fd < 0 || d->io_kind != ASYNCORE__IO_SOCKET) {
        errno = ENOTSOCK;
        return -1;
    }
    return 0;
}

/* Make the dispatcher own @fd and join the map's count (add_channel);
 * -1 with EMFILE, owning nothing, if the backend cannot watch @fd (an
 * always-ready file is never given to it). */
int asyncore__adopt_fd(asyncore_dispatcher *d, int fd, int family)
{
    if (!d->always_ready && !asyncore__fd_watchable(d->map, fd))
        return -1;
    d->fd = fd;
    d->family = family;
    d->map->count++;
    return 0;
}

/* Give up the socket but stay open, so another family can be tried. */
void asyncore__drop_socket(asyncore_dispatcher *d)
{
    asyncore__interest_disarm(d);
    d->map->count--;
    (void)close(d->fd);
    d->fd = -1;
    d->family = -1;
    d->connecting = 0;
}

/* d->addrlen is an unsigned char. */
typedef char asyncore__addrlen_fits[sizeof(struct sockaddr_storage) <= 255 ? 1 : -1];

/* An address longer than the in-place one has a block of its own. */
static void addr_free(asyncore_dispatcher *d)
{
    if (d->addrlen > sizeof(d->addr.in))
        free(d->addr.heap);
    d->addrlen = 0;
}

int asyncore__set_addr(asyncore_dispatcher *d, const struct sockaddr *sa,
                       socklen_t len)
{
    struct sockaddr *heap = NULL;

    if (len == 0 || len > sizeof(struct sockaddr_storage)) {
        errno = EINVAL;
        return -1;
    }
    if (len > sizeof(d->addr.in) && (heap = malloc(len)) == NULL)
        return -1;
    addr_free(d);
    if (heap != NULL) {
        memcpy(heap, sa, len);
        d->addr.heap = heap;
    } else {
        memcpy(&d->addr.in, sa, len);
    }
    d->addrlen = (unsigned char)len;
    return 0;
}

/* d's block of rarely used state, made on first use; NULL with ENOMEM. */
struct asyncore__ext *asyncore__ext(asyncore_dispatcher *d)
{
    if (d->ext != NULL)
        return d->ext;
    if ((d->ext = calloc(1, sizeof(*d->ext))) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    d->ext->d = d;
    return d->ext;
}

int asyncore_create_socket(asyncore_dispatcher *d, int family, int type)
{
    int fd;

    if (asyncore__check(d) < 0)
        return -1;
    /* Connecting without a socket: a watcher is looking for an address. */
    if (d->fd >= 0 || d->connecting) {
        errno = EISCONN;
        return -1;
    }
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (asyncore__adopt_fd(d, fd, family) < 0) {
        (void)close(fd);
        errno = EMFILE;
        return -1;
    }
    asyncore__interest_update(d);
    return 0;
}

/* The socket's family; getsockname() also tells EBADF and ENOTSOCK apart. */
static int socket_family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ss.ss_family;
}

/* Accepted sockets usually have both flags already: skip the set calls. */
static int make_nonblocking_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL), fd_fl;

    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -1;
    fd_fl = fcntl(fd, F_GETFD);
    if (fd_fl < 0 || (!(fd_fl & FD_CLOEXEC) &&
                      fcntl(fd, F_SETFD, fd_fl | FD_CLOEXEC) < 0))
        return -1;
    return 0;
}

int asyncore_set_socket(asyncore_dispatcher *d, int fd)
{
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof(peer);
    int family;

    if (asyncore__check(d) < 0)
        return -1;
    if (d->fd >= 0 || d->connecting) { /* see asyncore_create_socket */
        errno = EISCONN;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    family = socket_family(fd);
    if (family < 0 || !asyncore__fd_watchable(d->map, fd) ||
        make_nonblocking_cloexec(fd) < 0)
        return -1;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) == 0) {
        if (asyncore__set_addr(d, (struct sockaddr *)&peer, peerlen) < 0)
            return -1;
        d->connected = 1;
        d->connect_done = 1;
    } else if (errno != ENOTCONN && errno != EINVAL) {
        return -1;
    }
    (void)asyncore__adopt_fd(d, fd, family); /* watchable: checked above */
    asyncore__interest_update(d);
    return 0;
}

int asyncore_set_reuse_addr(asyncore_dispatcher *d)
{
    int on = 1;

    if (check_socket(d) < 0)
        return -1;
    return setsockopt(d->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
}

int asyncore_set_nodelay(asyncore_dispatcher *d, int on)
{
    on = on != 0;
    if (check_socket(d) < 0)
        return -1;
    if (d->family != AF_INET && d->family != AF_INET6) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* Validate an address given for the dispatcher's socket. */
static int check_addr(const asyncore_dispatcher *d, const struct sockaddr *sa,
                      socklen_t len)
{
    if (sa == NULL || len < sizeof(sa_family_t) ||
        len > sizeof(struct sockaddr_storage)) {
        errno = EINVAL;
        return -1;
    }
    if (sa->sa_family != d->family) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return 0;
}

int asyncore_bind(asyncore_dispatcher *d, const struct sockaddr *addr,
                  socklen_t len)
{
    if (check_socket(d) < 0 || check_addr(d, addr, len) < 0)
        return -1;
    if (bind(d->fd, addr, len) < 0)
        return -1;
    /* asyncore keeps what was asked for; a failed copy only loses repr. */
    (void)asyncore__set_addr(d, addr, len);
    return 0;
}

/* Linux would bind an unbound socket to an ephemeral port on listen(); a
 * server that forgot bind() is a bug worth an error instead. */
static int is_bound(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    switch (ss.ss_family) {
    case AF_INET:
        return ((struct sockaddr_in *)&ss)->sin_port != 0;
    case AF_INET6:
        return ((struct sockaddr_in6 *)&ss)->sin6_port != 0;
    case AF_UNIX:
        return len > sizeof(sa_family_t);
    default:
        return 1;
    }
}

int asyncore_listen(asyncore_dispatcher *d, int backlog)
{
    if (check_socket(d) < 0)
        return -1;
    if (!is_bound(d->fd)) {
        errno = EDESTADDRREQ;
        return -1;
    }
    if (listen(d->fd, backlog) < 0)
        return -1;
    d->accepting = 1;
    asyncore__interest_update(d);
    return 0;
}

int asyncore_connect(asyncore_dispatcher *d, const struct sockaddr *addr,
                     socklen_t len)
{
    if (check_socket(d) < 0 || check_addr(d, addr, len) < 0)
        return -1;
    if (d->connected || d->connecting || d->accepting) {
        errno = EISCONN;
        return -1;
    }
    if (connect(d->fd, addr, len) < 0 && errno != EISCONN) {
        if (errno != EINPROGRESS && errno != EALREADY)
            return -1;
        d->connecting = 1;
        d->connect_done = 0;
        (void)asyncore__set_addr(d, addr, len);
        if (d->ext != NULL) /* the watchers: an attempt starts */
            asyncore__watchers_connect_start(d);
        asyncore__interest_update(d);
        return 0;
    }
    d->connecting = 1;
    d->connect_done = 0;
    (void)asyncore__set_addr(d, addr, len);
    /* Completed at once (AF_UNIX, loopback): asyncore reports it at once. */
    asyncore__hold(d);
    asyncore__connect_event(d);
    if (!d->closed)
        asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

/*
 * Failures of accept() that concern one connection, not the listener: the
 * peer gave up (ECONNABORTED), or -- Linux passes pending network errors of
 * the new connection on as accept()'s -- it is unreachable or a firewall
 * refused it (accept(2), "Error handling").  asyncore knows only the first;
 * the others would reach handle_error, whose default closes the listener.
 */
static int accept_nothing(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return 1;
    default:
        return 0;
    }
}

int asyncore_accept(asyncore_dispatcher *d, struct sockaddr *addr,
                    socklen_t *addrlen)
{
    int fd;

    if (check_socket(d) < 0)
        return -1;
    if (!d->accepting) {
        errno = EINVAL;
        return -1;
    }
    if ((addr == NULL) != (addrlen == NULL)) {
        errno = EINVAL;
        return -1;
    }
    fd = accept4(d->fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && accept_nothing(errno))
        errno = EAGAIN; /* "nothing", as asyncore's None */
    if (fd >= 0 && !asyncore__fd_watchable(d->map, fd)) {
        (void)close(fd); /* the peer sees it go; the caller, EMFILE */
        errno = EMFILE;
        return -1;
    }
    return fd;
}

/*
 * A failed transfer (errno @err) to its hook: a lost connection to
 * handle_close (returns 0, asyncore's b'' / 0), anything else to
 * handle_error (returns -1 with errno @err).  The hook may close @d, and
 * when send or recv was called from outside @d's own hooks (main, a timer,
 * another dispatcher's hook) nobody else holds it: the close frees it.
 * So nothing of @d is read after the hook (rule 1 of asyncore-internal.h);
 * the public wrappers hold it during the hook itself.
 */
static ASYNCORE__NOINLINE ssize_t transfer_failed(asyncore_dispatcher *d,
                                                  int err, const char *op)
{
    d->last_error = err;
    if (asyncore__is_disconnect(err)) {
        asyncore_handle_close(d);
        return 0;
    }
    asyncore_handle_error(d, err, op);
    errno = err;
    return -1;
}

/* The failure half of asyncore__send_plain(): errno from the transfer. */
ssize_t asyncore__send_failed(asyncore_dispatcher *d)
{
    int err = errno;

    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
        return 0;
    return transfer_failed(d, err, "send");
}

/* The rest of asyncore_recv(): what a transfer of @n (0 or -1) means. */
static ASYNCORE__NOINLINE ssize_t recv_failed(asyncore_dispatcher *d, ssize_t n)
{
    int err = errno;

    if (n == 0) {
        /* A closed connection reads as readable with nothing to read. */
        asyncore_handle_close(d);
        return 0;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        errno = EAGAIN;
        return -1;
    }
    return transfer_failed(d, err, "recv");
}

static ASYNCORE__NOINLINE ssize_t recv_checked(asyncore_dispatcher *d,
                                               void *buf, size_t len)
{
    ssize_t n;

    if (asyncore__check(d) < 0)
        return -1;
    if (buf == NULL || len == 0) {
        errno = EINVAL;
        return -1;
    }
    if (d->fd < 0) {
        errno = ENOTSOCK;
        return -1;
    }
    n = asyncore__raw_recv(d, buf, len);
    return n > 0 ? n : recv_failed(d, n);
}

/* Every handle_read calls this: a plain connected socket goes straight to
 * recv(), everything else through the checks. */
ssize_t asyncore_recv(asyncore_dispatcher *d, void *buf, size_t len)
{
    if (d != NULL && buf != NULL && len != 0 && asyncore__plain_socket(d)) {
        ssize_t n = recv(d->fd, buf, len, 0);

        return n > 0 ? n : recv_failed(d, n);
    }
    return recv_checked(d, buf, len);
}

/*
 * The event goes before the descriptor: closing a descriptor that libevent
 * still watches would leave a later socket with the same number unwatched
 * (epoll) or reported to this dispatcher (poll).
 */
int asyncore_close(asyncore_dispatcher *d)
{
    if (asyncore__check(d) < 0)
        return -1;
    d->closed = 1;
    d->connected = 0;
    d->accepting = 0;
    d->connecting = 0;
    asyncore__interest_disarm(d);
    asyncore__map_detach(d->map, d);
    /* The watchers go quiet, the transport says its last word (events.c,
     * in their order). */
    if (d->ext != NULL)
        asyncore__ext_close(d);
    if (d->fd >= 0) {
        /* POSIX leaves the descriptor state after EINTR unspecified; on
         * Linux it is closed, so never retry. */
        (void)close(d->fd);
        d->fd = -1;
    }
    /* Held beyond this release (a hook on the stack, a holder): listed, so
     * that a map freed first can detach it (map.c). */
    if (d->refs > 1) {
        TAILQ_INSERT_TAIL(&d->map->held, d, link);
        d->held_closed = 1;
    }
    asyncore__release(d);
    return 0;
}

/* The last reference of a closed dispatcher runs the destroy hooks: the
 * user's first, then the class's, which may free what the user's read. */
void asyncore__destroy(asyncore_dispatcher *d)
{
    /* Hooks below may hold/release without re-entering.  Still on
     * map->held (if it was): a map_free from a destroy hook run by a
     * dispatch's release sees a hold and fails with EBUSY. */
    d->refs = 1;
    if (d->handlers->destroy)
        d->handlers->destroy(d);
    if (d->defaults && d->defaults->destroy)
        d->defaults->destroy(d);
    if (d->held_closed) { /* d->map is NULL once the map was freed */
        TAILQ_REMOVE(&d->map->held, d, link);
        d->held_closed = 0;
    }
    if (d->out)
        evbuffer_free(d->out);
    if (d->ext != NULL) /* the transport's and watchers' state */
        asyncore__ext_destroy(d);
    free(d->ext);
    addr_free(d);
    free(d);
}

/* The program's holds count apart from the library's own (see
 * asyncore__hold_long): a release without a hold does nothing. */
int asyncore_dispatcher_hold(asyncore_dispatcher *d)
{
    if (d == NULL) {
        errno = EINVAL;
        return -1;
    }
    asyncore__hold_long(d);
    return 0;
}

void asyncore_dispatcher_release(asyncore_dispatcher *d)
{
    /* An extension's holds share the unit (asyncore__hold_ext): only
     * what is beyond them is the program's to drop. */
    if (d != NULL && (unsigned)(d->refs / ASYNCORE__HOLD_LONG) >
                         (d->ext != NULL ? d->ext->ext_holds : 0))
        asyncore__release_long(d);
}

int asyncore_update_interest(asyncore_dispatcher *d)
{
    if (asyncore__check(d) < 0)
        return -1;
    asyncore__hold(d);
    asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

/* ---- accessors ---------------------------------------------------------- */

int asyncore_dispatcher_connected(const asyncore_dispatcher *d)
{
    return d != NULL && d->connected;
}

int asyncore_dispatcher_accepting(const asyncore_dispatcher *d)
{
    return d != NULL && d->accepting;
}

int asyncore_dispatcher_connecting(const asyncore_dispatcher *d)
{
    return d != NULL && d->connecting;
}

int asyncore_dispatcher_closed(const asyncore_dispatcher *d)
{
    return d != NULL && d->closed;
}

int asyncore_dispatcher_fd(const asyncore_dispatcher *d)
{
    return d != NULL ? d->fd : -1;
}

int asyncore_dispatcher_family(const asyncore_dispatcher *d)
{
    return d != NULL ? d->family : -1;
}

const struct sockaddr *asyncore_dispatcher_addr(asyncore_dispatcher *d,
                                                socklen_t *len)
{
    if (d == NULL || d->addrlen == 0) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = d->addrlen;
    return asyncore__addr(d);
}

asyncore_map *asyncore_dispatcher_map(const asyncore_dispatcher *d)
{
    return d != NULL ? d->map : NULL;
}

void *asyncore_dispatcher_user_data(const asyncore_dispatcher *d)
{
    return d != NULL ? d->user_data : NULL;
}

int asyncore_dispatcher_set_user_data(asyncore_dispatcher *d, void *user_data)
{
    if (d == NULL) {
        errno = EINVAL;
        return -1;
    }
    d->user_data = user_data;
    return 0;
}

void *asyncore_dispatcher_area(const asyncore_dispatcher *d)
{
    if (d == NULL || !d->has_area)
        return NULL;
    return (char *)d + area_offset();
}

int asyncore_dispatcher_last_error(const asyncore_dispatcher *d)
{
    return d != NULL ? d->last_error : 0;
}

int asyncore_dispatcher_set_ignore_log_types(asyncore_dispatcher *d,
                                             unsigned mask)
{
    if (d == NULL || mask > 0xff) {
        errno = EINVAL;
        return -1;
    }
    d->ignore_log = (unsigned char)mask;
    return 0;
}
