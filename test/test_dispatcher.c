/*
 * test_dispatcher.c -- the scenarios of CPython's test_asyncore BaseTestAPI,
 * over IPv4, IPv6 and AF_UNIX loopback sockets.
 */
#define _GNU_SOURCE /* pipe2 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/select.h>

#include <event2/event.h>

/* Per-test state reachable from hooks through the user pointer. */
struct probe {
    int flag;
    int connects;
    int closes;
    int errors;
    int last_err;
    int accepted_fd;
    char buf[4096];
    size_t got;
};

/* ---- a server that hands every connection to a handler table ---------- */

static const asyncore_handlers *server_child;

static void server_accepted(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *a, socklen_t l)
{
    asyncore_dispatcher *c;

    (void)a;
    (void)l;
    c = asyncore_dispatcher_new(asyncore_dispatcher_map(d), server_child,
                                asyncore_dispatcher_user_data(d));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
}

static const asyncore_handlers server_handlers = {
    .handle_accepted = server_accepted,
};

/* A handler that does nothing (and must not be asked to). */
static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static const asyncore_handlers idle_handlers = {
    .readable = never,
    .writable = never,
};

static asyncore_dispatcher *client_to(const asyncore_handlers *h,
                                      struct probe *p,
                                      struct sockaddr_storage *ss,
                                      socklen_t len)
{
    asyncore_dispatcher *c = asyncore_dispatcher_new(th_map, h, p);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_create_socket(c, ss->ss_family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)ss, len), 0);
    return c;
}

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

/* ---- handle_connect is called on connect ------------------------------- */

static void set_flag_connect(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    p->flag = 1;
    p->connects++;
}

static void quiet_write(asyncore_dispatcher *d)
{
    (void)d;
}

static const asyncore_handlers connect_client = {
    .handle_connect = set_flag_connect,
    .handle_write = quiet_write,
    .readable = never,
};

START_TEST(handle_connect_is_called_on_connect)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    server_child = &idle_handlers;
    th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    client_to(&connect_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
    /* Exactly once, however many write events follow. */
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(p.connects, 1);
}
END_TEST

/* ---- handle_accept / handle_accepted ----------------------------------- */

static void accept_sets_flag(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    int fd = asyncore_accept(d, NULL, NULL);

    if (fd >= 0)
        close(fd);
    p->flag = 1;
}

static const asyncore_handlers accept_listener = {
    .handle_accept = accept_sets_flag,
};

static const asyncore_handlers quiet_client = {
    .handle_connect = quiet_write,
    .handle_write = quiet_write,
    .handle_read = quiet_write,
    .writable = never,
};

START_TEST(handle_accept_is_called_when_a_client_connects)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 }, c = { 0 };
    FAMILY_OR_SKIP();

    th_listener(th_map, family, &accept_listener, &p, &ss, &len);
    client_to(&quiet_client, &c, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
}
END_TEST

static void accepted_sets_flag(asyncore_dispatcher *d, int fd,
                               const struct sockaddr *a, socklen_t l)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_gt(l, 0);
    ck_assert_int_eq(a->sa_family, asyncore_dispatcher_family(d));
    /* Accepted sockets come non-blocking and close-on-exec. */
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    p->flag = 1;
}

static const asyncore_handlers accepted_listener = {
    .handle_accepted = accepted_sets_flag,
};

START_TEST(default_handle_accept_passes_the_connection_to_handle_accepted)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 }, c = { 0 };
    FAMILY_OR_SKIP();

    th_listener(th_map, family, &accepted_listener, &p, &ss, &len);
    client_to(&quiet_client, &c, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
}
END_TEST

/* ---- handle_read is called on data received ---------------------------- */

static void read_sets_flag(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    ssize_t n = asyncore_recv(d, p->buf + p->got, sizeof(p->buf) - p->got);

    if (n > 0)
        p->got += (size_t)n;
    if (p->got == 1024)
        p->flag = 1;
}

static const asyncore_handlers read_client = {
    .handle_connect = quiet_write,
    .handle_read = read_sets_flag,
    .writable = never,
};

static void sender_accepted(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *a, socklen_t l)
{
    char data[1024];
    asyncore_dispatcher *c;

    (void)a;
    (void)l;
    memset(data, 'x', sizeof(data));
    c = asyncore_dispatcher_new(asyncore_dispatcher_map(d), &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
    ck_assert_int_eq(asyncore_dispatcher_connected(c), 1);
    ck_assert_int_eq(asyncore_send(c, data, sizeof(data)), 1024);
}

static const asyncore_handlers sender_server = {
    .handle_accepted = sender_accepted,
};

START_TEST(handle_read_is_called_on_data_received)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    size_t i;
    FAMILY_OR_SKIP();

    th_listener(th_map, family, &sender_server, NULL, &ss, &len);
    client_to(&read_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
    for (i = 0; i < 1024; i++)
        ck_assert_int_eq(p.buf[i], 'x');
}
END_TEST

/* ---- handle_write is called -------------------------------------------- */

static void write_sets_flag(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    p->flag = 1;
}

static const asyncore_handlers write_client = {
    .handle_connect = quiet_write,
    .handle_write = write_sets_flag,
    .readable = never,
};

START_TEST(handle_write_is_called)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    server_child = &idle_handlers;
    th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    client_to(&write_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
}
END_TEST

/* ---- handle_close is called when the other end closes ------------------ */

static void read_some(asyncore_dispatcher *d)
{
    char buf[1024];
    (void)asyncore_recv(d, buf, sizeof(buf));
}

static void close_sets_flag(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    p->flag = 1;
    p->closes++;
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers close_client = {
    .handle_connect = quiet_write,
    .handle_read = read_some,
    .handle_close = close_sets_flag,
    .writable = never,
};

static void close_at_once_accepted(asyncore_dispatcher *d, int fd,
                                   const struct sockaddr *a, socklen_t l)
{
    asyncore_dispatcher *c;

    (void)a;
    (void)l;
    c = asyncore_dispatcher_new(asyncore_dispatcher_map(d), &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
    ck_assert_int_eq(asyncore_close(c), 0);
}

static const asyncore_handlers closing_server = {
    .handle_accepted = close_at_once_accepted,
};

START_TEST(handle_close_is_called_when_the_other_end_closes)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    th_listener(th_map, family, &closing_server, NULL, &ss, &len);
    client_to(&close_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
    ck_assert_int_eq(p.closes, 1);
}
END_TEST

/* ---- ECONNRESET/EPIPE on send reach handle_close ----------------------- */

static void send_forever(asyncore_dispatcher *d)
{
    static const char zeros[128];
    (void)asyncore_send(d, zeros, sizeof(zeros));
}

static void close_sets_flag_expt(asyncore_dispatcher *d)
{
    close_sets_flag(d);
}

static void count_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    (void)op;
    p->errors++;
    p->last_err = err;
    p->flag = 1;
    asyncore_close(d);
}

static const asyncore_handlers broken_client = {
    .handle_connect = quiet_write,
    .handle_write = send_forever,
    .handle_close = close_sets_flag,
    .handle_expt = close_sets_flag_expt,
    .handle_error = count_error,
    .readable = never,
};

static void read_then_close(asyncore_dispatcher *d)
{
    char buf[128];
    (void)asyncore_recv(d, buf, sizeof(buf));
    asyncore_close(d);
}

static const asyncore_handlers read_close_child = {
    .handle_read = read_then_close,
    .writable = never,
};

START_TEST(handle_close_after_connection_broken)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    server_child = &read_close_child;
    th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    client_to(&broken_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 5.0));
    ck_assert_int_eq(p.errors, 0);
    ck_assert_int_eq(p.closes, 1);
}
END_TEST

/* ---- handle_expt is called on urgent data ------------------------------- */

static void expt_sets_flag(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    char c;

    ck_assert_int_eq(recv(asyncore_dispatcher_fd(d), &c, 1, MSG_OOB), 1);
    ck_assert_int_eq((unsigned char)c, 244);
    p->flag = 1;
}

static const asyncore_handlers expt_client = {
    .handle_connect = quiet_write,
    .handle_expt = expt_sets_flag,
    .handle_read = quiet_write,
    .writable = never,
};

static void oob_accepted(asyncore_dispatcher *d, int fd,
                         const struct sockaddr *a, socklen_t l)
{
    asyncore_dispatcher *c;
    char b = (char)244;

    (void)a;
    (void)l;
    c = asyncore_dispatcher_new(asyncore_dispatcher_map(d), &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
    ck_assert_int_eq(send(fd, &b, 1, MSG_OOB), 1);
}

static const asyncore_handlers oob_server = {
    .handle_accepted = oob_accepted,
};

START_TEST(handle_expt_is_called_on_urgent_data)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    if (family == AF_UNIX)
        return; /* no urgent data on AF_UNIX, as in CPython's test */
    th_listener(th_map, family, &oob_server, NULL, &ss, &len);
    client_to(&expt_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
}
END_TEST

/* ---- handle_error gets failures of hooks -------------------------------- */

static void fail_in_write(asyncore_dispatcher *d)
{
    /* The C counterpart of raising in a hook: report to handle_error. */
    asyncore_handle_error(d, EPROTO, "handle_write");
}

static void error_sets_flag(asyncore_dispatcher *d, int err, const char *op)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    ck_assert_int_eq(err, EPROTO);
    ck_assert_str_eq(op, "handle_write");
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), EPROTO);
    p->flag = 1;
    asyncore_close(d);
}

static const asyncore_handlers error_client = {
    .handle_connect = quiet_write,
    .handle_write = fail_in_write,
    .handle_error = error_sets_flag,
    .readable = never,
};

START_TEST(handle_error_receives_the_error_and_operation)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    FAMILY_OR_SKIP();

    server_child = &idle_handlers;
    th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    client_to(&error_client, &p, &ss, len);
    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
}
END_TEST

/* ---- connection attributes ---------------------------------------------- */

START_TEST(connection_attributes_follow_the_connection)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    asyncore_dispatcher *server, *client;
    FAMILY_OR_SKIP();

    server_child = &idle_handlers;
    server = th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    client = client_to(&connect_client, &p, &ss, len);
    ck_assert(!asyncore_dispatcher_connected(server));
    ck_assert(asyncore_dispatcher_accepting(server));
    ck_assert(!asyncore_dispatcher_accepting(client));

    ck_assert(th_loop_until(th_map, &p.flag, 3.0));
    ck_assert(!asyncore_dispatcher_connected(server));
    ck_assert(asyncore_dispatcher_accepting(server));
    ck_assert(asyncore_dispatcher_connected(client));
    ck_assert(!asyncore_dispatcher_connecting(client));
    ck_assert(!asyncore_dispatcher_accepting(client));

    ck_assert_int_eq(asyncore_dispatcher_hold(client), 0);
    ck_assert_int_eq(asyncore_close(client), 0);
    ck_assert(!asyncore_dispatcher_connected(client));
    ck_assert(!asyncore_dispatcher_accepting(client));
    ck_assert(asyncore_dispatcher_closed(client));
    ck_assert_int_eq(asyncore_dispatcher_fd(client), -1);
    asyncore_dispatcher_release(client);

    ck_assert_int_eq(asyncore_dispatcher_hold(server), 0);
    ck_assert_int_eq(asyncore_close(server), 0);
    ck_assert(!asyncore_dispatcher_connected(server));
    ck_assert(!asyncore_dispatcher_accepting(server));
    asyncore_dispatcher_release(server);
}
END_TEST

/* ---- create_socket ------------------------------------------------------- */

START_TEST(create_socket_makes_a_nonblocking_cloexec_stream_socket)
{
    asyncore_dispatcher *d;
    int fd, type;
    socklen_t tl = sizeof(type);
    FAMILY_OR_SKIP();

    d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    fd = asyncore_dispatcher_fd(d);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(asyncore_dispatcher_family(d), family);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl), 0);
    ck_assert_int_eq(type, SOCK_STREAM);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
}
END_TEST

/* ---- bind: a second bind to the same port fails with EADDRINUSE --------- */

START_TEST(bind_to_a_port_in_use_fails_with_eaddrinuse)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *s2;
    FAMILY_OR_SKIP();

    if (family == AF_UNIX)
        return; /* not applicable, as in CPython's test */
    th_listener(th_map, family, &idle_handlers, NULL, &ss, &len);
    s2 = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_create_socket(s2, family, SOCK_STREAM), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_bind(s2, (struct sockaddr *)&ss, len), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
}
END_TEST

/* ---- set_reuse_addr ------------------------------------------------------ */

START_TEST(set_reuse_addr_sets_so_reuseaddr)
{
    asyncore_dispatcher *d;
    int on = -1;
    socklen_t ol = sizeof(on);
    FAMILY_OR_SKIP();

    if (family == AF_UNIX)
        return;
    d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    getsockopt(asyncore_dispatcher_fd(d), SOL_SOCKET, SO_REUSEADDR, &on, &ol);
    ck_assert_int_eq(on, 0);
    ck_assert_int_eq(asyncore_set_reuse_addr(d), 0);
    getsockopt(asyncore_dispatcher_fd(d), SOL_SOCKET, SO_REUSEADDR, &on, &ol);
    ck_assert_int_ne(on, 0);
}
END_TEST

/* ---- quick connect: a client that resets at once harms nothing ---------- */

START_TEST(quick_connect_and_reset_leaves_the_server_serving)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct linger lg = { 1, 0 };
    asyncore_dispatcher *server;
    int fd, i;
    FAMILY_OR_SKIP();

    if (family == AF_UNIX)
        return; /* specific to AF_INET and AF_INET6, as in CPython */
    server_child = &idle_handlers;
    server = th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    for (i = 0; i < 5; i++) {
        fd = th_raw_connect(&ss, len);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        th_loop_for(th_map, 0.02);
    }
    ck_assert(asyncore_dispatcher_accepting(server));
}
END_TEST

/* ---- set_nodelay --------------------------------------------------------- */

START_TEST(set_nodelay_sets_tcp_nodelay_on_tcp_only)
{
    asyncore_dispatcher *d;
    int on = 0;
    socklen_t ol = sizeof(on);
    FAMILY_OR_SKIP();

    d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    if (family == AF_UNIX) {
        errno = 0;
        ck_assert_int_eq(asyncore_set_nodelay(d, 1), -1);
        ck_assert_int_eq(errno, EOPNOTSUPP);
        return;
    }
    ck_assert_int_eq(asyncore_set_nodelay(d, 1), 0);
    getsockopt(asyncore_dispatcher_fd(d), IPPROTO_TCP, TCP_NODELAY, &on, &ol);
    ck_assert_int_ne(on, 0);
}
END_TEST

/* ---- asyncore's addr ------------------------------------------------------ */

/* Each family's address is kept whole (IPv4 ones in the dispatcher, longer
 * ones apart), and a later bind or connect replaces the earlier one. */
START_TEST(addr_is_the_address_last_given_to_bind_or_connect)
{
    struct sockaddr_storage ss, local;
    socklen_t len, local_len, alen = 0;
    const struct sockaddr *addr;
    asyncore_dispatcher *c;
    FAMILY_OR_SKIP();

    server_child = &idle_handlers;
    th_listener(th_map, family, &server_handlers, NULL, &ss, &len);
    local_len = th_loopback(family, &local);
    c = asyncore_dispatcher_new(th_map, &quiet_client, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_create_socket(c, family, SOCK_STREAM), 0);
    ck_assert_ptr_null(asyncore_dispatcher_addr(c, &alen));
    ck_assert_int_eq(alen, 0);

    ck_assert_int_eq(asyncore_bind(c, (struct sockaddr *)&local, local_len), 0);
    addr = asyncore_dispatcher_addr(c, &alen);
    ck_assert_ptr_nonnull(addr);
    ck_assert_int_eq(alen, local_len);
    ck_assert_int_eq(memcmp(addr, &local, local_len), 0);

    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    addr = asyncore_dispatcher_addr(c, &alen);
    ck_assert_ptr_nonnull(addr);
    ck_assert_int_eq(alen, len);
    ck_assert_int_eq(memcmp(addr, &ss, len), 0);
}
END_TEST

/* ---- descriptors the backend cannot watch -------------------------------- */

/* The soft limit on descriptors raised to @want if it is lower (restored
 * from @saved by the test); 0 if the hard limit does not allow it. */
static int raise_nofile(rlim_t want, struct rlimit *saved)
{
    struct rlimit rl;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    *saved = rl;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
            return 0;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return 0;
    }
    return 1;
}

static int high_reads;

static void high_read(asyncore_dispatcher *d)
{
    char buf[16];

    if (asyncore_recv(d, buf, sizeof(buf)) > 0)
        high_reads++;
}

static const asyncore_handlers high_reader = {
    .handle_read = high_read,
    .writable = never,
};

static const asyncore_handlers paused_listener = {
    .readable = never,
};

static const char *const fd_methods[] = { "select", "poll", "epoll" };

/*
 * libevent's select backend hands descriptors to FD_SET, which glibc
 * checks: one at FD_SETSIZE or above aborts the process.  On a map over
 * select the calls that would add one fail with EMFILE instead; poll and
 * epoll take it.  _i: the backend.
 */
START_TEST(select_refuses_descriptors_at_or_above_fd_setsize_with_emfile)
{
    int select = _i == 0;
    struct rlimit saved;
    struct event_base *base;
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_map *map;
    asyncore_dispatcher *d, *listener;
    static int fillers[FD_SETSIZE];
    int sv[2], pv[2], high, fd, nfill = 0, client, before, i;
    char c;

    if (!raise_nofile(FD_SETSIZE + 64, &saved)) {
        fprintf(stderr, "SKIP %s: RLIMIT_NOFILE's hard limit is below %d\n",
                __func__, FD_SETSIZE + 64);
        return;
    }
    base = th_base_with_method(fd_methods[_i]);
    map = asyncore_map_new(base);
    ck_assert_ptr_nonnull(map);

    /* set_socket() with a high descriptor: refused on select only, and
     * the descriptor stays the caller's. */
    high_reads = 0;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    high = fcntl(sv[0], F_DUPFD_CLOEXEC, FD_SETSIZE + 8);
    ck_assert_int_ge(high, FD_SETSIZE);
    close(sv[0]);
    d = asyncore_dispatcher_new(map, &high_reader, NULL);
    ck_assert_ptr_nonnull(d);
    errno = 0;
    if (select) {
        ck_assert_int_eq(asyncore_set_socket(d, high), -1);
        ck_assert_int_eq(errno, EMFILE);
        ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
        ck_assert_uint_eq(asyncore_map_count(map), 0);
        ck_assert_int_ge(fcntl(high, F_GETFD), 0); /* not closed */
        close(high);
    } else {
        ck_assert_int_eq(asyncore_set_socket(d, high), 0);
        ck_assert_int_eq(send(sv[1], "x", 1, 0), 1);
        ck_assert(th_loop_until(map, &high_reads, 3.0));
    }
    ck_assert_int_eq(asyncore_close(d), 0);

    /* A listener made while low descriptors are left. */
    listener = th_listener(map, AF_INET, &paused_listener, NULL, &ss, &len);
    ck_assert_ptr_nonnull(listener);

    /* Every descriptor below FD_SETSIZE taken: new ones are high. */
    while ((fd = dup(sv[1])) >= 0 && fd < FD_SETSIZE)
        fillers[nfill++] = fd;
    ck_assert_int_ge(fd, FD_SETSIZE);
    close(fd);

    /* A map's own descriptors (its wake-up eventfd) are checked too. */
    errno = 0;
    if (select) {
        ck_assert_ptr_null(asyncore_map_new(base));
        ck_assert_int_eq(errno, EMFILE);
    }

    d = asyncore_dispatcher_new(map, &high_reader, NULL);
    ck_assert_ptr_nonnull(d);
    before = th_fd_count();
    errno = 0;
    if (select) {
        ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), -1);
        ck_assert_int_eq(errno, EMFILE);
        ck_assert_int_eq(th_fd_count(), before); /* nothing left open */
    } else {
        ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
        ck_assert_int_ge(asyncore_dispatcher_fd(d), FD_SETSIZE);
    }
    ck_assert_int_eq(asyncore_close(d), 0);

    /* A file dispatcher over a pipe works on its own (high) duplicate. */
    ck_assert_int_eq(pipe2(pv, O_CLOEXEC), 0);
    errno = 0;
    d = asyncore_file_dispatcher_new(map, &high_reader, NULL, pv[0]);
    if (select) {
        ck_assert_ptr_null(d);
        ck_assert_int_eq(errno, EMFILE);
    } else {
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(asyncore_close(d), 0);
    }
    close(pv[0]);
    close(pv[1]);

    /* accept(): the new connection would be high -- refused and closed on
     * select (the peer sees it go), taken elsewhere. */
    client = th_raw_connect(&ss, len);
    errno = 0;
    fd = asyncore_accept(listener, NULL, NULL);
    if (select) {
        ck_assert_int_eq(fd, -1);
        ck_assert_int_eq(errno, EMFILE);
        ck_assert_int_le(recv(client, &c, 1, 0), 0);
    } else {
        ck_assert_int_ge(fd, FD_SETSIZE);
        close(fd);
    }
    close(client);

    for (i = 0; i < nfill; i++)
        close(fillers[i]);
    close(sv[1]);
    /* The map still runs (the process is still there). */
    ck_assert_int_eq(asyncore_poll(map, 0), 0);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    event_base_free(base);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
}
END_TEST

static Suite *dispatcher_suite(void)
{
    Suite *s = suite_create("dispatcher");
    TCase *tc = tcase_create("api");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, handle_connect_is_called_on_connect, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_accept_is_called_when_a_client_connects, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, default_handle_accept_passes_the_connection_to_handle_accepted,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_read_is_called_on_data_received, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_write_is_called, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_close_is_called_when_the_other_end_closes, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_close_after_connection_broken, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_expt_is_called_on_urgent_data, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, handle_error_receives_the_error_and_operation, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, connection_attributes_follow_the_connection, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, create_socket_makes_a_nonblocking_cloexec_stream_socket,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, bind_to_a_port_in_use_fails_with_eaddrinuse, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, set_reuse_addr_sets_so_reuseaddr, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, addr_is_the_address_last_given_to_bind_or_connect, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, quick_connect_and_reset_leaves_the_server_serving, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, set_nodelay_sets_tcp_nodelay_on_tcp_only, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, select_refuses_descriptors_at_or_above_fd_setsize_with_emfile,
                        0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(dispatcher_suite());
}
