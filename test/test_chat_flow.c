/*
 * test_chat_flow.c -- async_chat's flow control: the input limit on a
 * record (what counts, the error path, skipping the rest of an oversized
 * record), cutting a record at the record size, and read pausing on the output queue, ending with a firehose
 * peer that writes as fast as it can and reads nothing for a while.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a recording channel --------------------------------------------------- */

struct frec {
    char cur[256];          /* the record being collected */
    size_t curlen;
    size_t max_record;      /* the longest record collect ever built */
    char lines[8][64];
    int n;
    int collects;
    size_t collected;
    size_t target;          /* set reached once collected >= target */
    int reached;
    int errors, err;
    char op[16];
    int keep_open;          /* handle_error does not close */
    int echo;               /* push back everything collected */
    size_t in_size;         /* echo: one read at most */
    size_t max_queued;      /* echo: the most queued right after a push */
    int queued_at_first_collect;
    int truncated[8];       /* record_truncated() in each found_terminator */
    int cut_in_collect;     /* collect calls that saw it true */
    int reset_term_in_found; /* set the terminator again before asking */
};

static void f_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct frec *r = asyncore_dispatcher_user_data(d);
    size_t q;

    if (r->collects++ == 0) {
        ck_assert_int_ge(asyncore_chat_queued(d, &q), 0);
        r->queued_at_first_collect = (int)q;
    }
    r->collected += len;
    if (asyncore_chat_record_truncated(d))
        r->cut_in_collect++;
    if (r->target && r->collected >= r->target)
        r->reached = 1;
    if (r->echo) {
        ck_assert_uint_le(len, r->in_size);
        ck_assert_int_eq(asyncore_chat_push(d, data, len), 0);
        ck_assert_int_ge(asyncore_chat_queued(d, &q), 0);
        if (q > r->max_queued)
            r->max_queued = q;
        return;
    }
    ck_assert_uint_le(r->curlen + len, sizeof(r->cur));
    memcpy(r->cur + r->curlen, data, len);
    r->curlen += len;
    if (r->curlen > r->max_record)
        r->max_record = r->curlen;
}

static void f_found(asyncore_dispatcher *d)
{
    struct frec *r = asyncore_dispatcher_user_data(d);

    ck_assert_int_lt(r->n, 8);
    ck_assert_uint_lt(r->curlen, sizeof(r->lines[0]));
    if (r->reset_term_in_found)
        ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    r->truncated[r->n] = asyncore_chat_record_truncated(d);
    memcpy(r->lines[r->n], r->cur, r->curlen);
    r->lines[r->n++][r->curlen] = '\0';
    r->curlen = 0;
}

static void f_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct frec *r = asyncore_dispatcher_user_data(d);

    r->errors++;
    r->err = err;
    snprintf(r->op, sizeof(r->op), "%s", op);
    r->curlen = 0; /* drop the part of the record collected already */
    if (!r->keep_open)
        asyncore_default_handle_error(d, err, op);
}

static const asyncore_chat_handlers f_handlers = {
    .dispatcher = { .handle_error = f_error },
    .collect_incoming_data = f_collect,
    .found_terminator = f_found,
};

/* A chat channel over one end of a socketpair; the other end is *@peer. */
static asyncore_dispatcher *f_channel(struct frec *r, int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_chat_new(th_map, &f_handlers, r);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    *peer = sv[1];
    return d;
}

static void put(int fd, const char *s)
{
    ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Poll until *@counter exceeds @before. */
static void wait_past(int *counter, int before)
{
    double end = th_now() + 5.0;

    while (*counter <= before && th_now() < end && asyncore_map_count(th_map) > 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_gt(*counter, before);
}

/* ---- the input limit -------------------------------------------------------- */

START_TEST(oversized_line_goes_to_handle_error_and_is_skipped)
{
    struct frec r = { .keep_open = 1 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 16), 0);
    put(peer, "short\n");
    wait_past(&r.n, 0);
    /* 10 bytes: within the limit, delivered as they come. */
    put(peer, "0123456789");
    wait_past(&r.collects, 1);
    ck_assert_uint_eq(r.curlen, 10);
    /* 10 more would make 20 > 16: none of them is delivered. */
    put(peer, "abcdefghij");
    wait_past(&r.errors, 0);
    ck_assert_int_eq(r.err, EMSGSIZE);
    ck_assert_str_eq(r.op, "input");
    ck_assert_uint_eq(r.max_record, 10);
    /* The rest of that record goes, up to its terminator; then framing
     * resumes, with one error per record. */
    put(peer, "KLMNOPQRSTUVWXYZ\nafter\n");
    wait_past(&r.n, 1);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.lines[0], "short");
    ck_assert_str_eq(r.lines[1], "after");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_uint_le(r.max_record, 16);
    ck_assert(!asyncore_dispatcher_closed(d));
    close(peer);
}
END_TEST

START_TEST(line_of_exactly_max_input_passes_with_a_split_terminator)
{
    struct frec r = { 0 };
    asyncore_dispatcher *d;
    char want[64];
    int peer;

    th_log_capture(th_map);
    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 10), 0);
    /* The held "\r" may be the terminator's start: it does not count. */
    put(peer, "0123456789\r");
    wait_past(&r.collects, 0);
    put(peer, "\n");
    wait_past(&r.n, 0);
    ck_assert_str_eq(r.lines[0], "0123456789");
    ck_assert_int_eq(r.errors, 0);
    /* One byte more, even with its terminator in the same read: too long,
     * and the default handle_error logs it and closes. */
    put(peer, "0123456789A\r\n");
    wait_past(&r.errors, 0);
    ck_assert_int_eq(r.err, EMSGSIZE);
    ck_assert_int_eq(r.n, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    snprintf(want, sizeof(want), "(input: errno %d:", EMSGSIZE);
    ck_assert_int_eq(th_log_count(want), 1);
    close(peer);
}
END_TEST

START_TEST(limit_does_not_apply_to_count_and_none_terminators)
{
    struct frec r = { .target = 100 };
    asyncore_dispatcher *d;
    char buf[100];
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 4), 0);
    memset(buf, 'a', sizeof(buf));
    ck_assert_int_eq(write(peer, buf, 100), 100); /* NONE: all of it */
    wait_past(&r.reached, 0);
    ck_assert_int_eq(asyncore_chat_set_terminator_count(d, 50), 0);
    r.curlen = 0;
    ck_assert_int_eq(write(peer, buf, 60), 60);
    wait_past(&r.n, 0);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_str_eq(r.lines[0], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    close(peer);
}
END_TEST

START_TEST(new_terminator_starts_a_new_record)
{
    struct frec r = { .keep_open = 1 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 8), 0);
    put(peer, "123456");
    wait_past(&r.collects, 0);
    /* Counted from the last terminator change: 6 + 6 is no error. */
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    put(peer, "abcdef\n");
    wait_past(&r.n, 0);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_str_eq(r.lines[0], "123456abcdef");
    close(peer);
}
END_TEST

/* ---- cutting a record ---------------------------------------------------------- */

/* Send @s to @d's peer and run the loop until @n records were found. */
static void lines_until(struct frec *r, int peer, const char *s, int n)
{
    double end = th_now() + 5.0;

    put(peer, s);
    while (r->n < n && th_now() < end && asyncore_map_count(th_map) > 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(r->n, n);
}

static const size_t cut_in_sizes[] = { 1, 3, ASYNCORE_CHAT_BUFFER_SIZE };

START_TEST(over_long_record_is_cut_and_reported_at_its_terminator)
{
    struct frec r = { 0 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    /* Reads of 1 and 3 bytes split records and terminators everywhere. */
    ck_assert_int_eq(asyncore_chat_set_in_buffer_size(d, cut_in_sizes[_i]), 0);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_chat_set_max_record(d, 5), 0);
    ck_assert_int_eq(asyncore_chat_record_truncated(d), 0);
    lines_until(&r, peer,
                "hello world\r\nok\r\nabcde\r\nabcdef\r\n\r\nab\rc\r\n", 6);
    ck_assert_str_eq(r.lines[0], "hello");
    ck_assert_int_eq(r.truncated[0], 1);
    ck_assert_str_eq(r.lines[1], "ok");
    ck_assert_int_eq(r.truncated[1], 0);
    ck_assert_str_eq(r.lines[2], "abcde"); /* exactly the size: kept */
    ck_assert_int_eq(r.truncated[2], 0);
    ck_assert_str_eq(r.lines[3], "abcde");
    ck_assert_int_eq(r.truncated[3], 1);
    ck_assert_str_eq(r.lines[4], "");
    ck_assert_int_eq(r.truncated[4], 0);
    /* A held-back "\r" that was data after all counts as data. */
    ck_assert_str_eq(r.lines[5], "ab\rc");
    ck_assert_int_eq(r.truncated[5], 0);
    ck_assert_int_eq(r.errors, 0);
    ck_assert_uint_le(r.max_record, 5);
    ck_assert_int_eq(asyncore_chat_record_truncated(d), 0);
    close(peer);
}
END_TEST

START_TEST(cut_is_seen_in_the_last_collect_and_after_a_new_terminator)
{
    struct frec r = { .reset_term_in_found = 1 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_chat_set_max_record(d, 3), 0);
    /* One read: the collect that gets "abc" already knows of the cut. */
    lines_until(&r, peer, "abcdefgh\r\nxy\r\n", 2);
    ck_assert_str_eq(r.lines[0], "abc");
    ck_assert_int_eq(r.truncated[0], 1); /* asked after set_terminator */
    ck_assert_str_eq(r.lines[1], "xy");
    ck_assert_int_eq(r.truncated[1], 0);
    ck_assert_int_eq(r.cut_in_collect, 1);
    close(peer);
}
END_TEST

START_TEST(max_input_counts_the_bytes_a_cut_dropped)
{
    struct frec r = { .keep_open = 1 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    ck_assert_int_eq(asyncore_chat_set_max_record(d, 4), 0);
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 8), 0);
    /* 7 bytes: cut to 4, no error.  12 bytes: past the input limit,
     * EMSGSIZE and no found_terminator.  Then framing goes on. */
    lines_until(&r, peer, "abcdefg\nabcdefghijkl\nok\n", 2);
    ck_assert_str_eq(r.lines[0], "abcd");
    ck_assert_int_eq(r.truncated[0], 1);
    ck_assert_str_eq(r.lines[1], "ok");
    ck_assert_int_eq(r.truncated[1], 0);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_int_eq(r.err, EMSGSIZE);
    ck_assert_str_eq(r.op, "input");
    close(peer);
}
END_TEST

START_TEST(record_size_does_not_cut_count_and_none_terminators)
{
    struct frec r = { 0 };
    asyncore_dispatcher *d;
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_max_record(d, 2), 0);
    ck_assert_int_eq(asyncore_chat_set_terminator_count(d, 6), 0);
    lines_until(&r, peer, "abcdef", 1);
    ck_assert_str_eq(r.lines[0], "abcdef");
    ck_assert_int_eq(r.truncated[0], 0);
    ck_assert_int_eq(asyncore_chat_set_terminator_none(d), 0);
    r.target = 6 + 5;
    put(peer, "ghijk");
    wait_past(&r.reached, 0);
    ck_assert_uint_eq(r.collected, 11);
    ck_assert_int_eq(asyncore_chat_record_truncated(d), 0);
    close(peer);
}
END_TEST

/* ---- read pausing ------------------------------------------------------------ */

START_TEST(reading_pauses_above_high_water_and_resumes_at_low_water)
{
    struct frec r = { 0 };
    asyncore_dispatcher *d;
    char out[120];
    size_t q;
    int peer;

    d = f_channel(&r, &peer);
    /* Ten bytes per send: each write dispatch lowers the queue by ten. */
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(d, 10), 0);
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, 100, 50), 0);
    memset(out, 'o', sizeof(out));
    ck_assert_int_eq(asyncore_chat_push(d, out, sizeof(out)), 0);
    ck_assert_int_eq(asyncore_chat_queued(d, &q), 1);
    ck_assert_uint_eq(q, 110); /* the push sent ten at once */
    ck_assert_int_eq(asyncore_chat_readable(d), 0);
    put(peer, "x");
    wait_past(&r.collects, 0);
    /* Not read while more than 50 were queued, read once down to 50. */
    ck_assert_int_le(r.queued_at_first_collect, 50);
    ck_assert_int_ge(r.queued_at_first_collect, 40);
    ck_assert_int_eq(asyncore_chat_readable(d), 1);
    close(peer);
}
END_TEST

START_TEST(turning_high_water_off_resumes_reading_at_once)
{
    struct frec r = { 0 };
    asyncore_dispatcher *d;
    char out[64];
    int peer;

    d = f_channel(&r, &peer);
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, 10, 0), 0);
    /* One byte per send: the push leaves 63 queued, over high water. */
    ck_assert_int_eq(asyncore_chat_set_out_buffer_size(d, 1), 0);
    memset(out, 'o', sizeof(out));
    ck_assert_int_eq(asyncore_chat_push(d, out, sizeof(out)), 0);
    ck_assert_int_eq(asyncore_chat_readable(d), 0);
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, 0, 0), 0);
    ck_assert_int_eq(asyncore_chat_readable(d), 1);
    put(peer, "x");
    wait_past(&r.collects, 0);
    close(peer);
}
END_TEST

/* ---- the firehose ------------------------------------------------------------- */

#define FH_TOTAL ((size_t)2 << 20)
#define FH_IN 4096
#define FH_HIGH 65536
#define FH_LOW 16384

/* A peer thread that writes FH_TOTAL bytes as fast as the socket takes
 * them, and reads (checking the order) only once told to. */
struct firehose {
    int fd;
    atomic_int go_read;
    atomic_int stop;
    atomic_size_t written;
    atomic_size_t got;
    atomic_size_t bad_at; /* 1 + the offset of the first wrong byte */
};

static unsigned char fh_byte(size_t i)
{
    return (unsigned char)(i * 7 + i / 4093);
}

static void fh_write(struct firehose *f, size_t *w)
{
    unsigned char buf[8192];
    size_t n = FH_TOTAL - *w < sizeof(buf) ? FH_TOTAL - *w : sizeof(buf), i;
    ssize_t k;

    for (i = 0; i < n; i++)
        buf[i] = fh_byte(*w + i);
    k = send(f->fd, buf, n, MSG_NOSIGNAL);
    if (k > 0) {
        *w += (size_t)k;
        atomic_store(&f->written, *w);
    }
}

/* Returns 0 once the channel's end closed. */
static int fh_read(struct firehose *f, size_t *r)
{
    unsigned char buf[8192];
    ssize_t k = recv(f->fd, buf, sizeof(buf), 0), i;

    if (k == 0 || (k < 0 && errno != EAGAIN))
        return 0;
    for (i = 0; i < k; i++)
        if (buf[i] != fh_byte(*r + (size_t)i) && atomic_load(&f->bad_at) == 0)
            atomic_store(&f->bad_at, *r + (size_t)i + 1);
    if (k > 0) {
        *r += (size_t)k;
        atomic_store(&f->got, *r);
    }
    return 1;
}

static void *fh_peer(void *arg)
{
    struct firehose *f = arg;
    size_t w = 0, r = 0;

    while (!atomic_load(&f->stop) && r < FH_TOTAL) {
        int reading = atomic_load(&f->go_read);
        struct pollfd p = { .fd = f->fd, .events = 0 };

        if (w < FH_TOTAL)
            p.events |= POLLOUT;
        if (reading)
            p.events |= POLLIN;
        if (p.events == 0 || poll(&p, 1, 10) <= 0) {
            if (p.events == 0)
                usleep(10000); /* all written: wait to be told to read */
            continue;
        }
        if (p.revents & POLLOUT)
            fh_write(f, &w);
        if (reading && (p.revents & (POLLIN | POLLHUP | POLLERR)) && !fh_read(f, &r))
            break;
        if (!reading && (p.revents & (POLLHUP | POLLERR)))
            usleep(10000); /* the channel is gone: do not spin */
    }
    return NULL;
}

static void small_buffers(int fd)
{
    int size = 16384;

    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

/* One iteration, then note the queue: the most it ever held. */
static size_t fh_poll(asyncore_dispatcher *d, size_t *max_seen)
{
    size_t q;

    ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_ge(asyncore_chat_queued(d, &q), 0);
    if (q > *max_seen)
        *max_seen = q;
    return q;
}

START_TEST(firehose_peer_that_does_not_read_cannot_grow_the_queue)
{
    struct frec r = { .echo = 1, .in_size = FH_IN };
    struct firehose f = { 0 };
    asyncore_dispatcher *d;
    pthread_t tid;
    size_t max_seen = 0, last_w = 0, w;
    double end, last_change;
    int sv[2], paused_seen = 0;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    small_buffers(sv[0]);
    small_buffers(sv[1]);
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    d = asyncore_chat_new(th_map, &f_handlers, &r);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert_int_eq(asyncore_chat_set_in_buffer_size(d, FH_IN), 0);
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, FH_HIGH, FH_LOW), 0);
    f.fd = sv[1];
    ck_assert_int_eq(pthread_create(&tid, NULL, fh_peer, &f), 0);

    /* Phase 1: the peer writes and never reads, until everything stalls:
     * the channel paused reading and the peer can write no more. */
    end = th_now() + 30.0;
    last_change = th_now();
    while (th_now() < end) {
        if (fh_poll(d, &max_seen) > FH_HIGH)
            paused_seen = 1;
        w = atomic_load(&f.written);
        if (w != last_w) {
            last_w = w;
            last_change = th_now();
        }
        if (paused_seen && th_now() - last_change > 0.3)
            break;
    }
    ck_assert_msg(paused_seen, "the queue never went over high water");
    ck_assert_msg(atomic_load(&f.written) < FH_TOTAL,
                  "the peer wrote everything: reading never paused");
    ck_assert_int_eq(asyncore_chat_readable(d), 0);

    /* Phase 2: the peer reads; everything comes back, in order. */
    atomic_store(&f.go_read, 1);
    end = th_now() + 90.0;
    while (atomic_load(&f.got) < FH_TOTAL && th_now() < end &&
           asyncore_map_count(th_map) > 0)
        fh_poll(d, &max_seen);
    atomic_store(&f.stop, 1);
    ck_assert_int_eq(pthread_join(tid, NULL), 0);

    ck_assert_uint_eq(atomic_load(&f.got), FH_TOTAL);
    ck_assert_uint_eq(atomic_load(&f.bad_at), 0);
    ck_assert_uint_eq(r.collected, FH_TOTAL);
    /* Bounded: high water plus what one read pushed. */
    ck_assert_uint_le(r.max_queued, FH_HIGH + FH_IN);
    ck_assert_uint_le(max_seen, FH_HIGH + FH_IN);
    ck_assert_uint_gt(r.max_queued, FH_HIGH);
    close(sv[1]);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------ */

START_TEST(bad_flow_arguments_fail_with_einval_or_ebadf)
{
    static const asyncore_handlers plain = { 0 };
    struct frec r = { 0 };
    asyncore_dispatcher *d, *p;
    int peer;

    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_input(NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_read_high_water(NULL, 2, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    p = asyncore_dispatcher_new(th_map, &plain, NULL);
    ck_assert_ptr_nonnull(p);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_input(p, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_read_high_water(p, 2, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_record(NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_record(p, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_record_truncated(NULL), 0);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_record_truncated(p), 0);
    ck_assert_int_eq(errno, EINVAL);
    d = f_channel(&r, &peer);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, 10, 20), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_input(d, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_read_high_water(d, 2, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_set_max_record(d, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(asyncore_chat_record_truncated(d), 0);
    asyncore_dispatcher_release(d);
    close(peer);
}
END_TEST

static Suite *chat_flow_suite(void)
{
    Suite *s = suite_create("chat_flow");
    TCase *limit = tcase_create("max_input");
    TCase *cut = tcase_create("max_record");
    TCase *pause = tcase_create("read_pausing");
    TCase *bad = tcase_create("bad_input");

    tcase_add_checked_fixture(limit, th_setup, th_teardown);
    tcase_set_timeout(limit, 30);
    tcase_add_test(limit, oversized_line_goes_to_handle_error_and_is_skipped);
    tcase_add_test(limit, line_of_exactly_max_input_passes_with_a_split_terminator);
    tcase_add_test(limit, limit_does_not_apply_to_count_and_none_terminators);
    tcase_add_test(limit, new_terminator_starts_a_new_record);
    suite_add_tcase(s, limit);

    tcase_add_checked_fixture(cut, th_setup, th_teardown);
    tcase_set_timeout(cut, 30);
    tcase_add_loop_test(cut, over_long_record_is_cut_and_reported_at_its_terminator,
                        0, 3);
    tcase_add_test(cut, cut_is_seen_in_the_last_collect_and_after_a_new_terminator);
    tcase_add_test(cut, max_input_counts_the_bytes_a_cut_dropped);
    tcase_add_test(cut, record_size_does_not_cut_count_and_none_terminators);
    suite_add_tcase(s, cut);

    tcase_add_checked_fixture(pause, th_setup, th_teardown);
    tcase_set_timeout(pause, 150);
    tcase_add_test(pause, reading_pauses_above_high_water_and_resumes_at_low_water);
    tcase_add_test(pause, turning_high_water_off_resumes_reading_at_once);
    tcase_add_test(pause, firehose_peer_that_does_not_read_cannot_grow_the_queue);
    suite_add_tcase(s, pause);

    tcase_add_checked_fixture(bad, th_setup, th_teardown);
    tcase_add_test(bad, bad_flow_arguments_fail_with_einval_or_ebadf);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    return th_run_suite(chat_flow_suite());
}
