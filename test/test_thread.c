/*
 * test_thread.c -- one map per thread: call_soon_threadsafe and wake from
 * other threads (and a signal handler), what asyncore_map_free does with
 * callbacks still queued, and SO_REUSEPORT listeners of two maps in two
 * threads sharing one port.
 *
 * Check's assertions end the test from the thread they run in only when
 * Check forks; in threads other than the test's own, results are recorded
 * and asserted by the test's thread after pthread_join().
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <event2/event.h>

/* ---- shared bits ------------------------------------------------------------ */

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

/* A dispatcher that is armed for reading but never gets a byte: it keeps a
 * loop with no timeout waiting (and the map non-empty).  Its peer goes to
 * the test. */
static int reads;

static void count_read(asyncore_dispatcher *d)
{
    (void)d;
    reads++;
}

static const asyncore_handlers waiting_handlers = {
    .handle_read = count_read,
    .writable = never,
};

static asyncore_dispatcher *waiting_dispatcher(asyncore_map *map, int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(map, &waiting_handlers, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    *peer = sv[1];
    reads = 0;
    return d;
}

/* ---- call_soon_threadsafe from 4 threads while the loop runs ----------------- */

#define NTHREADS 4
#define NCALLS 1000

struct item {
    int thread, seq;
};

static struct item items[NTHREADS][NCALLS];
static pthread_barrier_t start_line;
static pthread_t loop_thread;
static int next_seq[NTHREADS];  /* the map's thread only */
static int ran_count[NTHREADS][NCALLS];
static int out_of_order, wrong_thread, wrong_map, total_ran;

static void record_item(asyncore_map *map, void *arg)
{
    struct item *it = arg;

    if (map != th_map)
        wrong_map++;
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    if (it->seq != next_seq[it->thread])
        out_of_order++;
    next_seq[it->thread] = it->seq + 1;
    ran_count[it->thread][it->seq]++;
    total_ran++;
}

static void *producer(void *arg)
{
    int t = (int)(intptr_t)arg, i;
    intptr_t failures = 0;

    pthread_barrier_wait(&start_line);
    for (i = 0; i < NCALLS; i++)
        if (asyncore_map_call_soon_threadsafe(th_map, record_item,
                                              &items[t][i]) != 0)
            failures++;
    return (void *)failures;
}

START_TEST(callbacks_from_four_threads_run_once_each_in_order_in_the_maps_thread)
{
    pthread_t threads[NTHREADS];
    double end;
    int peer, t, i;

    waiting_dispatcher(th_map, &peer);
    loop_thread = pthread_self();
    out_of_order = wrong_thread = wrong_map = total_ran = 0;
    memset(next_seq, 0, sizeof(next_seq));
    memset(ran_count, 0, sizeof(ran_count));
    for (t = 0; t < NTHREADS; t++)
        for (i = 0; i < NCALLS; i++)
            items[t][i] = (struct item){ t, i };
    ck_assert_int_eq(pthread_barrier_init(&start_line, NULL, NTHREADS + 1), 0);
    for (t = 0; t < NTHREADS; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, producer,
                                        (void *)(intptr_t)t), 0);
    pthread_barrier_wait(&start_line);
    /* Long waits: only the wake-ups of call_soon_threadsafe end them. */
    end = th_now() + 60.0;
    while (total_ran < NTHREADS * NCALLS && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 5.0), 0);
    for (t = 0; t < NTHREADS; t++) {
        void *failures;

        ck_assert_int_eq(pthread_join(threads[t], &failures), 0);
        ck_assert_ptr_null(failures);
    }
    pthread_barrier_destroy(&start_line);
    ck_assert_int_eq(total_ran, NTHREADS * NCALLS);
    ck_assert_int_eq(out_of_order, 0);
    ck_assert_int_eq(wrong_thread, 0);
    ck_assert_int_eq(wrong_map, 0);
    for (t = 0; t < NTHREADS; t++)
        for (i = 0; i < NCALLS; i++)
            ck_assert_int_eq(ran_count[t][i], 1);
    ck_assert_int_eq(reads, 0);
    close(peer);
}
END_TEST

/* ---- wake --------------------------------------------------------------------- */

static void *wake_later(void *arg)
{
    sleep_s(0.2);
    return (void *)(intptr_t)asyncore_map_wake(arg);
}

START_TEST(wake_from_another_thread_ends_a_ten_second_wait_promptly)
{
    pthread_t waker;
    void *rc;
    double t0;
    int peer;

    waiting_dispatcher(th_map, &peer);
    ck_assert_int_eq(pthread_create(&waker, NULL, wake_later, th_map), 0);
    t0 = th_now();
    /* One iteration: the wake-up ends it, and the loop returns. */
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_double_lt(th_now() - t0, 3.0);
    ck_assert_int_eq(pthread_join(waker, &rc), 0);
    ck_assert_ptr_null(rc);
    ck_assert_int_eq(reads, 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(peer);
}
END_TEST

START_TEST(a_wake_while_the_loop_is_not_waiting_ends_its_next_wait_at_once)
{
    double t0;
    int peer;

    waiting_dispatcher(th_map, &peer);
    ck_assert_int_eq(asyncore_map_wake(th_map), 0);
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_double_lt(th_now() - t0, 3.0);
    /* Consumed: the next wait lasts its timeout. */
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 0.2, 1), 0);
    ck_assert_double_ge(th_now() - t0, 0.15);
    ck_assert_int_eq(reads, 0);
    close(peer);
}
END_TEST

static asyncore_map *signal_map;
static volatile sig_atomic_t handler_rc = -2;

static void wake_from_handler(int sig)
{
    int saved = errno;

    (void)sig;
    handler_rc = asyncore_map_wake(signal_map);
    errno = saved;
}

static void *signal_later(void *arg)
{
    sleep_s(0.2);
    return (void *)(intptr_t)pthread_kill(*(pthread_t *)arg, SIGUSR1);
}

START_TEST(wake_from_a_signal_handler_ends_a_ten_second_wait_promptly)
{
    struct sigaction sa, old;
    pthread_t self = pthread_self(), sender;
    void *rc;
    double t0;
    int peer;

    waiting_dispatcher(th_map, &peer);
    signal_map = th_map;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_from_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    ck_assert_int_eq(pthread_create(&sender, NULL, signal_later, &self), 0);
    t0 = th_now();
    /* The signal alone would not end the iteration (libevent waits again
     * after EINTR); the wake-up written by the handler does. */
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_double_lt(th_now() - t0, 3.0);
    ck_assert_int_eq(pthread_join(sender, &rc), 0);
    ck_assert_ptr_null(rc);
    ck_assert_int_eq(handler_rc, 0);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    close(peer);
}
END_TEST

/* ---- what callbacks may do, and when they run ---------------------------------- */

static int runs;

static void count_run(asyncore_map *map, void *arg)
{
    (void)map;
    (void)arg;
    runs++;
}

static void queue_another(asyncore_map *map, void *arg)
{
    (void)arg;
    runs++;
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(map, count_run, NULL), 0);
}

START_TEST(a_callback_queued_by_a_callback_runs_at_the_next_iteration)
{
    double t0;
    int peer;

    waiting_dispatcher(th_map, &peer);
    runs = 0;
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(th_map, queue_another, NULL), 0);
    ck_assert_int_eq(runs, 0); /* not before the loop runs */
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_int_eq(runs, 1);
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_int_eq(runs, 2);
    ck_assert_double_lt(th_now() - t0, 3.0);
    close(peer);
}
END_TEST

static int destroys;

static void count_destroy(asyncore_dispatcher *d)
{
    (void)d;
    destroys++;
}

static const asyncore_handlers counted_handlers = {
    .writable = never,
    .destroy = count_destroy,
};

/* No assertion here: it also runs in the server threads below. */
static void close_all_cb(asyncore_map *map, void *arg)
{
    (void)arg;
    asyncore_close_all(map);
}

static void stop_cb(asyncore_map *map, void *arg)
{
    (void)arg;
    ck_assert_int_eq(asyncore_loop_stop(map), 0);
}

struct queue_later {
    asyncore_map *map;
    asyncore_map_callback cb;
};

static void *queue_later(void *arg)
{
    struct queue_later *q = arg;

    sleep_s(0.2);
    return (void *)(intptr_t)asyncore_map_call_soon_threadsafe(q->map, q->cb, NULL);
}

START_TEST(close_all_queued_from_another_thread_ends_a_loop_without_timeout)
{
    struct queue_later q = { th_map, close_all_cb };
    asyncore_dispatcher *d;
    pthread_t t;
    void *rc;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(th_map, &counted_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    destroys = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, queue_later, &q), 0);
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    ck_assert_ptr_null(rc);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_int_eq(destroys, 1);
    close(sv[1]);
}
END_TEST

START_TEST(loop_stop_queued_from_another_thread_ends_a_loop_without_timeout)
{
    struct queue_later q = { th_map, stop_cb };
    pthread_t t;
    void *rc;
    int peer;

    waiting_dispatcher(th_map, &peer);
    ck_assert_int_eq(pthread_create(&t, NULL, queue_later, &q), 0);
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    ck_assert_ptr_null(rc);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1); /* stopped, not emptied */
    close(peer);
}
END_TEST

static const asyncore_handlers unarmed_handlers = {
    .readable = never,
    .writable = never,
};

START_TEST(the_wake_up_channel_alone_is_not_armed_edeadlk_as_without_threads)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(th_map, &unarmed_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    runs = 0;
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(th_map, count_run, NULL), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_loop(th_map, -1.0, ASYNCORE_FOREVER), -1);
    ck_assert_int_eq(errno, EDEADLK);
    /* Still queued, and run by the next loop that waits. */
    ck_assert_int_eq(runs, 0);
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_int_eq(runs, 1);
    close(sv[1]);
}
END_TEST

/* ---- callbacks still queued at asyncore_map_free ------------------------------- */

struct owned {
    int order;
    char *buf; /* malloc'd: freed by the callback, or leaked */
};

static int free_order[8], n_freed;
static int free_busy, loop_busy;
static pthread_t free_thread;

static void release_owned(asyncore_map *map, void *arg)
{
    struct owned *o = arg;

    if (!pthread_equal(pthread_self(), free_thread))
        wrong_thread++;
    /* The map is whole, but it is being freed: these are refused. */
    errno = 0;
    if (asyncore_map_free(map) == -1 && errno == EBUSY)
        free_busy++;
    errno = 0;
    if (asyncore_loop(map, 0.0, 1) == -1 && errno == EBUSY)
        loop_busy++;
    if (n_freed < 8)
        free_order[n_freed] = o->order;
    n_freed++;
    free(o->buf);
    free(o);
}

static void *queue_owned(void *arg)
{
    asyncore_map *map = arg;
    intptr_t failures = 0;
    int i;

    for (i = 0; i < 3; i++) {
        struct owned *o = malloc(sizeof(*o));

        o->order = i;
        o->buf = malloc(100);
        failures += asyncore_map_call_soon_threadsafe(map, release_owned, o) != 0;
    }
    return (void *)failures;
}

/* A destroy hook that queues one more: it runs during the free too. */
static void destroy_queues(asyncore_dispatcher *d)
{
    struct owned *o = malloc(sizeof(*o));

    o->order = 3;
    o->buf = malloc(100);
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(
                         asyncore_dispatcher_map(d), release_owned, o), 0);
}

static const asyncore_handlers queue_on_destroy = {
    .destroy = destroy_queues,
};

START_TEST(map_free_runs_the_callbacks_still_queued_once_each_in_order)
{
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_dispatcher *d;
    pthread_t t;
    void *failures;
    int sv[2];

    ck_assert_ptr_nonnull(map);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(map, &queue_on_destroy, NULL);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, queue_owned, map), 0);
    ck_assert_int_eq(pthread_join(t, &failures), 0);
    ck_assert_ptr_null(failures);
    n_freed = 0;
    wrong_thread = free_busy = loop_busy = 0;
    free_thread = pthread_self();
    /* Queued, never looped: the free runs them (ASan and valgrind see the
     * buffers freed), then closes the dispatcher, whose destroy hook queues
     * a fourth that runs as well. */
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(n_freed, 4);
    ck_assert_int_eq(free_order[0], 0);
    ck_assert_int_eq(free_order[1], 1);
    ck_assert_int_eq(free_order[2], 2);
    ck_assert_int_eq(free_order[3], 3);
    ck_assert_int_eq(free_busy, 4);
    ck_assert_int_eq(loop_busy, 4);
    ck_assert_int_eq(wrong_thread, 0);
    close(sv[1]);
}
END_TEST

/* ---- fork ----------------------------------------------------------------------- */

/* The child's side; its exit status says which step failed. */
static int forked_child(int to_parent, int from_parent)
{
    char c;
    double t0;

    if (event_reinit(asyncore_map_base(th_map)) != 0)
        return 1;
    /* The first loop gives the child's map a wake-up channel of its own. */
    if (asyncore_poll(th_map, 0.0) != 0 || write(to_parent, "r", 1) != 1 ||
        read(from_parent, &c, 1) != 1)
        return 2;
    /* The parent has woken its map meanwhile: that is not ours. */
    t0 = th_now();
    if (asyncore_loop(th_map, 0.5, 1) != 0 || th_now() - t0 < 0.4)
        return 3;
    runs = 0;
    t0 = th_now();
    if (asyncore_map_call_soon_threadsafe(th_map, count_run, NULL) != 0 ||
        asyncore_loop(th_map, 10.0, 1) != 0 || runs != 1 || th_now() - t0 > 3.0)
        return 4;
    return write(to_parent, "d", 1) == 1 ? 0 : 5;
}

START_TEST(after_fork_parent_and_child_do_not_take_each_others_wake_ups)
{
    int c2p[2], p2c[2], peer, status;
    double t0;
    pid_t pid;
    char c;

    waiting_dispatcher(th_map, &peer);
    ck_assert_int_eq(pipe2(c2p, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(p2c, O_CLOEXEC), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The parent's ends: if it fails early, our reads see end-of-file. */
        int rc;

        close(c2p[0]);
        close(p2c[1]);
        rc = forked_child(c2p[1], p2c[0]);
        /* The child's copies, so that valgrind's fd report stays quiet. */
        asyncore_map_free(th_map);
        close(c2p[1]);
        close(p2c[0]);
        close(peer);
        _exit(rc);
    }
    /* The child's ends: if it exits early, our reads see end-of-file. */
    close(c2p[1]);
    close(p2c[0]);
    ck_assert_int_eq(read(c2p[0], &c, 1), 1);
    ck_assert_int_eq(asyncore_map_wake(th_map), 0);
    ck_assert_int_eq(write(p2c[1], "w", 1), 1);
    /* The child has waited and looped; our wake-up is still ours. */
    ck_assert_int_eq(read(c2p[0], &c, 1), 1);
    t0 = th_now();
    ck_assert_int_eq(asyncore_loop(th_map, 10.0, 1), 0);
    ck_assert_double_lt(th_now() - t0, 3.0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(c2p[0]);
    close(p2c[1]);
    close(peer);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------ */

START_TEST(null_map_or_callback_fails_with_einval)
{
    /* No default map here: creating it is not thread-safe. */
    errno = 0;
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(NULL, count_run, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_map_call_soon_threadsafe(th_map, NULL, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_map_wake(NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(reuse_port_on_null_closed_or_socketless_dispatchers_fails)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &counted_handlers, NULL);

    errno = 0;
    ck_assert_int_eq(asyncore_set_reuse_port(NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(asyncore_set_reuse_port(d), -1);
    ck_assert_int_eq(errno, ENOTSOCK);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_set_reuse_port(d), -1);
    ck_assert_int_eq(errno, EBADF);
    asyncore_dispatcher_release(d);
}
END_TEST

/* ---- SO_REUSEPORT ---------------------------------------------------------------- */

/* A TCP socket of the map, not yet bound. */
static asyncore_dispatcher *tcp_socket(asyncore_map *map,
                                       const asyncore_handlers *h, void *user)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(map, h, user);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    return d;
}

static int bind_port(asyncore_dispatcher *d, unsigned port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((unsigned short)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

    return asyncore_bind(d, (struct sockaddr *)&sin, sizeof(sin));
}

static unsigned port_of(asyncore_dispatcher *d)
{
    struct sockaddr_storage ss;

    th_sockname(asyncore_dispatcher_fd(d), &ss);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

START_TEST(reuse_port_lets_a_second_socket_bind_the_same_port)
{
    asyncore_dispatcher *a, *b, *c;
    unsigned port;

    a = tcp_socket(th_map, &counted_handlers, NULL);
    ck_assert_int_eq(asyncore_set_reuse_port(a), 0);
    ck_assert_int_eq(bind_port(a, 0), 0);
    ck_assert_int_eq(asyncore_listen(a, 8), 0);
    port = port_of(a);

    /* Without the option the port is taken... */
    c = tcp_socket(th_map, &counted_handlers, NULL);
    errno = 0;
    ck_assert_int_eq(bind_port(c, port), -1);
    ck_assert_int_eq(errno, EADDRINUSE);

    /* ...with it, the same port is shared. */
    b = tcp_socket(th_map, &counted_handlers, NULL);
    ck_assert_int_eq(asyncore_set_reuse_port(b), 0);
    ck_assert_int_eq(bind_port(b, port), 0);
    ck_assert_int_eq(asyncore_listen(b, 8), 0);
    ck_assert_uint_eq(port_of(b), port);
}
END_TEST

/* Two maps, each served by a thread of its own, each with an echo listener
 * on the same port; clients in more threads. */

#define NSERVERS 2
#define NCLIENTS 8
#define CONNS_PER_CLIENT 4
#define ROUNDS 16
#define CHUNK 4096

struct server {
    asyncore_map *map;
    pthread_t thread;
    pthread_t self;   /* as the thread itself sees it */
    int loop_rc;
    int accepted;     /* this map's thread only, read after join */
    int foreign;      /* accepts seen outside the map's own thread */
};

static void echo_read(asyncore_dispatcher *d)
{
    char buf[CHUNK];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n > 0)
        (void)asyncore_send(d, buf, (size_t)n);
}

static void echo_close(asyncore_dispatcher *d)
{
    asyncore_close(d);
}

static const asyncore_handlers echo_handlers = {
    .handle_read = echo_read,
    .handle_close = echo_close,
};

static void echo_accepted(asyncore_dispatcher *listener, int fd,
                          const struct sockaddr *a, socklen_t l)
{
    struct server *s = asyncore_dispatcher_user_data(listener);
    asyncore_dispatcher *c;

    (void)a;
    (void)l;
    if (!pthread_equal(pthread_self(), s->self))
        s->foreign++;
    c = asyncore_dispatcher_with_send_new(s->map, &echo_handlers, NULL);
    if (c == NULL || asyncore_set_socket(c, fd) < 0) {
        close(fd);
        return;
    }
    s->accepted++;
}

static const asyncore_handlers echo_listener = {
    .handle_accepted = echo_accepted,
};

static void *serve(void *arg)
{
    struct server *s = arg;

    s->self = pthread_self();
    /* A bounded wait per iteration only as a safety net: the test ends the
     * loop with a callback that empties the map. */
    s->loop_rc = asyncore_loop(s->map, 1.0, ASYNCORE_FOREVER);
    return NULL;
}

static unsigned shared_port;

/* One connection: ROUNDS chunks sent and read back, compared.  0 if every
 * byte came back. */
static int echo_once(int client, int conn)
{
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((unsigned short)shared_port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 10, 0 };
    char out[CHUNK], in[CHUNK];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r, bad = 0;
    size_t i, got;

    if (fd < 0)
        return 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        bad = 1;
    for (r = 0; r < ROUNDS && !bad; r++) {
        for (i = 0; i < CHUNK; i++)
            out[i] = (char)(client * 31 + conn * 7 + r * 3 + (int)i);
        if (send(fd, out, CHUNK, MSG_NOSIGNAL) != CHUNK) {
            bad = 1;
            break;
        }
        for (got = 0; got < CHUNK;) {
            ssize_t n = recv(fd, in + got, CHUNK - got, 0);

            if (n <= 0) {
                bad = 1;
                break;
            }
            got += (size_t)n;
        }
        if (!bad && memcmp(in, out, CHUNK) != 0)
            bad = 1;
    }
    close(fd);
    return bad;
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg, c;
    intptr_t failures = 0;

    for (c = 0; c < CONNS_PER_CLIENT; c++)
        failures += echo_once(id, c);
    return (void *)failures;
}

START_TEST(two_maps_in_two_threads_echo_on_one_port_with_reuse_port)
{
    struct server servers[NSERVERS];
    pthread_t clients[NCLIENTS];
    int i, accepted = 0;

    /* Maps and listeners are made here and handed over by pthread_create,
     * which orders everything done here before the thread's first step. */
    memset(servers, 0, sizeof(servers));
    for (i = 0; i < NSERVERS; i++) {
        asyncore_dispatcher *l;

        servers[i].map = asyncore_map_new(NULL);
        ck_assert_ptr_nonnull(servers[i].map);
        l = tcp_socket(servers[i].map, &echo_listener, &servers[i]);
        ck_assert_int_eq(asyncore_set_reuse_port(l), 0);
        /* The first takes a port from the kernel, the second joins it. */
        ck_assert_int_eq(bind_port(l, i == 0 ? 0 : shared_port), 0);
        ck_assert_int_eq(asyncore_listen(l, 64), 0);
        if (i == 0)
            shared_port = port_of(l);
        ck_assert_uint_eq(port_of(l), shared_port);
    }
    for (i = 0; i < NSERVERS; i++)
        ck_assert_int_eq(pthread_create(&servers[i].thread, NULL, serve,
                                        &servers[i]), 0);
    for (i = 0; i < NCLIENTS; i++)
        ck_assert_int_eq(pthread_create(&clients[i], NULL, client,
                                        (void *)(intptr_t)i), 0);
    for (i = 0; i < NCLIENTS; i++) {
        void *failures;

        ck_assert_int_eq(pthread_join(clients[i], &failures), 0);
        ck_assert_ptr_null(failures); /* every byte of every connection */
    }
    /* Stop both loops from this thread, then take the maps back. */
    for (i = 0; i < NSERVERS; i++)
        ck_assert_int_eq(asyncore_map_call_soon_threadsafe(servers[i].map,
                                                           close_all_cb, NULL), 0);
    for (i = 0; i < NSERVERS; i++) {
        ck_assert_int_eq(pthread_join(servers[i].thread, NULL), 0);
        ck_assert_int_eq(servers[i].loop_rc, 0);
        ck_assert_int_eq(servers[i].foreign, 0);
        ck_assert_uint_eq(asyncore_map_count(servers[i].map), 0);
        accepted += servers[i].accepted;
        ck_assert_int_eq(asyncore_map_free(servers[i].map), 0);
    }
    /* Which listener got which connection is the kernel's choice. */
    ck_assert_int_eq(accepted, NCLIENTS * CONNS_PER_CLIENT);
}
END_TEST

static Suite *thread_suite(void)
{
    Suite *s = suite_create("thread");
    TCase *tc = tcase_create("thread");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, callbacks_from_four_threads_run_once_each_in_order_in_the_maps_thread);
    tcase_add_test(tc, wake_from_another_thread_ends_a_ten_second_wait_promptly);
    tcase_add_test(tc, a_wake_while_the_loop_is_not_waiting_ends_its_next_wait_at_once);
    tcase_add_test(tc, wake_from_a_signal_handler_ends_a_ten_second_wait_promptly);
    tcase_add_test(tc, a_callback_queued_by_a_callback_runs_at_the_next_iteration);
    tcase_add_test(tc, close_all_queued_from_another_thread_ends_a_loop_without_timeout);
    tcase_add_test(tc, loop_stop_queued_from_another_thread_ends_a_loop_without_timeout);
    tcase_add_test(tc, the_wake_up_channel_alone_is_not_armed_edeadlk_as_without_threads);
    tcase_add_test(tc, map_free_runs_the_callbacks_still_queued_once_each_in_order);
    tcase_add_test(tc, after_fork_parent_and_child_do_not_take_each_others_wake_ups);
    tcase_add_test(tc, null_map_or_callback_fails_with_einval);
    tcase_add_test(tc, reuse_port_on_null_closed_or_socketless_dispatchers_fails);
    tcase_add_test(tc, reuse_port_lets_a_second_socket_bind_the_same_port);
    tcase_add_test(tc, two_maps_in_two_threads_echo_on_one_port_with_reuse_port);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(thread_suite());
}
