/*
 * test_lifetime.c -- closing and memory: the LIFETIME rules of dispatcher.h.
 *
 * A dispatcher may be closed from inside any of its hooks; its descriptor
 * goes at once, its memory only once no hook of it runs and nobody holds
 * it, and the destroy hook runs exactly once, then.  The sanitizer and
 * valgrind passes of this suite are what catch a use after free; the
 * assertions pin the order and the counts.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <event2/event.h>

/* The hooks a test can ask to close from. */
enum hook {
    H_NONE,
    H_READ,
    H_WRITE,
    H_CONNECT,
    H_ACCEPT,
    H_ACCEPTED,
    H_CLOSE,
    H_ERROR,
    H_EXPT,
    H_READABLE,
    H_WRITABLE
};

static const char *const hook_names[] = {
    "none", "read", "write", "connect", "accept", "accepted",
    "close", "error", "expt", "readable", "writable",
};

/* Probes are static in each test: dispatchers left open are closed by
 * th_teardown(), after the test returned, and their destroy hooks still
 * note into them. */
struct life {
    enum hook close_in;  /* the hook that closes the dispatcher */
    int armed;           /* predicates close only once this is set */
    int arm_in_read;     /* handle_read sets armed */
    int want_read, want_write;
    int reads, writes, expts, connects, accepts, closes, errors;
    int destroyed;
    int closed_in_hook;  /* close_here() ran to its end */
    char seq[256];       /* "hook,ret,destroy," */
    /* for the tests with several dispatchers */
    asyncore_dispatcher *victim;   /* closed by this one's hook */
    struct life *other;            /* the victim's probe */
    int close_all;                 /* handle_read calls asyncore_close_all */
    size_t count_in_hook;          /* map count seen there */
    int peer_fd;                   /* a descriptor the test closes */
};

static struct life *L(const asyncore_dispatcher *d)
{
    return asyncore_dispatcher_user_data(d);
}

static void note(struct life *p, const char *what)
{
    size_t n = strlen(p->seq);

    snprintf(p->seq + n, sizeof(p->seq) - n, "%s,", what);
}

static struct life new_life(enum hook close_in, int want_read, int want_write)
{
    struct life p;

    memset(&p, 0, sizeof(p));
    p.close_in = close_in;
    p.armed = 1;
    p.want_read = want_read;
    p.want_write = want_write;
    p.peer_fd = -1;
    return p;
}

/*
 * Close @d from inside hook @h and check, still inside: the descriptor is
 * closed at once, the dispatcher still readable and closed, a second close
 * refused, and the destroy hook not run yet.
 */
static void close_here(asyncore_dispatcher *d, enum hook h)
{
    struct life *p = L(d);
    int fd = asyncore_dispatcher_fd(d);

    note(p, hook_names[h]);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_ptr_eq(asyncore_dispatcher_user_data(d), p);
    ck_assert_int_eq(p->destroyed, 0);
    errno = 0;
    ck_assert_int_eq(asyncore_close(d), -1);
    ck_assert_int_eq(errno, EBADF);
    p->closed_in_hook++;
}

/* If @h is the closing hook, close and say so; the caller then returns. */
static int closes_in(asyncore_dispatcher *d, enum hook h)
{
    if (L(d)->close_in != h)
        return 0;
    close_here(d, h);
    note(L(d), "ret");
    return 1;
}

/* ---- one table whose every hook can close ------------------------------ */

static void life_read(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    char buf[256];

    p->reads++;
    if (p->arm_in_read)
        p->armed = 1;
    if (closes_in(d, H_READ))
        return;
    (void)asyncore_recv(d, buf, sizeof(buf)); /* may run handle_close */
    if (p->close_in == H_CLOSE)
        note(p, "read-ret");
}

static void life_write(asyncore_dispatcher *d)
{
    L(d)->writes++;
    if (closes_in(d, H_WRITE))
        return;
    L(d)->want_write = 0;
}

static void life_connect(asyncore_dispatcher *d)
{
    L(d)->connects++;
    (void)closes_in(d, H_CONNECT);
}

static void life_accept(asyncore_dispatcher *d)
{
    L(d)->accepts++;
    if (closes_in(d, H_ACCEPT))
        return;
    asyncore_default_handle_accept(d); /* on to handle_accepted */
}

static void life_accepted(asyncore_dispatcher *d, int fd,
                          const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    close(fd); /* the hook owns it */
    (void)closes_in(d, H_ACCEPTED);
}

static void life_close(asyncore_dispatcher *d)
{
    L(d)->closes++;
    if (closes_in(d, H_CLOSE))
        return;
    asyncore_close(d);
}

static void life_error(asyncore_dispatcher *d, int err, const char *op)
{
    (void)err;
    (void)op;
    L(d)->errors++;
    if (closes_in(d, H_ERROR))
        return;
    asyncore_close(d);
}

static void life_expt(asyncore_dispatcher *d)
{
    char c;

    L(d)->expts++;
    if (closes_in(d, H_EXPT))
        return;
    (void)recv(asyncore_dispatcher_fd(d), &c, 1, MSG_OOB);
}

static int life_readable(asyncore_dispatcher *d)
{
    struct life *p = L(d);

    if (p->armed && closes_in(d, H_READABLE))
        return 0;
    return p->want_read;
}

static int life_writable(asyncore_dispatcher *d)
{
    struct life *p = L(d);

    if (p->armed && closes_in(d, H_WRITABLE))
        return 0;
    return p->want_write;
}

static void life_destroy(asyncore_dispatcher *d)
{
    struct life *p = L(d);

    /* Inspectable still, and closed. */
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    p->destroyed++;
    note(p, "destroy");
}

static const asyncore_handlers life_h = {
    .handle_read = life_read,
    .handle_write = life_write,
    .handle_expt = life_expt,
    .handle_connect = life_connect,
    .handle_accept = life_accept,
    .handle_accepted = life_accepted,
    .handle_close = life_close,
    .handle_error = life_error,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

/* The same without handle_expt: no urgent channel where none is needed. */
static const asyncore_handlers plain_h = {
    .handle_read = life_read,
    .handle_write = life_write,
    .handle_connect = life_connect,
    .handle_accept = life_accept,
    .handle_accepted = life_accepted,
    .handle_close = life_close,
    .handle_error = life_error,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

/* ---- sockets ------------------------------------------------------------ */

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

/* A connected stream pair: fds[0] for a dispatcher, fds[1] the raw peer. */
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

static asyncore_dispatcher *adopt_on(asyncore_map *map,
                                     const asyncore_handlers *h,
                                     struct life *p, int fd)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(map, h, p);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fd), 0);
    return d;
}

static asyncore_dispatcher *adopt(struct life *p, int fd)
{
    return adopt_on(th_map, &plain_h, p, fd);
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

/* The probe of a dispatcher that closed itself in hook @h: closed there
 * exactly once, destroyed exactly once, after the hook returned. */
static void assert_closed_in(const struct life *p, const char *expected_seq)
{
    ck_assert_int_eq(p->closed_in_hook, 1);
    ck_assert_int_eq(p->destroyed, 1);
    ck_assert_str_eq(p->seq, expected_seq);
}

/* ---- asyncore_close() from inside each hook ------------------------------ */

START_TEST(close_inside_handle_read_is_safe)
{
    static struct life p;
    int fds[2];
    p = new_life(H_READ, 1, 0);

    stream_pair(AF_UNIX, fds);
    adopt(&p, fds[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "read,ret,destroy,");
    ck_assert_int_eq(p.reads, 1);
    close(fds[1]);
}
END_TEST

START_TEST(close_inside_handle_write_is_safe)
{
    static struct life p;
    int fds[2];
    p = new_life(H_WRITE, 1, 1);

    stream_pair(AF_UNIX, fds);
    adopt(&p, fds[0]);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "write,ret,destroy,");
    ck_assert_int_eq(p.writes, 1);
    close(fds[1]);
}
END_TEST

/* TCP connects through the loop; AF_UNIX completes inside asyncore_connect,
 * which must not touch the dispatcher after the hook freed it. */
START_TEST(close_inside_handle_connect_is_safe)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct life p;
    asyncore_dispatcher *d;
    int lfd;
    FAMILY_OR_SKIP();
    p = new_life(H_CONNECT, 1, 1);

    lfd = th_raw_listener(family, &ss, &len);
    d = asyncore_dispatcher_new(th_map, &plain_h, &p);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "connect,ret,destroy,");
    ck_assert_int_eq(p.connects, 1);
    ck_assert_int_eq(p.writes + p.reads, 0);
    close(lfd);
}
END_TEST

START_TEST(close_inside_handle_accept_is_safe)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct life p;
    int c;
    FAMILY_OR_SKIP();
    p = new_life(H_ACCEPT, 1, 0);

    th_listener(th_map, family, &plain_h, &p, &ss, &len);
    c = th_raw_connect(&ss, len);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "accept,ret,destroy,");
    ck_assert_int_eq(p.accepts, 1);
    close(c);
}
END_TEST

START_TEST(close_inside_handle_accepted_is_safe)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct life p;
    int c;
    FAMILY_OR_SKIP();
    p = new_life(H_ACCEPTED, 1, 0);

    th_listener(th_map, family, &plain_h, &p, &ss, &len);
    c = th_raw_connect(&ss, len);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "accepted,ret,destroy,");
    ck_assert_int_eq(p.accepts, 1);
    close(c);
}
END_TEST

/* handle_close runs inside asyncore_recv inside handle_read: the memory
 * must outlive both. */
START_TEST(close_inside_handle_close_is_safe)
{
    static struct life p;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_life(H_CLOSE, 1, 0);

    stream_pair(family, fds);
    adopt(&p, fds[0]);
    close(fds[1]);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "close,ret,read-ret,destroy,");
    ck_assert_int_eq(p.closes, 1);
}
END_TEST

START_TEST(close_inside_handle_error_is_safe)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct life p;
    asyncore_dispatcher *d;
    int fd;
    FAMILY_OR_SKIP();
    p = new_life(H_ERROR, 1, 1);

    if (family == AF_UNIX)
        return; /* a refused AF_UNIX connect fails at once, with no hook */
    /* A port nobody listens on: the connect fails later, to handle_error. */
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    len = th_loopback(family, &ss);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    len = th_sockname(fd, &ss);
    close(fd);
    d = asyncore_dispatcher_new(th_map, &plain_h, &p);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "error,ret,destroy,");
    ck_assert_int_eq(p.errors, 1);
    ck_assert_int_eq(p.connects, 0);
}
END_TEST

START_TEST(close_inside_handle_expt_is_safe)
{
    static struct life p;
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_life(H_EXPT, 1, 0);

    if (family == AF_UNIX)
        return; /* no urgent data on AF_UNIX */
    stream_pair(family, fds);
    adopt_on(th_map, &life_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], "!", 1, MSG_OOB), 1);
    ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
    assert_closed_in(&p, "expt,ret,destroy,");
    ck_assert_int_eq(p.expts, 1);
    close(fds[1]);
}
END_TEST

/* The predicates are hooks too.  _i: 0 asked after a dispatch, 1 asked by
 * asyncore_set_socket() itself, 2 by asyncore_update_interest(), 3 when
 * the loop is entered. */
static void close_inside_predicate(enum hook h, int how)
{
    static struct life p;
    asyncore_dispatcher *d;
    const char *seq = h == H_READABLE ? "readable,ret,destroy,"
                                      : "writable,ret,destroy,";
    int fds[2];
    p = new_life(h, 1, 0);

    stream_pair(AF_UNIX, fds);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    p.armed = how == 1;
    d = asyncore_dispatcher_new(th_map, &plain_h, &p);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, fds[0]), 0);
    if (how == 0) {
        p.arm_in_read = 1; /* asked again after the read readiness */
        ck_assert(th_loop_until(th_map, &p.destroyed, 3.0));
        ck_assert_int_eq(p.reads, 1);
    } else if (how == 2) {
        p.armed = 1;
        ck_assert_int_eq(asyncore_update_interest(d), 0);
    } else if (how == 3) {
        p.armed = 1;
        ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
        ck_assert_int_eq(p.reads, 0);
    }
    assert_closed_in(&p, seq);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(fds[1]);
}

START_TEST(close_inside_readable_is_safe)
{
    close_inside_predicate(H_READABLE, _i);
}
END_TEST

START_TEST(close_inside_writable_is_safe)
{
    close_inside_predicate(H_WRITABLE, _i);
}
END_TEST

/* ---- closing twice ------------------------------------------------------- */

START_TEST(second_close_of_a_held_dispatcher_fails_with_ebadf)
{
    static struct life p;
    asyncore_dispatcher *d;
    int fds[2];
    p = new_life(H_NONE, 0, 0);

    stream_pair(AF_UNIX, fds);
    d = adopt(&p, fds[0]);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_close(d), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(p.destroyed, 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(p.destroyed, 1);
    close(fds[1]);
}
END_TEST

/* ---- closing others ------------------------------------------------------ */

/* Closes its victim (once) from handle_read. */
static void read_closes_victim(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    char buf[16];

    p->reads++;
    note(p, "read");
    (void)asyncore_recv(d, buf, sizeof(buf));
    if (p->victim != NULL) {
        ck_assert_int_eq(asyncore_close(p->victim), 0);
        p->victim = NULL;
        p->other->victim = NULL;
    }
}

/* Closes its victim (once) from handle_expt. */
static void expt_closes_victim(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    char c;

    p->expts++;
    note(p, "expt");
    (void)recv(asyncore_dispatcher_fd(d), &c, 1, MSG_OOB);
    if (p->victim != NULL) {
        ck_assert_int_eq(asyncore_close(p->victim), 0);
        p->victim = NULL;
        p->other->victim = NULL;
    }
}

static const asyncore_handlers rival_h = {
    .handle_read = read_closes_victim,
    .handle_expt = expt_closes_victim,
    .handle_close = life_close,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

static void make_rivals(struct life *a, asyncore_dispatcher *da,
                        struct life *b, asyncore_dispatcher *db)
{
    a->victim = db;
    a->other = b;
    b->victim = da;
    b->other = a;
}

/* Both ready in one iteration: whichever runs first closes the other,
 * whose pending event must then never be dispatched. */
START_TEST(closing_another_dispatcher_with_an_event_pending_skips_its_hooks)
{
    static struct life a, b;
    asyncore_dispatcher *da, *db;
    int fa[2], fb[2];
    FAMILY_OR_SKIP();
    a = new_life(H_NONE, 1, 0);
    b = new_life(H_NONE, 1, 0);

    stream_pair(family, fa);
    stream_pair(family, fb);
    ck_assert_int_eq(send(fa[1], "a", 1, 0), 1);
    ck_assert_int_eq(send(fb[1], "b", 1, 0), 1);
    wait_for(fa[0], POLLIN);
    wait_for(fb[0], POLLIN);
    da = adopt_on(th_map, &rival_h, &a, fa[0]);
    db = adopt_on(th_map, &rival_h, &b, fb[0]);
    make_rivals(&a, da, &b, db);

    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(a.reads + b.reads, 1);
    ck_assert_int_eq(a.destroyed + b.destroyed, 1);
    ck_assert_int_eq(a.reads, b.destroyed);
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(a.reads + b.reads, 1);
    ck_assert_int_eq(a.destroyed + b.destroyed, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(fa[1]);
    close(fb[1]);
}
END_TEST

/* The same across the urgent channel: a read readiness of one and urgent
 * data of the other, in one iteration, in whichever order. */
START_TEST(closing_another_dispatcher_with_urgent_data_pending_skips_its_hooks)
{
    static struct life a, b;
    asyncore_dispatcher *da, *db;
    int fa[2], fb[2];
    FAMILY_OR_SKIP();
    a = new_life(H_NONE, 1, 0);
    b = new_life(H_NONE, 1, 0);

    if (family == AF_UNIX)
        return;
    stream_pair(family, fa);
    stream_pair(family, fb);
    da = adopt_on(th_map, &rival_h, &a, fa[0]);
    db = adopt_on(th_map, &rival_h, &b, fb[0]);
    make_rivals(&a, da, &b, db);
    ck_assert_int_eq(send(fa[1], "a", 1, 0), 1);
    ck_assert_int_eq(send(fb[1], "!", 1, MSG_OOB), 1);
    wait_for(fa[0], POLLIN);
    wait_for(fb[0], POLLPRI);

    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    th_loop_for(th_map, 0.05);
    ck_assert_int_eq(a.reads + a.expts + b.reads + b.expts, 1);
    ck_assert_int_eq(a.destroyed + b.destroyed, 1);
    ck_assert_int_eq(a.reads, b.destroyed);
    ck_assert_int_eq(b.expts, a.destroyed);
    close(fa[1]);
    close(fb[1]);
}
END_TEST

/* ---- asyncore_close_all() from a hook ----------------------------------- */

static void read_closes_all(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    asyncore_map *map = asyncore_dispatcher_map(d);

    p->reads++;
    note(p, "read");
    ck_assert_int_eq(asyncore_close_all(map), 0);
    p->count_in_hook = asyncore_map_count(map);
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(p->destroyed, 0); /* we are in its hook */
    note(p, "ret");
}

static const asyncore_handlers close_all_h = {
    .handle_read = read_closes_all,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

START_TEST(close_all_inside_a_hook_closes_everything_once)
{
    static struct life a, b;
    static struct life c, e;
    asyncore_dispatcher *de;
    int fa[2], fb[2], fc[2];
    a = new_life(H_NONE, 1, 0);
    b = new_life(H_NONE, 1, 0);
    c = new_life(H_NONE, 1, 0);
    e = new_life(H_NONE, 0, 0);

    stream_pair(AF_UNIX, fa);
    stream_pair(AF_UNIX, fb);
    stream_pair(AF_UNIX, fc);
    /* Two with a readiness pending, one idle, one without a socket. */
    ck_assert_int_eq(send(fa[1], "a", 1, 0), 1);
    ck_assert_int_eq(send(fb[1], "b", 1, 0), 1);
    adopt_on(th_map, &close_all_h, &a, fa[0]);
    adopt_on(th_map, &close_all_h, &b, fb[0]);
    adopt_on(th_map, &close_all_h, &c, fc[0]);
    de = asyncore_dispatcher_new(th_map, &close_all_h, &e);
    ck_assert_ptr_nonnull(de);

    ck_assert_int_eq(asyncore_poll(th_map, 1.0), 0);
    ck_assert_int_eq(a.reads + b.reads, 1);
    ck_assert_uint_eq(a.count_in_hook + b.count_in_hook, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_int_eq(a.destroyed, 1);
    ck_assert_int_eq(b.destroyed, 1);
    ck_assert_int_eq(c.destroyed, 1);
    ck_assert_int_eq(e.destroyed, 1);
    /* The one whose hook ran was destroyed after it returned. */
    ck_assert_str_eq(a.reads ? a.seq : b.seq, "read,ret,destroy,");
    ck_assert_str_eq(a.reads ? b.seq : a.seq, "destroy,");
    close(fa[1]);
    close(fb[1]);
    close(fc[1]);
}
END_TEST

/* ---- creating dispatchers from hooks -------------------------------------- */

static struct life spawned;

/* A new dispatcher on a fresh socketpair, with a byte waiting for it. */
static void spawn(asyncore_map *map)
{
    int fds[2];
    spawned = new_life(H_NONE, 1, 0);

    stream_pair(AF_UNIX, fds);
    adopt_on(map, &plain_h, &spawned, fds[0]);
    ck_assert_int_eq(send(fds[1], "s", 1, 0), 1);
    spawned.peer_fd = fds[1];
}

static void read_spawns(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    char buf[16];

    p->reads++;
    (void)asyncore_recv(d, buf, sizeof(buf));
    if (p->reads == 1)
        spawn(asyncore_dispatcher_map(d));
}

static const asyncore_handlers spawner_h = {
    .handle_read = read_spawns,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

START_TEST(creating_a_dispatcher_inside_a_hook_is_safe)
{
    static struct life p;
    int fds[2];
    p = new_life(H_NONE, 1, 0);

    spawned = new_life(H_NONE, 0, 0); /* the last test's, if not forked */

    stream_pair(AF_UNIX, fds);
    adopt_on(th_map, &spawner_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &spawned.reads, 3.0));
    ck_assert_int_eq(p.reads, 1);
    ck_assert_int_eq(spawned.reads, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 2);
    close(fds[1]);
    close(spawned.peer_fd);
}
END_TEST

static void destroy_spawns(asyncore_dispatcher *d)
{
    struct life *p = L(d);

    p->destroyed++;
    if (p->destroyed == 1)
        spawn(asyncore_dispatcher_map(d));
}

static const asyncore_handlers destroy_spawner_h = {
    .handle_read = life_read,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = destroy_spawns,
};

START_TEST(creating_a_dispatcher_inside_a_destroy_hook_is_safe)
{
    static struct life p;
    int fds[2];
    p = new_life(H_READ, 1, 0);

    spawned = new_life(H_NONE, 0, 0); /* the last test's, if not forked */

    stream_pair(AF_UNIX, fds);
    adopt_on(th_map, &destroy_spawner_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &spawned.reads, 3.0));
    ck_assert_int_eq(p.destroyed, 1);
    ck_assert_int_eq(spawned.reads, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(fds[1]);
    close(spawned.peer_fd);
}
END_TEST

START_TEST(map_free_closes_dispatchers_created_by_destroy_hooks)
{
    static struct life p;
    asyncore_map *map = asyncore_map_new(NULL);
    int fds[2];
    p = new_life(H_NONE, 1, 0);

    spawned = new_life(H_NONE, 0, 0); /* the last test's, if not forked */

    ck_assert_ptr_nonnull(map);
    stream_pair(AF_UNIX, fds);
    adopt_on(map, &destroy_spawner_h, &p, fds[0]);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(p.destroyed, 1);
    ck_assert_int_eq(spawned.destroyed, 1);
    ck_assert_int_eq(spawned.reads, 0);
    close(fds[1]);
    close(spawned.peer_fd);
}
END_TEST

/* ---- hold and release ----------------------------------------------------- */

START_TEST(a_held_closed_dispatcher_stays_readable_until_the_last_release)
{
    static struct life p;
    asyncore_dispatcher *d;
    char repr[200];
    int fds[2];
    FAMILY_OR_SKIP();
    p = new_life(H_NONE, 1, 1);

    stream_pair(family, fds);
    d = adopt(&p, fds[0]);
    ck_assert(asyncore_dispatcher_connected(d));
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(p.destroyed, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert(!asyncore_dispatcher_connected(d));
    ck_assert(!asyncore_dispatcher_connecting(d));
    ck_assert(!asyncore_dispatcher_accepting(d));
    ck_assert_ptr_eq(asyncore_dispatcher_user_data(d), &p);
    ck_assert_ptr_eq(asyncore_dispatcher_map(d), th_map);
    ck_assert_int_gt(asyncore_dispatcher_repr(d, repr, sizeof(repr)), 0);
    ck_assert_ptr_nonnull(strstr(repr, "closed"));

    asyncore_dispatcher_release(d);
    ck_assert_int_eq(p.destroyed, 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(p.destroyed, 1);
    close(fds[1]);
}
END_TEST

static void read_holds_and_closes(asyncore_dispatcher *d)
{
    struct life *p = L(d);

    p->reads++;
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    p->victim = d; /* released by the test, after the dispatch */
}

static const asyncore_handlers hold_in_hook_h = {
    .handle_read = read_holds_and_closes,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

START_TEST(a_hold_taken_inside_a_hook_outlives_the_dispatch)
{
    static struct life p;
    int fds[2];
    p = new_life(H_NONE, 1, 0);

    stream_pair(AF_UNIX, fds);
    adopt_on(th_map, &hold_in_hook_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &p.reads, 3.0));
    ck_assert_ptr_nonnull(p.victim);
    ck_assert_int_eq(p.destroyed, 0);
    ck_assert(asyncore_dispatcher_closed(p.victim));
    asyncore_dispatcher_release(p.victim);
    ck_assert_int_eq(p.destroyed, 1);
    close(fds[1]);
}
END_TEST

/* ---- destroy order of a derived class -------------------------------------- */

static void destroy_handlers(asyncore_dispatcher *d)
{
    note(L(d), "handlers");
    L(d)->destroyed++;
}

static void destroy_defaults(asyncore_dispatcher *d)
{
    note(L(d), "defaults");
    L(d)->destroyed++;
}

static const asyncore_handlers derived_h = { .destroy = destroy_handlers };
static const asyncore_handlers base_class_h = {
    .readable = life_readable,
    .writable = life_writable,
    .destroy = destroy_defaults,
};

START_TEST(handlers_destroy_runs_before_the_defaults_destroy)
{
    static struct life p;
    asyncore_dispatcher *d;
    p = new_life(H_NONE, 1, 1);

    d = asyncore_dispatcher_new_ex(th_map, &derived_h, &base_class_h, &p, 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_UNIX, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_str_eq(p.seq, "handlers,defaults,");
    ck_assert_int_eq(p.destroyed, 2);
}
END_TEST

/* ---- freeing a map -------------------------------------------------------- */

START_TEST(map_free_closes_every_dispatcher_and_leaks_nothing)
{
    struct sockaddr_storage ss;
    socklen_t len;
    static struct life l, u;
    static struct life n, h;
    asyncore_dispatcher *held;
    asyncore_map *map;
    int fds[2], gd[2], before = th_fd_count();
    l = new_life(H_NONE, 1, 1);
    u = new_life(H_NONE, 1, 1);
    n = new_life(H_NONE, 1, 1);
    h = new_life(H_NONE, 1, 1);

    map = asyncore_map_new(NULL);
    ck_assert_ptr_nonnull(map);
    /* A listener, a connection watched for urgent data, one without a
     * socket, and a held one. */
    th_listener(map, AF_INET, &plain_h, &l, &ss, &len);
    stream_pair(AF_INET, fds);
    adopt_on(map, &life_h, &u, fds[0]);
    ck_assert_ptr_nonnull(asyncore_dispatcher_new(map, &plain_h, &n));
    stream_pair(AF_UNIX, gd);
    held = adopt_on(map, &plain_h, &h, gd[0]);
    ck_assert_int_eq(asyncore_dispatcher_hold(held), 0);
    ck_assert_int_eq(asyncore_loop(map, 0.01, 3), 0);

    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(l.destroyed, 1);
    ck_assert_int_eq(u.destroyed, 1);
    ck_assert_int_eq(n.destroyed, 1);
    /* A held dispatcher is closed but kept until its release. */
    ck_assert_int_eq(h.destroyed, 0);
    ck_assert(asyncore_dispatcher_closed(held));
    ck_assert_int_eq(asyncore_dispatcher_fd(held), -1);
    asyncore_dispatcher_release(held);
    ck_assert_int_eq(h.destroyed, 1);

    close(fds[1]);
    close(gd[1]);
    ck_assert_int_eq(th_fd_count(), before);
}
END_TEST

static void read_frees_map(asyncore_dispatcher *d)
{
    struct life *p = L(d);
    char buf[16];

    p->reads++;
    (void)asyncore_recv(d, buf, sizeof(buf));
    errno = 0;
    ck_assert_int_eq(asyncore_map_free(asyncore_dispatcher_map(d)), -1);
    ck_assert_int_eq(errno, EBUSY);
}

static const asyncore_handlers map_freer_h = {
    .handle_read = read_frees_map,
    .readable = life_readable,
    .writable = life_writable,
    .destroy = life_destroy,
};

START_TEST(map_free_inside_a_hook_fails_with_ebusy_and_frees_nothing)
{
    static struct life p, q;
    asyncore_dispatcher *d;
    int fds[2], other[2];
    p = new_life(H_NONE, 1, 0);
    q = new_life(H_NONE, 1, 0);

    stream_pair(AF_UNIX, fds);
    stream_pair(AF_UNIX, other);
    d = adopt_on(th_map, &map_freer_h, &p, fds[0]);
    adopt(&q, other[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert(th_loop_until(th_map, &p.reads, 3.0));
    ck_assert_int_eq(p.destroyed + q.destroyed, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 2);
    ck_assert(!asyncore_dispatcher_closed(d));
    /* Everything still works. */
    ck_assert_int_eq(send(fds[1], "y", 1, 0), 1);
    ck_assert_int_eq(send(other[1], "z", 1, 0), 1);
    ck_assert(loop_until_n(th_map, &p.reads, 2, 3.0));
    ck_assert(loop_until_n(th_map, &q.reads, 1, 3.0));
    ck_assert_int_eq(p.reads, 2);
    ck_assert_int_eq(q.reads, 1);
    close(fds[1]);
    close(other[1]);
}
END_TEST

/* ---- a map on the caller's event_base ----------------------------------- */

static void count_cb(evutil_socket_t fd, short what, void *arg)
{
    char c;

    if ((what & EV_READ) && fd >= 0)
        (void)read(fd, &c, 1);
    (*(int *)arg)++;
}

struct census {
    int n;
    const struct event *a, *b;
    int found_a, found_b;
};

static int census_cb(const struct event_base *base, const struct event *ev,
                     void *arg)
{
    struct census *c = arg;

    (void)base;
    c->n++;
    c->found_a += ev == c->a;
    c->found_b += ev == c->b;
    return 0;
}

START_TEST(a_map_on_a_caller_base_lives_beside_the_callers_events)
{
    static struct life p;
    struct timeval soon = { 0, 20000 }, later = { 3600, 0 };
    struct event_base *base = event_base_new();
    struct event *pipe_ev, *timer, *long_timer;
    struct census census = { 0 };
    asyncore_map *map;
    int pp[2], fds[2], pipe_hits = 0, timer_hits = 0, long_hits = 0;
    double end;
    p = new_life(H_NONE, 1, 0);

    ck_assert_ptr_nonnull(base);
    map = asyncore_map_new(base);
    ck_assert_ptr_nonnull(map);
    ck_assert_ptr_eq(asyncore_map_base(map), base);

    ck_assert_int_eq(pipe2(pp, O_CLOEXEC | O_NONBLOCK), 0);
    pipe_ev = event_new(base, pp[0], EV_READ | EV_PERSIST, count_cb, &pipe_hits);
    timer = evtimer_new(base, count_cb, &timer_hits);
    long_timer = evtimer_new(base, count_cb, &long_hits);
    ck_assert_int_eq(event_add(pipe_ev, NULL), 0);
    ck_assert_int_eq(evtimer_add(timer, &soon), 0);
    ck_assert_int_eq(evtimer_add(long_timer, &later), 0);

    /* A dispatcher with an urgent channel too: the map's every event. */
    stream_pair(AF_UNIX, fds);
    adopt_on(map, &life_h, &p, fds[0]);
    ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
    ck_assert_int_eq(write(pp[1], "p", 1), 1);
    end = th_now() + 3.0;
    while ((!p.reads || !pipe_hits || !timer_hits) && th_now() < end)
        ck_assert_int_eq(asyncore_poll(map, 0.01), 0);
    ck_assert_int_eq(p.reads, 1);
    ck_assert_int_eq(pipe_hits, 1);
    ck_assert_int_eq(timer_hits, 1);

    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(p.destroyed, 1);
    /* Only the caller's pending events are left on the base. */
    ck_assert(event_pending(pipe_ev, EV_READ, NULL));
    ck_assert(event_pending(long_timer, EV_TIMEOUT, NULL));
    census.a = pipe_ev;
    census.b = long_timer;
    ck_assert_int_eq(event_base_foreach_event(base, census_cb, &census), 0);
    ck_assert_int_eq(census.n, 2);
    ck_assert_int_eq(census.found_a + census.found_b, 2);
    /* And the base still works. */
    ck_assert_int_eq(write(pp[1], "q", 1), 1);
    ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
    ck_assert_int_eq(pipe_hits, 2);
    ck_assert_int_eq(long_hits, 0);

    event_free(pipe_ev);
    event_free(timer);
    event_free(long_timer);
    event_base_free(base);
    close(pp[0]);
    close(pp[1]);
    close(fds[1]);
}
END_TEST

/* ---- the inline area -------------------------------------------------------- */

struct area_probe {
    size_t size;
    int destroyed;
    size_t bad;
};

static void area_destroy(asyncore_dispatcher *d)
{
    struct area_probe *a = asyncore_dispatcher_user_data(d);
    const unsigned char *area = asyncore_dispatcher_area(d);
    size_t i;

    for (i = 0; i < a->size; i++)
        if (area[i] != (unsigned char)(i * 13 + 1))
            a->bad++;
    a->destroyed++;
}

static const asyncore_handlers area_h = {
    .destroy = area_destroy,
};

START_TEST(the_inline_area_is_zeroed_aligned_and_lives_until_destroy)
{
    static const size_t sizes[] = { 1, 3, sizeof(max_align_t), 100, 4097 };
    struct area_probe a;
    asyncore_dispatcher *d;
    unsigned char *area;
    long double *ld;
    size_t i, k;

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        memset(&a, 0, sizeof(a));
        a.size = sizes[k];
        d = asyncore_dispatcher_new_ex(th_map, &area_h, NULL, &a, a.size);
        ck_assert_ptr_nonnull(d);
        area = asyncore_dispatcher_area(d);
        ck_assert_ptr_nonnull(area);
        ck_assert_uint_eq((uintptr_t)area % _Alignof(max_align_t), 0);
        for (i = 0; i < a.size; i++)
            ck_assert_int_eq(area[i], 0);
        if (a.size >= sizeof(long double)) {
            ld = (long double *)(void *)area; /* any type may live there */
            *ld = 1.5L;
            ck_assert(*ld == 1.5L);
        }
        for (i = 0; i < a.size; i++)
            area[i] = (unsigned char)(i * 13 + 1);
        ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
        ck_assert_int_eq(asyncore_close(d), 0);
        /* Held: closed, and the area still there. */
        ck_assert_ptr_eq(asyncore_dispatcher_area(d), area);
        ck_assert_int_eq(area[a.size - 1],
                         (unsigned char)((a.size - 1) * 13 + 1));
        asyncore_dispatcher_release(d);
        ck_assert_int_eq(a.destroyed, 1);
        ck_assert_uint_eq(a.bad, 0);
    }
    /* Without an area, none. */
    memset(&a, 0, sizeof(a));
    d = asyncore_dispatcher_new(th_map, &area_h, &a);
    ck_assert_ptr_null(asyncore_dispatcher_area(d));
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(a.destroyed, 1);
}
END_TEST

static Suite *lifetime_suite(void)
{
    Suite *s = suite_create("lifetime");
    TCase *tc = tcase_create("close_in_hooks");
    TCase *to = tcase_create("others");
    TCase *tm = tcase_create("memory");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, close_inside_handle_read_is_safe);
    tcase_add_test(tc, close_inside_handle_write_is_safe);
    tcase_add_loop_test(tc, close_inside_handle_connect_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_handle_accept_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_handle_accepted_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_handle_close_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_handle_error_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_handle_expt_is_safe, 0, TH_NFAMILIES);
    tcase_add_loop_test(tc, close_inside_readable_is_safe, 0, 4);
    tcase_add_loop_test(tc, close_inside_writable_is_safe, 0, 4);
    tcase_add_test(tc, second_close_of_a_held_dispatcher_fails_with_ebadf);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(to, th_setup, th_teardown);
    tcase_set_timeout(to, 20);
    tcase_add_loop_test(to, closing_another_dispatcher_with_an_event_pending_skips_its_hooks,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(to, closing_another_dispatcher_with_urgent_data_pending_skips_its_hooks,
                        0, TH_NFAMILIES);
    tcase_add_test(to, close_all_inside_a_hook_closes_everything_once);
    tcase_add_test(to, creating_a_dispatcher_inside_a_hook_is_safe);
    tcase_add_test(to, creating_a_dispatcher_inside_a_destroy_hook_is_safe);
    tcase_add_test(to, map_free_closes_dispatchers_created_by_destroy_hooks);
    suite_add_tcase(s, to);

    tcase_add_checked_fixture(tm, th_setup, th_teardown);
    tcase_set_timeout(tm, 20);
    tcase_add_loop_test(tm, a_held_closed_dispatcher_stays_readable_until_the_last_release,
                        0, TH_NFAMILIES);
    tcase_add_test(tm, a_hold_taken_inside_a_hook_outlives_the_dispatch);
    tcase_add_test(tm, handlers_destroy_runs_before_the_defaults_destroy);
    tcase_add_test(tm, map_free_closes_every_dispatcher_and_leaks_nothing);
    tcase_add_test(tm, map_free_inside_a_hook_fails_with_ebusy_and_frees_nothing);
    tcase_add_test(tm, a_map_on_a_caller_base_lives_beside_the_callers_events);
    tcase_add_test(tm, the_inline_area_is_zeroed_aligned_and_lives_until_destroy);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    return th_run_suite(lifetime_suite());
}
