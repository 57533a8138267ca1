/*
 * test_loop.c -- asyncore_loop(): when it returns, how many iterations it
 * runs, how long it waits, stopping, re-entry, the caller's own events on
 * the shared base, the default map and re-evaluation of predicates.
 */
#define _GNU_SOURCE /* pipe2 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

/* Per-test state reachable from hooks through the user pointer. */
struct counter {
    int writes;
    int reads;
    int limit;          /* close (or stop) after this many writes */
    int inner_rc;       /* what a nested call returned */
    int inner_errno;
    asyncore_map *other; /* a second map, for nested loops */
};

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

/* A dispatcher over one end of a socketpair: connected at once, always
 * writable, and quiet unless the test writes to the peer.  The peer is
 * returned to the test, which closes it. */
static asyncore_dispatcher *pair_dispatcher(asyncore_map *map,
                                            const asyncore_handlers *h,
                                            void *user, int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(map, h, user);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    *peer = sv[1];
    return d;
}

/* ---- the loop runs until the map is empty -------------------------------- */

static void write_then_close_at_limit(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    if (++c->writes == c->limit)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers closing_writer = {
    .handle_write = write_then_close_at_limit,
    .readable = never,
};

START_TEST(loop_runs_until_the_map_is_empty)
{
    struct counter c = { .limit = 3 };
    int peer;

    pair_dispatcher(th_map, &closing_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 3);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(peer);
}
END_TEST

/* ---- count ----------------------------------------------------------------- */

static void count_write(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);
    c->writes++;
}

static const asyncore_handlers counting_writer = {
    .handle_write = count_write,
    .readable = never,
};

START_TEST(loop_with_a_count_runs_exactly_that_many_iterations)
{
    struct counter c = { 0 };
    int peer;

    pair_dispatcher(th_map, &counting_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 5), 0);
    ck_assert_int_eq(c.writes, 5);
    ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(c.writes, 6);
    close(peer);
}
END_TEST

START_TEST(loop_with_a_count_of_zero_runs_nothing)
{
    struct counter c = { 0 };
    int peer;

    pair_dispatcher(th_map, &counting_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 0), 0);
    ck_assert_int_eq(c.writes, 0);
    close(peer);
}
END_TEST

/* ---- timeout --------------------------------------------------------------- */

static void count_read(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);
    char buf[64];

    c->reads++;
    (void)asyncore_recv(d, buf, sizeof(buf));
}

/* Readable, but the peer never writes: nothing is ever ready. */
static const asyncore_handlers waiting_reader = {
    .handle_read = count_read,
    .writable = never,
};

START_TEST(one_iteration_waits_for_the_timeout_when_nothing_is_ready)
{
    struct counter c = { 0 };
    double t0, elapsed;
    int peer;

    pair_dispatcher(th_map, &waiting_reader, &c, &peer);
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 0.2, 1), 0);
    elapsed = th_now() - t0;
    ck_assert_double_ge(elapsed, 0.15);
    ck_assert_double_lt(elapsed, 3.0);
    ck_assert_int_eq(c.reads, 0);
    close(peer);
}
END_TEST

START_TEST(a_timeout_of_zero_only_polls)
{
    struct counter c = { 0 };
    double t0;
    int peer;

    pair_dispatcher(th_map, &waiting_reader, &c, &peer);
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 0.0, 3), 0);
    /* Loose bound: it must not wait like the 0.2 s iteration above. */
    ck_assert_double_lt(th_now() - t0, 1.0);
    ck_assert_int_eq(c.reads, 0);

    /* Polling still dispatches what is ready. */
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert_int_eq(asyncore_loop(th_map, 0.0, 1), 0);
    ck_assert_int_eq(c.reads, 1);
    close(peer);
}
END_TEST

/* ---- one iteration is one pass ----------------------------------------- */

/* A dispatcher with asyncore's default writable() on a connected socket is
 * ready again at once after every handle_write: one asyncore_poll(map, 0)
 * must still be one pass (asyncore.poll(0.0) calls handle_write once). */
static const asyncore_handlers default_writer = {
    .handle_write = count_write,
    .readable = never,
};

START_TEST(a_poll_of_zero_is_one_pass_even_when_always_ready)
{
    struct counter c = { 0 };
    int peer, i;

    pair_dispatcher(th_map, &default_writer, &c, &peer);
    for (i = 1; i <= 3; i++) {
        ck_assert_int_eq(asyncore_poll(th_map, 0), 0);
        ck_assert_int_eq(c.writes, i);
    }
    ck_assert_int_eq(asyncore_loop(th_map, 0, 4), 0);
    ck_assert_int_eq(c.writes, 7);
    close(peer);
}
END_TEST

/* A temporary regular file, opened read-write and already unlinked. */
static int temp_file(void)
{
    char path[] = "/tmp/asyncore-loop-XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    return fd;
}

/* A regular file cannot be polled and is always ready: an iteration with a
 * timeout must still end after its one pass, and count counts passes. */
START_TEST(a_loop_with_a_regular_file_counts_passes_on_every_timeout)
{
    static const double timeouts[] = { 0.01, 0.0, -1.0 };
    struct counter c = { 0 };
    asyncore_dispatcher *d;
    size_t i;
    int fd = temp_file();

    d = asyncore_file_dispatcher_new(th_map, &default_writer, &c, fd);
    ck_assert_ptr_nonnull(d);
    close(fd);
    for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        c.writes = 0;
        ck_assert_int_eq(asyncore_loop(th_map, timeouts[i], 5), 0);
        ck_assert_int_eq(c.writes, 5);
        ck_assert_int_eq(asyncore_poll(th_map, timeouts[i]), 0);
        ck_assert_int_eq(c.writes, 6);
    }
}
END_TEST

/* The same with a socket that is always ready beside the file. */
START_TEST(a_loop_with_a_file_and_a_socket_counts_passes)
{
    struct counter cf = { 0 }, cs = { 0 };
    int peer, fd = temp_file();

    ck_assert_ptr_nonnull(asyncore_file_dispatcher_new(th_map, &default_writer,
                                                       &cf, fd));
    close(fd);
    pair_dispatcher(th_map, &default_writer, &cs, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 5), 0);
    ck_assert_int_eq(cf.writes, 5);
    ck_assert_int_eq(cs.writes, 5);
    ck_assert_int_eq(asyncore_loop(th_map, 0, 3), 0);
    ck_assert_int_eq(cf.writes, 8);
    ck_assert_int_eq(cs.writes, 8);
    close(peer);
}
END_TEST

/* ---- a loop that could never wake fails instead of hanging ---------------- */

static const asyncore_handlers idle_handlers = {
    .readable = never,
    .writable = never,
};

START_TEST(negative_timeout_with_nothing_armed_fails_with_edeadlk)
{
    int peer1, peer2;

    pair_dispatcher(th_map, &idle_handlers, NULL, &peer1);
    pair_dispatcher(th_map, &idle_handlers, NULL, &peer2);
    errno = 0;
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), -1);
    ck_assert_int_eq(errno, EDEADLK);
    /* Nothing was lost: both dispatchers are still there. */
    ck_assert_uint_eq(asyncore_map_count(th_map), 2);
    close(peer1);
    close(peer2);
}
END_TEST

/* ---- asyncore_loop_stop ----------------------------------------------------- */

static void stop_at_limit(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    if (++c->writes == c->limit)
        ck_assert_int_eq(asyncore_loop_stop(asyncore_dispatcher_map(d)), 0);
}

static const asyncore_handlers stopping_writer = {
    .handle_write = stop_at_limit,
    .readable = never,
};

START_TEST(loop_stop_from_a_hook_returns_and_the_loop_can_run_again)
{
    struct counter c = { .limit = 2 };
    int peer;

    pair_dispatcher(th_map, &stopping_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 2);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);

    /* The stop request was consumed: the next loop runs its full count. */
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    ck_assert_int_eq(c.writes, 5);
    close(peer);
}
END_TEST

START_TEST(loop_stop_returns_after_the_running_callback)
{
    struct counter c = { .limit = 1 };
    int peer1, peer2;

    /* Both are writable in the same iteration; the first one to run stops
     * the loop, so the other is not dispatched in that call. */
    pair_dispatcher(th_map, &stopping_writer, &c, &peer1);
    pair_dispatcher(th_map, &stopping_writer, &c, &peer2);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 1);
    close(peer1);
    close(peer2);
}
END_TEST

START_TEST(loop_stop_outside_a_loop_does_not_affect_the_next_loop)
{
    struct counter c = { 0 };
    int peer;

    pair_dispatcher(th_map, &counting_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop_stop(th_map), 0);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    ck_assert_int_eq(c.writes, 3);
    close(peer);
}
END_TEST

/* ---- re-entry ----------------------------------------------------------------- */

static void reenter_same_map(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    c->writes++;
    errno = 0;
    c->inner_rc = asyncore_loop(asyncore_dispatcher_map(d), 0.0, 1);
    c->inner_errno = errno;
}

static const asyncore_handlers reentering_writer = {
    .handle_write = reenter_same_map,
    .readable = never,
};

START_TEST(reentering_the_same_map_from_a_hook_fails_with_ebusy)
{
    struct counter c = { 0 };
    int peer;

    pair_dispatcher(th_map, &reentering_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    /* The outer loop went on normally after each refused re-entry. */
    ck_assert_int_eq(c.writes, 3);
    ck_assert_int_eq(c.inner_rc, -1);
    ck_assert_int_eq(c.inner_errno, EBUSY);
    close(peer);
}
END_TEST

static void loop_other_map(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    c->writes++;
    c->inner_rc = asyncore_loop(c->other, 0.01, 2);
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers nesting_writer = {
    .handle_write = loop_other_map,
    .readable = never,
};

START_TEST(a_loop_on_another_map_from_a_hook_works)
{
    struct counter outer = { 0 }, inner = { 0 };
    asyncore_map *other = asyncore_map_new(NULL);
    int peer1, peer2;

    ck_assert_ptr_nonnull(other);
    outer.other = other;
    pair_dispatcher(th_map, &nesting_writer, &outer, &peer1);
    pair_dispatcher(other, &counting_writer, &inner, &peer2);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(outer.writes, 1);
    ck_assert_int_eq(outer.inner_rc, 0);
    ck_assert_int_eq(inner.writes, 2);
    ck_assert_int_eq(asyncore_map_free(other), 0);
    close(peer1);
    close(peer2);
}
END_TEST

/* ---- the caller's own events on the shared base -------------------------------- */

static void caller_cb(evutil_socket_t fd, short what, void *arg)
{
    int *calls = arg;
    char b;

    if (what & EV_READ)
        ck_assert_int_eq(read(fd, &b, 1), 1);
    (*calls)++;
}

START_TEST(the_callers_own_events_are_dispatched_by_the_loop)
{
    struct event_base *base = asyncore_map_base(th_map);
    struct event *rev, *tev;
    struct timeval tv = { 0, 20000 };
    int pipefd[2], rcalls = 0, tcalls = 0, peer;

    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
    rev = event_new(base, pipefd[0], EV_READ, caller_cb, &rcalls);
    tev = evtimer_new(base, caller_cb, &tcalls);
    ck_assert_ptr_nonnull(rev);
    ck_assert_ptr_nonnull(tev);
    /* The loop runs while the map has a dispatcher; this one wants nothing,
     * so only the caller's events can wake it. */
    pair_dispatcher(th_map, &idle_handlers, NULL, &peer);

    ck_assert_int_eq(event_add(rev, NULL), 0);
    ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
    /* The caller's event counts as armed: no EDEADLK with no timeout. */
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, 1), 0);
    ck_assert_int_eq(rcalls, 1);

    ck_assert_int_eq(evtimer_add(tev, &tv), 0);
    ck_assert_int_eq(asyncore_loop(th_map, 5.0, 1), 0);
    ck_assert_int_eq(tcalls, 1);
    ck_assert_int_eq(rcalls, 1);

    event_free(rev);
    event_free(tev);
    close(pipefd[0]);
    close(pipefd[1]);
    close(peer);
}
END_TEST

/* ---- many iterations in one event_base_loop: the per-iteration checks ---- */

/* Writes until c->limit, then wants nothing more. */
static void write_until_limit(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    c->writes++;
}

static int writable_until_limit(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    return c->writes < c->limit;
}

static const asyncore_handlers limited_writer = {
    .handle_write = write_until_limit,
    .readable = never,
    .writable = writable_until_limit,
};

START_TEST(forever_loop_fails_with_edeadlk_once_a_hook_disarms_the_last_dispatcher)
{
    struct counter c = { .limit = 3 };
    int peer;

    pair_dispatcher(th_map, &limited_writer, &c, &peer);
    errno = 0;
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), -1);
    ck_assert_int_eq(errno, EDEADLK);
    ck_assert_int_eq(c.writes, 3);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(peer);
}
END_TEST

static int asked;

static int count_asks(asyncore_dispatcher *d)
{
    (void)d;
    asked++;
    return 0;
}

static const asyncore_handlers asked_idle = {
    .readable = count_asks,
    .writable = never,
};

/* Turns re-evaluation on at the 2nd write, closes everything at the 5th. */
static void reevaluate_from_a_hook(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);
    asyncore_map *map = asyncore_dispatcher_map(d);

    c->writes++;
    if (c->writes == 2)
        ck_assert_int_eq(asyncore_map_set_reevaluate(map, 1), 0);
    if (c->writes == 5)
        ck_assert_int_eq(asyncore_close_all(map), 0);
}

static const asyncore_handlers reevaluating_writer = {
    .handle_write = reevaluate_from_a_hook,
    .readable = never,
};

START_TEST(forever_loop_reevaluates_every_iteration_once_a_hook_turns_it_on)
{
    struct counter c = { 0 };
    int peer1, peer2, before;

    pair_dispatcher(th_map, &reevaluating_writer, &c, &peer1);
    pair_dispatcher(th_map, &asked_idle, NULL, &peer2);
    before = asked;
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 5);
    /* Once at loop entry; then one iteration per write, and from the 3rd
     * on each asks every one. */
    ck_assert_int_eq(asked - before, 4);
    close(peer1);
    close(peer2);
}
END_TEST

static void activate_then_close(asyncore_dispatcher *d)
{
    struct event *ev = asyncore_dispatcher_user_data(d);

    event_active(ev, EV_TIMEOUT, 1);
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers activating_closer = {
    .handle_write = activate_then_close,
    .readable = never,
};

START_TEST(callbacks_of_the_batch_still_run_when_a_hook_empties_the_map)
{
    struct event_base *base = asyncore_map_base(th_map);
    struct event *ev;
    int calls = 0, peer;

    ev = event_new(base, -1, 0, caller_cb, &calls);
    ck_assert_ptr_nonnull(ev);
    pair_dispatcher(th_map, &activating_closer, ev, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), 0);
    /* As in one EVLOOP_ONCE: the event the hook activated ran before the
     * loop saw the empty map and returned. */
    ck_assert_int_eq(calls, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    event_free(ev);
    close(peer);
}
END_TEST

/* Gives the writer three more writes, then closes it at the sixth. */
static asyncore_dispatcher *revived;

static void revive_writer(asyncore_timer *t, void *arg)
{
    struct counter *c = arg;

    (void)t;
    c->limit = 6;
    ck_assert_int_eq(asyncore_update_interest(revived), 0);
}

static void write_until_limit_then_close_at_six(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);

    if (++c->writes == 6)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers revivable_writer = {
    .handle_write = write_until_limit_then_close_at_six,
    .readable = never,
    .writable = writable_until_limit,
};

/* With a timeout the loop runs on through iterations that time out when a
 * hook drops the last interest (no EDEADLK), picks up the interest a timer
 * gives back, and returns once the map is empty. */
START_TEST(forever_loop_with_a_timeout_waits_out_a_pause_in_interest)
{
    struct counter c = { .limit = 3 };
    int peer;

    revived = pair_dispatcher(th_map, &revivable_writer, &c, &peer);
    ck_assert_ptr_nonnull(asyncore_call_later(th_map, 0.2, revive_writer, &c));
    ck_assert_int_eq(asyncore_loop(th_map, 0.05, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 6);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(peer);
}
END_TEST

/* ---- the default map ------------------------------------------------------------ */

START_TEST(the_default_map_serves_null_maps)
{
    struct counter c = { .limit = 3 };
    asyncore_dispatcher *d;
    int peer;

    d = pair_dispatcher(NULL, &closing_writer, &c, &peer);
    ck_assert_ptr_eq(asyncore_dispatcher_map(d), asyncore_map_default());
    ck_assert_uint_eq(asyncore_map_count(NULL), 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_int_eq(asyncore_loop(NULL, 1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.writes, 3);
    ck_assert_uint_eq(asyncore_map_count(NULL), 0);
    close(peer);
}
END_TEST

/* ---- asyncore_map_set_reevaluate -------------------------------------------------- */

static int outside_flag;

static int writable_if_flag(asyncore_dispatcher *d)
{
    (void)d;
    return outside_flag;
}

static const asyncore_handlers flag_writer = {
    .handle_write = count_write,
    .readable = never,
    .writable = writable_if_flag,
};

START_TEST(reevaluate_on_honours_outside_state_at_the_next_iteration)
{
    struct counter c = { 0 };
    int peer;

    outside_flag = 0;
    ck_assert_int_eq(asyncore_map_set_reevaluate(th_map, 1), 0);
    pair_dispatcher(th_map, &flag_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 2), 0);
    ck_assert_int_eq(c.writes, 0);

    outside_flag = 1;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 1), 0);
    ck_assert_int_eq(c.writes, 1);

    outside_flag = 0;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 2), 0);
    ck_assert_int_eq(c.writes, 1);
    close(peer);
}
END_TEST

/* Without re-evaluation mode, state changed outside any hook is seen when
 * the next asyncore_loop()/asyncore_poll() is entered (asyncore asked the
 * predicates before every select()), and within a call after a dispatch of
 * the dispatcher or asyncore_update_interest(). */
START_TEST(reevaluate_off_honours_outside_state_at_the_next_loop_call)
{
    struct counter c = { 0 };
    asyncore_dispatcher *d;
    int peer;

    outside_flag = 0;
    d = pair_dispatcher(th_map, &flag_writer, &c, &peer);
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 2), 0);
    ck_assert_int_eq(c.writes, 0);

    /* Nobody told the map: the next call asks anyway. */
    outside_flag = 1;
    ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(c.writes, 1);
    /* After its own dispatch the predicate is asked again. */
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 2), 0);
    ck_assert_int_eq(c.writes, 3);

    outside_flag = 0;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 2), 0);
    ck_assert_int_eq(c.writes, 3);

    /* asyncore_update_interest() still works between calls too. */
    outside_flag = 1;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert_int_eq(asyncore_poll(th_map, 0), 0);
    ck_assert_int_eq(c.writes, 4);
    outside_flag = 0;
    close(peer);
}
END_TEST

/* A loop with no limit enters once: the predicates are asked at entry,
 * not before every iteration (that is re-evaluation mode's cost). */
static int entry_asks;

static int writable_counting(asyncore_dispatcher *d)
{
    (void)d;
    entry_asks++;
    return 0;
}

static void read_then_close(asyncore_dispatcher *d)
{
    struct counter *c = asyncore_dispatcher_user_data(d);
    char buf[16];

    if (asyncore_recv(d, buf, sizeof(buf)) > 0 && ++c->reads == c->limit)
        asyncore_close(d);
}

static const asyncore_handlers entry_reader = {
    .handle_read = read_then_close,
    .writable = writable_counting,
};

START_TEST(predicates_are_asked_once_at_loop_entry_not_per_iteration)
{
    struct counter c = { .limit = 1 };
    int peer;

    pair_dispatcher(th_map, &entry_reader, &c, &peer);
    entry_asks = 0;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    /* Once at entry; nothing was dispatched. */
    ck_assert_int_eq(entry_asks, 1);
    ck_assert_int_eq(asyncore_loop(th_map, 0, 0), 0);
    ck_assert_int_eq(entry_asks, 1); /* a count of 0 runs nothing, asks nothing */
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(c.reads, 1);
    close(peer);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, loop_runs_until_the_map_is_empty);
    tcase_add_test(tc, loop_with_a_count_runs_exactly_that_many_iterations);
    tcase_add_test(tc, loop_with_a_count_of_zero_runs_nothing);
    tcase_add_test(tc, one_iteration_waits_for_the_timeout_when_nothing_is_ready);
    tcase_add_test(tc, a_timeout_of_zero_only_polls);
    tcase_add_test(tc, a_poll_of_zero_is_one_pass_even_when_always_ready);
    tcase_add_test(tc, a_loop_with_a_regular_file_counts_passes_on_every_timeout);
    tcase_add_test(tc, a_loop_with_a_file_and_a_socket_counts_passes);
    tcase_add_test(tc, negative_timeout_with_nothing_armed_fails_with_edeadlk);
    tcase_add_test(tc, loop_stop_from_a_hook_returns_and_the_loop_can_run_again);
    tcase_add_test(tc, loop_stop_returns_after_the_running_callback);
    tcase_add_test(tc, loop_stop_outside_a_loop_does_not_affect_the_next_loop);
    tcase_add_test(tc, reentering_the_same_map_from_a_hook_fails_with_ebusy);
    tcase_add_test(tc, a_loop_on_another_map_from_a_hook_works);
    tcase_add_test(tc, the_callers_own_events_are_dispatched_by_the_loop);
    tcase_add_test(tc, forever_loop_fails_with_edeadlk_once_a_hook_disarms_the_last_dispatcher);
    tcase_add_test(tc, forever_loop_reevaluates_every_iteration_once_a_hook_turns_it_on);
    tcase_add_test(tc, callbacks_of_the_batch_still_run_when_a_hook_empties_the_map);
    tcase_add_test(tc, forever_loop_with_a_timeout_waits_out_a_pause_in_interest);
    tcase_add_test(tc, the_default_map_serves_null_maps);
    tcase_add_test(tc, reevaluate_on_honours_outside_state_at_the_next_iteration);
    tcase_add_test(tc, reevaluate_off_honours_outside_state_at_the_next_loop_call);
    tcase_add_test(tc, predicates_are_asked_once_at_loop_entry_not_per_iteration);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(loop_suite());
}
