/*
 * test_file.c -- file_dispatcher (CPython's FileWrapperTest and more):
 * pipes, regular files under each libevent backend, socketpairs, and the
 * duplicate descriptor the dispatcher works on.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

static const char text[] = "It is only a flesh wound.\n";

/* Per-test state reachable from hooks through the user pointer. */
struct probe {
    char buf[1 << 17];
    size_t got;
    int reads;
    int eofs;          /* asyncore_recv() calls that returned 0 */
    int closes;
    int writes;
    int done;
};

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static void collect(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    size_t room = sizeof(p->buf) - p->got;
    ssize_t n;

    p->reads++;
    /* Small reads, so that larger inputs take several events. */
    n = asyncore_recv(d, p->buf + p->got, room < 4096 ? room : 4096);
    if (n > 0)
        p->got += (size_t)n;
    else if (n == 0)
        p->eofs++;
}

static void close_once(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers reader = {
    .handle_read = collect,
    .handle_close = close_once,
    .writable = never,
};

static const asyncore_handlers inert = {
    .readable = never,
    .writable = never,
};

/* The dispatcher works on its own descriptor: non-blocking, close-on-exec
 * and distinct from the caller's. */
static void assert_own_descriptor(asyncore_dispatcher *d, int callers_fd)
{
    int fd = asyncore_dispatcher_fd(d);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fd, callers_fd);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ck_assert(asyncore_dispatcher_connected(d));
}

/* ---- pipes --------------------------------------------------------------- */

START_TEST(handle_read_gets_what_is_written_to_a_pipe_and_eof_closes)
{
    struct probe *p = calloc(1, sizeof(*p));
    asyncore_dispatcher *d;
    int fds[2];

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    d = asyncore_file_dispatcher_new(th_map, &reader, p, fds[0]);
    ck_assert_ptr_nonnull(d);
    assert_own_descriptor(d, fds[0]);
    /* The caller may close its own descriptor at once. */
    close(fds[0]);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);

    ck_assert_int_eq(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, 1), 0);
    ck_assert_uint_eq(p->got, strlen(text));
    ck_assert_int_eq(memcmp(p->buf, text, strlen(text)), 0);
    ck_assert_int_eq(p->closes, 0);

    /* The writer goes away: recv reads 0 and handle_close runs once. */
    close(fds[1]);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(p->eofs, 1);
    ck_assert_int_eq(p->closes, 1);
    ck_assert_uint_eq(p->got, strlen(text));
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    free(p);
}
END_TEST

static void write_once(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);

    p->writes++;
    ck_assert_int_eq(asyncore_send(d, "more\n", 5), 5);
    p->done = 1;
}

static int until_done(asyncore_dispatcher *d)
{
    struct probe *p = asyncore_dispatcher_user_data(d);
    return !p->done;
}

static const asyncore_handlers writer = {
    .handle_write = write_once,
    .readable = never,
    .writable = until_done,
};

START_TEST(send_writes_into_a_pipe)
{
    struct probe *p = calloc(1, sizeof(*p));
    asyncore_dispatcher *d;
    char buf[64];
    int fds[2];

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    d = asyncore_file_dispatcher_new(th_map, &writer, p, fds[1]);
    ck_assert_ptr_nonnull(d);
    assert_own_descriptor(d, fds[1]);
    close(fds[1]);

    ck_assert_int_eq(asyncore_send(d, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), (ssize_t)strlen(text));
    ck_assert_int_eq(memcmp(buf, text, strlen(text)), 0);

    /* And from handle_write, once: writable() then turns false. */
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 3), 0);
    ck_assert_int_eq(p->writes, 1);
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "more\n", 5), 0);

    ck_assert_int_eq(asyncore_close(d), 0);
    /* The dispatcher held the last write end: the reader sees EOF. */
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 0);
    close(fds[0]);
    free(p);
}
END_TEST

START_TEST(closing_the_dispatcher_closes_only_its_duplicate)
{
    asyncore_dispatcher *d;
    char buf[8];
    int fds[2];

    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    d = asyncore_file_dispatcher_new(th_map, &inert, NULL, fds[0]);
    ck_assert_ptr_nonnull(d);
    assert_own_descriptor(d, fds[0]);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* The caller's descriptor is still open and still reads the pipe. */
    ck_assert_int_ne(fcntl(fds[0], F_GETFD), -1);
    ck_assert_int_eq(write(fds[1], "abc", 3), 3);
    ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* ---- a socketpair end ---------------------------------------------------- */

START_TEST(a_file_dispatcher_over_a_socketpair_reads_and_writes)
{
    struct probe *p = calloc(1, sizeof(*p));
    asyncore_dispatcher *d;
    char buf[8];
    int sv[2];

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_file_dispatcher_new(th_map, &reader, p, sv[0]);
    ck_assert_ptr_nonnull(d);
    assert_own_descriptor(d, sv[0]);
    close(sv[0]);

    ck_assert_int_eq(asyncore_send(d, "ping", 4), 4);
    ck_assert_int_eq(recv(sv[1], buf, sizeof(buf), 0), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);

    ck_assert_int_eq(send(sv[1], "pong", 4, 0), 4);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, 1), 0);
    ck_assert_uint_eq(p->got, 4);
    ck_assert_int_eq(memcmp(p->buf, "pong", 4), 0);

    close(sv[1]);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(p->eofs, 1);
    ck_assert_int_eq(p->closes, 1);
    free(p);
}
END_TEST

/* ---- regular files, under each backend ------------------------------------ */

static const char *const backends[] = { "epoll", "poll", "select" };
#define NBACKENDS 3

/* A map on a base that uses backends[@i], whatever the environment says. */
static asyncore_map *backend_map(int i, struct event_base **basep)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    asyncore_map *map;
    int j;

    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV), 0);
    for (j = 0; j < i; j++)
        ck_assert_int_eq(event_config_avoid_method(cfg, backends[j]), 0);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    ck_assert_ptr_nonnull(base);
    ck_assert_str_eq(event_base_get_method(base), backends[i]);
    map = asyncore_map_new(base);
    ck_assert_ptr_nonnull(map);
    *basep = base;
    return map;
}

static void free_backend_map(asyncore_map *map, struct event_base *base)
{
    ck_assert_int_eq(asyncore_map_free(map), 0);
    event_base_free(base);
}

/* A temporary regular file holding @len bytes of @data; its path goes to
 * @path, which the test unlinks. */
static void make_file(char *path, size_t size, const void *data, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    snprintf(path, size, "%s/asyncore-file-XXXXXX",
             tmp && strlen(tmp) < 200 ? tmp : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

START_TEST(a_regular_file_reads_exactly_its_content)
{
    struct probe *p = calloc(1, sizeof(*p));
    struct event_base *base;
    asyncore_map *map = backend_map(_i, &base);
    char path[256];
    int fd;

    ck_assert_ptr_nonnull(p);
    make_file(path, sizeof(path), text, strlen(text));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(asyncore_file_dispatcher_new(map, &reader, p, fd));
    close(fd);

    /* Always ready: the content in one iteration, end of file in the next. */
    ck_assert_int_eq(asyncore_loop(map, 0.01, 2), 0);
    ck_assert_uint_eq(p->got, strlen(text));
    ck_assert_int_eq(memcmp(p->buf, text, strlen(text)), 0);
    ck_assert_int_eq(p->reads, 2);
    ck_assert_int_eq(p->eofs, 1);
    ck_assert_int_eq(p->closes, 1);
    ck_assert_uint_eq(asyncore_map_count(map), 0);

    free_backend_map(map, base);
    unlink(path);
    free(p);
}
END_TEST

START_TEST(a_larger_regular_file_is_read_whole_in_pieces)
{
    struct probe *p = calloc(1, sizeof(*p));
    struct event_base *base;
    asyncore_map *map = backend_map(_i, &base);
    size_t len = 100000, i;
    char *data = malloc(len), path[256];
    int fd;

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(data);
    for (i = 0; i < len; i++)
        data[i] = (char)(i * 7 + i / 4096);
    make_file(path, sizeof(path), data, len);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(asyncore_file_dispatcher_new(map, &reader, p, fd));
    close(fd);

    ck_assert_int_eq(asyncore_loop(map, 0.01, ASYNCORE_FOREVER), 0);
    ck_assert_uint_eq(p->got, len);
    ck_assert_int_eq(memcmp(p->buf, data, len), 0);
    /* 4096-byte reads: 25 with data, one at end of file. */
    ck_assert_int_eq(p->reads, 26);
    ck_assert_int_eq(p->closes, 1);

    free_backend_map(map, base);
    unlink(path);
    free(data);
    free(p);
}
END_TEST

START_TEST(writing_to_a_regular_file_opened_for_append_appends)
{
    struct probe *p = calloc(1, sizeof(*p));
    struct event_base *base;
    asyncore_map *map = backend_map(_i, &base);
    asyncore_dispatcher *d;
    char path[256], buf[64];
    int fd;

    ck_assert_ptr_nonnull(p);
    make_file(path, sizeof(path), "abc", 3);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    d = asyncore_file_dispatcher_new(map, &writer, p, fd);
    ck_assert_ptr_nonnull(d);
    close(fd);

    ck_assert_int_eq(asyncore_send(d, "def", 3), 3);
    /* handle_write runs in the first iteration only: writable() is then
     * false, and an always-ready file must stop being dispatched. */
    ck_assert_int_eq(asyncore_loop(map, 0.01, 3), 0);
    ck_assert_int_eq(p->writes, 1);
    ck_assert_int_eq(asyncore_close(d), 0);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 11);
    ck_assert_int_eq(memcmp(buf, "abcdefmore\n", 11), 0);
    close(fd);

    free_backend_map(map, base);
    unlink(path);
    free(p);
}
END_TEST

/* Two always-ready files activated in the same iteration: whichever runs
 * first closes the other, whose queued dispatch must then not happen. */
static int pair_reads;

static void close_partner(asyncore_dispatcher *d)
{
    asyncore_dispatcher *partner = asyncore_dispatcher_user_data(d);

    pair_reads++;
    ck_assert_int_eq(asyncore_close(partner), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
}

static const asyncore_handlers partner_closer = {
    .handle_read = close_partner,
    .writable = never,
};

START_TEST(closing_a_file_whose_dispatch_is_queued_cancels_it)
{
    struct event_base *base;
    asyncore_map *map = backend_map(_i, &base);
    asyncore_dispatcher *a, *b;
    char path[256];
    int fd;

    make_file(path, sizeof(path), text, strlen(text));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    a = asyncore_file_dispatcher_new(map, &partner_closer, NULL, fd);
    b = asyncore_file_dispatcher_new(map, &partner_closer, a, fd);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(asyncore_dispatcher_set_user_data(a, b), 0);
    close(fd);

    pair_reads = 0;
    ck_assert_int_eq(asyncore_loop(map, 0.01, ASYNCORE_FOREVER), 0);
    ck_assert_int_eq(pair_reads, 1);
    ck_assert_uint_eq(asyncore_map_count(map), 0);

    free_backend_map(map, base);
    unlink(path);
}
END_TEST

/* epoll refuses /dev/null; select and poll call it ready, and so do we:
 * reading it gives end-of-file at once, hence handle_close. */
static int devnull_closes;

static void read_devnull(asyncore_dispatcher *d)
{
    char buf[16];
    (void)asyncore_recv(d, buf, sizeof(buf));
}

static void count_devnull_close(asyncore_dispatcher *d)
{
    devnull_closes++;
    asyncore_close(d);
}

static int no_write_interest(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static const asyncore_handlers devnull_reader = {
    .handle_read = read_devnull,
    .handle_close = count_devnull_close,
    .writable = no_write_interest,
};

START_TEST(dev_null_is_always_ready_and_reads_end_of_file)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    asyncore_dispatcher *d;

    ck_assert_int_ge(fd, 0);
    devnull_closes = 0;
    d = asyncore_file_dispatcher_new(th_map, &devnull_reader, NULL, fd);
    close(fd);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_loop(th_map, 1.0, 10), 0);
    ck_assert_int_eq(devnull_closes, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

/* A predicate that closes the dispatcher when first asked, during creation:
 * the caller gets NULL/ECANCELED, never a freed pointer, and nothing leaks. */
static int create_destroys;

static int close_when_asked(asyncore_dispatcher *d)
{
    asyncore_close(d);
    return 0;
}

static void count_create_destroy(asyncore_dispatcher *d)
{
    (void)d;
    create_destroys++;
}

static const asyncore_handlers closes_at_creation = {
    .readable = close_when_asked,
    .destroy = count_create_destroy,
};

START_TEST(a_predicate_closing_during_creation_fails_the_creation)
{
    int p[2], before;

    ck_assert_int_eq(pipe(p), 0);
    before = th_fd_count();
    create_destroys = 0;
    errno = 0;
    ck_assert_ptr_null(asyncore_file_dispatcher_new(th_map, &closes_at_creation,
                                                    NULL, p[0]));
    ck_assert_int_eq(errno, ECANCELED);
    ck_assert_int_eq(create_destroys, 1);
    ck_assert_int_eq(th_fd_count(), before);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(p[0]);
    close(p[1]);
}
END_TEST

static Suite *file_suite(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_create("file_dispatcher");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, handle_read_gets_what_is_written_to_a_pipe_and_eof_closes);
    tcase_add_test(tc, send_writes_into_a_pipe);
    tcase_add_test(tc, a_predicate_closing_during_creation_fails_the_creation);
    tcase_add_test(tc, dev_null_is_always_ready_and_reads_end_of_file);
    tcase_add_test(tc, closing_the_dispatcher_closes_only_its_duplicate);
    tcase_add_test(tc, a_file_dispatcher_over_a_socketpair_reads_and_writes);
    tcase_add_loop_test(tc, a_regular_file_reads_exactly_its_content, 0, NBACKENDS);
    tcase_add_loop_test(tc, a_larger_regular_file_is_read_whole_in_pieces, 0,
                        NBACKENDS);
    tcase_add_loop_test(tc, writing_to_a_regular_file_opened_for_append_appends, 0,
                        NBACKENDS);
    tcase_add_loop_test(tc, closing_a_file_whose_dispatch_is_queued_cancels_it, 0,
                        NBACKENDS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(file_suite());
}
