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

static Suite *reentry_suite(void)
{
    Suite *s = suite_create("lifetime_reentry");
    TCase *tc = tcase_create("reentry");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, send_from_main_whose_error_closes_returns_the_errno);
    tcase_add_test(tc, initiate_send_from_main_whose_error_closes_returns_the_errno);
    tcase_add_test(tc, recv_from_main_whose_error_closes_returns_the_errno);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(reentry_suite());
}
