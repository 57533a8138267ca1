/*
 * test_lifetime_reentry.c -- user code that re-enters the library from
 * where the library was in the middle of something: the re-entrancy rule
 * of lib/asyncore-internal.h, one test per way it was once broken.
 *
 * Public entry points called from outside any hook whose failure runs a
 * hook that closes; free hooks of references that push or discard from
 * inside a drain; a timer callback that frees its map while the program
 * runs the base itself; callbacks queued while the map is being freed;
 * held dispatchers that outlive their map; SIGPIPE from a file dispatcher.
 * Use after free shows only under the sanitizers or valgrind: the
 * assertions pin the counts and the return values.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include <event2/event.h>

/* ---- 1. a failure of send/recv from main whose handle_error closes ------- */

static int destroyed;

static void count_destroy(asyncore_dispatcher *d)
{
    (void)d;
    destroyed++;
}

/* Default handle_error: log, then handle_close, whose default closes. */
static const asyncore_handlers closing_h = {
    .destroy = count_destroy,
};

START_TEST(send_from_main_whose_error_closes_returns_the_errno)
{
    asyncore_dispatcher *d;

    destroyed = 0;
    th_log_capture(th_map);
    d = asyncore_dispatcher_new(th_map, &closing_h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    /* No destination: EDESTADDRREQ, handle_error, close, free -- and the
     * call must still answer without reading the freed dispatcher. */
    errno = 0;
    ck_assert_int_eq(asyncore_send(d, "x", 1), -1);
    ck_assert_int_eq(errno, EDESTADDRREQ);
    ck_assert_int_eq(destroyed, 1);
    ck_assert_int_eq(th_log_count("uncaptured error"), 1);
}
END_TEST

START_TEST(initiate_send_from_main_whose_error_closes_returns_the_errno)
{
    asyncore_dispatcher *d;

    destroyed = 0;
    th_log_capture(th_map);
    d = asyncore_dispatcher_with_send_new(th_map, &closing_h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    /* Not connected: queued, not tried. */
    ck_assert_int_eq(asyncore_send(d, "x", 1), 1);
    ck_assert_int_eq(destroyed, 0);
    errno = 0;
    ck_assert_int_eq(asyncore_initiate_send(d), -1);
    ck_assert_int_eq(errno, EDESTADDRREQ);
    ck_assert_int_eq(destroyed, 1);
}
END_TEST

/* A UDP socket connected to a port nothing listens on, with the ICMP
 * refusal of one datagram pending: its next recv fails ECONNREFUSED. */
static int refused_udp(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    int probe = socket(AF_INET, SOCK_DGRAM, 0), fd;
    struct pollfd pfd;

    ck_assert_int_ge(probe, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(probe, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&sin, &len), 0);
    close(probe); /* the port is free now: datagrams to it are refused */
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(send(fd, "x", 1, 0), 1);
    /* The ICMP refusal arrives as POLLERR. */
    pfd.fd = fd;
    pfd.events = POLLIN;
    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    ck_assert(pfd.revents & POLLERR);
    return fd;
}

START_TEST(recv_from_main_whose_error_closes_returns_the_errno)
{
    asyncore_dispatcher *d;
    char buf[8];

    destroyed = 0;
    th_log_capture(th_map);
    d = asyncore_dispatcher_new(th_map, &closing_h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, refused_udp()), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_recv(d, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    ck_assert_int_eq(destroyed, 1);
    ck_assert_int_eq(th_log_count("uncaptured error"), 1);
}
END_TEST

/* ---- 2. free hooks of references that call back into the channel -------- */

#define CHUNK 10
#define NCHUNKS 45

static char stream_data[CHUNK * NCHUNKS];

struct streamer {
    asyncore_dispatcher *d;
    int freed[NCHUNKS + 8];
    int extra_freed;  /* pushes refused from a free hook */
    int errors;
    int mode;         /* what the free hook does, see chunk_freed */
    int pushed;       /* chunks pushed so far */
};

static struct streamer sm;

static void chunk_freed(const void *data, size_t len, void *arg);

static int push_chunk(struct streamer *s)
{
    int k = s->pushed++;

    return asyncore_chat_push_reference(s->d, stream_data + k * CHUNK, CHUNK,
                                        chunk_freed, s);
}

enum { PUSH_NEXT, DISCARD, PUSH_AND_DISCARD };

static void chunk_freed(const void *data, size_t len, void *arg)
{
    struct streamer *s = arg;
    int k = (int)(((const char *)data - stream_data) / CHUNK);

    ck_assert_uint_eq(len, CHUNK);
    ck_assert_int_ge(k, 0);
    ck_assert_int_lt(k, NCHUNKS);
    s->freed[k]++;
    if (s->mode == PUSH_NEXT) {
        if (s->pushed < NCHUNKS)
            (void)push_chunk(s);
        return;
    }
    /* Re-enter whatever the library was doing when it released us. */
    if (s->mode == PUSH_AND_DISCARD && s->pushed < NCHUNKS &&
        push_chunk(s) < 0)
        s->extra_freed++; /* closed: the new chunk came back at once */
    (void)asyncore_chat_discard_buffers(s->d);
}

static void stream_error(asyncore_dispatcher *d, int err, const char *op)
{
    (void)err;
    (void)op;
    sm.errors++;
    asyncore_close(d);
}

static void ignore_data(asyncore_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    (void)data;
    (void)len;
}

static void ignore_terminator(asyncore_dispatcher *d)
{
    (void)d;
}

static const asyncore_chat_handlers stream_h = {
    .dispatcher = { .handle_error = stream_error },
    .collect_incoming_data = ignore_data,
    .found_terminator = ignore_terminator,
};

static void stream_setup(int mode)
{
    int i;

    memset(&sm, 0, sizeof(sm));
    sm.mode = mode;
    for (i = 0; i < (int)sizeof(stream_data); i++)
        stream_data[i] = (char)('a' + i % 26);
    sm.d = asyncore_chat_new(th_map, &stream_h, NULL);
    ck_assert_ptr_nonnull(sm.d);
}

static void assert_each_freed_once(int n)
{
    int k;

    for (k = 0; k < n; k++)
        ck_assert_msg(sm.freed[k] == 1, "chunk %d freed %d times", k,
                      sm.freed[k]);
}

START_TEST(a_free_hook_that_pushes_the_next_chunk_streams_every_byte)
{
    char got[sizeof(stream_data)];
    size_t have = 0;
    int fds[2];
    double end;

    stream_setup(PUSH_NEXT);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ck_assert_int_eq(asyncore_set_socket(sm.d, fds[0]), 0);
    ck_assert_int_eq(push_chunk(&sm), 0);
    ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    end = th_now() + 5.0;
    while (have < sizeof(got) && th_now() < end) {
        ssize_t n = read(fds[1], got + have, sizeof(got) - have);

        if (n > 0)
            have += (size_t)n;
        else
            asyncore_poll(th_map, 0.01);
    }
    ck_assert_uint_eq(have, sizeof(stream_data));
    ck_assert(memcmp(got, stream_data, sizeof(got)) == 0);
    ck_assert_int_eq(sm.errors, 0);
    ck_assert_int_eq(sm.pushed, NCHUNKS);
    assert_each_freed_once(NCHUNKS);
    ck_assert(!asyncore_dispatcher_closed(sm.d));
    close(fds[1]);
}
END_TEST

/* Unconnected, the channel sends nothing: every push stays queued, each
 * its own entry (before the channel has a socket its kind is unknown, so
 * pushes are kept apart). */
static void queue_chunks(int n)
{
    int i;

    for (i = 0; i < n; i++)
        ck_assert_int_eq(push_chunk(&sm), 0);
    ck_assert_int_eq(asyncore_chat_queued(sm.d, NULL), n);
}

START_TEST(free_hooks_that_push_and_discard_during_discard_buffers_are_safe)
{
    size_t bytes = 1;

    stream_setup(PUSH_AND_DISCARD);
    queue_chunks(5);
    ck_assert_int_eq(asyncore_chat_discard_buffers(sm.d), 0);
    /* Each free hook pushed one more and discarded it again: all gone. */
    ck_assert_int_eq(sm.pushed, NCHUNKS);
    assert_each_freed_once(NCHUNKS);
    ck_assert_int_eq(asyncore_chat_queued(sm.d, &bytes), 0);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_int_eq(sm.extra_freed, 0);
    ck_assert_int_eq(sm.errors, 0);
}
END_TEST

START_TEST(free_hooks_that_push_and_discard_during_close_are_safe)
{
    stream_setup(PUSH_AND_DISCARD);
    queue_chunks(5);
    ck_assert_int_eq(asyncore_close(sm.d), 0); /* frees: do not touch it */
    /* Each free hook's push was refused (closed), its chunk freed at once,
     * and that free hook pushed the next one: all were freed, once. */
    ck_assert_int_eq(sm.pushed, NCHUNKS);
    assert_each_freed_once(NCHUNKS);
    ck_assert_int_eq(sm.extra_freed, NCHUNKS - 5);
    ck_assert_int_eq(sm.errors, 0);
}
END_TEST

/* A producer whose free hook closes its channel, released by
 * asyncore_chat_discard_buffers(): the channel is closed (and, unheld,
 * freed) from inside the discard, which must not touch it after. */
static asyncore_dispatcher *pc_chan;
static int pc_more_calls, pc_freed, pc_destroyed;

static ssize_t pc_more(void *arg, void *buf, size_t size)
{
    (void)arg;
    (void)buf;
    (void)size;
    pc_more_calls++;
    return 0;
}

static void pc_free(void *arg)
{
    (void)arg;
    pc_freed++;
    ck_assert_int_eq(asyncore_close(pc_chan), 0);
}

static void pc_destroy(asyncore_dispatcher *d)
{
    (void)d;
    pc_destroyed++;
}

static const asyncore_chat_handlers pc_h = {
    .dispatcher = { .destroy = pc_destroy },
    .collect_incoming_data = ignore_data,
    .found_terminator = ignore_terminator,
};

START_TEST(a_producer_free_hook_that_closes_during_discard_buffers_is_safe)
{
    pc_more_calls = pc_freed = pc_destroyed = 0;
    pc_chan = asyncore_chat_new(th_map, &pc_h, NULL);
    ck_assert_ptr_nonnull(pc_chan);
    ck_assert_int_eq(asyncore_create_socket(pc_chan, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_chat_push_with_producer(
                         pc_chan, asyncore_producer_new(pc_more, pc_free, NULL)),
                     0);
    ck_assert_int_eq(asyncore_chat_discard_buffers(pc_chan), 0);
    ck_assert_int_eq(pc_freed, 1);
    ck_assert_int_eq(pc_destroyed, 1);
    ck_assert_int_eq(pc_more_calls, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

/* asyncore_loop() asks every dispatcher's predicates on entry.  A
 * readable() that closes its own dispatcher, whose destroy hook (run as
 * the walk lets go of it) closes the next one to be asked: the walk must
 * not go on to a dispatcher freed under it. */
static asyncore_dispatcher *rw_first, *rw_second;
static int rw_destroyed, rw_armed;

static int rw_readable(asyncore_dispatcher *d)
{
    if (d == rw_first && rw_armed)
        ck_assert_int_eq(asyncore_close(d), 0);
    return 0;
}

static int rw_writable(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static void rw_destroy(asyncore_dispatcher *d)
{
    rw_destroyed++;
    if (d == rw_first)
        ck_assert_int_eq(asyncore_close(rw_second), 0);
}

static const asyncore_handlers rw_h = {
    .readable = rw_readable,
    .writable = rw_writable,
    .destroy = rw_destroy,
};

START_TEST(a_destroy_hook_that_closes_the_next_dispatcher_on_loop_entry_is_safe)
{
    rw_destroyed = rw_armed = 0;
    rw_first = asyncore_dispatcher_new(th_map, &rw_h, NULL);
    rw_second = asyncore_dispatcher_new(th_map, &rw_h, NULL);
    ck_assert_ptr_nonnull(rw_first);
    ck_assert_ptr_nonnull(rw_second);
    ck_assert_int_eq(asyncore_create_socket(rw_first, AF_INET, SOCK_DGRAM), 0);
    ck_assert_int_eq(asyncore_create_socket(rw_second, AF_INET, SOCK_DGRAM), 0);
    rw_armed = 1;
    ck_assert_int_eq(asyncore_loop(th_map, 0, 1), 0);
    ck_assert_int_eq(rw_destroyed, 2);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

START_TEST(free_hooks_that_discard_during_map_free_are_safe)
{
    stream_setup(DISCARD);
    queue_chunks(5);
    asyncore_dispatcher_hold(sm.d);
    ck_assert_int_eq(asyncore_map_free(th_map), 0);
    th_map = asyncore_map_new(NULL); /* for th_teardown */
    ck_assert_int_eq(sm.freed[0], 0);
    asyncore_dispatcher_release(sm.d); /* the destroy drops the queue */
    assert_each_freed_once(5);
    ck_assert_int_eq(sm.errors, 0);
}
END_TEST

/* ---- 3. a timer callback that frees its map ---------------------------- */

struct freer {
    asyncore_map *map;
    int rc, err, calls, freed;
};

static void free_map_cb(asyncore_timer *t, void *arg)
{
    struct freer *f = arg;

    (void)t;
    f->calls++;
    errno = 0;
    f->rc = asyncore_map_free(f->map);
    f->err = errno;
}

static void free_map_in_free_hook(void *arg)
{
    struct freer *f = arg;

    f->freed++;
    errno = 0;
    f->rc = asyncore_map_free(f->map);
    f->err = errno;
}

static void count_call(asyncore_timer *t, void *arg)
{
    (void)t;
    ((struct freer *)arg)->calls++;
}

START_TEST(map_free_in_a_timer_callback_of_a_caller_run_base_is_ebusy)
{
    static struct freer f;
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_timer *t;

    memset(&f, 0, sizeof(f));
    ck_assert_ptr_nonnull(map);
    f.map = map;
    ck_assert_ptr_nonnull(asyncore_call_later(map, 0, free_map_cb, &f));
    /* timer.h: to wait for timers alone, run the base yourself. */
    ck_assert_int_ge(event_base_loop(asyncore_map_base(map), 0), 0);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_int_eq(f.rc, -1);
    ck_assert_int_eq(f.err, EBUSY);
    /* Its free hook, which runs as the one-shot is released, too. */
    memset(&f, 0, sizeof(f));
    f.map = map;
    f.rc = 1;
    t = asyncore_call_later(map, 0, count_call, &f);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(asyncore_timer_set_free(t, free_map_in_free_hook), 0);
    ck_assert_int_ge(event_base_loop(asyncore_map_base(map), 0), 0);
    ck_assert_int_eq(f.calls, 1);
    ck_assert_int_eq(f.freed, 1);
    ck_assert_int_eq(f.rc, -1);
    ck_assert_int_eq(f.err, EBUSY);
    /* Outside, it frees. */
    ck_assert_int_eq(asyncore_map_free(map), 0);
}
END_TEST

/* The same from a dispatcher's hook, and from its destroy hook run by the
 * dispatch's release, on a base the program runs itself. */
static struct freer hook_f;

static void free_map_in_read(asyncore_dispatcher *d)
{
    char buf[8];

    hook_f.calls++;
    (void)asyncore_recv(d, buf, sizeof(buf));
    errno = 0;
    hook_f.rc = asyncore_map_free(hook_f.map);
    hook_f.err = errno;
    asyncore_close(d);
}

static void free_map_in_destroy(asyncore_dispatcher *d)
{
    (void)d;
    hook_f.freed++;
    if (asyncore_map_free(hook_f.map) == 0 || errno != EBUSY)
        hook_f.rc = 0;
}

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static const asyncore_handlers map_freer_quiet_h = {
    .handle_read = free_map_in_read,
    .destroy = free_map_in_destroy,
    .writable = never,
};

START_TEST(map_free_in_a_hook_of_a_caller_run_base_is_ebusy)
{
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_dispatcher *d;
    int fds[2];

    ck_assert_ptr_nonnull(map);
    memset(&hook_f, 0, sizeof(hook_f));
    hook_f.map = map;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    d = asyncore_dispatcher_new(map, &map_freer_quiet_h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fds[0]), 0);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    /* The hook closes d: then nothing is left and the loop returns. */
    ck_assert_int_ge(event_base_loop(asyncore_map_base(map), 0), 0);
    ck_assert_int_eq(hook_f.calls, 1);
    ck_assert_int_eq(hook_f.rc, -1);
    ck_assert_int_eq(hook_f.err, EBUSY);
    ck_assert_int_eq(hook_f.freed, 1); /* and refused there too */
    ck_assert_int_eq(hook_f.rc, -1);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    close(fds[1]);
}
END_TEST

/* ---- 5. call_soon queued while the map is freed ------------------------- */

static int soon_runs;

static void soon_cb(asyncore_map *map, void *arg)
{
    (void)map;
    (void)arg;
    soon_runs++;
}

static void destroy_queues(asyncore_dispatcher *d)
{
    asyncore_map *map = asyncore_dispatcher_map(d);

    ck_assert_ptr_nonnull(map);
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(map, soon_cb, NULL), 0);
}

static const asyncore_handlers queue_in_destroy_h = {
    .destroy = destroy_queues,
};

static void nothing_cb(asyncore_timer *t, void *arg)
{
    (void)t;
    (*(int *)arg)++;
}

static asyncore_map *free_hook_map;

static void timer_free_queues(void *arg)
{
    (void)arg;
    ck_assert_int_eq(
        asyncore_map_call_soon_threadsafe(free_hook_map, soon_cb, NULL), 0);
}

START_TEST(call_soon_from_a_destroy_hook_run_by_map_free_runs_once)
{
    asyncore_map *map = asyncore_map_new(NULL);

    ck_assert_ptr_nonnull(map);
    soon_runs = 0;
    ck_assert_ptr_nonnull(asyncore_dispatcher_new(map, &queue_in_destroy_h, NULL));
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(soon_runs, 1);
}
END_TEST

START_TEST(call_soon_from_a_timer_free_hook_run_by_map_free_runs_once)
{
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_timer *t;
    int calls = 0;

    ck_assert_ptr_nonnull(map);
    soon_runs = 0;
    free_hook_map = map;
    t = asyncore_call_later(map, 60, nothing_cb, &calls);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(asyncore_timer_set_free(t, timer_free_queues), 0);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(soon_runs, 1);
    ck_assert_int_eq(calls, 0);
}
END_TEST

/* ---- 6. a held dispatcher outlives its map ------------------------------ */

static int chat_destroyed;

static void chat_destroy_count(asyncore_dispatcher *d)
{
    (void)d;
    chat_destroyed++;
}

static const asyncore_chat_handlers held_chat_h = {
    .dispatcher = { .destroy = chat_destroy_count },
    .collect_incoming_data = ignore_data,
    .found_terminator = ignore_terminator,
};

START_TEST(a_held_dispatcher_whose_map_was_freed_fails_cleanly)
{
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_dispatcher *d, *c;
    char buf[64];

    ck_assert_ptr_nonnull(map);
    th_log_capture(map);
    destroyed = chat_destroyed = 0;
    d = asyncore_dispatcher_new(map, &closing_h, NULL);
    c = asyncore_chat_new(map, &held_chat_h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_dispatcher_hold(c), 0);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(destroyed + chat_destroyed, 0);
    /* The map is gone: the dispatcher logs to stderr (the map's log
     * function went with it), and says so. */
    asyncore_log_info(d, ASYNCORE_LOG_ERROR,
                      "expected: a log line of a dispatcher without a map");
    ck_assert_int_eq(th_log_count("without a map"), 0);
    ck_assert_ptr_null(asyncore_dispatcher_map(d));
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_ge(asyncore_dispatcher_repr(d, buf, sizeof(buf)), 0);
    /* Methods fail with EBADF, hooks called by hand do nothing. */
    errno = 0;
    ck_assert_int_eq(asyncore_send(d, "x", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_update_interest(d), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_close(d), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 1.0), -1);
    ck_assert_int_eq(errno, EBADF);
    asyncore_handle_error(d, EIO, "test");
    asyncore_handle_close(d);
    errno = 0;
    ck_assert_int_eq(asyncore_chat_push(c, "x", 1), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(asyncore_chat_discard_buffers(c), 0);
    asyncore_log_info(c, ASYNCORE_LOG_INFO,
                      "expected: an info line of a channel without a map");
    asyncore_dispatcher_release(d);
    asyncore_dispatcher_release(c);
    ck_assert_int_eq(destroyed, 1);
    ck_assert_int_eq(chat_destroyed, 1);
}
END_TEST

/* ---- 7. SIGPIPE from a file dispatcher ---------------------------------- */

static int closes;

static void count_close(asyncore_dispatcher *d)
{
    closes++;
    asyncore_close(d);
}

static const asyncore_handlers file_h = {
    .handle_close = count_close,
};

/*
 * In a child: SIGPIPE at its default (kill), a file dispatcher over a pipe
 * (@kind 0) or a socket (1) whose reader is gone, one send.  Exit status 0
 * if the send reported the lost peer and the disposition is unchanged; a
 * SIGPIPE kills the child instead.
 */
static void sigpipe_child(int kind)
{
    struct sigaction before, after;
    asyncore_map *map;
    asyncore_dispatcher *d;
    int fds[2];
    ssize_t n;

    signal(SIGPIPE, SIG_DFL);
    sigaction(SIGPIPE, NULL, &before);
    if ((kind == 0 ? pipe(fds) : socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) < 0)
        _exit(10);
    if (kind == 0) { /* the write end is fds[1] */
        int t = fds[0];
        fds[0] = fds[1];
        fds[1] = t;
    }
    close(fds[1]); /* the reader */
    map = asyncore_map_new(NULL);
    d = asyncore_file_dispatcher_new(map, &file_h, NULL, fds[0]);
    if (d == NULL)
        _exit(11);
    close(fds[0]); /* the dispatcher works on its own copy */
    asyncore_dispatcher_hold(d); /* to read last_error after the close */
    n = asyncore_send(d, "x", 1);
    sigaction(SIGPIPE, NULL, &after);
    if (n != 0 || closes != 1 || asyncore_dispatcher_last_error(d) != EPIPE)
        _exit(12);
    if (after.sa_handler != before.sa_handler)
        _exit(13);
    asyncore_dispatcher_release(d);
    asyncore_map_free(map);
    _exit(0);
}

START_TEST(send_on_a_file_dispatcher_whose_reader_is_gone_raises_no_sigpipe)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        sigpipe_child(_i);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(!WIFSIGNALED(status), "killed by signal %d",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* A SIGPIPE the program had pending (blocked) before the send is its own:
 * the send must leave it pending. */
START_TEST(a_sigpipe_pending_before_the_send_stays_pending)
{
    sigset_t set, old, pending;
    asyncore_dispatcher *d;
    int fds[2];

    closes = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    ck_assert_int_eq(raise(SIGPIPE), 0);
    ck_assert_int_eq(pipe(fds), 0);
    close(fds[0]);
    d = asyncore_file_dispatcher_new(th_map, &file_h, NULL, fds[1]);
    ck_assert_ptr_nonnull(d);
    close(fds[1]);
    ck_assert_int_eq(asyncore_send(d, "x", 1), 0);
    ck_assert_int_eq(closes, 1);
    ck_assert_int_eq(sigpending(&pending), 0);
    ck_assert(sigismember(&pending, SIGPIPE));
    {
        static const struct timespec zero = { 0, 0 };
        ck_assert_int_eq(sigtimedwait(&set, NULL, &zero), SIGPIPE);
    }
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}
END_TEST

static Suite *reentry_suite(void)
{
    Suite *s = suite_create("lifetime_reentry");
    TCase *tc = tcase_create("reentry");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, send_from_main_whose_error_closes_returns_the_errno);
    tcase_add_test(tc, initiate_send_from_main_whose_error_closes_returns_the_errno);
    tcase_add_test(tc, recv_from_main_whose_error_closes_returns_the_errno);
    tcase_add_test(tc, a_free_hook_that_pushes_the_next_chunk_streams_every_byte);
    tcase_add_test(tc, free_hooks_that_push_and_discard_during_discard_buffers_are_safe);
    tcase_add_test(tc, free_hooks_that_push_and_discard_during_close_are_safe);
    tcase_add_test(tc, a_producer_free_hook_that_closes_during_discard_buffers_is_safe);
    tcase_add_test(tc, a_destroy_hook_that_closes_the_next_dispatcher_on_loop_entry_is_safe);
    tcase_add_test(tc, free_hooks_that_discard_during_map_free_are_safe);
    tcase_add_test(tc, map_free_in_a_timer_callback_of_a_caller_run_base_is_ebusy);
    tcase_add_test(tc, map_free_in_a_hook_of_a_caller_run_base_is_ebusy);
    tcase_add_test(tc, call_soon_from_a_destroy_hook_run_by_map_free_runs_once);
    tcase_add_test(tc, call_soon_from_a_timer_free_hook_run_by_map_free_runs_once);
    tcase_add_test(tc, a_held_dispatcher_whose_map_was_freed_fails_cleanly);
    tcase_add_loop_test(tc, send_on_a_file_dispatcher_whose_reader_is_gone_raises_no_sigpipe,
                        0, 2);
    tcase_add_test(tc, a_sigpipe_pending_before_the_send_stays_pending);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(reentry_suite());
}
