/*
 * test_chat.c -- async_chat: the scenarios of CPython's test_asynchat over
 * IPv4, IPv6 and AF_UNIX loopback, the class's own rules over socketpairs,
 * bad input, and a property test of the framing against random splits.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#define QUIT "QUIT\n"

/* ---- a recording channel ------------------------------------------------ */

#define MAX_CONTENTS 16

/* What a channel saw, reachable from its hooks through the user pointer
 * (echo_client's buffer and contents, plus counters). */
struct rec {
    char buf[8192];                 /* collected since the last terminator */
    size_t blen;
    char contents[MAX_CONTENTS][256];
    size_t clen[MAX_CONTENTS];
    int n;
    int collects, founds, errors, destroys, hooks_after_close;
    int last_err;
    char last_op[16];
    const char *forbid;    /* bytes no collected piece may contain */
    int forbidden_seen;
    int close_on_found;    /* asyncore_close() in this found_terminator */
    int discard_on_found;  /* discard_buffers() in this found_terminator */
    int discard_in_collect;
};

static void rec_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct rec *r = asyncore_dispatcher_user_data(d);

    ck_assert_uint_gt(len, 0);
    if (asyncore_dispatcher_closed(d))
        r->hooks_after_close++;
    if (r->forbid != NULL) {
        size_t i;
        for (i = 0; i < len; i++)
            if (strchr(r->forbid, ((const char *)data)[i]) != NULL)
                r->forbidden_seen++;
    }
    ck_assert_uint_le(r->blen + len, sizeof(r->buf));
    memcpy(r->buf + r->blen, data, len);
    r->collects++;
    if (r->discard_in_collect) {
        ck_assert_int_eq(asyncore_chat_discard_buffers(d), 0);
        /* The piece stays readable until the hook returns. */
        ck_assert_int_eq(memcmp(r->buf + r->blen, data, len), 0);
    }
    r->blen += len;
}

static void rec_found(asyncore_dispatcher *d)
{
    struct rec *r = asyncore_dispatcher_user_data(d);

    if (asyncore_dispatcher_closed(d))
        r->hooks_after_close++;
    ck_assert_int_lt(r->n, MAX_CONTENTS);
    ck_assert_uint_le(r->blen, sizeof(r->contents[0]));
    memcpy(r->contents[r->n], r->buf, r->blen);
    r->clen[r->n++] = r->blen;
    r->blen = 0;
    r->founds++;
    if (r->discard_on_found == r->founds)
        ck_assert_int_eq(asyncore_chat_discard_buffers(d), 0);
    if (r->close_on_found == r->founds)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static void rec_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct rec *r = asyncore_dispatcher_user_data(d);

    r->errors++;
    r->last_err = err;
    snprintf(r->last_op, sizeof(r->last_op), "%s", op);
    asyncore_default_handle_error(d, err, op);
}

static void rec_destroy(asyncore_dispatcher *d)
{
    struct rec *r = asyncore_dispatcher_user_data(d);
    r->destroys++;
}

static void noop(asyncore_dispatcher *d)
{
    (void)d;
}

static const asyncore_chat_handlers rec_handlers = {
    .dispatcher = {
        .handle_connect = noop,
        .handle_error = rec_error,
        .destroy = rec_destroy,
    },
    .collect_incoming_data = rec_collect,
    .found_terminator = rec_found,
};

/* Assert the found_terminator records are exactly @want (NULL-ended). */
static void assert_contents(const struct rec *r, const char *const *want)
{
    int i;

    for (i = 0; want[i] != NULL; i++) {
        ck_assert_msg(i < r->n, "only %d records, wanted \"%s\"", r->n, want[i]);
        ck_assert_uint_eq(r->clen[i], strlen(want[i]));
        ck_assert_int_eq(memcmp(r->contents[i], want[i], r->clen[i]), 0);
    }
    ck_assert_int_eq(r->n, i);
}

/* ---- counting producers and references ---------------------------------- */

struct src {
    const char *data;
    size_t len, pos, chunk;
    int frees;
    int fail_errno; /* more() fails with this when set */
};

static ssize_t src_more(void *arg, void *buf, size_t size)
{
    struct src *s = arg;
    size_t n = s->len - s->pos;

    if (s->fail_errno) {
        errno = s->fail_errno;
        return -1;
    }
    if (n > s->chunk)
        n = s->chunk;
    if (n > size)
        n = size;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static void src_free(void *arg)
{
    ((struct src *)arg)->frees++;
}

static asyncore_producer *src_producer(struct src *s, const char *data,
                                       size_t chunk)
{
    asyncore_producer *p;

    s->data = data;
    s->len = strlen(data);
    s->chunk = chunk;
    p = asyncore_producer_new(src_more, src_free, s);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void count_ref_free(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    (*(int *)arg)++;
}

/* ---- socket plumbing ---------------------------------------------------- */

/* A chat channel over one end of a socketpair; the other end is *@peer. */
static asyncore_dispatcher *chat_pair(const asyncore_chat_handlers *h,
                                      void *user, int type, int *peer)
{
    asyncore_dispatcher *c;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
    c = asyncore_chat_new(th_map, h, user);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_set_socket(c, sv[0]), 0);
    ck_assert(asyncore_dispatcher_connected(c));
    *peer = sv[1];
    return c;
}

/* Run the loop until @c has read everything sent to it (or closed). */
static void wait_consumed(asyncore_dispatcher *c)
{
    double end = th_now() + 5.0;
    int pending;

    for (;;) {
        int fd = asyncore_dispatcher_fd(c);
        if (fd < 0)
            return;
        ck_assert_int_eq(ioctl(fd, FIONREAD, &pending), 0);
        if (pending == 0)
            return;
        ck_assert_msg(th_now() < end, "the channel does not read");
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
}

static void loop_until_closed(asyncore_dispatcher *c)
{
    double end = th_now() + 5.0;

    while (!asyncore_dispatcher_closed(c)) {
        ck_assert_msg(th_now() < end, "the channel did not close");
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
}

static void write_all(int fd, const void *data, size_t len)
{
    ck_assert_int_eq(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* ---- CPython's echo_server, as a raw peer in this thread ----------------- */

struct echo {
    int listener;
    int fd;
    char got[8192];
    size_t len;
};

/* echo_client: a channel connecting to a raw listener of @family. */
static asyncore_dispatcher *echo_client(struct echo *e, struct rec *r,
                                        int family)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *c;

    e->listener = th_raw_listener(family, &ss, &len);
    c = asyncore_chat_new(th_map, &rec_handlers, r);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_create_socket(c, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    e->fd = th_raw_accept(e->listener, 3.0);
    ck_assert_int_ge(e->fd, 0);
    close(e->listener);
    /* Keep the channel valid after it closes, to inspect it. */
    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    return c;
}

/* Run the loop and read what the client sends until @until shows up (or
 * EOF when @until is NULL).  Returns 1 if it did. */
static int echo_read(struct echo *e, const char *until)
{
    double end = th_now() + 5.0;

    while (th_now() < end) {
        ssize_t n;

        if (until != NULL && memmem(e->got, e->len, until, strlen(until)))
            return 1;
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        n = recv(e->fd, e->got + e->len, sizeof(e->got) - e->len,
                 MSG_DONTWAIT);
        if (n == 0 && until == NULL)
            return 1;
        if (n > 0)
            e->len += (size_t)n;
    }
    return 0;
}

/*
 * The echo: read until QUIT, then send back what came before it, @chunk
 * bytes at a time, each read by the client before the next goes (so that
 * terminators straddle reads), then close.  Waits for the client to close.
 */
static void echo_run(struct echo *e, asyncore_dispatcher *c, size_t chunk)
{
    char *quit;
    size_t off, n;

    ck_assert_msg(echo_read(e, QUIT), "no QUIT from the client");
    quit = memmem(e->got, e->len, QUIT, strlen(QUIT));
    memmove(quit, quit + strlen(QUIT),
            e->len - (size_t)(quit - e->got) - strlen(QUIT));
    e->len -= strlen(QUIT);
    for (off = 0; off < e->len; off += n) {
        n = e->len - off < chunk ? e->len - off : chunk;
        write_all(e->fd, e->got + off, n);
        wait_consumed(c);
    }
    close(e->fd);
    loop_until_closed(c);
}

static void push_str(asyncore_dispatcher *c, const char *s)
{
    ck_assert_int_eq(asyncore_chat_push(c, s, strlen(s)), 0);
}

/* ---- line terminators of length 1, 2 and 3, in chunks of 1, 2, 3 -------- */

static void line_terminator_check(int i, const char *term)
{
    static const char *const want[] = { "hello world", "I'm not dead yet!",
                                        NULL };
    int family = th_family(i % TH_NFAMILIES);
    size_t chunk = (size_t)(i / TH_NFAMILIES) + 1;
    struct echo e = { 0 };
    struct rec r = { 0 };
    asyncore_dispatcher *c;
    char line[64];

    if (th_skip_family(family))
        return;
    r.forbid = term; /* no byte of these terminators is in the lines */
    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, term, strlen(term)), 0);
    push_str(c, "hello ");
    snprintf(line, sizeof(line), "world%s", term);
    push_str(c, line);
    snprintf(line, sizeof(line), "I'm not dead yet!%s", term);
    push_str(c, line);
    push_str(c, QUIT);
    echo_run(&e, c, chunk);
    assert_contents(&r, want);
    ck_assert_uint_eq(r.blen, 0);
    /* A prefix of the terminator held back is never passed as data. */
    ck_assert_int_eq(r.forbidden_seen, 0);
    ck_assert_int_eq(r.errors, 0);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(r.destroys, 1);
}

START_TEST(one_byte_line_terminator_is_found_in_any_chunking)
{
    line_terminator_check(_i, "\n");
}
END_TEST

START_TEST(two_byte_line_terminator_is_found_in_any_chunking)
{
    line_terminator_check(_i, "\r\n");
}
END_TEST

START_TEST(three_byte_line_terminator_is_found_in_any_chunking)
{
    line_terminator_check(_i, "qqq");
}
END_TEST

/* ---- numeric terminators and None ---------------------------------------- */

static const char numeric_data[] = "hello world, I'm not dead yet!\n";

/* Echo numeric_data with a count of @count; returns the channel's record. */
static void numeric_check(int family, int64_t count, int none,
                          struct rec *r, asyncore_chat_terminator *t)
{
    struct echo e = { 0 };
    asyncore_dispatcher *c;

    c = echo_client(&e, r, family);
    if (none)
        ck_assert_int_eq(asyncore_chat_set_terminator_none(c), 0);
    else
        ck_assert_int_eq(asyncore_chat_set_terminator_count(c, count), 0);
    push_str(c, numeric_data);
    push_str(c, QUIT);
    echo_run(&e, c, 1);
    ck_assert_int_eq(asyncore_chat_get_terminator(c, t), 0);
    asyncore_dispatcher_release(c);
}

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

START_TEST(numeric_terminator_of_one_collects_one_byte)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    const char *want[] = { "h", NULL };
    FAMILY_OR_SKIP();

    numeric_check(family, 1, 0, &r, &t);
    assert_contents(&r, want);
    /* A count that reached 0 then collects everything, as None. */
    ck_assert_uint_eq(r.blen, strlen(numeric_data) - 1);
    ck_assert_int_eq(memcmp(r.buf, numeric_data + 1, r.blen), 0);
    ck_assert_int_eq(t.kind, ASYNCORE_TERMINATOR_COUNT);
    ck_assert_uint_eq(t.count, 0);
}
END_TEST

START_TEST(numeric_terminator_of_six_collects_six_bytes)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    const char *want[] = { "hello ", NULL };
    FAMILY_OR_SKIP();

    numeric_check(family, 6, 0, &r, &t);
    assert_contents(&r, want);
    ck_assert_uint_eq(r.blen, strlen(numeric_data) - 6);
}
END_TEST

START_TEST(numeric_terminator_of_zero_collects_everything)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    FAMILY_OR_SKIP();

    numeric_check(family, 0, 0, &r, &t);
    ck_assert_int_eq(r.founds, 0);
    ck_assert_uint_eq(r.blen, strlen(numeric_data));
    ck_assert_int_eq(memcmp(r.buf, numeric_data, r.blen), 0);
}
END_TEST

START_TEST(large_numeric_terminator_counts_down_without_finding)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    const int64_t big = INT64_C(1) << 40;
    FAMILY_OR_SKIP();

    numeric_check(family, big, 0, &r, &t);
    ck_assert_int_eq(r.founds, 0);
    ck_assert_uint_eq(r.blen, strlen(numeric_data));
    ck_assert_int_eq(t.kind, ASYNCORE_TERMINATOR_COUNT);
    ck_assert_uint_eq(t.count, (uint64_t)big - strlen(numeric_data));
}
END_TEST

START_TEST(none_terminator_collects_everything)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    FAMILY_OR_SKIP();

    numeric_check(family, 0, 1, &r, &t);
    ck_assert_int_eq(r.founds, 0);
    ck_assert_uint_eq(r.blen, strlen(numeric_data));
    ck_assert_int_eq(memcmp(r.buf, numeric_data, r.blen), 0);
    ck_assert_int_eq(t.kind, ASYNCORE_TERMINATOR_NONE);
}
END_TEST

/* ---- producers, pushes, empty lines, close_when_done ----------------------- */

static const char two_lines[] = "hello world\nI'm not dead yet!\n";
static const char *const two_lines_want[] = { "hello world",
                                              "I'm not dead yet!", NULL };

START_TEST(simple_producer_is_sent_whole)
{
    struct echo e = { 0 };
    struct rec r = { 0 };
    asyncore_dispatcher *c;
    asyncore_producer *p;
    char data[64];
    FAMILY_OR_SKIP();

    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    snprintf(data, sizeof(data), "%s%s", two_lines, QUIT);
    p = asyncore_simple_producer_new(data, strlen(data), 8);
    ck_assert_ptr_nonnull(p);
    memset(data, 0, sizeof(data)); /* the producer has its own copy */
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, p), 0);
    echo_run(&e, c, 1);
    assert_contents(&r, two_lines_want);
    asyncore_dispatcher_release(c);
}
END_TEST

struct ref_buf {
    char data[64];
    int frees;
};

START_TEST(pushed_reference_is_sent_whole_and_released_once)
{
    struct echo e = { 0 };
    struct rec r = { 0 };
    asyncore_dispatcher *c;
    struct ref_buf b = { .frees = 0 };
    FAMILY_OR_SKIP();

    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    snprintf(b.data, sizeof(b.data), "%s%s", two_lines, QUIT);
    ck_assert_int_eq(asyncore_chat_push_reference(c, b.data, strlen(b.data),
                                                  count_ref_free, &b.frees),
                     0);
    echo_run(&e, c, 1);
    assert_contents(&r, two_lines_want);
    ck_assert_int_eq(b.frees, 1);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(b.frees, 1);
}
END_TEST

START_TEST(empty_line_is_found_with_no_data)
{
    static const char *const want[] = { "hello world", "",
                                        "I'm not dead yet!", NULL };
    struct echo e = { 0 };
    struct rec r = { 0 };
    asyncore_dispatcher *c;
    FAMILY_OR_SKIP();

    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    push_str(c, "hello world\n\nI'm not dead yet!\n");
    push_str(c, QUIT);
    echo_run(&e, c, 1);
    assert_contents(&r, want);
    /* No collect call had 0 bytes (rec_collect asserts it). */
    ck_assert_uint_eq(r.blen, 0);
    ck_assert_int_eq(r.errors, 0);
    asyncore_dispatcher_release(c);
}
END_TEST

START_TEST(close_when_done_sends_everything_then_closes)
{
    struct echo e = { 0 };
    struct rec r = { 0 };
    asyncore_dispatcher *c;
    char want[64];
    FAMILY_OR_SKIP();

    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    push_str(c, two_lines);
    push_str(c, QUIT);
    ck_assert_int_eq(asyncore_chat_close_when_done(c), 0);
    push_str(c, "never sent\n");
    ck_assert_msg(echo_read(&e, NULL), "no EOF from the client");
    ck_assert(asyncore_dispatcher_closed(c));
    snprintf(want, sizeof(want), "%s%s", two_lines, QUIT);
    ck_assert_uint_eq(e.len, strlen(want));
    ck_assert_int_eq(memcmp(e.got, want, e.len), 0);
    ck_assert_int_eq(r.n, 0);
    close(e.fd);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(r.destroys, 1);
}
END_TEST

START_TEST(push_reference_and_producer_keep_their_order)
{
    static const char *const want[] = { "bytes", "bytes", "bytes", "bytes",
                                        NULL };
    static const char line[] = "bytes\n";
    struct echo e = { 0 };
    struct rec r = { 0 };
    struct src s = { 0 };
    int ref_frees = 0;
    asyncore_dispatcher *c;
    FAMILY_OR_SKIP();

    c = echo_client(&e, &r, family);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    push_str(c, line);
    ck_assert_int_eq(asyncore_chat_push_reference(c, line, strlen(line),
                                                  count_ref_free, &ref_frees),
                     0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s, line, 2)),
                     0);
    push_str(c, line);
    push_str(c, QUIT);
    echo_run(&e, c, 3);
    assert_contents(&r, want);
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(s.frees, 1);
    asyncore_dispatcher_release(c);
}
END_TEST

/* ---- the class's rules, over socketpairs ------------------------------------ */

START_TEST(handle_read_with_nothing_to_read_calls_no_hook)
{
    struct rec r = { 0 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    asyncore_chat_handle_read(c);
    ck_assert_int_eq(r.collects + r.founds + r.errors, 0);
    ck_assert(!asyncore_dispatcher_closed(c));
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(default_handle_close_closes_quietly_when_the_peer_closes)
{
    struct rec r = { 0 };
    int peer;
    asyncore_dispatcher *c;

    asyncore_map_set_ignore_log_types(th_map, 0);
    th_log_capture(th_map);
    c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);
    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    close(peer);
    loop_until_closed(c);
    ck_assert_int_eq(th_log_count("unhandled"), 0);
    ck_assert_int_eq(r.errors, 0);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(r.destroys, 1);
}
END_TEST

START_TEST(numeric_terminator_counts_down_across_reads)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);
    static const uint64_t left[] = { 7, 4, 1, 0 };
    static const char *const want[] = { "abcdefghij", NULL };
    int i;

    ck_assert_int_eq(asyncore_chat_set_terminator_count(c, 10), 0);
    for (i = 0; i < 4; i++) {
        write_all(peer, "abcdefghij" + 3 * i, i < 3 ? 3 : 1);
        wait_consumed(c);
        ck_assert_int_eq(asyncore_chat_get_terminator(c, &t), 0);
        ck_assert_uint_eq(t.count, left[i]);
        ck_assert_int_eq(r.founds, i < 3 ? 0 : 1);
    }
    assert_contents(&r, want);
    /* Reached 0: what follows is collected as with None. */
    write_all(peer, "xyz", 3);
    wait_consumed(c);
    ck_assert_int_eq(r.founds, 1);
    ck_assert_uint_eq(r.blen, 3);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

/* The HTTP pattern: a header up to "\r\n\r\n", a body of Content-Length
 * bytes, then lines -- each terminator set inside found_terminator. */
struct http {
    struct rec r;
    int state;
};

static void http_found(asyncore_dispatcher *d)
{
    struct http *h = asyncore_dispatcher_user_data(d);

    rec_found(d);
    if (h->state == 0)
        ck_assert_int_eq(asyncore_chat_set_terminator_count(d, 5), 0);
    else if (h->state == 1)
        ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    h->state++;
}

static const asyncore_chat_handlers http_handlers = {
    .dispatcher = { .handle_error = rec_error },
    .collect_incoming_data = rec_collect,
    .found_terminator = http_found,
};

START_TEST(terminator_set_in_found_terminator_applies_to_buffered_input)
{
    static const char req[] = "GET / HTTP/1.0\r\nContent-Length: 5\r\n\r\n"
                              "hello" "line1\nline2\n" "tail";
    static const char *const want[] = {
        "GET / HTTP/1.0\r\nContent-Length: 5", "hello", "line1", "line2", NULL
    };
    struct http h = { .state = 0 };
    int peer;
    size_t i;
    asyncore_dispatcher *c = chat_pair(&http_handlers, &h, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\r\n\r\n", 4), 0);
    if (_i == 0) {
        write_all(peer, req, strlen(req)); /* all in one read */
        wait_consumed(c);
    } else {
        for (i = 0; i < strlen(req); i++) { /* one byte per read */
            write_all(peer, req + i, 1);
            wait_consumed(c);
        }
    }
    assert_contents(&h.r, want);
    ck_assert_uint_eq(h.r.blen, 4);
    ck_assert_int_eq(memcmp(h.r.buf, "tail", 4), 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(found_terminator_that_closes_stops_the_input)
{
    static const char *const want[] = { "a", NULL };
    struct rec r = { .close_on_found = 1 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    write_all(peer, "a\nb\nc\n", 6);
    loop_until_closed(c);
    assert_contents(&r, want);
    ck_assert_int_eq(r.collects, 1);
    ck_assert_int_eq(r.hooks_after_close, 0);
    asyncore_dispatcher_release(c);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(discard_buffers_in_found_terminator_drops_the_buffered_input)
{
    static const char *const want[] = { "a", "d", NULL };
    struct rec r = { .discard_on_found = 1 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    write_all(peer, "a\nb\nc\n", 6);
    wait_consumed(c);
    write_all(peer, "d\n", 2);
    wait_consumed(c);
    assert_contents(&r, want);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(discard_buffers_in_collect_keeps_the_piece_and_drops_the_rest)
{
    static const char *const want[] = { "ab", NULL };
    struct rec r = { .discard_in_collect = 1 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    write_all(peer, "ab\ncd\n", 6);
    wait_consumed(c);
    /* As asynchat: the step under way completes (found_terminator runs),
     * the rest of the input is gone. */
    assert_contents(&r, want);
    ck_assert_int_eq(r.collects, 1);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(discard_buffers_releases_all_queued_output_once)
{
    struct rec r = { 0 };
    struct src s = { 0 };
    int ref_frees = 0;
    size_t bytes;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    /* Not connected: everything stays queued. */
    ck_assert_ptr_nonnull(c);
    push_str(c, "copied");
    ck_assert_int_eq(asyncore_chat_push_reference(c, "ref", 3, count_ref_free,
                                                  &ref_frees),
                     0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s, "x", 1)),
                     0);
    ck_assert_int_eq(asyncore_chat_close_when_done(c), 0);
    /* Without a socket yet, each push is an entry of its own (chat.h). */
    ck_assert_int_eq(asyncore_chat_queued(c, &bytes), 4);
    ck_assert_uint_eq(bytes, 9);
    ck_assert_int_eq(ref_frees + s.frees, 0);
    ck_assert_int_eq(asyncore_chat_discard_buffers(c), 0);
    ck_assert_int_eq(asyncore_chat_queued(c, &bytes), 0);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_int_eq(asyncore_close(c), 0);
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_int_eq(r.destroys, 1);
}
END_TEST

START_TEST(close_releases_queued_producers_and_references_once)
{
    struct rec r = { 0 };
    struct src s1 = { 0 }, s2 = { 0 };
    int ref_frees = 0;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s1, "a", 1)),
                     0);
    ck_assert_int_eq(asyncore_chat_push_reference(c, "ref", 3, count_ref_free,
                                                  &ref_frees),
                     0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s2, "b", 1)),
                     0);
    ck_assert_int_eq(asyncore_close(c), 0); /* frees c: not held */
    ck_assert_int_eq(r.destroys, 1);
    ck_assert_int_eq(s1.frees, 1);
    ck_assert_int_eq(s2.frees, 1);
    ck_assert_int_eq(ref_frees, 1);
}
END_TEST

/* When the peer goes away with output queued, the default handle_close
 * releases the queue before the handlers' destroy hook runs. */
struct order {
    struct rec r;
    struct src s;
    int ref_frees;
    int freed_before_destroy;
};

static void order_destroy(asyncore_dispatcher *d)
{
    struct order *o = asyncore_dispatcher_user_data(d);
    o->freed_before_destroy = o->s.frees == 1 && o->ref_frees == 1;
    o->r.destroys++;
}

static const asyncore_chat_handlers order_handlers = {
    .dispatcher = { .handle_error = rec_error, .destroy = order_destroy },
    .collect_incoming_data = rec_collect,
    .found_terminator = rec_found,
};

START_TEST(peer_close_releases_the_queue_before_destroy)
{
    static char big[1 << 20];
    struct order o = { .ref_frees = 0 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&order_handlers, &o, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    /* More than the socket takes: most of it stays queued. */
    ck_assert_int_eq(asyncore_chat_push_reference(c, big, sizeof(big),
                                                  count_ref_free, &o.ref_frees),
                     0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&o.s, "z", 1)),
                     0);
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 2);
    ck_assert_int_eq(o.ref_frees + o.s.frees, 0);
    close(peer);
    loop_until_closed(c);
    ck_assert_int_eq(o.ref_frees, 1);
    ck_assert_int_eq(o.s.frees, 1);
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 0);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(o.r.destroys, 1);
    ck_assert(o.freed_before_destroy);
    ck_assert_int_eq(o.ref_frees, 1);
    ck_assert_int_eq(o.s.frees, 1);
}
END_TEST

/* Read one SOCK_SEQPACKET record per send of the channel. */
static size_t read_records(asyncore_dispatcher *c, int peer, size_t total,
                           size_t *sizes, size_t max, char *out)
{
    static char rec_buf[1 << 17];
    double end = th_now() + 5.0;
    size_t got = 0, n = 0;

    while (got < total) {
        ssize_t k = recv(peer, rec_buf, sizeof(rec_buf), MSG_DONTWAIT);
        if (k > 0) {
            ck_assert_uint_lt(n, max);
            sizes[n++] = (size_t)k;
            memcpy(out + got, rec_buf, (size_t)k);
            got += (size_t)k;
            continue;
        }
        ck_assert_msg(th_now() < end, "the channel stopped sending");
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    (void)c;
    return n;
}

START_TEST(push_splits_sends_at_out_buffer_size)
{
    static char data[150000], got[150000];
    size_t sizes[16], n, i;
    struct rec r = { 0 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_SEQPACKET, &peer);

    /* A small ac_out_buffer_size: one send per 4 bytes. */
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, 4), 0);
    push_str(c, "0123456789");
    n = read_records(c, peer, 10, sizes, 16, got);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(sizes[0], 4);
    ck_assert_uint_eq(sizes[1], 4);
    ck_assert_uint_eq(sizes[2], 2);
    ck_assert_int_eq(memcmp(got, "0123456789", 10), 0);
    /* The default, 65536, for data larger than it. */
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, ASYNCORE_CHAT_BUFFER_SIZE),
                     0);
    for (i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + i / 251);
    ck_assert_int_eq(asyncore_chat_push(c, data, sizeof(data)), 0);
    n = read_records(c, peer, sizeof(data), sizes, 16, got);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(sizes[0], 65536);
    ck_assert_uint_eq(sizes[1], 65536);
    ck_assert_uint_eq(sizes[2], sizeof(data) - 131072);
    ck_assert_int_eq(memcmp(got, data, sizeof(data)), 0);
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(producer_output_is_limited_by_out_buffer_size)
{
    size_t sizes[16], n;
    char got[32];
    struct rec r = { 0 };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_SEQPACKET, &peer);

    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, 3), 0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(
                         c, asyncore_simple_producer_new("abcdefgh", 8, 0)),
                     0);
    n = read_records(c, peer, 8, sizes, 16, got);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(sizes[0], 3);
    ck_assert_uint_eq(sizes[2], 2);
    ck_assert_int_eq(memcmp(got, "abcdefgh", 8), 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(push_copies_and_push_reference_does_not)
{
    char copied[] = "hello", referenced[] = "world";
    char got[16];
    struct rec r = { 0 };
    int ref_frees = 0, sv[2];
    size_t len = 0;
    double end = th_now() + 5.0;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    /* No socket yet: both stay queued. */
    ck_assert_int_eq(asyncore_chat_push(c, copied, 5), 0);
    ck_assert_int_eq(asyncore_chat_push_reference(c, referenced, 5,
                                                  count_ref_free, &ref_frees),
                     0);
    memcpy(copied, "HELLO", 5);
    memcpy(referenced, "WORLD", 5);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(c, sv[0]), 0);
    while (len < 10) {
        ssize_t k = recv(sv[1], got + len, sizeof(got) - len, MSG_DONTWAIT);
        if (k > 0)
            len += (size_t)k;
        ck_assert(th_now() < end);
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_uint_eq(len, 10);
    ck_assert_int_eq(memcmp(got, "helloWORLD", 10), 0);
    ck_assert_int_eq(ref_frees, 1);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(sv[1]);
}
END_TEST

START_TEST(push_to_a_lost_peer_closes_and_releases_the_queue)
{
    struct rec r = { 0 };
    struct src s = { 0 };
    int ref_frees = 0, peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, 2), 0);
    close(peer);
    /* Queued behind a send that finds the connection lost (EPIPE): the
     * push still succeeds, handle_close runs and releases everything. */
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s, "abc", 1)),
                     0);
    ck_assert(asyncore_dispatcher_closed(c));
    ck_assert_int_eq(s.frees, 1);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push_reference(c, "x", 1, count_ref_free,
                                                  &ref_frees),
                     -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(r.errors, 0);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(r.destroys, 1);
}
END_TEST

START_TEST(initiate_send_returns_the_bytes_sent)
{
    struct rec r = { 0 };
    int sv[2];
    char got[16];
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    push_str(c, "0123456789");
    /* Not connected yet: nothing is sent. */
    ck_assert_int_eq(asyncore_chat_initiate_send(c), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(c, sv[0]), 0);
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, 6), 0);
    ck_assert_int_eq(asyncore_chat_initiate_send(c), 6);
    ck_assert_int_eq(asyncore_chat_initiate_send(c), 4);
    ck_assert_int_eq(asyncore_chat_initiate_send(c), 0);
    ck_assert_int_eq(recv(sv[1], got, sizeof(got), 0), 10);
    ck_assert_int_eq(memcmp(got, "0123456789", 10), 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(sv[1]);
}
END_TEST

START_TEST(writable_while_unconnected_or_output_is_queued)
{
    struct rec r = { 0 };
    int peer;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_chat_writable(c), 1);
    ck_assert_int_eq(asyncore_chat_readable(c), 1);
    asyncore_close(c);
    c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);
    ck_assert_int_eq(asyncore_chat_writable(c), 0);
    push_str(c, "sent at once");
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 0);
    ck_assert_int_eq(asyncore_chat_writable(c), 0);
    ck_assert_int_eq(asyncore_chat_close_when_done(c), 0);
    ck_assert_int_eq(asyncore_chat_writable(c), 1);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(failing_producer_goes_to_handle_error_and_is_released)
{
    struct rec r = { 0 };
    struct src s = { .fail_errno = EIO };
    int peer;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    th_log_capture(th_map);
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s, "x", 1)),
                     0);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_int_eq(r.last_err, EIO);
    ck_assert_str_eq(r.last_op, "more");
    /* The default handle_error closed the channel, releasing the producer. */
    ck_assert(asyncore_dispatcher_closed(c));
    ck_assert_int_eq(s.frees, 1);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(s.frees, 1);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(long_terminator_is_copied_and_reported)
{
    char term[] = "--boundary-0123456789-abcdefghij--";
    char msg[128];
    static const char *const want[] = { "part one", "part two", NULL };
    asyncore_chat_terminator t;
    struct rec r = { 0 };
    int peer;
    size_t i, len;
    asyncore_dispatcher *c = chat_pair(&rec_handlers, &r, SOCK_STREAM, &peer);

    ck_assert_int_eq(asyncore_chat_set_terminator(c, term, strlen(term)), 0);
    len = (size_t)snprintf(msg, sizeof(msg), "part one%spart two%s", term, term);
    memset(term, '?', strlen(term)); /* the channel has its own copy */
    ck_assert_int_eq(asyncore_chat_get_terminator(c, &t), 0);
    ck_assert_int_eq(t.kind, ASYNCORE_TERMINATOR_BYTES);
    ck_assert_uint_eq(t.len, 34);
    ck_assert_int_eq(memcmp(t.bytes, "--boundary-0123456789-abcdefghij--", 34), 0);
    /* Setting the terminator from its own bytes is allowed. */
    ck_assert_int_eq(asyncore_chat_set_terminator(c, t.bytes, t.len), 0);
    for (i = 0; i < len; i += 5) {
        write_all(peer, msg + i, len - i < 5 ? len - i : 5);
        wait_consumed(c);
    }
    assert_contents(&r, want);
    ck_assert_int_eq(r.forbidden_seen, 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

START_TEST(find_prefix_at_end_returns_the_longest_prefix)
{
    ck_assert_uint_eq(asyncore_find_prefix_at_end("qwerty\r", 7, "\r\n", 2), 1);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("qwertydkjf", 10, "\r\n", 2), 0);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("abqq", 4, "qqq", 3), 2);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("q", 1, "qqq", 3), 1);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("xaab", 4, "aabx", 4), 3);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("xaa", 3, "aab", 3), 2);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("abab", 4, "ababc", 5), 4);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("x\n", 2, "\n", 1), 0);
    ck_assert_uint_eq(asyncore_find_prefix_at_end(NULL, 0, "\r\n", 2), 0);
    ck_assert_uint_eq(asyncore_find_prefix_at_end("abc", 3, NULL, 0), 0);
}
END_TEST

START_TEST(simple_producer_yields_buffer_size_pieces)
{
    static char data[1300], buf[1024];
    asyncore_producer *p = asyncore_simple_producer_new(data, sizeof(data), 0);
    asyncore_producer *q = asyncore_simple_producer_new(data, 20, 8);

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(asyncore_producer_more(p, buf, sizeof(buf)), 512);
    ck_assert_int_eq(asyncore_producer_more(p, buf, 100), 100);
    ck_assert_int_eq(asyncore_producer_more(p, buf, sizeof(buf)), 512);
    ck_assert_int_eq(asyncore_producer_more(p, buf, sizeof(buf)), 176);
    ck_assert_int_eq(asyncore_producer_more(p, buf, sizeof(buf)), 0);
    ck_assert_int_eq(asyncore_producer_more(q, buf, sizeof(buf)), 8);
    ck_assert_int_eq(asyncore_producer_more(q, buf, sizeof(buf)), 8);
    ck_assert_int_eq(asyncore_producer_more(q, buf, sizeof(buf)), 4);
    ck_assert_int_eq(asyncore_producer_more(q, buf, sizeof(buf)), 0);
    asyncore_producer_free(p);
    asyncore_producer_free(q);
    asyncore_producer_free(NULL);
}
END_TEST

/* ---- bad input ----------------------------------------------------------- */

static int bad_destroys;

static void count_destroy(asyncore_dispatcher *d)
{
    (void)d;
    bad_destroys++;
}

static void ignore_data(asyncore_dispatcher *d, const void *p, size_t n)
{
    (void)d;
    (void)p;
    (void)n;
}

START_TEST(missing_hooks_fail_at_creation_with_einval)
{
    static const asyncore_chat_handlers no_collect = {
        .dispatcher = { .destroy = count_destroy },
        .found_terminator = noop,
    };
    static const asyncore_chat_handlers no_found = {
        .dispatcher = { .destroy = count_destroy },
        .collect_incoming_data = ignore_data,
    };

    bad_destroys = 0;
    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new(th_map, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new(th_map, &no_collect, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_chat_new(th_map, &no_found, NULL));
    ck_assert_int_eq(errno, EINVAL);
    /* Nothing was created, so nothing is destroyed. */
    asyncore_close_all(th_map);
    ck_assert_int_eq(bad_destroys, 0);
}
END_TEST

START_TEST(bad_terminators_fail_with_einval_and_change_nothing)
{
    struct rec r = { 0 };
    asyncore_chat_terminator t;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\r\n", 2), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator(c, NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "x", 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0; /* CPython's test_disallow_negative_terminator */
    ck_assert_int_eq(asyncore_chat_set_terminator_count(c, -1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator_count(c, INT64_MIN), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_chat_get_terminator(c, &t), 0);
    ck_assert_int_eq(t.kind, ASYNCORE_TERMINATOR_BYTES);
    ck_assert_uint_eq(t.len, 2);
    ck_assert_int_eq(memcmp(t.bytes, "\r\n", 2), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_get_terminator(c, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_in_buffer_size(c, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(c, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    asyncore_close_all(th_map); /* before the hooks' state goes */
}
END_TEST

START_TEST(bad_pushes_fail_with_einval_and_release_what_they_got)
{
    struct rec r = { 0 };
    struct src s = { 0 };
    int ref_frees = 0;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push(c, NULL, 3), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push_reference(c, NULL, 3, count_ref_free,
                                                  &ref_frees),
                     -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ref_frees, 1);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_producer_new(NULL, src_free, &s));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(s.frees, 0);
    errno = 0;
    ck_assert_ptr_null(asyncore_simple_producer_new(NULL, 3, 0));
    ck_assert_int_eq(errno, EINVAL);
    /* Empty pushes queue nothing; a reference of 0 bytes is released. */
    ck_assert_int_eq(asyncore_chat_push(c, NULL, 0), 0);
    ck_assert_int_eq(asyncore_chat_push_reference(c, "", 0, count_ref_free,
                                                  &ref_frees),
                     0);
    ck_assert_int_eq(ref_frees, 2);
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 0);
    asyncore_close_all(th_map); /* before the hooks' state goes */
}
END_TEST

START_TEST(methods_on_a_closed_channel_fail_with_ebadf)
{
    struct rec r = { 0 };
    struct src s = { 0 };
    int ref_frees = 0;
    asyncore_chat_terminator t;
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &rec_handlers, &r);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    ck_assert_int_eq(asyncore_close(c), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push(c, "x", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push_reference(c, "x", 1, count_ref_free,
                                                  &ref_frees),
                     -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(ref_frees, 1);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push_with_producer(c, src_producer(&s, "x", 1)),
                     -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(s.frees, 1);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_close_when_done(c), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_initiate_send(c), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator_count(c, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_terminator_none(c), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_in_buffer_size(c, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    /* Inspecting and discarding still work while it is held. */
    ck_assert_int_eq(asyncore_chat_get_terminator(c, &t), 0);
    ck_assert_int_eq(asyncore_chat_discard_buffers(c), 0);
    ck_assert_int_eq(asyncore_chat_queued(c, NULL), 0);
    ck_assert_int_eq(r.destroys, 0);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(r.destroys, 1);
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(chat_functions_on_a_plain_dispatcher_fail_with_einval)
{
    static const asyncore_handlers plain = { .handle_read = noop };
    struct src s = { 0 };
    int ref_frees = 0;
    asyncore_chat_terminator t;
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &plain, NULL);

    ck_assert_ptr_nonnull(d);
#define EINVAL_ON(call)                                                    \
    do {                                                                   \
        errno = 0;                                                         \
        ck_assert_int_eq((call), -1);                                      \
        ck_assert_int_eq(errno, EINVAL);                                   \
    } while (0)
    EINVAL_ON(asyncore_chat_set_terminator(d, "\n", 1));
    EINVAL_ON(asyncore_chat_set_terminator_count(d, 1));
    EINVAL_ON(asyncore_chat_set_terminator_none(d));
    EINVAL_ON(asyncore_chat_get_terminator(d, &t));
    EINVAL_ON(asyncore_chat_push(d, "x", 1));
    EINVAL_ON(asyncore_chat_push_reference(d, "x", 1, count_ref_free, &ref_frees));
    EINVAL_ON(asyncore_chat_push_with_producer(d, src_producer(&s, "x", 1)));
    EINVAL_ON(asyncore_chat_close_when_done(d));
    EINVAL_ON(asyncore_chat_discard_buffers(d));
    EINVAL_ON(asyncore_chat_initiate_send(d));
    EINVAL_ON(asyncore_chat_queued(d, NULL));
    EINVAL_ON(asyncore_chat_set_in_buffer_size(d, 1));
    EINVAL_ON(asyncore_chat_set_out_buffer_size(d, 1));
    EINVAL_ON(asyncore_chat_push(NULL, "x", 1));
#undef EINVAL_ON
    ck_assert_int_eq(ref_frees, 1);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_int_eq(asyncore_chat_writable(d), 0);
    ck_assert_int_eq(asyncore_chat_readable(d), 0);
    asyncore_chat_handle_read(d); /* does nothing on a non-chat */
    asyncore_chat_handle_write(d);
    ck_assert(!asyncore_dispatcher_closed(d));
}
END_TEST

/* ---- property: framing does not depend on how the input is split --------- */

/* xorshift64*: small, seedable, the same everywhere. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

enum act { ACT_BYTES, ACT_COUNT, ACT_NONE, ACT_KEEP };

struct action {
    enum act act;
    char term[24];
    size_t len;    /* ACT_BYTES */
    int64_t count; /* ACT_COUNT */
};

#define SCRIPT_MAX 48

struct prop {
    struct action script[SCRIPT_MAX];
    int nscript;
    int next;          /* the action found_terminator applies next */
    struct bytes cur;  /* data since the last found_terminator */
    struct bytes log;  /* (terminator, data) per found, then the tail */
    int founds;
};

static void apply(asyncore_dispatcher *d, const struct action *a)
{
    switch (a->act) {
    case ACT_BYTES:
        ck_assert_int_eq(asyncore_chat_set_terminator(d, a->term, a->len), 0);
        break;
    case ACT_COUNT:
        ck_assert_int_eq(asyncore_chat_set_terminator_count(d, a->count), 0);
        break;
    case ACT_NONE:
        ck_assert_int_eq(asyncore_chat_set_terminator_none(d), 0);
        break;
    case ACT_KEEP:
        break;
    }
}

/* One log record: kind, terminator bytes or count, then the data. */
static void log_record(struct bytes *log, char kind, const void *term,
                       size_t tlen, uint64_t count, const struct bytes *data)
{
    uint64_t n = data->len;

    bytes_add(log, &kind, 1);
    bytes_add(log, &tlen, sizeof(tlen));
    bytes_add(log, term, tlen);
    bytes_add(log, &count, sizeof(count));
    bytes_add(log, &n, sizeof(n));
    bytes_add(log, data->p, data->len);
}

static void prop_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct prop *p = asyncore_dispatcher_user_data(d);

    ck_assert_uint_gt(len, 0);
    bytes_add(&p->cur, data, len);
}

static void prop_found(asyncore_dispatcher *d)
{
    struct prop *p = asyncore_dispatcher_user_data(d);
    asyncore_chat_terminator t;

    ck_assert_int_eq(asyncore_chat_get_terminator(d, &t), 0);
    log_record(&p->log, (char)('0' + t.kind), t.bytes, t.len, t.count,
               &p->cur);
    p->cur.len = 0;
    p->founds++;
    if (p->next < p->nscript)
        apply(d, &p->script[p->next++]);
}

static const asyncore_chat_handlers prop_handlers = {
    .collect_incoming_data = prop_collect,
    .found_terminator = prop_found,
};

static const char alphabet[] = "ab\r\nq";

static void random_action(uint64_t *s, struct action *a)
{
    size_t r = rng_below(s, 20), i;

    memset(a, 0, sizeof(*a));
    if (r < 14) {
        a->act = ACT_BYTES;
        /* Mostly short, self-overlapping ones; sometimes long (heap). */
        a->len = rng_below(s, 8) == 0 ? 5 + rng_below(s, 19) : 1 + rng_below(s, 3);
        for (i = 0; i < a->len; i++)
            a->term[i] = alphabet[rng_below(s, sizeof(alphabet) - 1)];
    } else if (r < 18) {
        a->act = ACT_COUNT;
        a->count = rng_below(s, 16) == 0 ? 100000 : (int64_t)rng_below(s, 60);
    } else if (r < 19) {
        a->act = ACT_NONE; /* ends the framing: nothing sets another */
    } else {
        a->act = ACT_KEEP; /* a string repeats; a count that hit 0 is None */
    }
}

/* A stream over a small alphabet, with the script's terminators planted
 * here and there so that long ones occur too. */
static void random_stream(uint64_t *s, const struct prop *p, struct bytes *out)
{
    size_t len = rng_below(s, 3000), i;

    for (i = 0; i < len; i++) {
        if (rng_below(s, 40) == 0) {
            const struct action *a = &p->script[rng_below(s, (size_t)p->nscript)];
            if (a->act == ACT_BYTES)
                bytes_add(out, a->term, a->len);
        }
        bytes_add(out, &alphabet[rng_below(s, sizeof(alphabet) - 1)], 1);
    }
}

/* Feed @stream to a fresh channel in pieces (@split) or in one write. */
static void run_channel(struct prop *p, const struct bytes *stream,
                        uint64_t *s, int split)
{
    int peer;
    size_t off, n;
    asyncore_dispatcher *c = chat_pair(&prop_handlers, p, SOCK_STREAM, &peer);

    p->next = 1;
    p->founds = 0;
    p->cur.len = p->log.len = 0;
    apply(c, &p->script[0]);
    if (split) {
        static const size_t in_sizes[] = { 1, 2, 7, ASYNCORE_CHAT_BUFFER_SIZE };
        ck_assert_int_eq(asyncore_chat_set_in_buffer_size(
                             c, in_sizes[rng_below(s, 4)]),
                         0);
    }
    for (off = 0; off < stream->len; off += n) {
        n = stream->len - off;
        if (split)
            n = rng_below(s, 3) == 0 ? 1 : 1 + rng_below(s, n < 64 ? n : 64);
        write_all(peer, stream->p + off, n);
        wait_consumed(c);
    }
    log_record(&p->log, 'T', NULL, 0, 0, &p->cur);
    ck_assert_int_eq(asyncore_close(c), 0);
    close(peer);
}

/* The expected log, from the whole stream at once (an independent model
 * of asynchat's rules, not the library's code). */
static void model(struct prop *p, const struct bytes *stream)
{
    const unsigned char *d = stream->p;
    size_t pos = 0, n = stream->len;
    struct action t = p->script[0];
    struct bytes piece = { 0 };
    int next = 1;

    p->log.len = 0;
    for (;;) {
        const unsigned char *hit = NULL;
        size_t taken, hold = 0;
        struct action seen = t;

        if (t.act == ACT_BYTES)
            hit = memmem(d + pos, n - pos, t.term, t.len);
        if (t.act == ACT_BYTES && hit == NULL) {
            size_t l;
            for (l = t.len - 1; l > 0 && hold == 0; l--)
                if (l <= n - pos && memcmp(d + n - l, t.term, l) == 0)
                    hold = l;
        }
        if (hit != NULL) {
            taken = (size_t)(hit - (d + pos));
        } else if (t.act == ACT_COUNT && t.count > 0 &&
                   (uint64_t)t.count <= n - pos) {
            taken = (size_t)t.count;
            seen.count = 0;
        } else {
            piece.len = 0;
            bytes_add(&piece, d + pos, n - pos - hold);
            log_record(&p->log, 'T', NULL, 0, 0, &piece);
            break;
        }
        piece.len = 0;
        bytes_add(&piece, d + pos, taken);
        if (seen.act == ACT_BYTES)
            log_record(&p->log, '0' + ASYNCORE_TERMINATOR_BYTES, seen.term,
                       seen.len, 0, &piece);
        else
            log_record(&p->log, '0' + ASYNCORE_TERMINATOR_COUNT, NULL, 0, 0,
                       &piece);
        pos += taken + (hit != NULL ? t.len : 0);
        if (seen.act == ACT_COUNT)
            t.count = 0; /* reached: kept, it then behaves as None */
        if (next < p->nscript) {
            const struct action *a = &p->script[next++];
            if (a->act == ACT_BYTES || a->act == ACT_COUNT)
                t = *a;
            else if (a->act == ACT_NONE)
                t.act = ACT_NONE;
        }
    }
    free(piece.p);
}

/* One random case: a script, a stream, two deliveries and the model. */
/* Returns the number of found_terminator calls. */
static int random_case(int seed_no)
{
    uint64_t s = UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(seed_no + 1);
    struct prop p = { .nscript = 0 };
    struct bytes stream = { 0 }, one = { 0 };
    int i;

    p.script[0].act = ACT_KEEP;
    while (p.script[0].act == ACT_KEEP) /* the first one sets something */
        random_action(&s, &p.script[0]);
    p.nscript = 1 + (int)rng_below(&s, SCRIPT_MAX - 1);
    for (i = 1; i < p.nscript; i++)
        random_action(&s, &p.script[i]);
    random_stream(&s, &p, &stream);

    run_channel(&p, &stream, &s, 0);
    bytes_add(&one, p.log.p, p.log.len);
    run_channel(&p, &stream, &s, 1);
    ck_assert_msg(p.log.len == one.len && memcmp(p.log.p, one.p, one.len) == 0,
                  "seed %d: split delivery framed differently", seed_no);
    model(&p, &stream);
    ck_assert_msg(p.log.len == one.len && memcmp(p.log.p, one.p, one.len) == 0,
                  "seed %d: framing differs from the model", seed_no);
    free(p.log.p);
    free(p.cur.p);
    free(stream.p);
    free(one.p);
    return p.founds;
}

#define CASES_PER_TEST 8

START_TEST(random_streams_frame_the_same_in_any_split)
{
    int k, founds = 0;

    for (k = 0; k < CASES_PER_TEST; k++)
        founds += random_case(_i * CASES_PER_TEST + k);
    /* The scripts are exercised, not skipped over. */
    ck_assert_int_ge(founds, CASES_PER_TEST);
    if (getenv("CHAT_PROP_STATS"))
        fprintf(stderr, "cases %d..%d: %d found_terminator calls\n",
                _i * CASES_PER_TEST, _i * CASES_PER_TEST + CASES_PER_TEST - 1,
                founds);
}
END_TEST

/* ---- linear cost: 1 MiB in 1-byte reads ---------------------------------- */

struct big {
    struct bytes got;
    int founds;
};

static void big_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct big *b = asyncore_dispatcher_user_data(d);
    bytes_add(&b->got, data, len);
}

static void big_found(asyncore_dispatcher *d)
{
    struct big *b = asyncore_dispatcher_user_data(d);
    b->founds++;
}

static const asyncore_chat_handlers big_handlers = {
    .collect_incoming_data = big_collect,
    .found_terminator = big_found,
};

START_TEST(one_mebibyte_in_one_byte_reads_is_framed_in_linear_time)
{
    const size_t body_len = 1 << 20;
    static const char term[] = "\r\n\r\n";
    unsigned char *msg = malloc(body_len + 4);
    struct big b = { .founds = 0 };
    size_t off = 0, i;
    int peer;
    asyncore_dispatcher *c = chat_pair(&big_handlers, &b, SOCK_STREAM, &peer);

    ck_assert_ptr_nonnull(msg);
    /* Lines: every "\r\n" is a prefix of the terminator, held back and
     * then released again. */
    for (i = 0; i < body_len; i++)
        msg[i] = (unsigned char)"line\r\n"[i % 6];
    msg[body_len - 1] = 'x';
    memcpy(msg + body_len, term, 4);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, term, 4), 0);
    ck_assert_int_eq(asyncore_chat_set_in_buffer_size(c, 1), 0);
    while (off < body_len + 4) {
        ssize_t n = send(peer, msg + off, body_len + 4 - off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        /* Each handle_read takes exactly one byte. */
        for (i = 0; i < (size_t)n; i++)
            asyncore_chat_handle_read(c);
        off += (size_t)n;
    }
    ck_assert_int_eq(b.founds, 1);
    ck_assert_uint_eq(b.got.len, body_len);
    ck_assert_int_eq(memcmp(b.got.p, msg, body_len), 0);
    free(b.got.p);
    free(msg);
    asyncore_close_all(th_map); /* before the hooks' state goes */
    close(peer);
}
END_TEST

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("asynchat");
    TCase *rules = tcase_create("rules");
    TCase *bad = tcase_create("bad input");
    TCase *prop = tcase_create("property");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, one_byte_line_terminator_is_found_in_any_chunking,
                        0, 3 * TH_NFAMILIES);
    tcase_add_loop_test(tc, two_byte_line_terminator_is_found_in_any_chunking,
                        0, 3 * TH_NFAMILIES);
    tcase_add_loop_test(tc, three_byte_line_terminator_is_found_in_any_chunking,
                        0, 3 * TH_NFAMILIES);
    tcase_add_loop_test(tc, numeric_terminator_of_one_collects_one_byte, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, numeric_terminator_of_six_collects_six_bytes, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, numeric_terminator_of_zero_collects_everything, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, large_numeric_terminator_counts_down_without_finding,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, none_terminator_collects_everything, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, simple_producer_is_sent_whole, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, pushed_reference_is_sent_whole_and_released_once,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, empty_line_is_found_with_no_data, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_when_done_sends_everything_then_closes, 0,
                        TH_NFAMILIES);
    tcase_add_loop_test(tc, push_reference_and_producer_keep_their_order, 0,
                        TH_NFAMILIES);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(rules, th_setup, th_teardown);
    tcase_set_timeout(rules, 60);
    tcase_add_test(rules, handle_read_with_nothing_to_read_calls_no_hook);
    tcase_add_test(rules, default_handle_close_closes_quietly_when_the_peer_closes);
    tcase_add_test(rules, numeric_terminator_counts_down_across_reads);
    tcase_add_loop_test(rules,
                        terminator_set_in_found_terminator_applies_to_buffered_input,
                        0, 2);
    tcase_add_test(rules, found_terminator_that_closes_stops_the_input);
    tcase_add_test(rules, discard_buffers_in_found_terminator_drops_the_buffered_input);
    tcase_add_test(rules, discard_buffers_in_collect_keeps_the_piece_and_drops_the_rest);
    tcase_add_test(rules, discard_buffers_releases_all_queued_output_once);
    tcase_add_test(rules, close_releases_queued_producers_and_references_once);
    tcase_add_test(rules, peer_close_releases_the_queue_before_destroy);
    tcase_add_test(rules, push_splits_sends_at_out_buffer_size);
    tcase_add_test(rules, producer_output_is_limited_by_out_buffer_size);
    tcase_add_test(rules, push_copies_and_push_reference_does_not);
    tcase_add_test(rules, push_to_a_lost_peer_closes_and_releases_the_queue);
    tcase_add_test(rules, initiate_send_returns_the_bytes_sent);
    tcase_add_test(rules, writable_while_unconnected_or_output_is_queued);
    tcase_add_test(rules, failing_producer_goes_to_handle_error_and_is_released);
    tcase_add_test(rules, long_terminator_is_copied_and_reported);
    tcase_add_test(rules, find_prefix_at_end_returns_the_longest_prefix);
    tcase_add_test(rules, simple_producer_yields_buffer_size_pieces);
    tcase_add_test(rules, one_mebibyte_in_one_byte_reads_is_framed_in_linear_time);
    suite_add_tcase(s, rules);

    tcase_add_checked_fixture(bad, th_setup, th_teardown);
    tcase_add_test(bad, missing_hooks_fail_at_creation_with_einval);
    tcase_add_test(bad, bad_terminators_fail_with_einval_and_change_nothing);
    tcase_add_test(bad, bad_pushes_fail_with_einval_and_release_what_they_got);
    tcase_add_test(bad, methods_on_a_closed_channel_fail_with_ebadf);
    tcase_add_test(bad, chat_functions_on_a_plain_dispatcher_fail_with_einval);
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(prop, th_setup, th_teardown);
    tcase_set_timeout(prop, 20);
    /* 32 x 8 = 256 random cases. */
    tcase_add_loop_test(prop, random_streams_frame_the_same_in_any_split, 0,
                        256 / CASES_PER_TEST);
    suite_add_tcase(s, prop);
    return s;
}

int main(void)
{
    return th_run_suite(chat_suite());
}
