/*
 * test_send.c -- dispatcher_with_send: the output queue, its flushing in
 * chunks of at most ASYNCORE_SEND_CHUNK bytes, overrides calling their
 * parent, and what happens to queued data when the peer goes away.
 */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG (4u << 20)

/* Per-test state reachable from hooks through the user pointer. */
struct probe {
    int connects;
    size_t pending_at_connect;
    int writes;
    size_t max_sent;   /* most bytes one handle_write took off the queue */
    int closes;
    int destroys;
    int reads;              /* handle_read calls */
    size_t read_bytes;      /* what they received */
    size_t pending_at_read; /* the send queue at the last of them */
    int readable_asks;
};

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static void note_connect(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    p->connects++;
    p->pending_at_connect = asyncore_send_pending(d);
}

/* An override that calls its parent, measuring what the parent sent. */
static void measured_write(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    size_t before = asyncore_send_pending(d), sent;

    p->writes++;
    asyncore_with_send_handle_write(d);
    if (asyncore_dispatcher_closed(d))
        return;
    sent = before - asyncore_send_pending(d);
    ck_assert_uint_le(sent, ASYNCORE_SEND_CHUNK);
    if (sent > p->max_sent)
        p->max_sent = sent;
}

static void close_once(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    ck_assert_int_eq(asyncore_close(d), 0);
}

static void count_destroy(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    p->destroys++;
}

/* The probes live in the tests' stack frames and the destroy hook writes
 * to them: a test closes its dispatchers before returning. */
static void close_before_return(struct probe *p, int destroys)
{
    ck_assert_int_eq(asyncore_close_all(th_map), 0);
    ck_assert_int_eq(p->destroys, destroys);
}

/* dispatcher_with_send that never reads, as CPython's test has. */
static const asyncore_handlers noread = {
    .handle_connect = note_connect,
    .handle_write = measured_write,
    .handle_close = close_once,
    .destroy = count_destroy,
    .readable = never,
};

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

/* A byte that depends on its offset, so lost, repeated or reordered
 * chunks show up. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 11));
}

static unsigned char *pattern_buf(size_t len)
{
    unsigned char *b = malloc(len);
    size_t i;

    ck_assert_ptr_nonnull(b);
    for (i = 0; i < len; i++)
        b[i] = pattern(i);
    return b;
}

/* Read whatever is there without blocking; check it against the pattern
 * from offset *@got on.  Returns the bytes read, 0 at end of file. */
static ssize_t read_pattern(int fd, size_t *got, size_t max)
{
    unsigned char buf[65536];
    ssize_t n, i;

    if (max > sizeof(buf))
        max = sizeof(buf);
    n = recv(fd, buf, max, MSG_DONTWAIT);
    if (n < 0) {
        ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
        return -1;
    }
    /* One assertion per read, not per byte: Check reports every passed
     * assertion to its parent process. */
    for (i = 0; i < n && buf[i] == pattern(*got + (size_t)i); i++)
        ;
    ck_assert_msg(i == n, "byte %zu differs", *got + (size_t)i);
    *got += (size_t)n;
    return n;
}

/* Poll the map while @peer reads what arrives, @chunk bytes at most per
 * read, until *@got reaches @total or @seconds pass. */
static void poll_while_reading(int peer, size_t *got, size_t total,
                               size_t chunk, double seconds)
{
    double end = th_now() + seconds;

    while (*got < total && th_now() < end) {
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        while (read_pattern(peer, got, chunk) > 0)
            ;
    }
}

/* A connected pair of @family: the library's end adopted by a new
 * dispatcher_with_send, the raw peer returned in *@peer. */
static asyncore_dispatcher *with_send_pair(int family,
                                           const asyncore_handlers *h,
                                           struct probe *p, int *peer)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    int listener, fd;

    listener = th_raw_listener(family, &ss, &len);
    fd = th_raw_connect(&ss, len);
    *peer = th_raw_accept(listener, 3.0);
    ck_assert_int_ge(*peer, 0);
    close(listener);
    d = asyncore_dispatcher_with_send_new(th_map, h, p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fd), 0);
    ck_assert(asyncore_dispatcher_connected(d));
    return d;
}

/* ---- CPython's DispatcherWithSendTests.test_send ------------------------- */

START_TEST(with_send_delivers_everything_sent_before_and_after_connecting)
{
    static const char data[] = "a quick brown fox jumps over the lazy dog";
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    char got[256];
    size_t total = 0;
    double end;
    ssize_t n;
    int listener, conn;
    FAMILY_OR_SKIP();

    listener = th_raw_listener(family, &ss, &len);
    d = asyncore_dispatcher_with_send_new(th_map, &noread, &p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(asyncore_send(d, data, strlen(data)), (ssize_t)strlen(data));
    ck_assert_int_eq(asyncore_send(d, data, strlen(data)), (ssize_t)strlen(data));
    ck_assert_int_eq(asyncore_send(d, "\n", 1), 1);

    end = th_now() + 3.0;
    while ((!asyncore_dispatcher_connected(d) || asyncore_send_pending(d) > 0) &&
           th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    ck_assert_int_eq(p.connects, 1);

    conn = th_raw_accept(listener, 3.0);
    ck_assert_int_ge(conn, 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    while ((n = recv(conn, got + total, sizeof(got) - total, 0)) > 0)
        total += (size_t)n;
    ck_assert_int_eq(n, 0);
    got[total] = '\0';
    ck_assert_uint_eq(total, 2 * strlen(data) + 1);
    ck_assert_int_eq(strncmp(got, data, strlen(data)), 0);
    ck_assert_int_eq(strncmp(got + strlen(data), data, strlen(data)), 0);
    ck_assert_int_eq(got[total - 1], '\n');
    close(conn);
    close(listener);
}
END_TEST

/* ---- a large transfer to a peer that reads slowly ------------------------- */

START_TEST(four_mib_reach_a_slow_peer_in_order_and_write_interest_ends)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf(BIG);
    size_t got = 0;
    int peer, writes_when_drained;
    FAMILY_OR_SKIP();

    d = with_send_pair(family, &noread, &p, &peer);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    free(data); /* the queue has its own copy */
    /* The immediate attempt sends at most one chunk. */
    ck_assert_uint_ge(asyncore_send_pending(d), BIG - ASYNCORE_SEND_CHUNK);
    ck_assert_int_eq(asyncore_with_send_writable(d), 1);

    /* The peer stalls: the socket fills and the rest stays queued. */
    th_loop_for(th_map, 0.1);
    ck_assert_uint_gt(asyncore_send_pending(d), 0);

    /* Now it reads, a little at a time. */
    poll_while_reading(peer, &got, BIG, 32768, 20.0);
    ck_assert_uint_eq(got, BIG);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    ck_assert_int_eq(asyncore_with_send_writable(d), 0);

    /* Drained: no more write events, so handle_write is not called. */
    writes_when_drained = p.writes;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    ck_assert_int_eq(p.writes, writes_when_drained);
    ck_assert_int_eq(p.closes, 0);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

/* ---- small sends, one of which the socket takes in part ------------------- */

START_TEST(small_sends_to_a_full_socket_queue_what_it_did_not_take)
{
    enum { PIECE = 3000, PIECES = 1000 };
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf((size_t)PIECE * PIECES);
    size_t off, got = 0;
    int peer, small = 32768;
    FAMILY_OR_SKIP();

    /* Until the socket is full each send goes straight to it; the one it
     * takes in part (or refuses) queues the rest, the later ones queue
     * whole.  Every byte must still arrive, once and in order. */
    d = with_send_pair(family, &noread, &p, &peer);
    /* Small buffers, so that loopback's cannot hold it all. */
    ck_assert_int_eq(setsockopt(asyncore_dispatcher_fd(d), SOL_SOCKET,
                                SO_SNDBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small,
                                sizeof(small)), 0);
    for (off = 0; off < (size_t)PIECE * PIECES; off += PIECE)
        ck_assert_int_eq(asyncore_send(d, data + off, PIECE), PIECE);
    free(data);
    ck_assert_uint_gt(asyncore_send_pending(d), 0);
    poll_while_reading(peer, &got, (size_t)PIECE * PIECES, 32768, 20.0);
    ck_assert_uint_eq(got, (size_t)PIECE * PIECES);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

/* ---- data queued before the connection completes --------------------------- */

START_TEST(data_queued_before_connecting_is_sent_after_handle_connect)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    char got[8] = "";
    int listener, conn;
    double end;
    FAMILY_OR_SKIP();

    listener = th_raw_listener(family, &ss, &len);
    d = asyncore_dispatcher_with_send_new(th_map, &noread, &p);
    ck_assert_ptr_nonnull(d);
    /* Queued with no socket at all yet. */
    ck_assert_int_eq(asyncore_send(d, "hello", 5), 5);
    ck_assert_uint_eq(asyncore_send_pending(d), 5);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    if (family != AF_UNIX) {
        /* TCP connects in the background; more is queued meanwhile. */
        ck_assert(asyncore_dispatcher_connecting(d));
        ck_assert_int_eq(p.connects, 0);
    }
    ck_assert_int_eq(asyncore_send(d, "!", 1), 1);
    ck_assert_uint_eq(asyncore_send_pending(d), 6);

    end = th_now() + 3.0;
    while (asyncore_send_pending(d) > 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    ck_assert_int_eq(p.connects, 1);
    /* AF_UNIX connected inside asyncore_connect, before "!" was queued. */
    ck_assert_uint_eq(p.pending_at_connect, family == AF_UNIX ? 5 : 6);

    conn = th_raw_accept(listener, 3.0);
    ck_assert_int_ge(conn, 0);
    ck_assert_int_eq(recv(conn, got, 6, MSG_WAITALL), 6);
    ck_assert_str_eq(got, "hello!");
    close_before_return(&p, 1);
    close(conn);
    close(listener);
}
END_TEST

/* ---- chunks of at most ASYNCORE_SEND_CHUNK ---------------------------------- */

START_TEST(each_handle_write_sends_at_most_one_chunk)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf(1u << 20);
    int sv[2], big = 4 << 20;
    size_t got = 0;
    ssize_t n;

    /* Socket buffers far larger than a chunk, so that any limit seen is
     * the library's and not the kernel's. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    d = asyncore_dispatcher_with_send_new(th_map, &noread, &p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);

    ck_assert_int_eq(asyncore_send(d, data, 1u << 20), 1 << 20);
    free(data);
    ck_assert_uint_eq(asyncore_send_pending(d), (1u << 20) - ASYNCORE_SEND_CHUNK);
    while (read_pattern(sv[1], &got, 65536) > 0)
        ;
    /* A direct call, with the peer drained: exactly one chunk. */
    n = asyncore_initiate_send(d);
    ck_assert_int_eq(n, ASYNCORE_SEND_CHUNK);

    poll_while_reading(sv[1], &got, 1u << 20, 65536, 10.0);
    ck_assert_uint_eq(got, 1u << 20);
    ck_assert_int_gt(p.writes, 0);
    ck_assert_uint_eq(p.max_sent, ASYNCORE_SEND_CHUNK);
    close_before_return(&p, 1);
    close(sv[1]);
}
END_TEST

/* ---- overrides of handle_write ----------------------------------------------- */

static void write_without_parent(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    p->writes++;
}

static const asyncore_handlers no_parent = {
    .handle_write = write_without_parent,
    .readable = never,
};

START_TEST(a_handle_write_override_calling_its_parent_still_flushes)
{
    struct probe p = { 0 }, q = { 0 };
    asyncore_dispatcher *d, *e;
    unsigned char *data = pattern_buf(BIG);
    size_t got = 0, got_e = 0, stuck;
    int peer_d, peer_e;
    double end;

    d = with_send_pair(AF_UNIX, &noread, &p, &peer_d);
    e = with_send_pair(AF_UNIX, &no_parent, &q, &peer_e);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    ck_assert_int_eq(asyncore_send(e, data, BIG), (ssize_t)BIG);
    free(data);
    stuck = asyncore_send_pending(e);
    ck_assert_uint_gt(stuck, 0);

    /* Both peers read everything they get. */
    end = th_now() + 20.0;
    while (got < BIG && th_now() < end) {
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        while (read_pattern(peer_d, &got, 65536) > 0)
            ;
        while (read_pattern(peer_e, &got_e, 65536) > 0)
            ;
    }
    ck_assert_uint_eq(got, BIG);
    ck_assert_int_gt(p.writes, 0);
    /* The override that does not call its parent was called but sent
     * nothing: its peer got only the bytes of the immediate attempt. */
    ck_assert_int_gt(q.writes, 0);
    ck_assert_uint_eq(asyncore_send_pending(e), stuck);
    ck_assert_uint_eq(got_e, BIG - stuck);
    close_before_return(&p, 1);
    close(peer_d);
    close(peer_e);
}
END_TEST

/* ---- predicates over the inherited ones ------------------------------------ */

static int asked;

static int never_counted(asyncore_dispatcher *d)
{
    (void)d;
    asked++;
    return 0;
}

static const asyncore_handlers writable_override = {
    .handle_write = measured_write,
    .readable = never,
    .writable = never_counted,
};

/* The library answers dispatcher_with_send's writable() itself; a
 * subclass's own writable() must still be the one asked, and obeyed. */
START_TEST(a_writable_override_on_with_send_is_asked_and_obeyed)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf(BIG);
    size_t got = 0, stuck;
    int peer;

    asked = 0;
    d = with_send_pair(AF_UNIX, &writable_override, &p, &peer);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    free(data);
    stuck = asyncore_send_pending(d);
    ck_assert_uint_gt(stuck, 0);
    ck_assert_int_gt(asked, 0);
    /* The peer drains what it got; no handle_write may refill it. */
    while (read_pattern(peer, &got, 65536) > 0)
        ;
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(p.writes, 0);
    ck_assert_uint_eq(asyncore_send_pending(d), stuck);
    close(peer);
}
END_TEST

/* The inherited predicates named explicitly act exactly as inherited. */
static const asyncore_handlers explicit_defaults = {
    .handle_write = measured_write,
    .readable = asyncore_default_readable,
    .writable = asyncore_with_send_writable,
};

START_TEST(with_send_predicates_named_explicitly_flush_as_inherited_ones)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf(BIG);
    size_t got = 0;
    int peer;

    d = with_send_pair(AF_UNIX, &explicit_defaults, &p, &peer);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    free(data);
    poll_while_reading(peer, &got, BIG, 65536, 20.0);
    ck_assert_uint_eq(got, BIG);
    ck_assert_int_gt(p.writes, 0);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    close(peer);
}
END_TEST

/* ---- not a dispatcher_with_send ------------------------------------------------- */

static const asyncore_handlers plain = {
    .readable = never,
    .writable = never,
};

START_TEST(initiate_send_and_a_send_limit_on_a_plain_dispatcher_fail_with_einval)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &plain, NULL);
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_initiate_send(d), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_set_send_limit(d, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* A plain send goes straight to the socket: nothing is ever pending. */
    ck_assert_int_eq(asyncore_send(d, "abc", 3), 3);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    ck_assert_uint_eq(asyncore_send_pending(NULL), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_initiate_send(NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    close(sv[1]);
}
END_TEST

/* ---- the send limit: reading pauses while the queue is long ------------- */

#define LIMIT (64u << 10)

static void count_read(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    char buf[4096];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    p->reads++;
    p->pending_at_read = asyncore_send_pending(d);
    if (n > 0)
        p->read_bytes += (size_t)n;
}

static int counted_readable(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    p->readable_asks++;
    return 1;
}

static const asyncore_handlers limited = {
    .handle_read = count_read,
    .handle_close = close_once,
    .destroy = count_destroy,
};

static const asyncore_handlers limited_asking = {
    .handle_read = count_read,
    .handle_close = close_once,
    .destroy = count_destroy,
    .readable = counted_readable,
};

/* Queue BIG bytes for a peer that does not read yet, and have the peer send
 * @n bytes the other way: input that only a paused read leaves unread. */
static asyncore_dispatcher *queue_big_against_input(int family,
                                                    const asyncore_handlers *h,
                                                    struct probe *p,
                                                    size_t limit, size_t n,
                                                    int *peer)
{
    static const char input[16] = "0123456789abcdef";
    unsigned char *data = pattern_buf(BIG);
    asyncore_dispatcher *d = with_send_pair(family, h, p, peer);

    ck_assert_uint_le(n, sizeof(input));
    ck_assert_int_eq(asyncore_set_send_limit(d, limit), 0);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    free(data);
    ck_assert_int_eq(send(*peer, input, n, 0), (ssize_t)n);
    return d;
}

/* Poll until handle_read has received @n bytes or @seconds pass. */
static void poll_until_read(const struct probe *p, size_t n, double seconds)
{
    double end = th_now() + seconds;

    while (p->read_bytes < n && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
}

/* The peer reads the whole queue; the input left unread while reading was
 * paused must then reach handle_read, all @n bytes of it. */
static void drain_then_expect_input(int peer, size_t *got,
                                    const struct probe *p, size_t n)
{
    poll_while_reading(peer, got, BIG, 32768, 20.0);
    ck_assert_uint_eq(*got, BIG);
    poll_until_read(p, n, 3.0);
    ck_assert_uint_eq(p->read_bytes, n);
}

START_TEST(a_send_limit_pauses_reading_until_the_queue_is_below_it)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    size_t got = 0;
    int peer;
    FAMILY_OR_SKIP();

    d = queue_big_against_input(family, &limited, &p, LIMIT, 4, &peer);
    th_loop_for(th_map, 0.2);
    ck_assert_uint_ge(asyncore_send_pending(d), LIMIT);
    ck_assert_int_eq(p.reads, 0);

    /* Reading resumes by itself once the queue is below the limit. */
    drain_then_expect_input(peer, &got, &p, 4);
    ck_assert_uint_lt(p.pending_at_read, LIMIT);
    ck_assert_int_eq(p.closes, 0);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

START_TEST(a_send_limit_of_one_pauses_reading_while_anything_is_queued)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    size_t got = 0;
    int peer;

    d = queue_big_against_input(AF_UNIX, &limited, &p, 1, 1, &peer);
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(p.reads, 0);
    /* Half of it goes, the rest is still queued: still paused. */
    poll_while_reading(peer, &got, BIG / 2, 32768, 20.0);
    th_loop_for(th_map, 0.05);
    ck_assert_uint_gt(asyncore_send_pending(d), 0);
    ck_assert_int_eq(p.reads, 0);
    drain_then_expect_input(peer, &got, &p, 1);
    ck_assert_uint_eq(p.pending_at_read, 0);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

START_TEST(removing_the_send_limit_resumes_reading_at_once)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    int peer;

    d = queue_big_against_input(AF_UNIX, &limited, &p, LIMIT, 3, &peer);
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(p.reads, 0);
    /* No dispatch of its own is needed: the setter re-arms. */
    ck_assert_int_eq(asyncore_set_send_limit(d, 0), 0);
    poll_until_read(&p, 3, 3.0);
    ck_assert_uint_eq(p.read_bytes, 3);
    ck_assert_uint_gt(p.pending_at_read, LIMIT);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

START_TEST(readable_is_still_asked_while_the_send_limit_pauses_reading)
{
    struct probe p = { 0 };
    asyncore_dispatcher *d;
    size_t got = 0;
    int asks, peer;

    d = queue_big_against_input(AF_UNIX, &limited_asking, &p, LIMIT, 2, &peer);
    th_loop_for(th_map, 0.05);
    asks = p.readable_asks;
    /* Each write dispatch asks readable() again; it says yes, the limit
     * says no, and the limit wins while the queue is long. */
    poll_while_reading(peer, &got, BIG / 2, 32768, 20.0);
    ck_assert_uint_ge(asyncore_send_pending(d), LIMIT);
    ck_assert_int_gt(p.readable_asks, asks);
    ck_assert_int_eq(p.reads, 0);
    drain_then_expect_input(peer, &got, &p, 2);
    close_before_return(&p, 1);
    close(peer);
}
END_TEST

/* ---- the peer goes away with data queued ------------------------------------------ */

START_TEST(a_reset_peer_closes_once_and_discards_the_queue)
{
    struct probe p = { 0 };
    struct linger lg = { 1, 0 };
    asyncore_dispatcher *d;
    unsigned char *data = pattern_buf(BIG);
    int peer;
    double end;
    FAMILY_OR_SKIP();

    d = with_send_pair(family, &noread, &p, &peer);
    ck_assert_int_eq(asyncore_send(d, data, BIG), (ssize_t)BIG);
    free(data);
    th_loop_for(th_map, 0.05);
    ck_assert_uint_gt(asyncore_send_pending(d), 0);

    /* Unread data and a zero linger: the peer resets the connection. */
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(peer);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    end = th_now() + 5.0;
    while (!asyncore_dispatcher_closed(d) && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(p.closes, 1);
    ck_assert_uint_eq(asyncore_send_pending(d), 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* Nothing more can be queued or sent. */
    errno = 0;
    ck_assert_int_eq(asyncore_send(d, "x", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_initiate_send(d), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(p.destroys, 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(p.destroys, 1);
    ck_assert_int_eq(p.closes, 1);
}
END_TEST

static Suite *send_suite(void)
{
    Suite *s = suite_create("send");
    TCase *tc = tcase_create("with_send");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, with_send_delivers_everything_sent_before_and_after_connecting,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, four_mib_reach_a_slow_peer_in_order_and_write_interest_ends,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, data_queued_before_connecting_is_sent_after_handle_connect,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, small_sends_to_a_full_socket_queue_what_it_did_not_take,
                        0, TH_NFAMILIES);
    tcase_add_test(tc, each_handle_write_sends_at_most_one_chunk);
    tcase_add_test(tc, a_handle_write_override_calling_its_parent_still_flushes);
    tcase_add_test(tc, a_writable_override_on_with_send_is_asked_and_obeyed);
    tcase_add_test(tc, with_send_predicates_named_explicitly_flush_as_inherited_ones);
    tcase_add_test(tc, initiate_send_and_a_send_limit_on_a_plain_dispatcher_fail_with_einval);
    tcase_add_loop_test(tc, a_send_limit_pauses_reading_until_the_queue_is_below_it,
                        0, TH_NFAMILIES);
    tcase_add_test(tc, a_send_limit_of_one_pauses_reading_while_anything_is_queued);
    tcase_add_test(tc, removing_the_send_limit_resumes_reading_at_once);
    tcase_add_test(tc, readable_is_still_asked_while_the_send_limit_pauses_reading);
    tcase_add_loop_test(tc, a_reset_peer_closes_once_and_discards_the_queue, 0,
                        TH_NFAMILIES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(send_suite());
}
