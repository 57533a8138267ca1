/*
 * test_chat_push.c -- async_chat's output as the peer sees it: message
 * boundaries on SOCK_SEQPACKET and SOCK_DGRAM (one push is one send, as in
 * asynchat), merged sends on a stream, a push of nothing behind a close
 * marker, the formatted and gathered pushes (one entry, one message
 * each), and the inline user area of asyncore_chat_new_ex().  Every scenario runs over real AF_UNIX
 * socketpairs.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>
#include <sys/uio.h>

/* ---- a channel that counts its hooks ------------------------------------ */

struct cnt {
    int closes, destroys, errors, err;
};

static void c_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    (void)d, (void)data, (void)len;
}

static void c_found(asyncore_dispatcher *d)
{
    (void)d;
}

static void c_close(asyncore_dispatcher *d)
{
    struct cnt *c = asyncore_dispatcher_user_data(d);

    c->closes++;
    asyncore_chat_handle_close(d);
}

static void c_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct cnt *c = asyncore_dispatcher_user_data(d);

    c->errors++;
    c->err = err;
    asyncore_default_handle_error(d, err, op);
}

static void c_destroy(asyncore_dispatcher *d)
{
    struct cnt *c = asyncore_dispatcher_user_data(d);

    c->destroys++;
}

static const asyncore_chat_handlers cnt_handlers = {
    .dispatcher = {
        .handle_close = c_close,
        .handle_error = c_error,
        .destroy = c_destroy,
    },
    .collect_incoming_data = c_collect,
    .found_terminator = c_found,
};

/* A channel over one end of an AF_UNIX socketpair of @type; the other end
 * (blocking) is *@peer. */
static asyncore_dispatcher *pair(struct cnt *c, int type, int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_chat_new(th_map, &cnt_handlers, c);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert(asyncore_dispatcher_connected(d));
    *peer = sv[1];
    return d;
}

static const int msg_types[] = { SOCK_SEQPACKET, SOCK_DGRAM };

/* ---- what the peer receives ----------------------------------------------- */

#define FILL_LEN 256
#define MAX_MSGS 4096

struct got {
    size_t len[MAX_MSGS];
    char *data[MAX_MSGS];
    int n;
};

/*
 * Push FILL_LEN-byte messages of 'F' until the socket takes no more and one
 * stays queued.  Returns how many were pushed.
 */
static int fill(asyncore_dispatcher *d)
{
    char f[FILL_LEN];
    int n = 0;

    memset(f, 'F', sizeof(f));
    while (asyncore_chat_queued(d, NULL) == 0) {
        ck_assert_int_lt(n, MAX_MSGS - 16);
        ck_assert_int_eq(asyncore_chat_push(d, f, sizeof(f)), 0);
        n++;
    }
    return n;
}

/* Receive messages on @peer, running the loop between them, until @want
 * were received or 5 s passed. */
static void receive(int peer, struct got *g, int want)
{
    static char buf[1 << 17];
    double end = th_now() + 5.0;

    while (g->n < want && th_now() < end) {
        ssize_t n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT);

        if (n < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
            continue;
        }
        ck_assert_int_lt(g->n, MAX_MSGS);
        g->data[g->n] = malloc((size_t)n + 1);
        ck_assert_ptr_nonnull(g->data[g->n]);
        memcpy(g->data[g->n], buf, (size_t)n);
        g->data[g->n][n] = '\0';
        g->len[g->n++] = (size_t)n;
    }
    ck_assert_int_eq(g->n, want);
}

static void got_free(struct got *g)
{
    while (g->n > 0)
        free(g->data[--g->n]);
}

/* Message @i is exactly the string @s. */
static void assert_msg(const struct got *g, int i, const char *s)
{
    ck_assert_msg(g->len[i] == strlen(s) && memcmp(g->data[i], s, g->len[i]) == 0,
                  "message %d is %zu bytes \"%.40s\", wanted \"%s\"", i,
                  g->len[i], g->data[i], s);
}

static void assert_fill(const struct got *g, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        ck_assert_uint_eq(g->len[i], FILL_LEN);
        ck_assert_int_eq(g->data[i][0], 'F');
        ck_assert_int_eq(g->data[i][FILL_LEN - 1], 'F');
    }
}

/* Run the loop until *@counter reaches @n (at most 5 s). */
static void wait_for(const int *counter, int n)
{
    double end = th_now() + 5.0;

    while (*counter < n && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(*counter, n);
}

/* A producer that yields its strings one per more() call. */
struct pieces {
    const char *const *s;
    int next, frees;
};

static ssize_t pieces_more(void *arg, void *buf, size_t size)
{
    struct pieces *p = arg;
    size_t len;

    if (p->s[p->next] == NULL)
        return 0;
    len = strlen(p->s[p->next]);
    ck_assert_uint_le(len, size);
    memcpy(buf, p->s[p->next++], len);
    return (ssize_t)len;
}

static void pieces_free(void *arg)
{
    ((struct pieces *)arg)->frees++;
}

/* ---- message boundaries ------------------------------------------------------ */

START_TEST(each_push_is_one_message_on_a_message_socket)
{
    static const char *const chunks[] = { "p1", "pp2", "ppp3", NULL };
    struct pieces pc = { .s = chunks };
    struct cnt c = { 0 };
    struct got g = { .n = 0 };
    int peer, n;
    asyncore_dispatcher *d = pair(&c, msg_types[_i], &peer);

    /* Queued behind a send the socket refused, the pushes wait together:
     * still one message each, as asynchat sends them. */
    n = fill(d);
    ck_assert_int_eq(asyncore_chat_push(d, "A", 1), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "BB", 2), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "CCC", 3), 0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(
                         d, asyncore_producer_new(pieces_more, pieces_free, &pc)),
                     0);
    ck_assert_int_eq(asyncore_chat_push(d, "DDDD", 4), 0);
    receive(peer, &g, n + 7);
    assert_fill(&g, n);
    assert_msg(&g, n, "A");
    assert_msg(&g, n + 1, "BB");
    assert_msg(&g, n + 2, "CCC");
    assert_msg(&g, n + 3, "p1");
    assert_msg(&g, n + 4, "pp2");
    assert_msg(&g, n + 5, "ppp3");
    assert_msg(&g, n + 6, "DDDD");
    ck_assert_int_eq(pc.frees, 1);
    ck_assert_int_eq(asyncore_chat_queued(d, NULL), 0);
    got_free(&g);
    asyncore_close(d);
    close(peer);
}
END_TEST

START_TEST(pushes_before_the_socket_are_one_message_each)
{
    struct cnt c = { 0 };
    struct got g = { .n = 0 };
    asyncore_dispatcher *d = asyncore_chat_new(th_map, &cnt_handlers, &c);
    int sv[2];

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_chat_push(d, "A", 1), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "BB", 2), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "CCC", 3), 0);
    ck_assert_int_eq(
        socketpair(AF_UNIX, msg_types[_i] | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    receive(sv[1], &g, 3);
    assert_msg(&g, 0, "A");
    assert_msg(&g, 1, "BB");
    assert_msg(&g, 2, "CCC");
    got_free(&g);
    asyncore_close(d);
    close(sv[1]);
}
END_TEST

START_TEST(a_push_longer_than_out_buffer_size_is_one_message_per_slice)
{
    struct cnt c = { 0 };
    struct got g = { .n = 0 };
    int peer;
    asyncore_dispatcher *d = pair(&c, msg_types[_i], &peer);

    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(d, 4), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "abcdefghij", 10), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "kl", 2), 0);
    /* asynchat's push slices at ac_out_buffer_size: one message each. */
    receive(peer, &g, 4);
    assert_msg(&g, 0, "abcd");
    assert_msg(&g, 1, "efgh");
    assert_msg(&g, 2, "ij");
    assert_msg(&g, 3, "kl");
    got_free(&g);
    asyncore_close(d);
    close(peer);
}
END_TEST

START_TEST(pushes_waiting_on_a_stream_share_one_entry)
{
    struct cnt c = { 0 };
    int peer, n;
    size_t bytes, total = 0, i;
    asyncore_dispatcher *d = pair(&c, SOCK_STREAM, &peer);
    char buf[65536], tail[6];
    double end = th_now() + 5.0;

    n = fill(d);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(asyncore_chat_push(d, "A", 1), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "BB", 2), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "CCC", 3), 0);
    /* chat.h: on a stream, what waits goes out in as few sends as the
     * socket takes -- one entry. */
    ck_assert_int_eq(asyncore_chat_queued(d, &bytes), 1);
    ck_assert_uint_ge(bytes, 6);
    /* The bytes arrive whole and in order: the fillers, then "ABBCCC". */
    while (total < (size_t)n * FILL_LEN + 6) {
        ssize_t r = recv(peer, buf, sizeof(buf), MSG_DONTWAIT);

        ck_assert_msg(th_now() < end, "only %zu bytes arrived", total);
        if (r < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
            continue;
        }
        for (i = 0; i < (size_t)r; i++, total++)
            if (total >= (size_t)n * FILL_LEN && total - (size_t)n * FILL_LEN < 6)
                tail[total - (size_t)n * FILL_LEN] = buf[i];
            else
                ck_assert_int_eq(buf[i], 'F');
    }
    ck_assert_uint_eq(total, (size_t)n * FILL_LEN + 6);
    ck_assert_int_eq(memcmp(tail, "ABBCCC", 6), 0);
    asyncore_close(d);
    close(peer);
}
END_TEST

/* ---- a push of nothing --------------------------------------------------------- */

START_TEST(empty_push_behind_a_close_marker_closes_inside_the_push)
{
    struct cnt c = { 0 };
    int peer;
    asyncore_dispatcher *d = pair(&c, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
    ck_assert_int_eq(c.closes, 0);
    /* asynchat's push(b"") runs initiate_send, which meets the marker. */
    ck_assert_int_eq(asyncore_chat_push(d, "", 0), 0);
    ck_assert_int_eq(c.closes, 1);
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_chat_queued(d, NULL), 0);
    ck_assert_int_eq(c.destroys, 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(c.destroys, 1);
    close(peer);
}
END_TEST

START_TEST(empty_push_that_closes_an_unheld_channel_frees_it_once)
{
    struct cnt c = { 0 };
    int peer;
    char b;
    asyncore_dispatcher *d = pair(&c, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_chat_push(d, "bye", 3), 0);
    ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
    /* The push sends nothing new, but meets the marker after "bye" went
     * out: the channel closes, and nobody holds it, so it is freed before
     * the push returns (dispatcher.h, LIFETIME 5). */
    ck_assert_int_eq(asyncore_chat_push(d, NULL, 0), 0);
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.destroys, 1);
    ck_assert_int_eq(recv(peer, &b, 1, 0), 1);
    ck_assert_int_eq(b, 'b');
    close(peer);
}
END_TEST

START_TEST(empty_push_sends_what_waits_and_queues_nothing)
{
    struct cnt c = { 0 };
    int peer, n;
    struct got g = { .n = 0 };
    asyncore_dispatcher *d = pair(&c, SOCK_SEQPACKET, &peer);
    char buf[FILL_LEN];

    n = fill(d);
    ck_assert_int_eq(asyncore_chat_queued(d, NULL), 1);
    /* The peer makes room; the empty push sends the waiting message at
     * once, as asynchat's initiate_send would, and adds no empty one. */
    ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), FILL_LEN);
    ck_assert_int_eq(asyncore_chat_push(d, "", 0), 0);
    ck_assert_int_eq(asyncore_chat_queued(d, NULL), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "x", 1), 0);
    receive(peer, &g, n);
    assert_msg(&g, n - 1, "x");
    got_free(&g);
    asyncore_close(d);
    close(peer);
}
END_TEST

/* ---- formatted and gathered pushes ------------------------------------------ */

/* A program's own helper over asyncore_chat_vpushf(): count replies. */
static int replies;

static int reply(asyncore_dispatcher *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int reply(asyncore_dispatcher *d, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = asyncore_chat_vpushf(d, fmt, ap);
    va_end(ap);
    replies++;
    return r;
}

START_TEST(pushv_and_pushf_are_one_message_each)
{
    static char empty_base[1];
    const struct iovec iov[] = {
        { (void *)"250", 3 },
        { NULL, 0 },
        { (void *)" ", 1 },
        { empty_base, 0 },
        { (void *)"OK\r\n", 4 },
    };
    const struct iovec one = { (void *)"x", 1 };
    struct cnt c = { 0 };
    struct got g = { .n = 0 };
    int peer, n;
    asyncore_dispatcher *d = pair(&c, msg_types[_i], &peer);

    n = fill(d);
    ck_assert_int_eq(asyncore_chat_pushv(d, iov, 5), 0);
    ck_assert_int_eq(asyncore_chat_pushv(d, &one, 1), 0);
    ck_assert_int_eq(asyncore_chat_pushf(d, "%d %s\r\n", 354, "go ahead"), 0);
    ck_assert_int_eq(reply(d, "%d %s closing\r\n", 221, "example.org"), 0);
    ck_assert_int_eq(asyncore_chat_pushf(d, "%c", 'y'), 0);
    receive(peer, &g, n + 5);
    assert_fill(&g, n);
    assert_msg(&g, n, "250 OK\r\n");
    assert_msg(&g, n + 1, "x");
    assert_msg(&g, n + 2, "354 go ahead\r\n");
    assert_msg(&g, n + 3, "221 example.org closing\r\n");
    assert_msg(&g, n + 4, "y");
    got_free(&g);
    asyncore_close(d);
    close(peer);
}
END_TEST

START_TEST(long_formatted_push_arrives_whole)
{
    enum { WIDTH = 200000 };
    struct cnt c = { 0 };
    int peer;
    size_t total = 0, i;
    asyncore_dispatcher *d = pair(&c, SOCK_STREAM, &peer);
    static char buf[WIDTH + 16];
    double end = th_now() + 5.0;

    ck_assert_int_eq(asyncore_chat_pushf(d, "<%0*d>", WIDTH, 7), 0);
    while (total < WIDTH + 2) {
        ssize_t r = recv(peer, buf + total, sizeof(buf) - total, MSG_DONTWAIT);

        ck_assert_msg(th_now() < end, "only %zu bytes arrived", total);
        if (r < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
            continue;
        }
        total += (size_t)r;
    }
    ck_assert_uint_eq(total, WIDTH + 2);
    ck_assert_int_eq(buf[0], '<');
    for (i = 1; i < WIDTH; i++)
        ck_assert_int_eq(buf[i], '0');
    ck_assert_int_eq(buf[WIDTH], '7');
    ck_assert_int_eq(buf[WIDTH + 1], '>');
    asyncore_close(d);
    close(peer);
}
END_TEST

START_TEST(empty_pushv_and_pushf_behind_a_close_marker_close)
{
    struct cnt c = { 0 };
    int peer, which;

    for (which = 0; which < 2; which++) {
        asyncore_dispatcher *d = pair(&c, SOCK_STREAM, &peer);

        c.closes = 0;
        ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
        ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
        if (which == 0)
            ck_assert_int_eq(asyncore_chat_pushv(d, NULL, 0), 0);
        else
            ck_assert_int_eq(asyncore_chat_pushf(d, "%s", ""), 0);
        ck_assert_int_eq(c.closes, 1);
        ck_assert(asyncore_dispatcher_closed(d));
        asyncore_dispatcher_release(d);
        close(peer);
    }
    ck_assert_int_eq(c.destroys, 2);
}
END_TEST

START_TEST(bad_pushv_and_pushf_arguments_queue_nothing)
{
    static const asyncore_handlers plain = { 0 };
    static char small[4] = "abc";
    const struct iovec ok = { small, 3 };
    const struct iovec null_base[] = { { small, 3 }, { NULL, 3 } };
    const struct iovec huge[] = { { small, (size_t)SSIZE_MAX / 2 + 1 },
                                  { small, (size_t)SSIZE_MAX / 2 + 1 } };
    /* Through a pointer, the compiler's format check does not see it. */
    int (*unchecked_pushf)(asyncore_dispatcher *, const char *, ...) =
        asyncore_chat_pushf;
    struct cnt c = { 0 };
    asyncore_dispatcher *d, *p;
    size_t bytes;

    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(NULL, &ok, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushf(NULL, "%d", 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    p = asyncore_dispatcher_new(th_map, &plain, NULL);
    ck_assert_ptr_nonnull(p);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(p, &ok, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushf(p, "%d", 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_close(p), 0);

    /* No socket: whatever is queued stays, so nothing hides a leak. */
    d = asyncore_chat_new(th_map, &cnt_handlers, &c);
    ck_assert_ptr_nonnull(d);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, &ok, -1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, &ok, IOV_MAX + 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, null_base, 2), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, huge, 2), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(unchecked_pushf(d, NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* A wide character with no form in the C locale: the format fails. */
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushf(d, "ok %lc", (wint_t)0x20ac), -1);
    ck_assert_int_eq(errno, EILSEQ);
    ck_assert_int_eq(asyncore_chat_queued(d, &bytes), 0);
    ck_assert_uint_eq(bytes, 0);
    /* After the failures the queue works as before. */
    ck_assert_int_eq(asyncore_chat_pushv(d, &ok, 1), 0);
    ck_assert_int_eq(asyncore_chat_pushf(d, "%s", "de"), 0);
    ck_assert_int_eq(asyncore_chat_pushf(d, "ok %lc", (wint_t)0x20ac), -1);
    ck_assert_int_eq(asyncore_chat_queued(d, &bytes), 2);
    ck_assert_uint_eq(bytes, 5);

    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushv(d, &ok, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_pushf(d, "%d", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(c.destroys, 1);
}
END_TEST

/* ---- the inline area ------------------------------------------------------------ */

struct line_state {
    char buf[64];
    size_t len;
    int lines;
    char last[64];
};

static int area_seen_in_destroy = -1;

static void a_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct line_state *ls = asyncore_chat_area(d);

    ck_assert_ptr_nonnull(ls);
    ck_assert_uint_le(ls->len + len, sizeof(ls->buf));
    memcpy(ls->buf + ls->len, data, len);
    ls->len += len;
}

static void a_found(asyncore_dispatcher *d)
{
    struct line_state *ls = asyncore_chat_area(d);

    memcpy(ls->last, ls->buf, ls->len);
    ls->last[ls->len] = '\0';
    ls->len = 0;
    ls->lines++;
}

static void a_destroy(asyncore_dispatcher *d)
{
    struct line_state *ls = asyncore_chat_area(d);

    /* Still the channel's memory: the area outlives every other hook. */
    area_seen_in_destroy = ls->lines;
}

static const asyncore_chat_handlers area_handlers = {
    .dispatcher = { .destroy = a_destroy },
    .collect_incoming_data = a_collect,
    .found_terminator = a_found,
};

START_TEST(inline_area_is_zeroed_aligned_and_lives_until_destroy)
{
    asyncore_dispatcher *d;
    struct line_state *ls;
    unsigned char *raw;
    int sv[2];
    size_t i;

    area_seen_in_destroy = -1;
    d = asyncore_chat_new_ex(th_map, &area_handlers, NULL,
                             sizeof(struct line_state));
    ck_assert_ptr_nonnull(d);
    ls = asyncore_chat_area(d);
    ck_assert_ptr_nonnull(ls);
    ck_assert_uint_eq((uintptr_t)ls % alignof(max_align_t), 0);
    ck_assert_ptr_ne(ls, asyncore_dispatcher_area(d));
    raw = (unsigned char *)ls;
    for (i = 0; i < sizeof(*ls); i++)
        ck_assert_int_eq(raw[i], 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    ck_assert_int_eq(write(sv[1], "one\ntwo\nthr", 11), 11);
    ck_assert_int_eq(write(sv[1], "ee\n", 3), 3);
    wait_for(&ls->lines, 3);
    ck_assert_str_eq(ls->last, "three");
    /* The class's state and the user's area do not overlap: the channel
     * still works after the whole area was overwritten. */
    memset(ls, 0xa5, sizeof(*ls));
    ls->len = 0;
    ls->lines = 3;
    ck_assert_int_eq(write(sv[1], "four\n", 5), 5);
    wait_for(&ls->lines, 4);
    ck_assert_str_eq(ls->last, "four");
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(area_seen_in_destroy, 4);
    close(sv[1]);
}
END_TEST

START_TEST(bad_new_ex_and_area_arguments_fail_cleanly)
{
    static const asyncore_handlers plain = { 0 };
    static const asyncore_chat_handlers no_found = {
        .collect_incoming_data = c_collect,
    };
    struct cnt c = { 0 };
    asyncore_dispatcher *d, *p;

    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new_ex(th_map, NULL, NULL, 8));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new_ex(th_map, &no_found, NULL, 8));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new_ex(th_map, &cnt_handlers, NULL, SIZE_MAX));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(
        asyncore_chat_new_ex(th_map, &cnt_handlers, NULL, SIZE_MAX / 2));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_ptr_null(asyncore_chat_area(NULL));
    /* No area asked: none. */
    d = asyncore_chat_new_ex(th_map, &cnt_handlers, &c, 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(asyncore_chat_area(d));
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(c.destroys, 1);
    /* A plain dispatcher's area is not a chat's. */
    p = asyncore_dispatcher_new_ex(th_map, &plain, NULL, NULL, 32);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(asyncore_chat_area(p));
    ck_assert_int_eq(asyncore_close(p), 0);
    /* A held, closed channel keeps its area. */
    d = asyncore_chat_new_ex(th_map, &cnt_handlers, &c, 16);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_ptr_nonnull(asyncore_chat_area(d));
    memset(asyncore_chat_area(d), 1, 16);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(c.destroys, 2);
}
END_TEST

static Suite *chat_push_suite(void)
{
    Suite *s = suite_create("chat_push");
    TCase *msg = tcase_create("boundaries");
    TCase *empty = tcase_create("empty_push");
    TCase *fmt = tcase_create("pushv_pushf");
    TCase *area = tcase_create("area");

    tcase_add_checked_fixture(msg, th_setup, th_teardown);
    tcase_set_timeout(msg, 20);
    tcase_add_loop_test(msg, each_push_is_one_message_on_a_message_socket, 0, 2);
    tcase_add_loop_test(msg, pushes_before_the_socket_are_one_message_each, 0, 2);
    tcase_add_loop_test(msg, a_push_longer_than_out_buffer_size_is_one_message_per_slice,
                        0, 2);
    tcase_add_test(msg, pushes_waiting_on_a_stream_share_one_entry);
    suite_add_tcase(s, msg);

    tcase_add_checked_fixture(empty, th_setup, th_teardown);
    tcase_add_test(empty, empty_push_behind_a_close_marker_closes_inside_the_push);
    tcase_add_test(empty, empty_push_that_closes_an_unheld_channel_frees_it_once);
    tcase_add_test(empty, empty_push_sends_what_waits_and_queues_nothing);
    suite_add_tcase(s, empty);

    tcase_add_checked_fixture(fmt, th_setup, th_teardown);
    tcase_set_timeout(fmt, 20);
    tcase_add_loop_test(fmt, pushv_and_pushf_are_one_message_each, 0, 2);
    tcase_add_test(fmt, long_formatted_push_arrives_whole);
    tcase_add_test(fmt, empty_pushv_and_pushf_behind_a_close_marker_close);
    tcase_add_test(fmt, bad_pushv_and_pushf_arguments_queue_nothing);
    suite_add_tcase(s, fmt);

    tcase_add_checked_fixture(area, th_setup, th_teardown);
    tcase_add_test(area, inline_area_is_zeroed_aligned_and_lives_until_destroy);
    tcase_add_test(area, bad_new_ex_and_area_arguments_fail_cleanly);
    suite_add_tcase(s, area);
    return s;
}

int main(void)
{
    return th_run_suite(chat_push_suite());
}
