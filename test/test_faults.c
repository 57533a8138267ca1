/*
 * test_faults.c -- the faults a server meets once it is deployed: connects
 * that fail or never finish, peers that half-close or reset, hooks that
 * free their own state, running out of descriptors, floods and starvation,
 * signals, fork().
 *
 * Every test ends with the same checks: th_teardown() finds exactly the
 * descriptors the test started with, no close() during the test hit a
 * descriptor that was not open (a double close would: see close() below),
 * and the sanitizer and valgrind passes find no leak and no use after free.
 * Tests with several dispatchers also check that the ones not involved in
 * the fault still work.
 *
 * The scenarios the other suites already pin are not repeated here; the
 * README's "Reliability" section lists where each one lives.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <event2/event.h>

/* ---- every fd closed exactly once ------------------------------------------
 * Defined in the executable, this close() interposes on libc's for the
 * library and libevent too.  A close() that fails with EBADF closed a
 * descriptor that was not open: a double close, which in a real server
 * closes someone else's connection.  th_teardown() checks the other half
 * (nothing left open). */

static int counting_closes;
static int bad_closes;

int close(int fd)
{
    typedef int (*close_fn)(int);
    static close_fn real;
    int rc, err;

    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "close");
        memcpy(&real, &sym, sizeof(real));
    }
    rc = real(fd);
    err = errno;
    if (rc < 0 && err == EBADF && counting_closes)
        bad_closes++;
    errno = err;
    return rc;
}

/* Likewise accept4(): the next @inject_accepts calls fail with
 * @inject_errno without touching the backlog, as the kernel's would. */
static int inject_accepts, inject_errno;

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
    static accept4_fn real;

    if (inject_accepts > 0) {
        inject_accepts--;
        errno = inject_errno;
        return -1;
    }
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "accept4");
        memcpy(&real, &sym, sizeof(real));
    }
    return real(fd, addr, len, flags);
}

/* ---- fixture ------------------------------------------------------------- */

static struct rlimit saved_nofile;
static int nofile_lowered;

static void restore_nofile(void)
{
    if (nofile_lowered)
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
    nofile_lowered = 0;
}

static void stop_alarms(void);

static void f_setup(void)
{
    th_setup();
    inject_accepts = 0;
    bad_closes = 0;
    counting_closes = 1;
}

/* A failed test may leave the process with few descriptors or a ticking
 * timer (without fork, the next test runs in this process). */
static void f_teardown(void)
{
    restore_nofile();
    stop_alarms();
    th_teardown();
    counting_closes = 0;
    ck_assert_int_eq(bad_closes, 0);
}

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i % TH_NFAMILIES);                             \
    if (th_skip_family(family))                                            \
        return

/* ---- streams and patterns ---------------------------------------------- */

/* A byte that depends on its offset: lost, repeated or reordered chunks
 * show up. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 11));
}

static void fill_pattern(unsigned char *buf, size_t n, size_t off)
{
    size_t i;

    for (i = 0; i < n; i++)
        buf[i] = pattern(off + i);
}

/* Offset of the first byte of @buf that is not the pattern from @off, or
 * @n.  One assertion per buffer, not per byte: Check reports every passed
 * assertion to its parent. */
static size_t pattern_mismatch(const unsigned char *buf, size_t n, size_t off)
{
    size_t i;

    for (i = 0; i < n && buf[i] == pattern(off + i); i++)
        ;
    return i;
}

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* A connected stream pair of @family (loopback, or a Unix socket path). */
static void stream_pair(int family, int fds[2])
{
    struct sockaddr_storage ss;
    socklen_t len;
    int listener = th_raw_listener(family, &ss, &len);

    fds[0] = th_raw_connect(&ss, len);
    fds[1] = th_raw_accept(listener, 3.0);
    ck_assert_int_ge(fds[1], 0);
    ck_assert_int_eq(close(listener), 0);
}

static asyncore_dispatcher *adopt(const asyncore_handlers *h, void *user,
                                  int fd)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, h, user);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fd), 0);
    return d;
}

static asyncore_dispatcher *adopt_with_send(const asyncore_handlers *h,
                                            void *user, int fd)
{
    asyncore_dispatcher *d = asyncore_dispatcher_with_send_new(th_map, h, user);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fd), 0);
    return d;
}

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static void close_it(asyncore_dispatcher *d)
{
    ck_assert_int_eq(asyncore_close(d), 0);
}

/* Send all of @len bytes on a raw blocking socket. */
static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Run the loop until @fd (raw, non-blocking or not) has @len bytes to
 * read, then read them into @buf.  Returns 1, or 0 after @seconds. */
static int loop_recv(int fd, void *buf, size_t len, double seconds)
{
    double end = th_now() + seconds;
    size_t got = 0;
    ssize_t n;

    while (got < len && th_now() < end) {
        n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                      "raw peer: recv returned %zd (errno %d)", n, errno);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    return got == len;
}

/* ---- ping-pong pairs: the "other dispatchers" of every test ---------------
 * A client dispatcher sends a message, a server dispatcher echoes it, and
 * the client sends the next one when the echo is complete, @target times
 * (0: one round trip per pp_round() call).  Both ends are dispatchers of
 * th_map, over a Unix socketpair. */

#define PP_MSG 100

struct pp {
    int target;
    int rounds;
    size_t got;
    int bad, errors, closes;
};

static void pp_send(asyncore_dispatcher *d, int round)
{
    char msg[PP_MSG];

    memset(msg, 'a' + round % 26, sizeof(msg));
    /* A small message on a drained connection is taken whole. */
    ck_assert_int_eq(asyncore_send(d, msg, sizeof(msg)), (ssize_t)sizeof(msg));
}

static void pp_client_read(asyncore_dispatcher *d)
{
    struct pp *p = asyncore_dispatcher_user_data(d);
    char buf[PP_MSG];
    ssize_t n, i;

    n = asyncore_recv(d, buf, PP_MSG - p->got);
    if (n <= 0)
        return;
    for (i = 0; i < n; i++)
        p->bad += buf[i] != 'a' + p->rounds % 26;
    p->got += (size_t)n;
    if (p->got < PP_MSG)
        return;
    p->got = 0;
    p->rounds++;
    if (p->rounds < p->target)
        pp_send(d, p->rounds);
}

static void pp_server_read(asyncore_dispatcher *d)
{
    char buf[PP_MSG];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n > 0)
        ck_assert_int_eq(asyncore_send(d, buf, (size_t)n), n);
}

static void pp_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct pp *p = asyncore_dispatcher_user_data(d);

    (void)err;
    (void)op;
    p->errors++;
    asyncore_close(d);
}

static void pp_close(asyncore_dispatcher *d)
{
    struct pp *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    asyncore_close(d);
}

static const asyncore_handlers pp_client_h = {
    .handle_read = pp_client_read,
    .handle_close = pp_close,
    .handle_error = pp_error,
    .writable = never,
};

static const asyncore_handlers pp_server_h = {
    .handle_read = pp_server_read,
    .handle_close = pp_close,
    .handle_error = pp_error,
    .writable = never,
};

static asyncore_dispatcher *pp_start(struct pp *p, int target)
{
    asyncore_dispatcher *client;
    int sv[2];

    memset(p, 0, sizeof(*p));
    p->target = target;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client = adopt(&pp_client_h, p, sv[0]);
    (void)adopt(&pp_server_h, p, sv[1]);
    if (target > 0)
        pp_send(client, 0);
    return client;
}

/* One more round trip of an on-demand pair; true once it completed. */
static int pp_round(asyncore_dispatcher *client, struct pp *p)
{
    double end = th_now() + 5.0;

    p->target = p->rounds + 1;
    pp_send(client, p->rounds);
    while (p->rounds < p->target && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    return p->rounds == p->target;
}

/* The bystander is intact: it still makes a round trip and never saw an
 * error, a close or a wrong byte. */
static void pp_check_bystander(asyncore_dispatcher *client, struct pp *p)
{
    ck_assert_msg(pp_round(client, p), "the bystander made no round trip");
    ck_assert_int_eq(p->errors + p->closes + p->bad, 0);
}

/* ---- connects that fail or never finish ----------------------------------- */

struct cprobe {
    int connects, errors, closes, writes, destroyed;
    int err;
    char op[16];
    size_t pending_at_error, pending_at_close;
    char seq[128];
};

static void note(struct cprobe *p, const char *what)
{
    size_t n = strlen(p->seq);

    snprintf(p->seq + n, sizeof(p->seq) - n, "%s,", what);
}

static struct cprobe *CP(const asyncore_dispatcher *d)
{
    return asyncore_dispatcher_user_data(d);
}

static void cp_connect(asyncore_dispatcher *d)
{
    CP(d)->connects++;
    note(CP(d), "connect");
}

/* Records the error and leaves the dispatcher open: whatever the library
 * does next with the failed connection shows. */
static void cp_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct cprobe *p = CP(d);

    p->errors++;
    p->err = err;
    snprintf(p->op, sizeof(p->op), "%s", op);
    p->pending_at_error = asyncore_send_pending(d);
    note(p, "error");
}

static void cp_close(asyncore_dispatcher *d)
{
    struct cprobe *p = CP(d);

    p->closes++;
    p->pending_at_close = asyncore_send_pending(d);
    note(p, "close");
    close_it(d);
}

static void cp_write(asyncore_dispatcher *d)
{
    CP(d)->writes++;
    note(CP(d), "write");
    asyncore_with_send_handle_write(d);
}

static void cp_destroy(asyncore_dispatcher *d)
{
    CP(d)->destroyed++;
}

/* Variant 0 keeps the dispatcher open in handle_error; variant 1 has
 * asyncore's default (log, then handle_close). */
static const asyncore_handlers cp_keep_h = {
    .handle_connect = cp_connect,
    .handle_error = cp_error,
    .handle_close = cp_close,
    .handle_write = cp_write,
    .destroy = cp_destroy,
    .readable = never,
};

static const asyncore_handlers cp_default_h = {
    .handle_connect = cp_connect,
    .handle_close = cp_close,
    .handle_write = cp_write,
    .destroy = cp_destroy,
    .readable = never,
};

#define QUEUED 100000

/* An address of @family where nothing listens: a port (or a socket file)
 * that was just given up. */
static socklen_t refused_addr(int family, struct sockaddr_storage *ss)
{
    socklen_t len;
    int fd = th_raw_listener(family, ss, &len);

    ck_assert_int_eq(close(fd), 0);
    return len;
}

START_TEST(data_queued_before_a_refused_connect_is_reported_and_discarded)
{
    static struct cprobe p;
    const asyncore_handlers *h = _i < TH_NFAMILIES ? &cp_keep_h : &cp_default_h;
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d, *by_client;
    unsigned char *data = malloc(QUEUED);
    static struct pp by;
    int rc;
    FAMILY_OR_SKIP();

    memset(&p, 0, sizeof(p));
    th_log_capture(th_map);
    by_client = pp_start(&by, 0);
    ck_assert_ptr_nonnull(data);
    fill_pattern(data, QUEUED, 0);
    len = refused_addr(family, &ss);
    d = asyncore_dispatcher_with_send_new(th_map, h, &p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    /* Queued before the connection exists, as a client's request is. */
    ck_assert_int_eq(asyncore_send(d, data, QUEUED), QUEUED);
    free(data);
    ck_assert_uint_eq(asyncore_send_pending(d), QUEUED);

    errno = 0;
    rc = asyncore_connect(d, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        /* Refused at once (Unix sockets): no hook, the caller decides;
         * closing discards the queue. */
        ck_assert_int_eq(errno, ECONNREFUSED);
        ck_assert_str_eq(p.seq, "");
        ck_assert_uint_eq(asyncore_send_pending(d), QUEUED);
        ck_assert_int_eq(asyncore_close(d), 0);
        ck_assert_int_eq(p.destroyed, 1);
        pp_check_bystander(by_client, &by);
        return;
    }
    ck_assert(asyncore_dispatcher_connecting(d));
    {
        double end = th_now() + 5.0;
        while (!p.destroyed && th_now() < end)
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_int_eq(p.destroyed, 1);
    ck_assert_int_eq(p.connects, 0);
    ck_assert_int_eq(p.closes, 1);
    if (h == &cp_keep_h) {
        /* Reported once; the dead socket then fails the flush, which
         * closes.  Never a handle_connect, even though the socket's error
         * was consumed by the first report. */
        ck_assert_int_eq(p.errors, 1);
        ck_assert_int_eq(p.err, ECONNREFUSED);
        ck_assert_str_eq(p.op, "connect");
        ck_assert_uint_eq(p.pending_at_error, QUEUED);
        ck_assert_str_eq(p.seq, "error,write,close,");
    } else {
        ck_assert_str_eq(p.seq, "close,");
        ck_assert_int_eq(th_log_count("uncaptured error"), 1);
        ck_assert_int_eq(th_log_count("connect: errno 111"), 1);
    }
    /* Not one byte went anywhere before the report. */
    ck_assert_uint_eq(p.pending_at_close, QUEUED);
    pp_check_bystander(by_client, &by);
}
END_TEST

/* A listener whose accept queue is full drops SYNs: connects to it stay
 * in progress, as to a host that does not answer. */
static int black_hole(int family, struct sockaddr_storage *ss, socklen_t *len,
                      int *filler)
{
    struct pollfd pf;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    *len = th_loopback(family, ss);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)ss, *len), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    *len = th_sockname(fd, ss);
    /* Backlog 0 holds one connection: this one. */
    *filler = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(*filler, 0);
    if (connect(*filler, (struct sockaddr *)ss, *len) < 0)
        ck_assert_int_eq(errno, EINPROGRESS);
    pf.fd = *filler;
    pf.events = POLLOUT;
    ck_assert_int_eq(poll(&pf, 1, 3000), 1);
    return fd;
}

static void close_from_timer(evutil_socket_t fd, short what, void *arg)
{
    asyncore_dispatcher *d = arg;
    struct cprobe *p = CP(d);

    (void)fd;
    (void)what;
    /* Still connecting after all this time: the application gives up. */
    if (asyncore_dispatcher_connecting(d))
        note(p, "timeout");
    close_it(d);
}

START_TEST(closing_a_connect_to_a_black_hole_from_a_timer_runs_no_hook)
{
    static struct cprobe p;
    static struct pp by;
    struct sockaddr_storage ss;
    socklen_t len;
    struct timeval later = { 0, 300000 };
    asyncore_dispatcher *d, *by_client;
    struct event *timer;
    int listener, filler;
    double end;
    FAMILY_OR_SKIP();

    memset(&p, 0, sizeof(p));
    by_client = pp_start(&by, 0);
    listener = black_hole(family, &ss, &len, &filler);
    d = asyncore_dispatcher_new(th_map, &cp_keep_h, &p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(asyncore_dispatcher_connecting(d));

    timer = evtimer_new(asyncore_map_base(th_map), close_from_timer, d);
    ck_assert_ptr_nonnull(timer);
    ck_assert_int_eq(evtimer_add(timer, &later), 0);
    end = th_now() + 5.0;
    while (!p.destroyed && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    ck_assert_int_eq(p.destroyed, 1);
    /* Closing is not an event: no hook at all, only destroy. */
    ck_assert_str_eq(p.seq, "timeout,");
    ck_assert_int_eq(p.connects + p.errors + p.closes + p.writes, 0);
    pp_check_bystander(by_client, &by);

    event_free(timer);
    ck_assert_int_eq(close(filler), 0);
    ck_assert_int_eq(close(listener), 0);
}
END_TEST

/* ---- a peer that half-closes after sending 1 MiB ---------------------------- */

#define HALF (1u << 20)

struct halfp {
    size_t got, got_at_close, bad_at;
    int closes, destroyed, peer_done;
};

static struct halfp *HP(const asyncore_dispatcher *d)
{
    return asyncore_dispatcher_user_data(d);
}

/* An echo: every byte read is checked and sent back. */
static void half_read(asyncore_dispatcher *d)
{
    struct halfp *p = HP(d);
    unsigned char buf[65536];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n <= 0)
        return;
    if (pattern_mismatch(buf, (size_t)n, p->got) != (size_t)n && !p->bad_at)
        p->bad_at = p->got + 1;
    p->got += (size_t)n;
    ck_assert_int_eq(asyncore_send(d, buf, (size_t)n), n);
}

/* EOF is read once: the peer will send nothing more. */
static int half_readable(asyncore_dispatcher *d)
{
    return !HP(d)->peer_done;
}

/* The peer's FIN: what is queued still goes out, then we close. */
static void half_close(asyncore_dispatcher *d)
{
    struct halfp *p = HP(d);

    p->closes++;
    p->got_at_close = p->got;
    p->peer_done = 1;
    if (asyncore_send_pending(d) == 0)
        close_it(d);
}

static void half_write(asyncore_dispatcher *d)
{
    asyncore_with_send_handle_write(d);
    if (!asyncore_dispatcher_closed(d) && HP(d)->peer_done &&
        asyncore_send_pending(d) == 0)
        close_it(d);
}

static void half_destroy(asyncore_dispatcher *d)
{
    HP(d)->destroyed++;
}

static const asyncore_handlers half_h = {
    .handle_read = half_read,
    .handle_write = half_write,
    .handle_close = half_close,
    .readable = half_readable,
    .destroy = half_destroy,
};

START_TEST(half_close_after_one_mebibyte_reads_it_all_and_still_delivers_our_writes)
{
    static struct halfp p;
    unsigned char *out = malloc(HALF), in[65536];
    size_t sent = 0, back = 0;
    int fds[2], eof = 0, shut = 0;
    double end;
    ssize_t n;
    FAMILY_OR_SKIP();

    memset(&p, 0, sizeof(p));
    ck_assert_ptr_nonnull(out);
    fill_pattern(out, HALF, 0);
    stream_pair(family, fds);
    (void)adopt_with_send(&half_h, &p, fds[0]);
    set_nonblocking(fds[1]);
    end = th_now() + 30.0;
    while (!eof && th_now() < end) {
        if (sent < HALF) {
            n = send(fds[1], out + sent, HALF - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        } else if (!shut) {
            ck_assert_int_eq(shutdown(fds[1], SHUT_WR), 0);
            shut = 1;
        }
        while ((n = recv(fds[1], in, sizeof(in), 0)) > 0) {
            ck_assert_uint_eq(pattern_mismatch(in, (size_t)n, back), (size_t)n);
            back += (size_t)n;
        }
        if (n == 0)
            eof = 1;
        else
            ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    free(out);
    ck_assert_int_eq(p.bad_at, 0);
    ck_assert_uint_eq(p.got, HALF);
    ck_assert_int_eq(p.closes, 1);
    ck_assert_uint_eq(p.got_at_close, HALF); /* every byte before the close */
    ck_assert(eof);
    ck_assert_uint_eq(back, HALF);           /* and every byte back, then EOF */
    ck_assert_int_eq(p.destroyed, 1);
    ck_assert_int_eq(close(fds[1]), 0);
}
END_TEST

/* ---- hooks that free their own state ---------------------------------------- */

#define OWNED 20

struct owned {
    char *buf;  /* something more to free */
    int writes;
};

static int owned_freed_in_hook, owned_freed_in_destroy, owned_destroyed;
static int owned_writes_after_free;

/* "quit": free the state, then close -- all inside handle_read, on a
 * dispatcher that is also writable in this same dispatch. */
static void owned_read(asyncore_dispatcher *d)
{
    struct owned *o = asyncore_dispatcher_user_data(d);
    char buf[16];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n <= 0 || o == NULL)
        return;
    if (n == 4 && memcmp(buf, "quit", 4) == 0) {
        free(o->buf);
        free(o);
        ck_assert_int_eq(asyncore_dispatcher_set_user_data(d, NULL), 0);
        owned_freed_in_hook++;
        close_it(d);
    }
}

/* Default writable() is true: this runs in every iteration, and must not
 * run after owned_read closed (it would find no state). */
static void owned_write(asyncore_dispatcher *d)
{
    struct owned *o = asyncore_dispatcher_user_data(d);

    if (o == NULL) {
        owned_writes_after_free++;
        return;
    }
    o->writes++;
}

/* The usual way: the destroy hook frees what is left. */
static void owned_destroy(asyncore_dispatcher *d)
{
    struct owned *o = asyncore_dispatcher_user_data(d);

    owned_destroyed++;
    if (o != NULL) {
        free(o->buf);
        free(o);
        owned_freed_in_destroy++;
    }
}

static const asyncore_handlers owned_h = {
    .handle_read = owned_read,
    .handle_write = owned_write,
    .destroy = owned_destroy,
    /* handle_close: asyncore's, which closes. */
};

START_TEST(hooks_that_free_their_state_and_close_leave_nothing_behind)
{
    static struct pp by;
    asyncore_dispatcher *by_client;
    int peers[OWNED], i, sv[2];
    double end;

    owned_freed_in_hook = owned_freed_in_destroy = owned_destroyed = 0;
    owned_writes_after_free = 0;
    by_client = pp_start(&by, 0);
    for (i = 0; i < OWNED; i++) {
        struct owned *o = calloc(1, sizeof(*o));
        ck_assert_ptr_nonnull(o);
        o->buf = malloc(4096);
        ck_assert_ptr_nonnull(o->buf);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        (void)adopt(&owned_h, o, sv[0]);
        peers[i] = sv[1];
    }
    th_loop_for(th_map, 0.05);
    /* Half say "quit", half hang up. */
    for (i = 0; i < OWNED; i++) {
        if (i % 2 == 0)
            send_all(peers[i], "quit", 4);
        else
            ck_assert_int_eq(shutdown(peers[i], SHUT_WR), 0);
    }
    end = th_now() + 10.0;
    while (owned_destroyed < OWNED && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(owned_destroyed, OWNED);
    ck_assert_int_eq(owned_freed_in_hook, OWNED / 2);
    ck_assert_int_eq(owned_freed_in_destroy, OWNED / 2);
    ck_assert_int_eq(owned_writes_after_free, 0);
    for (i = 0; i < OWNED; i++) {
        char c;
        /* Our end is closed: the peer reads EOF. */
        ck_assert_int_eq(recv(peers[i], &c, 1, 0), 0);
        ck_assert_int_eq(close(peers[i]), 0);
    }
    pp_check_bystander(by_client, &by);
}
END_TEST

/* ---- servers: an echo listener ------------------------------------------------
 * Its connections echo what they read; the counters tell what happened. */

struct srv {
    int accepted, listener_errors;
    int conn_closes, conn_errors, expts;
    int conn_bad_last;
};

static struct srv srv;

static void echo_read(asyncore_dispatcher *d)
{
    char buf[4096];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n > 0)
        ck_assert_int_eq(asyncore_send(d, buf, (size_t)n), n);
}

static void echo_close(asyncore_dispatcher *d)
{
    srv.conn_closes++;
    close_it(d);
}

static void echo_error(asyncore_dispatcher *d, int err, const char *op)
{
    (void)err;
    (void)op;
    srv.conn_errors++;
    close_it(d);
}

static void echo_expt(asyncore_dispatcher *d)
{
    char c;

    if (recv(asyncore_dispatcher_fd(d), &c, 1, MSG_OOB) == 1 && c == '!')
        srv.expts++;
}

static const asyncore_handlers echo_h = {
    .handle_read = echo_read,
    .handle_close = echo_close,
    .handle_error = echo_error,
    .handle_expt = echo_expt,
    .writable = never,
};

static void srv_accepted(asyncore_dispatcher *d, int fd,
                         const struct sockaddr *addr, socklen_t len)
{
    (void)d;
    (void)addr;
    (void)len;
    srv.accepted++;
    (void)adopt(&echo_h, NULL, fd);
}

/* The listener must never get here in these tests (asyncore would close
 * it); the default accept is kept. */
static void srv_error(asyncore_dispatcher *d, int err, const char *op)
{
    (void)d;
    (void)err;
    (void)op;
    srv.listener_errors++;
}

static const asyncore_handlers srv_h = {
    .handle_accepted = srv_accepted,
    .handle_error = srv_error,
};

/* One echo round trip through a raw client of the echo server. */
static int echo_round(int fd, const char *msg)
{
    char buf[64];
    size_t len = strlen(msg);

    ck_assert_uint_lt(len, sizeof(buf));
    send_all(fd, msg, len);
    return loop_recv(fd, buf, len, 5.0) && memcmp(buf, msg, len) == 0;
}

static void wait_accepted(int n, double seconds)
{
    double end = th_now() + seconds;

    while (srv.accepted < n && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(srv.accepted, n);
}

#define RESETS 5

START_TEST(clients_reset_in_the_accept_queue_close_once_and_the_listener_serves_on)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct linger lg = { 1, 0 };
    asyncore_dispatcher *l;
    int i, fd, good;
    double end;
    FAMILY_OR_SKIP();

    memset(&srv, 0, sizeof(srv));
    l = th_listener(th_map, family, &srv_h, NULL, &ss, &len);
    /* Connected and reset before the listener ever ran. */
    for (i = 0; i < RESETS; i++) {
        fd = th_raw_connect(&ss, len);
        if (family != AF_UNIX)
            ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        ck_assert_int_eq(close(fd), 0);
    }
    good = th_raw_connect(&ss, len);
    ck_assert(echo_round(good, "still serving"));
    end = th_now() + 5.0;
    while (srv.conn_closes < srv.accepted - 1 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    /* Linux hands out a connection reset in the backlog like any other:
     * its channel's first read finds it gone -- handle_close once, never
     * handle_error. */
    ck_assert_int_ge(srv.accepted, 1);
    ck_assert_int_le(srv.accepted, RESETS + 1);
    ck_assert_int_eq(srv.conn_closes, srv.accepted - 1);
    ck_assert_int_eq(srv.conn_errors, 0);
    ck_assert_int_eq(srv.listener_errors, 0);
    ck_assert(asyncore_dispatcher_accepting(l));
    ck_assert_int_eq(close(good), 0);
}
END_TEST

/* What accept() can say about one connection that failed before it was
 * accepted (accept(2): Linux passes the connection's network errors on). */
static const int connection_errors[] = {
    ECONNABORTED, EINTR, EPROTO, EPERM, ENETDOWN, ENETUNREACH, EHOSTDOWN,
    EHOSTUNREACH, ENONET, ENOPROTOOPT, EOPNOTSUPP,
};

#define NCONN_ERRORS (int)(sizeof(connection_errors) / sizeof(connection_errors[0]))

START_TEST(accept_errors_about_one_connection_leave_the_listener_serving)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *l;
    int err = connection_errors[_i], c;

    memset(&srv, 0, sizeof(srv));
    l = th_listener(th_map, AF_INET, &srv_h, NULL, &ss, &len);
    /* Called directly: "nothing to accept", as EAGAIN. */
    inject_accepts = 1;
    inject_errno = err;
    errno = 0;
    ck_assert_int_eq(asyncore_accept(l, NULL, NULL), -1);
    ck_assert_msg(errno == EAGAIN, "errno %d gave %d", err, errno);
    /* From the loop: no handle_error (whose default would close the
     * listener), and the next readiness accepts the connection. */
    c = th_raw_connect(&ss, len);
    inject_accepts = 1;
    wait_accepted(1, 5.0);
    ck_assert_int_eq(inject_accepts, 0);
    ck_assert_int_eq(srv.listener_errors, 0);
    ck_assert(echo_round(c, "served"));
    ck_assert_int_eq(close(c), 0);
}
END_TEST

START_TEST(an_accept_error_about_the_listener_goes_to_handle_error)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *l;
    int c;

    memset(&srv, 0, sizeof(srv));
    l = th_listener(th_map, AF_INET, &srv_h, NULL, &ss, &len);
    c = th_raw_connect(&ss, len);
    inject_accepts = 1;
    inject_errno = EINVAL;
    wait_accepted(1, 5.0);
    ck_assert_int_eq(srv.listener_errors, 1);
    ck_assert_int_eq(asyncore_dispatcher_last_error(l), EINVAL);
    ck_assert_int_eq(close(c), 0);
}
END_TEST

/* ---- running out of descriptors ------------------------------------------------ */

/* The lowest descriptor number above which exactly @spare numbers are
 * free: descriptors are allocated lowest first, so with that as the limit
 * the process can open @spare more.  (Inherited descriptors may sit far
 * above the rest, with holes below them.) */
static int limit_for_spare(int spare)
{
    char open_fds[4096] = { 0 };
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int fd, n;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL) {
        n = atoi(e->d_name);
        if (e->d_name[0] != '.' && n >= 0 && n < (int)sizeof(open_fds) &&
            n != dirfd(dir))
            open_fds[n] = 1;
    }
    closedir(dir);
    for (fd = 0; fd < (int)sizeof(open_fds); fd++)
        if (!open_fds[fd] && spare-- == 0)
            return fd;
    ck_abort_msg("no free descriptor numbers below %zu", sizeof(open_fds));
    return -1;
}

/* The soft RLIMIT_NOFILE the kernel applies, from /proc/self/limits. */
static long kernel_nofile(void)
{
    FILE *f = fopen("/proc/self/limits", "r");
    char line[256];
    long cur = -1;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Max open files %ld", &cur) == 1)
            break;
    fclose(f);
    return cur;
}

/* Allow @spare more descriptors.  Returns 0 if the kernel does not apply
 * the limit: valgrind emulates RLIMIT_NOFILE, and where it refuses a
 * descriptor the kernel gave, it closes it -- an accepted connection
 * would be lost, which is not what a real EMFILE does. */
static int lower_nofile(int spare)
{
    struct rlimit lim;
    int probe[64], n = 0, err;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
    lim = saved_nofile;
    lim.rlim_cur = (rlim_t)limit_for_spare(spare);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    nofile_lowered = 1;
    if (kernel_nofile() != (long)lim.rlim_cur)
        return 0;
    while (n < 64 && (probe[n] = dup(2)) >= 0)
        n++;
    err = errno;
    while (n > 0)
        ck_assert_int_eq(close(probe[--n]), 0);
    ck_assert_int_eq(err, EMFILE);
    return 1;
}

#define EMFILE_CLIENTS 30

START_TEST(out_of_descriptors_the_listener_pauses_logs_once_and_resumes)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *l;
    int existing, clients[EMFILE_CLIENTS], late, i, iters = 0;
    double start;

    memset(&srv, 0, sizeof(srv));
    th_log_capture(th_map);
    l = th_listener(th_map, AF_INET, &srv_h, NULL, &ss, &len);
    existing = th_raw_connect(&ss, len);
    wait_accepted(1, 5.0);
    ck_assert(echo_round(existing, "before"));
    /* They wait in the backlog (64) until the listener accepts them. */
    for (i = 0; i < EMFILE_CLIENTS; i++)
        clients[i] = th_raw_connect(&ss, len);

    if (!lower_nofile(2)) {
        fprintf(stderr, "out_of_descriptors...: the kernel does not apply "
                        "RLIMIT_NOFILE here (valgrind): not tested\n");
        restore_nofile();
    } else {
        /* One second of running out: the listener must not make the loop
         * spin (it would be thousands of iterations), must not be closed,
         * and the existing connection is served all along. */
        start = th_now();
        while (th_now() - start < 1.0) {
            ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
            iters++;
        }
        ck_assert(echo_round(existing, "during"));
        ck_assert_int_lt(srv.accepted, 1 + EMFILE_CLIENTS);
        ck_assert_int_le(iters, 200);
        ck_assert_int_eq(th_log_count("cannot accept (errno 24: Too many open files)"), 1);
        ck_assert_int_eq(th_log_count("error: "), 1);
        ck_assert_int_eq(srv.listener_errors, 0);
        ck_assert(asyncore_dispatcher_accepting(l));
        ck_assert_int_eq(asyncore_dispatcher_last_error(l), EMFILE);
        /* Descriptors come back: the listener resumes by itself. */
        restore_nofile();
    }
    wait_accepted(1 + EMFILE_CLIENTS, 5.0);
    late = th_raw_connect(&ss, len);
    wait_accepted(2 + EMFILE_CLIENTS, 5.0);
    ck_assert(echo_round(late, "after"));
    ck_assert(echo_round(existing, "after"));
    ck_assert_int_eq(srv.conn_errors, 0);
    ck_assert_int_eq(srv.listener_errors, 0);
    for (i = 0; i < EMFILE_CLIENTS; i++)
        ck_assert_int_eq(close(clients[i]), 0);
    ck_assert_int_eq(close(late), 0);
    ck_assert_int_eq(close(existing), 0);
}
END_TEST

/* ---- interest across dispatchers ------------------------------------------------ */

#define RESPONSE (256u * 1024)
#define REQUESTS 8

/* A reads one-byte requests and answers each with RESPONSE bytes queued on
 * B, a dispatcher_with_send whose own hooks never ran: the library must
 * arm B for writing by itself. */
struct relay {
    asyncore_dispatcher *b;
    size_t next_off;
    int a_reads, b_writes;
};

static struct relay relay;

static void relay_a_read(asyncore_dispatcher *d)
{
    unsigned char *resp;
    char req[8];
    ssize_t n = asyncore_recv(d, req, sizeof(req)), i;

    if (n <= 0)
        return;
    relay.a_reads++;
    resp = malloc(RESPONSE);
    ck_assert_ptr_nonnull(resp);
    for (i = 0; i < n; i++) {
        fill_pattern(resp, RESPONSE, relay.next_off);
        ck_assert_int_eq(asyncore_send(relay.b, resp, RESPONSE), RESPONSE);
        relay.next_off += RESPONSE;
    }
    free(resp);
}

static void relay_b_write(asyncore_dispatcher *d)
{
    relay.b_writes++;
    asyncore_with_send_handle_write(d);
}

static const asyncore_handlers relay_a_h = {
    .handle_read = relay_a_read,
    .writable = never,
};

static const asyncore_handlers relay_b_h = {
    .handle_write = relay_b_write,
    .readable = never,
};

/* Read what the raw @fd has, checking the pattern from *@got on. */
static void drain_pattern(int fd, size_t *got)
{
    unsigned char buf[65536];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        ck_assert_uint_eq(pattern_mismatch(buf, (size_t)n, *got), (size_t)n);
        *got += (size_t)n;
    }
}

START_TEST(output_queued_by_another_dispatchers_read_is_flushed_in_the_next_iteration)
{
    int fa[2], fb[2], k, writes;
    size_t got = 0;
    double end;
    FAMILY_OR_SKIP();

    memset(&relay, 0, sizeof(relay));
    stream_pair(family, fa);
    stream_pair(family, fb);
    (void)adopt(&relay_a_h, NULL, fa[0]);
    relay.b = adopt_with_send(&relay_b_h, NULL, fb[0]);
    ck_assert_int_eq(asyncore_with_send_writable(relay.b), 0);
    for (k = 0; k < REQUESTS; k++) {
        send_all(fa[1], "r", 1);
        end = th_now() + 5.0;
        while (relay.a_reads == k && th_now() < end)
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        ck_assert_int_eq(relay.a_reads, k + 1);
        /* More than one send's worth is waiting on B ... */
        ck_assert_uint_gt(asyncore_send_pending(relay.b), 0);
        /* ... and once the peer took what was sent (a Unix socket is
         * writable again only when three quarters of its buffer are free),
         * the very next iteration sends more. */
        drain_pattern(fb[1], &got);
        ck_assert_uint_gt(got, (size_t)k * RESPONSE);
        writes = relay.b_writes;
        ck_assert_int_eq(asyncore_poll(th_map, 5.0), 0);
        ck_assert_int_gt(relay.b_writes, writes);
        end = th_now() + 10.0;
        while (got < (size_t)(k + 1) * RESPONSE && th_now() < end) {
            drain_pattern(fb[1], &got);
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        }
        ck_assert_uint_eq(got, (size_t)(k + 1) * RESPONSE);
    }
    /* Drained: B is no longer armed for writing. */
    ck_assert_uint_eq(asyncore_send_pending(relay.b), 0);
    writes = relay.b_writes;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    ck_assert_int_eq(relay.b_writes, writes);
    ck_assert_int_eq(close(fa[1]), 0);
    ck_assert_int_eq(close(fb[1]), 0);
}
END_TEST

/* A reader that stops reading for a while under a flood. */
#define FLOOD (8u << 20)

struct flood {
    int want, reads, readables, closes;
    size_t got, got_at_close, bad_at;
};

static struct flood fl;

static int flood_readable(asyncore_dispatcher *d)
{
    (void)d;
    fl.readables++;
    return fl.want;
}

static void flood_read(asyncore_dispatcher *d)
{
    unsigned char buf[16384];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    fl.reads++;
    if (n <= 0)
        return;
    if (pattern_mismatch(buf, (size_t)n, fl.got) != (size_t)n && !fl.bad_at)
        fl.bad_at = fl.got + 1;
    fl.got += (size_t)n;
}

static void flood_close(asyncore_dispatcher *d)
{
    fl.closes++;
    fl.got_at_close = fl.got;
    close_it(d);
}

static const asyncore_handlers flood_h = {
    .handle_read = flood_read,
    .handle_close = flood_close,
    .readable = flood_readable,
    .writable = never,
};

/* Send what the raw non-blocking @fd takes of the pattern up to FLOOD. */
static int flood_send(int fd, size_t *sent)
{
    unsigned char buf[65536];
    size_t want;
    ssize_t n;

    while (*sent < FLOOD) {
        want = FLOOD - *sent < sizeof(buf) ? FLOOD - *sent : sizeof(buf);
        fill_pattern(buf, want, *sent);
        n = send(fd, buf, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
            return 0;
        }
        *sent += (size_t)n;
    }
    return 1;
}

START_TEST(readable_false_under_a_flood_sleeps_and_loses_nothing)
{
    asyncore_dispatcher *d;
    size_t sent = 0;
    int fds[2], reads, readables;
    double end, t0;
    FAMILY_OR_SKIP();

    memset(&fl, 0, sizeof(fl));
    fl.want = 1;
    stream_pair(family, fds);
    d = adopt(&flood_h, NULL, fds[0]);
    set_nonblocking(fds[1]);
    end = th_now() + 30.0;
    while (fl.got < FLOOD / 8 && th_now() < end) {
        (void)flood_send(fds[1], &sent);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    /* Stop reading; the peer fills every buffer on the way. */
    fl.want = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    (void)flood_send(fds[1], &sent);
    reads = fl.reads;
    readables = fl.readables;
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 0.05, 10), 0);
    /* Each iteration slept its whole timeout: nothing was armed that was
     * ready, so the loop did not spin; no hook ran, and the predicates
     * were asked only once, when the loop was entered. */
    ck_assert_msg(th_now() - t0 >= 0.45, "10 iterations of 50 ms took %.3f s",
                  th_now() - t0);
    ck_assert_int_eq(fl.reads, reads);
    ck_assert_int_eq(fl.readables, readables + 1);
    /* Reading again: everything arrives, in order. */
    fl.want = 1;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    while (fl.got < FLOOD && th_now() < end) {
        (void)flood_send(fds[1], &sent);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_int_eq(shutdown(fds[1], SHUT_WR), 0);
    while (fl.closes == 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(fl.bad_at, 0);
    ck_assert_uint_eq(fl.got_at_close, FLOOD);
    ck_assert_int_eq(fl.closes, 1);
    ck_assert_int_eq(close(fds[1]), 0);
}
END_TEST

/* ---- starvation --------------------------------------------------------------- */

static int w_writes;

static void count_write(asyncore_dispatcher *d)
{
    (void)d;
    w_writes++;
}

/* writable() is asyncore's default: true, always. */
static const asyncore_handlers always_writable_h = {
    .handle_write = count_write,
    .readable = never,
};

START_TEST(an_always_writable_dispatcher_does_not_starve_the_others)
{
    static struct pp pp;
    int sv[2], iters = 0;
    double end;

    w_writes = 0;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    (void)adopt(&always_writable_h, NULL, sv[0]);
    (void)pp_start(&pp, 200);
    end = th_now() + 30.0;
    while (pp.rounds < 200 && th_now() < end) {
        ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
        iters++;
    }
    ck_assert_int_eq(pp.rounds, 200);
    ck_assert_int_eq(pp.bad + pp.errors + pp.closes, 0);
    /* It was dispatched in every iteration, once: the others' events were
     * dispatched beside it, not after it. */
    ck_assert_int_eq(w_writes, iters);
    ck_assert_int_eq(close(sv[1]), 0);
}
END_TEST

/* A connection that is always readable, and whose peer is always
 * writable, beside 50 ping-pong connections. */
#define PAIRS 50
#define ROUNDS 20
#define HOSE_CHUNK 65536

struct hose {
    size_t sent, got, bad_at;
    int reads, writes;
};

static struct hose hose;

static void hose_write(asyncore_dispatcher *d)
{
    unsigned char buf[HOSE_CHUNK];
    ssize_t n;

    hose.writes++;
    fill_pattern(buf, sizeof(buf), hose.sent);
    n = asyncore_send(d, buf, sizeof(buf));
    if (n > 0)
        hose.sent += (size_t)n;
}

static void hose_read(asyncore_dispatcher *d)
{
    unsigned char buf[HOSE_CHUNK];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    hose.reads++;
    if (n <= 0)
        return;
    if (pattern_mismatch(buf, (size_t)n, hose.got) != (size_t)n && !hose.bad_at)
        hose.bad_at = hose.got + 1;
    hose.got += (size_t)n;
}

static const asyncore_handlers hose_out_h = {
    .handle_write = hose_write,
    .readable = never,
};

static const asyncore_handlers hose_in_h = {
    .handle_read = hose_read,
    .writable = never,
};

static int all_done(const struct pp *p, int n, int rounds)
{
    int i;

    for (i = 0; i < n; i++)
        if (p[i].rounds < rounds)
            return 0;
    return 1;
}

START_TEST(a_firehose_does_not_starve_fifty_ping_pong_connections)
{
    static struct pp pairs[PAIRS];
    int fds[2], i, iters = 0, bad = 0;
    double end;
    FAMILY_OR_SKIP();

    memset(&hose, 0, sizeof(hose));
    stream_pair(family, fds);
    (void)adopt(&hose_out_h, NULL, fds[0]);
    (void)adopt(&hose_in_h, NULL, fds[1]);
    for (i = 0; i < PAIRS; i++)
        (void)pp_start(&pairs[i], ROUNDS);
    end = th_now() + 60.0;
    while (!all_done(pairs, PAIRS, ROUNDS) && th_now() < end) {
        ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
        iters++;
    }
    for (i = 0; i < PAIRS; i++) {
        ck_assert_int_eq(pairs[i].rounds, ROUNDS);
        bad += pairs[i].bad + pairs[i].errors + pairs[i].closes;
    }
    ck_assert_int_eq(bad, 0);
    /* The firehose ran all along, one read and one write per iteration at
     * most: readiness is served round-robin, not drained. */
    ck_assert_int_ge(hose.reads, ROUNDS);
    ck_assert_int_le(hose.reads, iters);
    ck_assert_int_le(hose.writes, iters);
    ck_assert_uint_gt(hose.got, 0);
    ck_assert_int_eq(hose.bad_at, 0);
}
END_TEST

/* ---- signals ------------------------------------------------------------------- */

static volatile sig_atomic_t alarms;
static struct sigaction old_alrm;
static int alarms_on;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* SIGALRM every millisecond, without SA_RESTART: every blocking call of
 * the loop (epoll_wait, poll, select) returns EINTR again and again. */
static void start_alarms(void)
{
    struct sigaction sa;
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } };

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old_alrm), 0);
    alarms_on = 1;
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

/* A SIGALRM may still be pending once the timer is off (valgrind delivers
 * signals late): ignoring it discards it before the old action -- for
 * SIGALRM by default, terminating -- is back. */
static void stop_alarms(void)
{
    struct itimerval off;
    struct sigaction ign;

    if (!alarms_on)
        return;
    memset(&off, 0, sizeof(off));
    setitimer(ITIMER_REAL, &off, NULL);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, NULL);
    sigaction(SIGALRM, &old_alrm, NULL);
    alarms_on = 0;
}

#define SIG_ALARMS 300

static int hose_on;

static int hose_writable(asyncore_dispatcher *d)
{
    (void)d;
    return hose_on;
}

static const asyncore_handlers hose_tap_h = {
    .handle_write = hose_write,
    .readable = never,
    .writable = hose_writable,
};

START_TEST(signals_every_millisecond_lose_no_byte_and_no_round_trip)
{
    static struct pp pp;
    asyncore_dispatcher *tap;
    int fds[2];
    double end;
    FAMILY_OR_SKIP();

    memset(&hose, 0, sizeof(hose));
    stream_pair(family, fds);
    hose_on = 1;
    tap = adopt(&hose_tap_h, NULL, fds[0]);
    (void)adopt(&hose_in_h, NULL, fds[1]);
    (void)pp_start(&pp, INT32_MAX);
    alarms = 0;
    start_alarms();
    end = th_now() + 60.0;
    /* Traffic both ways while the signals keep coming ... */
    while (alarms < SIG_ALARMS && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    /* ... then the senders stop, and what they sent must all arrive. */
    hose_on = 0;
    ck_assert_int_eq(asyncore_update_interest(tap), 0);
    pp.target = pp.rounds + 1;
    while ((hose.got < hose.sent || pp.rounds < pp.target) && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    stop_alarms();
    ck_assert_int_ge(alarms, SIG_ALARMS);
    ck_assert_uint_gt(hose.sent, 0);
    ck_assert_uint_eq(hose.got, hose.sent);
    ck_assert_int_eq(hose.bad_at, 0);
    ck_assert_int_eq(pp.rounds, pp.target);
    ck_assert_int_eq(pp.bad + pp.errors + pp.closes, 0);
}
END_TEST

/* ---- fork ----------------------------------------------------------------------- */

/* In the child: the documented way to drop an inherited map (map.h),
 * and the child's copy of the test's own client. */
static int child_drops_the_map(int client)
{
    counting_closes = 0;
    if (close(client) != 0)
        return 1;
    if (event_reinit(asyncore_map_base(th_map)) != 0)
        return 2;
    if (asyncore_close_all(th_map) != 0 || asyncore_map_count(th_map) != 0)
        return 3;
    if (asyncore_map_free(th_map) != 0)
        return 4;
    return 0;
}

START_TEST(a_forked_child_closes_its_copies_without_touching_the_parents_connections)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *l;
    int c, c2, status;
    double end;
    pid_t pid;

    memset(&srv, 0, sizeof(srv));
    l = th_listener(th_map, AF_INET, &srv_h, NULL, &ss, &len);
    c = th_raw_connect(&ss, len);
    wait_accepted(1, 5.0);
    ck_assert(echo_round(c, "before fork"));

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(child_drops_the_map(c));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status 0x%x", status);

    /* The parent's connection, its urgent-data watch and its listener are
     * all still there. */
    ck_assert(echo_round(c, "after fork"));
    ck_assert_int_eq(send(c, "!", 1, MSG_OOB), 1);
    end = th_now() + 5.0;
    while (srv.expts == 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(srv.expts, 1);
    ck_assert(asyncore_dispatcher_accepting(l));
    c2 = th_raw_connect(&ss, len);
    wait_accepted(2, 5.0);
    ck_assert(echo_round(c2, "a new one"));
    ck_assert_int_eq(srv.conn_closes + srv.conn_errors, 0);
    ck_assert_int_eq(close(c2), 0);
    ck_assert_int_eq(close(c), 0);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *conn = tcase_create("connect and close");
    TCase *acc = tcase_create("accept");
    TCase *interest = tcase_create("interest");
    TCase *loop = tcase_create("loop");

    tcase_add_checked_fixture(conn, f_setup, f_teardown);
    tcase_set_timeout(conn, 60);
    tcase_add_loop_test(conn, data_queued_before_a_refused_connect_is_reported_and_discarded,
                        0, 2 * TH_NFAMILIES);
    tcase_add_loop_test(conn, closing_a_connect_to_a_black_hole_from_a_timer_runs_no_hook,
                        0, 2); /* TCP only: Unix sockets refuse at once */
    tcase_add_loop_test(conn, half_close_after_one_mebibyte_reads_it_all_and_still_delivers_our_writes,
                        0, TH_NFAMILIES);
    tcase_add_test(conn, hooks_that_free_their_state_and_close_leave_nothing_behind);
    suite_add_tcase(s, conn);

    tcase_add_checked_fixture(acc, f_setup, f_teardown);
    tcase_set_timeout(acc, 60);
    tcase_add_loop_test(acc, clients_reset_in_the_accept_queue_close_once_and_the_listener_serves_on,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(acc, accept_errors_about_one_connection_leave_the_listener_serving,
                        0, NCONN_ERRORS);
    tcase_add_test(acc, an_accept_error_about_the_listener_goes_to_handle_error);
    tcase_add_test(acc, out_of_descriptors_the_listener_pauses_logs_once_and_resumes);
    suite_add_tcase(s, acc);

    tcase_add_checked_fixture(interest, f_setup, f_teardown);
    tcase_set_timeout(interest, 120);
    tcase_add_loop_test(interest, output_queued_by_another_dispatchers_read_is_flushed_in_the_next_iteration,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(interest, readable_false_under_a_flood_sleeps_and_loses_nothing,
                        0, TH_NFAMILIES);
    tcase_add_test(interest, an_always_writable_dispatcher_does_not_starve_the_others);
    tcase_add_loop_test(interest, a_firehose_does_not_starve_fifty_ping_pong_connections,
                        0, TH_NFAMILIES);
    suite_add_tcase(s, interest);

    tcase_add_checked_fixture(loop, f_setup, f_teardown);
    tcase_set_timeout(loop, 120);
    tcase_add_loop_test(loop, signals_every_millisecond_lose_no_byte_and_no_round_trip,
                        0, TH_NFAMILIES);
    tcase_add_test(loop, a_forked_child_closes_its_copies_without_touching_the_parents_connections);
    suite_add_tcase(s, loop);
    return s;
}

int main(void)
{
    return th_run_suite(faults_suite());
}
