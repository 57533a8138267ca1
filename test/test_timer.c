/*
 * test_timer.c -- timers on a map (one-shot, periodic, cancel and re-arm
 * from anywhere, release of pending timers, the loop's wake-ups) and the
 * per-dispatcher connect and idle timeouts, over real sockets.
 *
 * Delays are 0.02-0.3 s.  The tests assert what happened and in which
 * order, never how fast: upper bounds on waits are deadlines of seconds.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- shared pieces --------------------------------------------------------- */

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static const asyncore_handlers quiet_handlers = {
    .readable = never,
    .writable = never,
};

/* A dispatcher that is never armed: it only keeps asyncore_loop() running
 * (the loop runs while the map has dispatchers). */
static asyncore_dispatcher *keeper(asyncore_map *map)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(map, &quiet_handlers, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    close(sv[1]);
    return d;
}

/* A dispatcher over one end of a socketpair; the other end is *@peer. */
static asyncore_dispatcher *pair_dispatcher(const asyncore_handlers *h,
                                            void *user, int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(th_map, h, user);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    *peer = sv[1];
    return d;
}

/* ---- timers ------------------------------------------------------------------ */

/* What a timer saw, reachable through its argument. */
struct tstate {
    int fired;
    int frees;
    int done;             /* a flag for th_loop_until */
    int done_at;          /* set done when fired reaches this */
    int cancel_at;        /* cancel itself on this firing */
    int rearm_until;      /* one-shot: re-arm while fired is below this */
    int cancel_rc[2];     /* what cancel, then a second cancel, returned */
    int rearm_rc, rearm_errno;
    double first_at;
    asyncore_dispatcher *close_me;
};

static void count_free(void *arg)
{
    ((struct tstate *)arg)->frees++;
}

static void count_fire(asyncore_timer *t, void *arg)
{
    struct tstate *s = arg;

    if (s->fired++ == 0)
        s->first_at = th_now();
    if (s->done_at && s->fired >= s->done_at)
        s->done = 1;
    if (s->cancel_at && s->fired == s->cancel_at) {
        s->cancel_rc[0] = asyncore_timer_cancel(t);
        s->cancel_rc[1] = asyncore_timer_cancel(t);
        errno = 0;
        s->rearm_rc = asyncore_timer_rearm(t, 0.01);
        s->rearm_errno = errno;
    }
    if (s->rearm_until && s->fired < s->rearm_until)
        ck_assert_int_eq(asyncore_timer_rearm(t, 0.02), 0);
    if (s->close_me != NULL) {
        ck_assert_int_eq(asyncore_close(s->close_me), 0);
        s->close_me = NULL;
    }
}

/* @t, with a free hook that counts its releases in its tstate. */
static asyncore_timer *counted(asyncore_timer *t)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(asyncore_timer_set_free(t, count_free), 0);
    return t;
}

START_TEST(one_shot_timer_fires_once_after_its_delay)
{
    struct tstate s = { 0 };
    double t0 = th_now();

    keeper(th_map);
    counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    th_loop_for(th_map, 0.3);
    ck_assert_int_eq(s.fired, 1);
    ck_assert_int_eq(s.frees, 1);
    /* Never early (libevent's coarse clock may lag ours by a tick). */
    ck_assert_msg(s.first_at - t0 >= 0.04, "fired after %f s", s.first_at - t0);
}
END_TEST

START_TEST(periodic_timer_fires_until_cancelled)
{
    struct tstate s = { .done_at = 5 };
    asyncore_timer *t;
    int at_cancel;

    keeper(th_map);
    t = counted(asyncore_call_every(th_map, 0.02, count_fire, &s));
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    at_cancel = s.fired;
    ck_assert_int_ge(at_cancel, 5);
    ck_assert_int_eq(s.frees, 0);
    ck_assert_int_eq(asyncore_timer_cancel(t), 0);
    ck_assert_int_eq(s.frees, 1);
    th_loop_for(th_map, 0.2);
    ck_assert_int_eq(s.fired, at_cancel);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(periodic_timer_cancelled_in_its_own_callback_never_runs_again)
{
    struct tstate s = { .cancel_at = 3, .done_at = 3 };

    keeper(th_map);
    counted(asyncore_call_every(th_map, 0.02, count_fire, &s));
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    /* Released once the callback returned, not inside it. */
    ck_assert_int_eq(s.frees, 1);
    th_loop_for(th_map, 0.2);
    ck_assert_int_eq(s.fired, 3);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_int_eq(s.cancel_rc[0], 0);
    ck_assert_int_eq(s.cancel_rc[1], 0); /* a second cancel does nothing */
    ck_assert_int_eq(s.rearm_rc, -1);
    ck_assert_int_eq(s.rearm_errno, ECANCELED);
}
END_TEST

START_TEST(one_shot_timer_cancelled_in_its_own_callback_is_released_once)
{
    struct tstate s = { .cancel_at = 1, .done_at = 1 };

    keeper(th_map);
    counted(asyncore_call_later(th_map, 0.02, count_fire, &s));
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(s.fired, 1);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(timer_cancelled_before_it_fires_never_fires)
{
    struct tstate s = { 0 };
    asyncore_timer *t;

    keeper(th_map);
    t = counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    ck_assert_int_eq(asyncore_timer_cancel(t), 0);
    ck_assert_int_eq(s.frees, 1);
    th_loop_for(th_map, 0.2);
    ck_assert_int_eq(s.fired, 0);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(one_shot_rearmed_in_its_callback_fires_again)
{
    struct tstate s = { .rearm_until = 3, .done_at = 3 };

    keeper(th_map);
    counted(asyncore_call_later(th_map, 0.02, count_fire, &s));
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(s.fired, 3);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(rearm_moves_a_pending_deadline)
{
    struct tstate s = { .done_at = 1 };
    asyncore_timer *t;

    keeper(th_map);
    t = counted(asyncore_call_later(th_map, 1000.0, count_fire, &s));
    ck_assert_int_eq(asyncore_timer_rearm(t, 0.02), 0);
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    ck_assert_int_eq(s.fired, 1);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

/* Two timers due together: whichever runs first cancels the other, which
 * then never runs even though libevent may have activated it already. */
struct pair {
    asyncore_timer *t[2];
    int fired[2];
    int frees;
    int done;
};

static void pair_free(void *arg)
{
    struct pair *p = *(struct pair **)arg;
    p->frees++;
}

static void pair_fire(asyncore_timer *t, void *arg)
{
    struct pair *p = *(struct pair **)arg;
    int me = t == p->t[1];

    p->fired[me]++;
    p->t[me] = NULL; /* released when we return */
    ck_assert_int_eq(asyncore_timer_cancel(p->t[!me]), 0);
    p->t[!me] = NULL;
    p->done = 1;
}

START_TEST(timers_due_together_can_cancel_each_other)
{
    struct pair p = { 0 };
    struct pair *pp = &p;
    int i;

    keeper(th_map);
    for (i = 0; i < 2; i++) {
        p.t[i] = asyncore_call_later(th_map, 0.05, pair_fire, &pp);
        ck_assert_ptr_nonnull(p.t[i]);
        ck_assert_int_eq(asyncore_timer_set_free(p.t[i], pair_free), 0);
    }
    ck_assert(th_loop_until(th_map, &p.done, 5.0));
    th_loop_for(th_map, 0.1);
    ck_assert_int_eq(p.fired[0] + p.fired[1], 1);
    ck_assert_int_eq(p.frees, 2);
}
END_TEST

/* Dispatcher hooks that create or cancel timers. */
struct hookstate {
    asyncore_timer *timer; /* cancelled by handle_read, if set */
    struct tstate *ts;     /* handle_read starts a timer for it, if set */
    int reads;
};

static void timer_hook_read(asyncore_dispatcher *d)
{
    struct hookstate *h = asyncore_dispatcher_user_data(d);
    char buf[16];

    if (asyncore_recv(d, buf, sizeof(buf)) <= 0)
        return;
    h->reads++;
    if (h->timer != NULL) {
        ck_assert_int_eq(asyncore_timer_cancel(h->timer), 0);
        h->timer = NULL;
    }
    if (h->ts != NULL) {
        counted(asyncore_call_later(asyncore_dispatcher_map(d), 0.02, count_fire,
                                    h->ts));
        h->ts = NULL;
    }
}

static const asyncore_handlers timer_hook_handlers = {
    .handle_read = timer_hook_read,
    .writable = never,
};

START_TEST(timer_cancelled_from_a_dispatcher_hook_never_fires)
{
    struct tstate s = { 0 };
    struct hookstate h = { 0 };
    int peer;

    pair_dispatcher(&timer_hook_handlers, &h, &peer);
    h.timer = counted(asyncore_call_later(th_map, 0.2, count_fire, &s));
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert(th_loop_until(th_map, &h.reads, 5.0));
    ck_assert_int_eq(s.frees, 1);
    th_loop_for(th_map, 0.4);
    ck_assert_int_eq(s.fired, 0);
    ck_assert_int_eq(s.frees, 1);
    close(peer);
}
END_TEST

START_TEST(timer_created_inside_a_dispatcher_hook_fires)
{
    struct tstate s = { .done_at = 1 };
    struct hookstate h = { .ts = &s };
    int peer;

    pair_dispatcher(&timer_hook_handlers, &h, &peer);
    ck_assert_int_eq(write(peer, "x", 1), 1);
    ck_assert(th_loop_until(th_map, &s.done, 5.0));
    ck_assert_int_eq(h.reads, 1);
    ck_assert_int_eq(s.fired, 1);
    ck_assert_int_eq(s.frees, 1);
    close(peer);
}
END_TEST

START_TEST(loop_with_a_long_timeout_returns_when_a_timer_empties_the_map)
{
    struct tstate s = { 0 };
    double t0;

    s.close_me = keeper(th_map);
    counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 30.0, ASYNCORE_FOREVER), 0);
    ck_assert_msg(th_now() - t0 < 10.0, "the loop slept past its timer");
    ck_assert_int_eq(s.fired, 1);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

START_TEST(one_iteration_ends_when_a_timer_fires)
{
    struct tstate s = { 0 };
    double t0;

    keeper(th_map);
    counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    t0 = th_now();
    /* count 1: the timer's wake-up is that iteration. */
    ck_assert_int_eq(asyncore_loop(th_map, 30.0, 1), 0);
    ck_assert_msg(th_now() - t0 < 10.0, "the iteration slept past its timer");
    ck_assert_int_eq(s.fired, 1);
}
END_TEST

START_TEST(loop_without_timeout_waits_for_a_pending_timer)
{
    struct tstate s = { 0 };

    /* Nothing is armed but the timer: no EDEADLK, the timer wakes it. */
    keeper(th_map);
    counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, 1), 0);
    ck_assert_int_eq(s.fired, 1);
}
END_TEST

START_TEST(timers_alone_do_not_keep_the_loop_running)
{
    struct tstate s = { 0 };
    asyncore_timer *t;

    t = counted(asyncore_call_later(th_map, 0.05, count_fire, &s));
    /* As asyncore's loop: no dispatchers, nothing to run. */
    ck_assert_int_eq(asyncore_loop(th_map, 5.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(s.fired, 0);
    ck_assert_int_eq(asyncore_timer_cancel(t), 0);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

START_TEST(map_free_releases_pending_timers)
{
    asyncore_map *m = asyncore_map_new(NULL);
    struct tstate s = { 0 };
    asyncore_timer *t;

    ck_assert_ptr_nonnull(m);
    keeper(m);
    counted(asyncore_call_later(m, 1000.0, count_fire, &s));
    counted(asyncore_call_every(m, 1000.0, count_fire, &s));
    /* Arguments owned by the timers: the sanitizers see a leak if not freed. */
    t = asyncore_call_later(m, 1000.0, count_fire, malloc(64));
    ck_assert_int_eq(asyncore_timer_set_free(t, free), 0);
    ck_assert_int_eq(asyncore_map_free(m), 0);
    ck_assert_int_eq(s.frees, 2);
    ck_assert_int_eq(s.fired, 0);
}
END_TEST

START_TEST(bad_timer_arguments_fail_with_einval)
{
    struct tstate s = { 0 };
    asyncore_timer *t;

    errno = 0;
    ck_assert_ptr_null(asyncore_call_later(th_map, 1.0, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_call_later(th_map, -1.0, count_fire, &s));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_call_later(th_map, NAN, count_fire, &s));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_call_every(th_map, 0.0, count_fire, &s));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(asyncore_call_every(th_map, -1.0, count_fire, &s));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_timer_cancel(NULL), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_timer_rearm(NULL, 1.0), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_timer_set_free(NULL, count_free), -1);
    ck_assert_int_eq(errno, EINVAL);

    t = counted(asyncore_call_every(th_map, 1.0, count_fire, &s));
    errno = 0;
    ck_assert_int_eq(asyncore_timer_rearm(t, 0.0), -1); /* would spin */
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_timer_rearm(t, -0.5), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_timer_cancel(t), 0);
    ck_assert_int_eq(s.frees, 1);
    ck_assert_int_eq(s.fired, 0);
}
END_TEST

START_TEST(timer_on_the_default_map_is_released_with_it)
{
    static struct tstate s; /* outlives the test body: teardown frees it */

    memset(&s, 0, sizeof(s));
    counted(asyncore_call_later(NULL, 1000.0, count_fire, &s));
    ck_assert_int_eq(asyncore_map_free(asyncore_map_default()), 0);
    ck_assert_int_eq(s.frees, 1);
}
END_TEST

/* ---- connect timeouts ----------------------------------------------------------- */

/*
 * A TCP listener on 127.0.0.1 that never answers a SYN: listen(fd, 0) and
 * an accept queue filled by connections nobody accepts, after which Linux
 * drops further SYNs, so a connect to it stays in progress.  The filling
 * connections are kept in @fill (closed by hole_close).
 */
struct hole {
    int listener;
    int fill[8];
    int nfill;
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Connect a non-blocking socket; 1 if it completed within 0.2 s. */
static int try_connect(struct hole *h, int *out)
{
    struct pollfd p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t elen = sizeof(err);

    ck_assert_int_ge(fd, 0);
    *out = fd;
    if (connect(fd, (struct sockaddr *)&h->ss, h->len) == 0)
        return 1;
    ck_assert_int_eq(errno, EINPROGRESS);
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, 200) != 1)
        return 0;
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
    ck_assert_int_eq(err, 0);
    return 1;
}

static void hole_open(struct hole *h)
{
    int fd;

    memset(h, 0, sizeof(*h));
    h->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(h->listener, 0);
    h->len = th_loopback(AF_INET, &h->ss);
    ck_assert_int_eq(bind(h->listener, (struct sockaddr *)&h->ss, h->len), 0);
    ck_assert_int_eq(listen(h->listener, 0), 0);
    h->len = th_sockname(h->listener, &h->ss);
    for (;;) {
        ck_assert_msg(h->nfill < 8, "the accept queue never filled");
        if (!try_connect(h, &fd))
            break;
        h->fill[h->nfill++] = fd;
    }
    close(fd); /* the probe that hung */
}

static void hole_close(struct hole *h)
{
    int i;

    for (i = 0; i < h->nfill; i++)
        close(h->fill[i]);
    close(h->listener);
}

struct crec {
    int connects, errors, err, destroys, closes;
    char op[16];
    int keep_open; /* handle_error does not close */
};

static void c_connect(asyncore_dispatcher *d)
{
    ((struct crec *)asyncore_dispatcher_user_data(d))->connects++;
}

static void c_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct crec *c = asyncore_dispatcher_user_data(d);

    c->errors++;
    c->err = err;
    snprintf(c->op, sizeof(c->op), "%s", op);
    if (!c->keep_open)
        asyncore_default_handle_error(d, err, op);
}

static void c_close(asyncore_dispatcher *d)
{
    ((struct crec *)asyncore_dispatcher_user_data(d))->closes++;
    asyncore_close(d);
}

static void c_destroy(asyncore_dispatcher *d)
{
    ((struct crec *)asyncore_dispatcher_user_data(d))->destroys++;
}

/* Write interest only to learn the connect's outcome. */
static int c_writable(asyncore_dispatcher *d)
{
    return !asyncore_dispatcher_connected(d);
}

static const asyncore_handlers connect_handlers = {
    .handle_connect = c_connect,
    .handle_error = c_error,
    .handle_close = c_close,
    .writable = c_writable,
    .destroy = c_destroy,
};

static asyncore_dispatcher *connecting(struct crec *c, struct hole *h,
                                       double timeout_before)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &connect_handlers, c);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    if (timeout_before > 0)
        ck_assert_int_eq(asyncore_set_connect_timeout(d, timeout_before), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&h->ss, h->len), 0);
    ck_assert(asyncore_dispatcher_connecting(d));
    return d;
}

START_TEST(connect_timeout_reports_etimedout_and_never_connects)
{
    struct crec c = { 0 };
    struct hole h;
    char want[64];

    th_log_capture(th_map);
    hole_open(&h);
    connecting(&c, &h, 0.1);
    ck_assert(th_loop_until(th_map, &c.errors, 10.0));
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_str_eq(c.op, "connect");
    ck_assert_int_eq(c.connects, 0);
    /* The default handle_error logged it and closed: handle_close ran. */
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.destroys, 1);
    snprintf(want, sizeof(want), "(connect: errno %d:", ETIMEDOUT);
    ck_assert_int_eq(th_log_count(want), 1);
    hole_close(&h);
}
END_TEST

START_TEST(connect_timeout_set_while_connecting_counts_from_then)
{
    struct crec c = { 0 };
    struct hole h;
    asyncore_dispatcher *d;

    hole_open(&h);
    th_log_capture(th_map);
    d = connecting(&c, &h, 0);
    ck_assert_int_eq(asyncore_set_connect_timeout(d, 0.1), 0);
    ck_assert(th_loop_until(th_map, &c.errors, 10.0));
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_int_eq(c.connects, 0);
    ck_assert_int_eq(c.destroys, 1);
    hole_close(&h);
}
END_TEST

START_TEST(connect_timeout_kept_open_by_handle_error_drops_the_attempt)
{
    struct crec c = { .keep_open = 1 };
    struct hole h;
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    int lfd, afd;

    hole_open(&h);
    d = connecting(&c, &h, 0.1);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert(th_loop_until(th_map, &c.errors, 10.0));
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), ETIMEDOUT);
    /* Still open, without the attempt's socket, and not connecting. */
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert(!asyncore_dispatcher_connecting(d));
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_int_eq(c.connects, 0);
    /* It can try again, elsewhere. */
    lfd = th_raw_listener(AF_INET, &ss, &len);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(th_loop_until(th_map, &c.connects, 5.0));
    ck_assert_int_eq(c.errors, 1);
    afd = th_raw_accept(lfd, 5.0);
    ck_assert_int_ge(afd, 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(c.destroys, 1);
    close(afd);
    close(lfd);
    hole_close(&h);
}
END_TEST

START_TEST(connect_timeout_is_cleared_when_the_connect_completes)
{
    struct crec c = { 0 };
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    int lfd, afd;

    lfd = th_raw_listener(AF_INET, &ss, &len);
    d = asyncore_dispatcher_new(th_map, &connect_handlers, &c);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_set_connect_timeout(d, 0.1), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(th_loop_until(th_map, &c.connects, 5.0));
    afd = th_raw_accept(lfd, 5.0);
    ck_assert_int_ge(afd, 0);
    th_loop_for(th_map, 0.3);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 0);
    ck_assert(asyncore_dispatcher_connected(d));
    ck_assert_int_eq(asyncore_close(d), 0); /* its hooks use our stack */
    close(afd);
    close(lfd);
}
END_TEST

/* ---- idle timeouts ------------------------------------------------------------- */

struct irec {
    int timeouts, reads, writes, destroys;
    double fired_at;
    int keep_open;      /* handle_timeout does not close */
    int off_at;         /* turn the timeout off on this timeout */
    int want_write;     /* writable() */
    int off_done;       /* off_at was reached */
};

static void i_read(asyncore_dispatcher *d)
{
    struct irec *r = asyncore_dispatcher_user_data(d);
    char buf[64];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n > 0)
        r->reads += (int)n;
}

static void i_write(asyncore_dispatcher *d)
{
    ((struct irec *)asyncore_dispatcher_user_data(d))->writes++;
}

static int i_writable(asyncore_dispatcher *d)
{
    return ((struct irec *)asyncore_dispatcher_user_data(d))->want_write;
}

static void i_timeout(asyncore_dispatcher *d)
{
    struct irec *r = asyncore_dispatcher_user_data(d);

    r->timeouts++;
    r->fired_at = th_now();
    if (r->off_at == r->timeouts) {
        ck_assert_int_eq(asyncore_set_idle_timeout(d, 0), 0);
        r->off_done = 1;
    }
    if (!r->keep_open)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static void i_destroy(asyncore_dispatcher *d)
{
    ((struct irec *)asyncore_dispatcher_user_data(d))->destroys++;
}

static const asyncore_handlers idle_handlers = {
    .handle_read = i_read,
    .handle_write = i_write,
    .handle_timeout = i_timeout,
    .writable = i_writable,
    .destroy = i_destroy,
};

START_TEST(idle_timeout_fires_after_inactivity)
{
    struct irec r = { 0 };
    asyncore_dispatcher *d;
    double t0;
    int peer;

    d = pair_dispatcher(&idle_handlers, &r, &peer);
    t0 = th_now();
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.1), 0);
    ck_assert(th_loop_until(th_map, &r.timeouts, 5.0));
    ck_assert_int_eq(r.timeouts, 1);
    ck_assert_msg(r.fired_at - t0 >= 0.09, "fired after %f s", r.fired_at - t0);
    ck_assert_int_eq(r.destroys, 1); /* closed in the hook, then freed */
    close(peer);
}
END_TEST

START_TEST(idle_timeout_does_not_fire_while_data_flows)
{
    struct irec r = { 0 };
    asyncore_dispatcher *d;
    double start, next, last_send = 0;
    int peer, sent = 0;

    d = pair_dispatcher(&idle_handlers, &r, &peer);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.3), 0);
    start = next = th_now();
    /* A byte every 0.05 s for 0.6 s: twice the timeout, never idle. */
    while (th_now() - start < 0.6) {
        if (th_now() >= next) {
            ck_assert_int_eq(send(peer, "x", 1, MSG_NOSIGNAL), 1);
            last_send = th_now();
            sent++;
            next += 0.05;
        }
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_int_eq(r.timeouts, 0);
    ck_assert_int_gt(r.reads, 5);
    /* Then silence: the timeout was armed all along and fires now. */
    ck_assert(th_loop_until(th_map, &r.timeouts, 5.0));
    ck_assert_int_eq(r.timeouts, 1);
    ck_assert_msg(r.fired_at - last_send >= 0.29, "fired %f s after the last byte",
                  r.fired_at - last_send);
    ck_assert_int_eq(r.reads, sent);
    close(peer);
}
END_TEST

START_TEST(write_dispatches_are_activity)
{
    struct irec r = { .want_write = 1 };
    asyncore_dispatcher *d;
    int peer;

    d = pair_dispatcher(&idle_handlers, &r, &peer);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.1), 0);
    th_loop_for(th_map, 0.4);
    ck_assert_int_eq(r.timeouts, 0);
    ck_assert_int_gt(r.writes, 0);
    r.want_write = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert(th_loop_until(th_map, &r.timeouts, 5.0));
    ck_assert_int_eq(r.timeouts, 1);
    close(peer);
}
END_TEST

START_TEST(handle_timeout_runs_again_after_each_idle_period)
{
    struct irec r = { .keep_open = 1, .off_at = 3 };
    asyncore_dispatcher *d;
    int peer;

    d = pair_dispatcher(&idle_handlers, &r, &peer);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.05), 0);
    ck_assert(th_loop_until(th_map, &r.off_done, 5.0));
    th_loop_for(th_map, 0.3);
    /* Turned off from inside the third: no fourth. */
    ck_assert_int_eq(r.timeouts, 3);
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_close(d), 0); /* its hooks use our stack */
    close(peer);
}
END_TEST

START_TEST(default_handle_timeout_closes_with_a_warning)
{
    static const asyncore_handlers h = {
        .writable = never,
        .destroy = i_destroy,
    };
    struct irec r = { 0 };
    asyncore_dispatcher *d;
    int peer;

    /* Warnings are ignored by default: show them to see the one we want. */
    ck_assert_int_eq(asyncore_map_set_ignore_log_types(th_map, 0), 0);
    th_log_capture(th_map);
    d = pair_dispatcher(&h, &r, &peer);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.05), 0);
    ck_assert(th_loop_until(th_map, &r.destroys, 5.0));
    ck_assert_int_eq(th_log_count("warning: idle timeout"), 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(peer);
}
END_TEST

START_TEST(close_clears_timeouts)
{
    struct crec c = { 0 };
    struct hole h;
    asyncore_dispatcher *d;

    hole_open(&h);
    keeper(th_map);
    d = connecting(&c, &h, 0.05);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.05), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(c.destroys, 1);
    th_loop_for(th_map, 0.3);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(c.connects, 0);
    hole_close(&h);
}
END_TEST

START_TEST(idle_timeout_turned_off_never_fires)
{
    struct irec r = { 0 };
    asyncore_dispatcher *d;
    int peer;

    d = pair_dispatcher(&idle_handlers, &r, &peer);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0.05), 0);
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 0), 0);
    th_loop_for(th_map, 0.3);
    ck_assert_int_eq(r.timeouts, 0);
    ck_assert_int_eq(asyncore_close(d), 0); /* its hooks use our stack */
    ck_assert_int_eq(r.destroys, 1);
    close(peer);
}
END_TEST

START_TEST(bad_timeout_arguments_fail_with_einval_or_ebadf)
{
    struct irec r = { 0 };
    asyncore_dispatcher *d;
    int peer;

    errno = 0;
    ck_assert_int_eq(asyncore_set_connect_timeout(NULL, 1.0), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_set_idle_timeout(NULL, 1.0), -1);
    ck_assert_int_eq(errno, EINVAL);
    d = pair_dispatcher(&idle_handlers, &r, &peer);
    errno = 0;
    ck_assert_int_eq(asyncore_set_connect_timeout(d, -1.0), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_set_idle_timeout(d, NAN), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_set_idle_timeout(d, 1.0), -1);
    ck_assert_int_eq(errno, EBADF);
    errno = 0;
    ck_assert_int_eq(asyncore_set_connect_timeout(d, 1.0), -1);
    ck_assert_int_eq(errno, EBADF);
    asyncore_dispatcher_release(d);
    /* The default hook ignores what it cannot act on. */
    asyncore_default_handle_timeout(NULL);
    close(peer);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *timers = tcase_create("timers");
    TCase *connect = tcase_create("connect_timeout");
    TCase *idle = tcase_create("idle_timeout");

    tcase_add_checked_fixture(timers, th_setup, th_teardown);
    tcase_set_timeout(timers, 30);
    tcase_add_test(timers, one_shot_timer_fires_once_after_its_delay);
    tcase_add_test(timers, periodic_timer_fires_until_cancelled);
    tcase_add_test(timers, periodic_timer_cancelled_in_its_own_callback_never_runs_again);
    tcase_add_test(timers, one_shot_timer_cancelled_in_its_own_callback_is_released_once);
    tcase_add_test(timers, timer_cancelled_before_it_fires_never_fires);
    tcase_add_test(timers, one_shot_rearmed_in_its_callback_fires_again);
    tcase_add_test(timers, rearm_moves_a_pending_deadline);
    tcase_add_test(timers, timers_due_together_can_cancel_each_other);
    tcase_add_test(timers, timer_cancelled_from_a_dispatcher_hook_never_fires);
    tcase_add_test(timers, timer_created_inside_a_dispatcher_hook_fires);
    tcase_add_test(timers, loop_with_a_long_timeout_returns_when_a_timer_empties_the_map);
    tcase_add_test(timers, one_iteration_ends_when_a_timer_fires);
    tcase_add_test(timers, loop_without_timeout_waits_for_a_pending_timer);
    tcase_add_test(timers, timers_alone_do_not_keep_the_loop_running);
    tcase_add_test(timers, map_free_releases_pending_timers);
    tcase_add_test(timers, bad_timer_arguments_fail_with_einval);
    tcase_add_test(timers, timer_on_the_default_map_is_released_with_it);
    suite_add_tcase(s, timers);

    tcase_add_checked_fixture(connect, th_setup, th_teardown);
    tcase_set_timeout(connect, 30);
    tcase_add_test(connect, connect_timeout_reports_etimedout_and_never_connects);
    tcase_add_test(connect, connect_timeout_set_while_connecting_counts_from_then);
    tcase_add_test(connect, connect_timeout_kept_open_by_handle_error_drops_the_attempt);
    tcase_add_test(connect, connect_timeout_is_cleared_when_the_connect_completes);
    tcase_add_test(connect, close_clears_timeouts);
    suite_add_tcase(s, connect);

    tcase_add_checked_fixture(idle, th_setup, th_teardown);
    tcase_set_timeout(idle, 30);
    tcase_add_test(idle, idle_timeout_fires_after_inactivity);
    tcase_add_test(idle, idle_timeout_does_not_fire_while_data_flows);
    tcase_add_test(idle, write_dispatches_are_activity);
    tcase_add_test(idle, handle_timeout_runs_again_after_each_idle_period);
    tcase_add_test(idle, default_handle_timeout_closes_with_a_warning);
    tcase_add_test(idle, idle_timeout_turned_off_never_fires);
    tcase_add_test(idle, bad_timeout_arguments_fail_with_einval_or_ebadf);
    suite_add_tcase(s, idle);
    return s;
}

int main(void)
{
    return th_run_suite(timer_suite());
}
