/*
 * test_events.c -- the event mapping: which readiness becomes which hook, in
 * which order, and how the armed interest set follows readable()/writable().
 *
 * Every scenario runs over real sockets.  The armed interest is read back
 * from libevent itself (event_base_foreach_event), so a test sees what the
 * backend is really asked to watch, not what the library believes.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <event2/event.h>

/* ---- counting epoll_ctl ---------------------------------------------------
 * Defined in the executable, this interposes on libc's for libevent's epoll
 * backend and the library's urgent channel alike, so that a test can show
 * that a steady interest set costs no system call.  Only calls about
 * epoll_watch_fd are counted. */

static int epoll_watch_fd = -1;
static int epoll_ctl_calls;
static int epoll_ctl_ops[3]; /* by EPOLL_CTL_ADD, _DEL, _MOD (1, 2, 3) */

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
    static epoll_ctl_fn real;

    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "epoll_ctl");
        memcpy(&real, &sym, sizeof(real));
    }
    if (fd >= 0 && fd == epoll_watch_fd) {
        epoll_ctl_calls++;
        if (op >= EPOLL_CTL_ADD && op <= EPOLL_CTL_MOD)
            epoll_ctl_ops[op - 1]++;
    }
    return real(epfd, op, fd, event);
}

/* ---- what libevent has armed for a descriptor ------------------------- */

struct armed_query {
    int fd;
    int n;       /* events added for fd */
    short what;  /* their EV_READ|EV_WRITE */
};

static int armed_cb(const struct event_base *base, const struct event *ev,
                    void *arg)
{
    struct armed_query *q = arg;

    (void)base;
    if (event_get_fd(ev) == q->fd) {
        q->n++;
        q->what |= event_get_events(ev) & (EV_READ | EV_WRITE);
    }
    return 0;
}

static struct armed_query armed_on(asyncore_map *map, int fd)
{
    struct armed_query q = { fd, 0, 0 };

    ck_assert_int_eq(event_base_foreach_event(asyncore_map_base(map), armed_cb,
                                              &q), 0);
    return q;
}

/* The interest armed for @fd on th_map; there is never more than one event. */
static short armed(int fd)
{
    struct armed_query q = armed_on(th_map, fd);

    ck_assert_int_le(q.n, 1);
    return q.what;
}

/* ---- per-test state, reached from hooks through the user pointer ------- */

/* Probes are static in each test: dispatchers left open are closed by
 * th_teardown(), after the test returned, and their destroy hooks still
 * count into them. */
struct probe {
    int reads, writes, expts, connects, accepts, closes, errors, destroyed;
    int readables, writables;
    int want_read, want_write;      /* the predicates' answers */
    int last_err;                   /* handle_error's err */
    char last_op[32];               /* handle_error's op */
    int err_at_close;               /* last_error seen by handle_close */
    int connected_in_connect, connecting_in_connect, connected_in_read;
    ssize_t last_recv;              /* last asyncore_recv() that was not > 0 */
    int closes_at_last_recv;        /* handle_close calls when it returned */
    ssize_t last_send;
    size_t got, got_at_close, bad_bytes;
    char oob;
    char seq[256];                  /* "hook,hook,..." in call order */
};

static struct probe *P(asyncore_dispatcher *d)
{
    return asyncore_dispatcher_user_data(d);
}

static void note(struct probe *p, const char *what)
{
    size_t n = strlen(p->seq);

    snprintf(p->seq + n, sizeof(p->seq) - n, "%s,", what);
}

/* The byte at offset @i of the test stream. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 % 251);
}

#define CHUNK 1000 /* small reads: many dispatches per stream */

static int pred_readable(asyncore_dispatcher *d)
{
    P(d)->readables++;
    return P(d)->want_read;
}

static int pred_writable(asyncore_dispatcher *d)
{
    P(d)->writables++;
    return P(d)->want_write;
}

static void count_write(asyncore_dispatcher *d)
{
    P(d)->writes++;
    note(P(d), "write");
}

/* One small recv per readiness, checking the bytes against pattern(). */
static void read_chunk(asyncore_dispatcher *d)
{
    struct probe *p = P(d);
    unsigned char buf[CHUNK];
    ssize_t n, i;

    p->reads++;
    note(p, "read");
    p->connected_in_read = asyncore_dispatcher_connected(d) &&
                           !asyncore_dispatcher_connecting(d);
    n = asyncore_recv(d, buf, sizeof(buf));
    if (n > 0) {
        for (i = 0; i < n; i++)
            if (buf[i] != pattern(p->got + (size_t)i))
                p->bad_bytes++;
        p->got += (size_t)n;
        return;
    }
    p->last_recv = n;
    p->closes_at_last_recv = p->closes;
}

static void count_connect(asyncore_dispatcher *d)
{
    struct probe *p = P(d);

    p->connects++;
    note(p, "connect");
    p->connected_in_connect = asyncore_dispatcher_connected(d);
    p->connecting_in_connect = asyncore_dispatcher_connecting(d);
}

static void close_on_close(asyncore_dispatcher *d)
{
    struct probe *p = P(d);

    p->closes++;
    p->got_at_close = p->got;
    p->err_at_close = asyncore_dispatcher_last_error(d);
    note(p, "close");
    ck_assert_int_eq(asyncore_close(d), 0);
}

static void close_on_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct probe *p = P(d);

    p->errors++;
    p->last_err = err;
    snprintf(p->last_op, sizeof(p->last_op), "%s", op);
    note(p, "error");
    ck_assert_int_eq(asyncore_close(d), 0);
}

static void count_destroy(asyncore_dispatcher *d)
{
    P(d)->destroyed++;
}

/* Reads the urgent byte, so the next one is a new event. */
static void expt_reads_oob(asyncore_dispatcher *d)
{
    struct probe *p = P(d);
    char c;

    p->expts++;
    note(p, "expt");
    if (recv(asyncore_dispatcher_fd(d), &c, 1, MSG_OOB) == 1)
        p->oob = c;
}

static struct probe new_probe(int want_read, int want_write)
{
    struct probe p;

    memset(&p, 0, sizeof(p));
    p.want_read = want_read;
    p.want_write = want_write;
    p.last_recv = -2;
    return p;
}

/* ---- sockets ------------------------------------------------------------ */

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

/* A connected stream pair of @family: fds[0] for a dispatcher, fds[1] the
 * raw (blocking) peer.  AF_UNIX uses socketpair(). */
static void stream_pair(int family, int fds[2])
{
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd;

    if (family == AF_UNIX) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                    fds), 0);
        return;
    }
    lfd = th_raw_listener(family, &ss, &len);
    fds[0] = th_raw_connect(&ss, len);
    fds[1] = th_raw_accept(lfd, 3.0);
    ck_assert_int_ge(fds[1], 0);
    close(lfd);
}

static asyncore_dispatcher *adopt(const asyncore_handlers *h, struct probe *p,
                                  int fd)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, h, p);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fd), 0);
    return d;
}

/* A loopback TCP address nobody listens on: bound once, then released. */
static socklen_t closed_port(int family, struct sockaddr_storage *ss)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = th_loopback(family, ss);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)ss, len), 0);
    len = th_sockname(fd, ss);
    close(fd);
    return len;
}

/* Wait (bounded) until poll() reports @events on @fd. */
static void wait_for(int fd, short events)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    double end = th_now() + 3.0;

    while (th_now() < end) {
        pfd.revents = 0;
        if (poll(&pfd, 1, 10) == 1 && (pfd.revents & events) == events)
            return;
    }
    ck_abort_msg("fd %d never reported events 0x%x", fd, (unsigned)events);
}

/* Loop until *@n reaches @target, at most @seconds.  Returns whether it did. */
static int loop_until_n(asyncore_map *map, const int *n, int target,
                        double seconds)
{
    double end = th_now() + seconds;

    while (*n < target && th_now() < end && asyncore_map_count(map) > 0)
        ck_assert_int_eq(asyncore_poll(map, 0.01), 0);
    return *n >= target;
}

/* ---- listeners ---------------------------------------------------------- */

static void accept_one(asyncore_dispatcher *d)
{
    int fd = asyncore_accept(d, NULL, NULL);

    P(d)->accepts++;
    if (fd >= 0)
        close(fd);
}

static const asyncore_handlers listener_h = {
    .handle_accept = accept_one,
    .handle_write = count_write,
    .readable = pred_readable,
    .writable = pred_writable,
};

START_TEST(read_event_on_a_listener_calls_handle_accept_and_never_write)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct probe p;
    asyncore_dispatcher *l;
    int c1, c2, fd, writables_at_listen;
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    l = th_listener(th_map, family, &listener_h, &p, &ss, &len);
    fd = asyncore_dispatcher_fd(l);
    writables_at_listen = p.writables;
    ck_assert_int_eq(armed(fd), EV_READ);

    c1 = th_raw_connect(&ss, len);
    ck_assert(th_loop_until(th_map, &p.accepts, 3.0));
    c2 = th_raw_connect(&ss, len);
    ck_assert(loop_until_n(th_map, &p.accepts, 2, 3.0));
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(p.accepts, 2);
    /* A listener is never asked for, armed for, or called for writing. */
    ck_assert_int_eq(p.writes, 0);
    ck_assert_int_eq(p.writables, writables_at_listen);
    ck_assert_int_eq(armed(fd), EV_READ);
    close(c1);
    close(c2);
}
END_TEST

/* ---- connecting --------------------------------------------------------- */

static const asyncore_handlers connect_h = {
    .handle_connect = count_connect,
    .handle_read = read_chunk,
    .handle_write = count_write,
    .handle_close = close_on_close,
    .handle_error = close_on_error,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

START_TEST(read_event_while_connecting_calls_handle_connect_then_handle_read)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct probe p;
    asyncore_dispatcher *c;
    int lfd, sfd, i;
    unsigned char data[5];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0); /* only a read can finish the connect */

    lfd = th_raw_listener(family, &ss, &len);
    c = asyncore_dispatcher_new(th_map, &connect_h, &p);
    ck_assert_int_eq(asyncore_create_socket(c, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    if (family != AF_UNIX) {
        /* A non-blocking TCP connect is always still in progress here. */
        ck_assert(asyncore_dispatcher_connecting(c));
        ck_assert_int_eq(p.connects, 0);
    }
    sfd = th_raw_accept(lfd, 3.0);
    ck_assert_int_ge(sfd, 0);
    for (i = 0; i < 5; i++)
        data[i] = pattern((size_t)i);
    ck_assert_int_eq(send(sfd, data, sizeof(data), 0), 5);

    ck_assert(th_loop_until(th_map, &p.reads, 3.0));
    th_loop_for(th_map, 0.05);
    ck_assert_str_eq(p.seq, "connect,read,");
    ck_assert_int_eq(p.connects, 1);
    ck_assert_int_eq(p.reads, 1);
    ck_assert_uint_eq(p.got, 5);
    ck_assert_uint_eq(p.bad_bytes, 0);
    /* As asyncore: connected only once handle_connect has returned. */
    ck_assert_int_eq(p.connected_in_connect, 0);
    ck_assert_int_eq(p.connecting_in_connect, 1);
    ck_assert_int_eq(p.connected_in_read, 1);
    ck_assert(asyncore_dispatcher_connected(c));
    ck_assert(!asyncore_dispatcher_connecting(c));
    close(sfd);
    close(lfd);
}
END_TEST

START_TEST(connect_refused_later_calls_handle_error_and_never_handle_connect)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct probe p;
    asyncore_dispatcher *c;
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    if (family == AF_UNIX)
        return; /* refused at once there: see the ENOENT test */
    len = closed_port(family, &ss);
    c = asyncore_dispatcher_new(th_map, &connect_h, &p);
    ck_assert_int_eq(asyncore_create_socket(c, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    ck_assert(asyncore_dispatcher_connecting(c));

    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    ck_assert_int_eq(p.errors, 1);
    ck_assert_int_eq(p.last_err, ECONNREFUSED);
    ck_assert_str_eq(p.last_op, "connect");
    ck_assert_int_eq(p.connects, 0);
    ck_assert_str_eq(p.seq, "error,");
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

static const asyncore_handlers refused_default_h = {
    .handle_connect = count_connect,
    .destroy = count_destroy,
};

START_TEST(connect_refused_later_with_default_handle_error_logs_and_closes)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct probe p;
    asyncore_dispatcher *c;
    char repr[200], line[600], num[16], *at;
    const char *log;
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    if (family == AF_UNIX)
        return;
    th_log_capture(th_map);
    len = closed_port(family, &ss);
    c = asyncore_dispatcher_new(th_map, &refused_default_h, &p);
    ck_assert_int_eq(asyncore_create_socket(c, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    /* Nothing about the dispatcher changes before the failure arrives. */
    ck_assert_int_lt(asyncore_dispatcher_repr(c, repr, sizeof(repr)),
                     (int)sizeof(repr));

    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    ck_assert_int_eq(p.connects, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* Exactly one line, at error level ... */
    log = th_log_text();
    ck_assert_int_eq(th_log_count("\n"), 1);
    ck_assert_msg(strncmp(log, "error: ", 7) == 0, "log: %s", log);
    snprintf(line, sizeof(line), "%s", log);
    /* ... naming the dispatcher, and besides it the operation, the errno
     * and its text. */
    at = strstr(line, repr);
    ck_assert_msg(at != NULL, "no \"%s\" in: %s", repr, log);
    memmove(at, at + strlen(repr), strlen(at + strlen(repr)) + 1);
    ck_assert_msg(strstr(line, "connect") != NULL, "log: %s", log);
    snprintf(num, sizeof(num), "%d", ECONNREFUSED);
    ck_assert_msg(strstr(line, num) != NULL, "log: %s", log);
    ck_assert_msg(strstr(line, strerror(ECONNREFUSED)) != NULL, "log: %s", log);
}
END_TEST

START_TEST(connect_failing_at_once_returns_the_errno_and_calls_no_hook)
{
    struct sockaddr_storage ss;
    socklen_t len = th_loopback(AF_UNIX, &ss); /* a path that does not exist */
    static struct probe p;
    asyncore_dispatcher *c;
    p = new_probe(1, 1);

    c = asyncore_dispatcher_new(th_map, &connect_h, &p);
    ck_assert_int_eq(asyncore_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(p.seq, "");
    ck_assert_int_eq(p.connects + p.errors + p.closes + p.reads + p.writes, 0);
    ck_assert(!asyncore_dispatcher_connecting(c));
    ck_assert(!asyncore_dispatcher_connected(c));
    ck_assert(!asyncore_dispatcher_closed(c));
}
END_TEST

START_TEST(unix_connect_completing_at_once_calls_handle_connect_before_returning)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct probe p;
    asyncore_dispatcher *c;
    int lfd, sfd;
    p = new_probe(0, 1);

    lfd = th_raw_listener(AF_UNIX, &ss, &len);
    c = asyncore_dispatcher_new(th_map, &connect_h, &p);
    ck_assert_int_eq(asyncore_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    ck_assert_str_eq(p.seq, "connect,");
    ck_assert_int_eq(p.connected_in_connect, 0);
    ck_assert_int_eq(p.connecting_in_connect, 1);
    ck_assert(asyncore_dispatcher_connected(c));
    ck_assert(!asyncore_dispatcher_connecting(c));

    /* The write readiness that follows is a plain write, not a connect. */
    ck_assert(th_loop_until(th_map, &p.writes, 3.0));
    ck_assert_int_eq(p.connects, 1);
    sfd = th_raw_accept(lfd, 3.0);
    ck_assert_int_ge(sfd, 0);
    close(sfd);
    close(lfd);
}
END_TEST

/* ---- end of stream ------------------------------------------------------ */

static const asyncore_handlers reader_h = {
    .handle_read = read_chunk,
    .handle_write = count_write,
    .handle_close = close_on_close,
    .handle_error = close_on_error,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

START_TEST(recv_of_zero_bytes_calls_handle_close_once_and_reports_zero)
{
    static struct probe p;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    stream_pair(family, fds);
    adopt(&reader_h, &p, fds[0]);
    close(fds[1]);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    ck_assert_int_eq(p.closes, 1);
    ck_assert_int_eq(p.errors, 0);
    ck_assert_int_eq(p.reads, 1);
    ck_assert_int_eq(p.last_recv, 0);
    /* handle_close ran inside that recv, before it returned 0. */
    ck_assert_int_eq(p.closes_at_last_recv, 1);
    ck_assert_int_eq(p.err_at_close, 0);
    ck_assert_str_eq(p.seq, "read,close,");
}
END_TEST

#define BIG (1024 * 1024)

START_TEST(all_data_reaches_handle_read_before_handle_close)
{
    static struct probe p;
    unsigned char *out = malloc(BIG);
    size_t sent = 0, i;
    double end = th_now() + 15.0;
    ssize_t n;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    ck_assert_ptr_nonnull(out);
    for (i = 0; i < BIG; i++)
        out[i] = pattern(i);
    stream_pair(family, fds);
    adopt(&reader_h, &p, fds[0]);
    ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    while (sent < BIG && th_now() < end) {
        n = send(fds[1], out + sent, BIG - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else
            ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    free(out);
    ck_assert_uint_eq(sent, BIG);
    close(fds[1]); /* FIN after the last byte */

    ck_assert(th_loop_until(th_map, &p.destroyed, 15.0));
    ck_assert_uint_eq(p.got, BIG);
    ck_assert_uint_eq(p.got_at_close, BIG);
    ck_assert_uint_eq(p.bad_bytes, 0);
    ck_assert_int_eq(p.closes, 1);
    ck_assert_int_eq(p.errors, 0);
    ck_assert_int_eq(p.last_recv, 0);
    /* One small recv per dispatch: at least BIG / CHUNK of them. */
    ck_assert_int_ge(p.reads, BIG / CHUNK);
}
END_TEST

/* Make the peer's close a reset: SO_LINGER {1, 0} on TCP; on AF_UNIX,
 * closing with unread data is what resets the connection, so a byte is
 * sent from @ours first (-1: the peer has unread data already). */
static void reset_peer(int family, int ours, int peer)
{
    struct linger lg = { 1, 0 };

    if (family == AF_UNIX && ours >= 0)
        ck_assert_int_eq(send(ours, "u", 1, MSG_NOSIGNAL), 1);
    else
        ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg,
                                    sizeof(lg)), 0);
    close(peer);
}

START_TEST(peer_reset_during_read_calls_handle_close_not_handle_error)
{
    static struct probe p;
    unsigned char data[200];
    size_t i;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    for (i = 0; i < sizeof(data); i++)
        data[i] = pattern(i);
    stream_pair(family, fds);
    adopt(&reader_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], data, 100, 0), 100);
    ck_assert(th_loop_until(th_map, &p.reads, 3.0));
    ck_assert_int_eq(send(fds[1], data + 100, 100, 0), 100);
    reset_peer(family, fds[0], fds[1]);

    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    ck_assert_int_eq(p.closes, 1);
    ck_assert_int_eq(p.errors, 0);
    ck_assert_int_eq(p.err_at_close, ECONNRESET);
    ck_assert_int_eq(p.last_recv, 0);
    ck_assert_int_eq(p.closes_at_last_recv, 1);
    ck_assert_uint_le(p.got, 200);
    ck_assert_uint_eq(p.bad_bytes, 0);
}
END_TEST

static void write_forever(asyncore_dispatcher *d)
{
    static const char zeros[65536];
    struct probe *p = P(d);

    int i;

    p->writes++;
    /* Until the socket refuses (0): a plain send in a write readiness
     * always finds room, so only a second one can see EAGAIN. */
    for (i = 0; i < 4096 && !asyncore_dispatcher_closed(d); i++) {
        p->last_send = asyncore_send(d, zeros, sizeof(zeros));
        if (p->last_send <= 0)
            break;
    }
}

static const asyncore_handlers writer_h = {
    .handle_write = write_forever,
    .handle_close = close_on_close,
    .handle_error = close_on_error,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

START_TEST(peer_reset_during_write_calls_handle_close_without_sigpipe)
{
    static struct probe p;
    struct sigaction sa;
    double end;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(0, 1);

    /* The test proves something only if SIGPIPE would kill us. */
    ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    ck_assert(sa.sa_handler == SIG_DFL);

    stream_pair(family, fds);
    adopt(&writer_h, &p, fds[0]);
    p.last_send = -2;
    end = th_now() + 10.0;
    while (p.last_send != 0 && th_now() < end) /* until the buffers are full */
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(p.last_send, 0);
    reset_peer(family, -1, fds[1]);

    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    ck_assert_int_eq(p.closes, 1);
    ck_assert_int_eq(p.errors, 0);
    ck_assert_int_eq(p.last_send, 0);
    ck_assert_msg(p.err_at_close == ECONNRESET || p.err_at_close == EPIPE,
                  "err %d", p.err_at_close);
    /* The library left the disposition alone. */
    ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    ck_assert(sa.sa_handler == SIG_DFL);
}
END_TEST

/* ---- send on a full buffer ---------------------------------------------- */

static const asyncore_handlers all_h = {
    .handle_connect = count_connect,
    .handle_read = read_chunk,
    .handle_write = count_write,
    .handle_expt = expt_reads_oob,
    .handle_close = close_on_close,
    .handle_error = close_on_error,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

START_TEST(send_returns_zero_when_the_buffer_is_full_and_calls_no_hook)
{
    static const char block[65536];
    static struct probe p;
    asyncore_dispatcher *d;
    ssize_t n = -1;
    size_t total = 0;
    int fds[2], i;
    p = new_probe(0, 0);

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    d = adopt(&all_h, &p, fds[0]);
    for (i = 0; i < 4096; i++) { /* the peer never reads */
        n = asyncore_send(d, block, sizeof(block));
        if (n == 0)
            break;
        ck_assert_int_gt(n, 0);
        total += (size_t)n;
    }
    ck_assert_int_eq(n, 0);
    ck_assert_uint_gt(total, 0);
    ck_assert_int_eq(asyncore_send(d, block, 1), 0);
    ck_assert_str_eq(p.seq, "");
    ck_assert_int_eq(p.closes + p.errors, 0);
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), 0);
    close(fds[1]);
}
END_TEST

/* ---- a hook that closes ends the dispatch ------------------------------- */

static void read_and_close(asyncore_dispatcher *d)
{
    P(d)->reads++;
    note(P(d), "read");
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers close_in_read_h = {
    .handle_read = read_and_close,
    .handle_write = count_write,
    .handle_close = close_on_close,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

START_TEST(no_hook_runs_after_a_hook_closed_the_dispatcher)
{
    static struct probe p;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    stream_pair(family, fds);
    ck_assert_int_eq(send(fds[1], "data", 4, 0), 4);
    /* Readable and writable both, so one readiness carries both events. */
    wait_for(fds[0], POLLIN | POLLOUT);
    adopt(&close_in_read_h, &p, fds[0]);
    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_str_eq(p.seq, "read,");
    ck_assert_int_eq(p.writes, 0);
    ck_assert_int_eq(p.destroyed, 1);
    close(fds[1]);
}
END_TEST

/* ---- the interest set ----------------------------------------------------- */

static void write_then_stop(asyncore_dispatcher *d)
{
    P(d)->writes++;
    P(d)->want_write = 0;
}

static const asyncore_handlers flip_h = {
    .handle_read = read_chunk,
    .handle_write = write_then_stop,
    .readable = pred_readable,
    .writable = pred_writable,
};

START_TEST(interest_follows_the_predicates_after_each_dispatch)
{
    static struct probe p;
    int fds[2], fd;
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    stream_pair(family, fds);
    fd = fds[0];
    adopt(&flip_h, &p, fd);
    ck_assert_int_eq(p.readables, 1);
    ck_assert_int_eq(p.writables, 1);
    ck_assert_int_eq(armed(fd), EV_READ | EV_WRITE);

    /* Asked when the loop is entered; then the write readiness turns
     * writable() false: EV_WRITE goes. */
    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(p.writes, 1);
    ck_assert_int_eq(p.readables, 3);
    ck_assert_int_eq(p.writables, 3);
    ck_assert_int_eq(armed(fd), EV_READ);

    /* No readiness, no dispatch: only the question at loop entry. */
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 5), 0);
    ck_assert_int_eq(p.writes, 1);
    ck_assert_int_eq(p.readables, 4);
    ck_assert_int_eq(p.writables, 4);

    /* A read is one more dispatch: one more question each. */
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    wait_for(fds[0], POLLIN);
    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(p.reads, 1);
    ck_assert_int_eq(p.readables, 6);
    ck_assert_int_eq(p.writables, 6);
    ck_assert_int_eq(armed(fd), EV_READ);
    close(fds[1]);
}
END_TEST

static const asyncore_handlers steady_h = {
    .handle_read = read_chunk,
    .handle_write = count_write,
    .readable = pred_readable,
    .writable = pred_writable,
};

START_TEST(a_steady_interest_set_is_not_rearmed)
{
    static struct probe p;
    asyncore_dispatcher *d;
    const char *method = event_base_get_method(asyncore_map_base(th_map));
    int epoll = strcmp(method, "epoll") == 0;
    int fds[2], i;
    FAMILY_OR_SKIP();
    p = new_probe(1, 1);

    stream_pair(family, fds);
    d = adopt(&steady_h, &p, fds[0]);
    epoll_watch_fd = fds[0];
    epoll_ctl_calls = 0;
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    /* Each poll asks at loop entry and after its dispatch. */
    ck_assert_int_eq(p.writes, 20);
    ck_assert_int_eq(p.readables, 42);
    ck_assert_int_eq(p.writables, 42);
    ck_assert_int_eq(armed(fds[0]), EV_READ | EV_WRITE);
    if (epoll)
        ck_assert_int_eq(epoll_ctl_calls, 0);

    /* A change does reach the backend (and shows the counter works). */
    p.want_write = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    if (epoll)
        ck_assert_int_gt(epoll_ctl_calls, 0);
    epoll_watch_fd = -1;
    close(fds[1]);
}
END_TEST

/* The epoll_ctl calls since the last one: ADD, DEL and MOD counted. */
static void assert_epoll_ctl(int add, int del, int mod)
{
    ck_assert_int_eq(epoll_ctl_ops[EPOLL_CTL_ADD - 1], add);
    ck_assert_int_eq(epoll_ctl_ops[EPOLL_CTL_DEL - 1], del);
    ck_assert_int_eq(epoll_ctl_ops[EPOLL_CTL_MOD - 1], mod);
    ck_assert_int_eq(epoll_ctl_calls, add + del + mod);
    memset(epoll_ctl_ops, 0, sizeof(epoll_ctl_ops));
    epoll_ctl_calls = 0;
}

START_TEST(an_interest_change_is_one_epoll_ctl_mod)
{
    static struct probe p;
    asyncore_dispatcher *d;
    const char *method = event_base_get_method(asyncore_map_base(th_map));
    int epoll = strcmp(method, "epoll") == 0;
    int fds[2], i;
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    stream_pair(family, fds);
    d = adopt(&steady_h, &p, fds[0]);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    epoll_watch_fd = fds[0];
    memset(epoll_ctl_ops, 0, sizeof(epoll_ctl_ops));
    epoll_ctl_calls = 0;
    for (i = 0; i < 3; i++) {
        /* read -> read+write -> read: one MOD each way, under any backend
         * the same interest in the end. */
        p.want_write = 1;
        ck_assert_int_eq(asyncore_update_interest(d), 0);
        ck_assert_int_eq(armed(fds[0]), EV_READ | EV_WRITE);
        if (epoll)
            assert_epoll_ctl(0, 0, 1);
        ck_assert(th_loop_until(th_map, &p.writes, 3.0));
        p.want_write = 0;
        ck_assert_int_eq(asyncore_update_interest(d), 0);
        ck_assert_int_eq(armed(fds[0]), EV_READ);
        if (epoll)
            assert_epoll_ctl(0, 0, 1);
        p.writes = 0;
    }
    /* Interest lost and found again has no MOD to make. */
    p.want_read = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(armed(fds[0]), 0);
    if (epoll)
        assert_epoll_ctl(0, 1, 0);
    p.want_read = 1;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    if (epoll)
        assert_epoll_ctl(1, 0, 0);
    /* The dispatcher still reads, from the event it owns. */
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &p.reads, 3.0));
    epoll_watch_fd = -1;
    close(fds[1]);
}
END_TEST

/* A change made while the loop runs, by code that is no hook of the
 * dispatcher (here a callback of the caller's own on the map's base), is
 * seen after asyncore_update_interest(); one made between loop calls is
 * seen when the next call is entered. */
struct outside_change {
    struct probe *p;
    asyncore_dispatcher *d;
    int update;
};

static void change_from_outside(evutil_socket_t fd, short what, void *arg)
{
    struct outside_change *oc = arg;

    (void)fd;
    (void)what;
    oc->p->want_write = 1;
    if (oc->update)
        ck_assert_int_eq(asyncore_update_interest(oc->d), 0);
}

START_TEST(update_interest_rearms_after_an_outside_change)
{
    static struct probe p;
    struct outside_change oc = { &p, NULL, 0 };
    struct timeval soon = { 0, 1000 };
    struct event_base *base = asyncore_map_base(th_map);
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    stream_pair(family, fds);
    oc.d = adopt(&steady_h, &p, fds[0]);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    /* Nobody asks within the call: nothing changes yet. */
    ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, change_from_outside,
                                     &oc, &soon), 0);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 5), 0);
    ck_assert_int_eq(p.want_write, 1);
    ck_assert_int_eq(p.writes, 0);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    /* The next call asks when it is entered. */
    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(p.writes, 1);
    ck_assert_int_eq(armed(fds[0]), EV_READ | EV_WRITE);

    /* Within a call, asyncore_update_interest() re-arms at once. */
    p.want_write = 0;
    ck_assert_int_eq(asyncore_update_interest(oc.d), 0);
    p.writes = 0;
    oc.update = 1;
    ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, change_from_outside,
                                     &oc, &soon), 0);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 5), 0);
    ck_assert_int_gt(p.writes, 0);
    close(fds[1]);
}
END_TEST

START_TEST(reevaluate_mode_sees_an_outside_change_on_the_next_iteration)
{
    static struct probe p;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(1, 0);

    ck_assert_int_eq(asyncore_map_set_reevaluate(th_map, 1), 0);
    stream_pair(family, fds);
    adopt(&steady_h, &p, fds[0]);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    p.want_write = 1; /* no asyncore_update_interest() */
    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(p.writes, 1);
    ck_assert_int_eq(armed(fds[0]), EV_READ | EV_WRITE);
    close(fds[1]);
}
END_TEST

START_TEST(a_dispatcher_that_wants_nothing_has_no_event)
{
    static struct probe p, q;
    asyncore_dispatcher *d, *fresh;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_probe(0, 0);
    q = new_probe(0, 0);

    stream_pair(family, fds);
    d = adopt(&steady_h, &p, fds[0]);
    ck_assert_int_eq(armed_on(th_map, fds[0]).n, 0);

    fresh = asyncore_dispatcher_new(th_map, &steady_h, &q);
    ck_assert_int_eq(asyncore_create_socket(fresh, family, SOCK_STREAM), 0);
    ck_assert_int_eq(armed_on(th_map, asyncore_dispatcher_fd(fresh)).n, 0);

    p.want_read = 1;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(armed_on(th_map, fds[0]).n, 1);
    ck_assert_int_eq(armed(fds[0]), EV_READ);
    p.want_read = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(armed_on(th_map, fds[0]).n, 0);

    /* Nothing armed: a readiness reaches no hook. */
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(p.reads, 0);
    close(fds[1]);
}
END_TEST

/* ---- urgent data ------------------------------------------------------------ */

static const asyncore_handlers expt_h = {
    .handle_read = read_chunk,
    .handle_expt = expt_reads_oob,
    .readable = pred_readable,
    .writable = pred_writable,
    .destroy = count_destroy,
};

static const asyncore_handlers no_expt_h = {
    .handle_read = read_chunk,
    .readable = pred_readable,
    .writable = pred_writable,
};

START_TEST(handle_expt_runs_only_for_dispatchers_with_the_hook)
{
    static struct probe a, b;
    int fa[2], fb[2];
    FAMILY_OR_SKIP();
    a = new_probe(1, 0);
    b = new_probe(1, 0);

    if (family == AF_UNIX)
        return; /* no urgent data on AF_UNIX */
    /* Show warnings: a default handle_expt would log one. */
    ck_assert_int_eq(asyncore_map_set_ignore_log_types(th_map, 0), 0);
    th_log_capture(th_map);
    stream_pair(family, fa);
    stream_pair(family, fb);
    adopt(&expt_h, &a, fa[0]);
    adopt(&no_expt_h, &b, fb[0]);
    ck_assert_int_eq(send(fb[1], "!", 1, MSG_OOB), 1);
    ck_assert_int_eq(send(fa[1], "!", 1, MSG_OOB), 1);

    ck_assert(th_loop_until(th_map, &a.expts, 3.0));
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(a.expts, 1);
    ck_assert_int_eq(a.oob, '!');
    ck_assert_int_eq(a.reads, 0); /* a lone urgent byte is not data */
    ck_assert_int_eq(b.reads, 0);
    ck_assert_int_eq(th_log_count("priority"), 0);
    ck_assert_str_eq(th_log_text(), "");
    close(fa[1]);
    close(fb[1]);
}
END_TEST

static const char *const methods[] = { "epoll", "poll", "select" };

/* _i: the backend (i % 3) and the TCP family (i / 3). */
START_TEST(a_lone_urgent_byte_wakes_the_loop_on_every_backend)
{
    int family = _i < 3 ? AF_INET : AF_INET6;
    static struct probe p;
    struct event_base *base;
    asyncore_map *map;
    asyncore_dispatcher *d;
    int fds[2];
    p = new_probe(1, 0);

    if (th_skip_family(family))
        return;
    base = th_base_with_method(methods[_i % 3]);
    map = asyncore_map_new(base);
    ck_assert_ptr_nonnull(map);
    stream_pair(family, fds);
    d = asyncore_dispatcher_new(map, &expt_h, &p);
    ck_assert_int_eq(asyncore_set_socket(d, fds[0]), 0);
    ck_assert_int_eq(send(fds[1], "#", 1, MSG_OOB), 1);

    ck_assert(th_loop_until(map, &p.expts, 3.0));
    th_loop_for(map, 0.05);
    ck_assert_int_eq(p.expts, 1);
    ck_assert_int_eq(p.oob, '#');
    ck_assert_int_eq(p.reads, 0);

    /* And the next one, once the first was read. */
    ck_assert_int_eq(send(fds[1], "$", 1, MSG_OOB), 1);
    ck_assert(loop_until_n(map, &p.expts, 2, 3.0));
    th_loop_for(map, 0.05);
    ck_assert_int_eq(p.expts, 2);
    ck_assert_int_eq(p.oob, '$');
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(p.destroyed, 1);
    event_base_free(base);
    close(fds[1]);
}
END_TEST

/* Reads whatever normal data is there, past the urgent mark. */
static void read_all(asyncore_dispatcher *d)
{
    struct probe *p = P(d);
    char buf[256];

    p->reads++;
    note(p, "read");
    while (asyncore_recv(d, buf, sizeof(buf)) > 0)
        ;
}

static const asyncore_handlers read_all_expt_h = {
    .handle_read = read_all,
    .handle_expt = expt_reads_oob,
    .readable = pred_readable,
    .writable = pred_writable,
};

/*
 * The peer sends an urgent byte and then normal data, and both are there
 * when the loop looks.  handle_read reads past the mark, which clears the
 * socket's urgent state: handle_expt must run all the same, after it, as
 * asyncore (which acts on what select() reported) runs handle_read then
 * handle_expt.  _i: the backend (i % 3) and the TCP family (i / 3).
 */
START_TEST(urgent_data_with_normal_data_reaches_handle_expt_after_handle_read)
{
    int family = _i < 3 ? AF_INET : AF_INET6;
    static struct probe p;
    struct event_base *base;
    asyncore_map *map;
    asyncore_dispatcher *d;
    int fds[2], conn, lost = 0;

    if (th_skip_family(family))
        return;
    base = th_base_with_method(methods[_i % 3]);
    map = asyncore_map_new(base);
    ck_assert_ptr_nonnull(map);
    for (conn = 0; conn < 10; conn++) {
        p = new_probe(1, 0);
        stream_pair(family, fds);
        d = asyncore_dispatcher_new(map, &read_all_expt_h, &p);
        ck_assert_int_eq(asyncore_set_socket(d, fds[0]), 0);
        ck_assert_int_eq(asyncore_poll(map, 0), 0); /* watched, idle */
        ck_assert_int_eq(send(fds[1], "!", 1, MSG_OOB), 1);
        ck_assert_int_eq(send(fds[1], "data", 4, 0), 4);
        wait_for(fds[0], POLLIN | POLLPRI);
        ck_assert(th_loop_until(map, &p.reads, 3.0));
        th_loop_for(map, 0.02);
        if (p.expts == 0)
            lost++;
        else
            ck_assert_msg(strncmp(p.seq, "read,expt,", 10) == 0,
                          "connection %d: %s", conn, p.seq);
        ck_assert_int_le(p.expts, 1);
        ck_assert_int_eq(asyncore_close(d), 0);
        close(fds[1]);
    }
    ck_assert_msg(lost == 0, "%s: handle_expt lost on %d of 10 connections",
                  methods[_i % 3], lost);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    event_base_free(base);
}
END_TEST

START_TEST(urgent_data_after_close_reaches_no_hook)
{
    static struct probe a, b;
    asyncore_dispatcher *d;
    int fa[2], fb[2], keep;
    char c;
    FAMILY_OR_SKIP();
    a = new_probe(1, 0);
    b = new_probe(1, 0);

    if (family == AF_UNIX)
        return;
    stream_pair(family, fa);
    stream_pair(family, fb);
    d = adopt(&expt_h, &a, fa[0]);
    adopt(&expt_h, &b, fb[0]); /* keeps the map and its urgent channel busy */
    /* A second descriptor keeps the socket alive after close: only an
     * explicit removal stops the urgent channel from reporting it, with a
     * pointer to freed memory (which the sanitizer and valgrind passes
     * catch even where the freed bytes still read as closed). */
    keep = dup(fa[0]);
    ck_assert_int_ge(keep, 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(a.destroyed, 1);

    ck_assert_int_eq(send(fa[1], "!", 1, MSG_OOB), 1);
    wait_for(keep, POLLPRI);
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(a.expts, 0);
    ck_assert_int_eq(b.expts, 0);
    /* The byte did arrive: it was there to be (wrongly) reported. */
    ck_assert_int_eq(recv(keep, &c, 1, MSG_OOB), 1);
    ck_assert_int_eq(c, '!');
    close(keep);
    close(fa[1]);
    close(fb[1]);
}
END_TEST

/* ---- descriptor reuse ----------------------------------------------------- */

START_TEST(closing_deletes_the_event_before_the_fd_is_reused)
{
    static struct probe a, b;
    asyncore_dispatcher *old;
    int sa[2], sb[2], fd;
    a = new_probe(1, 0);
    b = new_probe(1, 0);

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sa), 0);
    old = adopt(&reader_h, &a, sa[0]);
    fd = sa[0];
    ck_assert_int_eq(send(sa[1], "a", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &a.reads, 3.0)); /* it was wired */
    ck_assert_int_eq(asyncore_close(old), 0);
    ck_assert_int_eq(a.destroyed, 1);

    /* The lowest free number is the one just released. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sb), 0);
    ck_assert_int_eq(sb[0], fd);
    adopt(&reader_h, &b, sb[0]);
    ck_assert_int_eq(send(sb[1], "b", 1, 0), 1);
    (void)send(sa[1], "a", 1, MSG_NOSIGNAL); /* to the old, closed socket */

    ck_assert(th_loop_until(th_map, &b.reads, 3.0));
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(b.reads, 1);
    ck_assert_uint_eq(b.got, 1);
    ck_assert_int_eq(a.reads, 1);
    ck_assert_int_eq(a.closes + a.errors, 0);
    close(sa[1]);
    close(sb[1]);
}
END_TEST

/* ---- adopting a socket -------------------------------------------------- */

START_TEST(set_socket_of_a_connected_socket_is_connected_to_its_peer)
{
    struct sockaddr_storage ss, peer;
    socklen_t len, plen = sizeof(peer), alen;
    static struct probe p;
    const struct sockaddr *addr;
    asyncore_dispatcher *d;
    int lfd, cfd, sfd;
    FAMILY_OR_SKIP();
    p = new_probe(0, 1);

    lfd = th_raw_listener(family, &ss, &len);
    cfd = th_raw_connect(&ss, len);
    sfd = th_raw_accept(lfd, 3.0);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(getpeername(cfd, (struct sockaddr *)&peer, &plen), 0);

    d = adopt(&all_h, &p, cfd);
    ck_assert(asyncore_dispatcher_connected(d));
    ck_assert(!asyncore_dispatcher_connecting(d));
    ck_assert(!asyncore_dispatcher_accepting(d));
    ck_assert_int_eq(asyncore_dispatcher_family(d), family);
    addr = asyncore_dispatcher_addr(d, &alen);
    ck_assert_ptr_nonnull(addr);
    ck_assert_int_eq(alen, plen);
    ck_assert_int_eq(memcmp(addr, &peer, plen), 0);

    /* Connected already: a write readiness is a write, never a connect. */
    ck_assert(th_loop_until(th_map, &p.writes, 3.0));
    ck_assert_int_eq(p.connects, 0);
    close(sfd);
    close(lfd);
}
END_TEST

START_TEST(set_socket_of_an_unconnected_socket_is_not_connected)
{
    static struct probe p;
    asyncore_dispatcher *d;
    socklen_t alen = 99;
    int fd;
    FAMILY_OR_SKIP();
    p = new_probe(0, 0);

    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    d = adopt(&all_h, &p, fd);
    ck_assert(!asyncore_dispatcher_connected(d));
    ck_assert(!asyncore_dispatcher_connecting(d));
    ck_assert_ptr_null(asyncore_dispatcher_addr(d, &alen));
    ck_assert_int_eq(alen, 0);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), fd);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
}
END_TEST

static Suite *events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("mapping");
    TCase *ti = tcase_create("interest");
    TCase *tu = tcase_create("urgent");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, read_event_on_a_listener_calls_handle_accept_and_never_write,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, read_event_while_connecting_calls_handle_connect_then_handle_read,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, connect_refused_later_calls_handle_error_and_never_handle_connect,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, connect_refused_later_with_default_handle_error_logs_and_closes,
                        0, TH_NFAMILIES);
    tcase_add_test(tc, connect_failing_at_once_returns_the_errno_and_calls_no_hook);
    tcase_add_test(tc, unix_connect_completing_at_once_calls_handle_connect_before_returning);
    tcase_add_loop_test(tc, recv_of_zero_bytes_calls_handle_close_once_and_reports_zero,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, all_data_reaches_handle_read_before_handle_close, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, peer_reset_during_read_calls_handle_close_not_handle_error,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, peer_reset_during_write_calls_handle_close_without_sigpipe,
                        0, TH_NFAMILIES);
    tcase_add_test(tc, send_returns_zero_when_the_buffer_is_full_and_calls_no_hook);
    tcase_add_loop_test(tc, no_hook_runs_after_a_hook_closed_the_dispatcher, 0,
                        TH_NFAMILIES);
    tcase_add_test(tc, closing_deletes_the_event_before_the_fd_is_reused);
    tcase_add_loop_test(tc, set_socket_of_a_connected_socket_is_connected_to_its_peer,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, set_socket_of_an_unconnected_socket_is_not_connected,
                        0, TH_NFAMILIES);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(ti, th_setup, th_teardown);
    tcase_set_timeout(ti, 30);
    tcase_add_loop_test(ti, interest_follows_the_predicates_after_each_dispatch, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(ti, a_steady_interest_set_is_not_rearmed, 0, TH_NFAMILIES);
    tcase_add_loop_test(ti, an_interest_change_is_one_epoll_ctl_mod, 0, TH_NFAMILIES);
    tcase_add_loop_test(ti, update_interest_rearms_after_an_outside_change, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(ti, reevaluate_mode_sees_an_outside_change_on_the_next_iteration,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(ti, a_dispatcher_that_wants_nothing_has_no_event, 0,
                        TH_NFAMILIES);
    suite_add_tcase(s, ti);

    tcase_add_checked_fixture(tu, th_setup, th_teardown);
    tcase_set_timeout(tu, 30);
    tcase_add_loop_test(tu, handle_expt_runs_only_for_dispatchers_with_the_hook, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tu, a_lone_urgent_byte_wakes_the_loop_on_every_backend, 0, 6);
    tcase_add_loop_test(tu, urgent_data_after_close_reaches_no_hook, 0, TH_NFAMILIES);
    tcase_add_loop_test(tu, urgent_data_with_normal_data_reaches_handle_expt_after_handle_read,
                        0, 6);
    suite_add_tcase(s, tu);
    return s;
}

int main(void)
{
    return th_run_suite(events_suite());
}
