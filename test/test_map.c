/*
 * test_map.c -- maps and what belongs to them: close_all, counting, the
 * default predicates, logging (CPython's HelperFunctionTests and
 * DispatcherTests), repr and the map's event_base.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <event2/event.h>

#define NPAIRS 10

static int destroys;

static void count_destroy(asyncore_dispatcher *d)
{
    (void)d;
    destroys++;
}

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static const asyncore_handlers idle_handlers = {
    .readable = never,
    .writable = never,
    .destroy = count_destroy,
};

/* A dispatcher over one end of a socketpair; the peer goes to the test. */
static asyncore_dispatcher *pair_dispatcher(asyncore_map *map,
                                            const asyncore_handlers *h,
                                            int *peer)
{
    asyncore_dispatcher *d;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_dispatcher_new(map, h, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    *peer = sv[1];
    return d;
}

/* The peer sees end-of-file once the dispatcher's end is closed. */
static void assert_peer_sees_eof(int peer)
{
    char b;
    ck_assert_int_eq(recv(peer, &b, 1, MSG_DONTWAIT), 0);
}

/* ---- close_all --------------------------------------------------------- */

static void close_all_of(asyncore_map *map)
{
    int peers[NPAIRS], i, fds_before;

    destroys = 0;
    for (i = 0; i < NPAIRS; i++)
        pair_dispatcher(map, &idle_handlers, &peers[i]);
    ck_assert_uint_eq(asyncore_map_count(map), NPAIRS);
    fds_before = th_fd_count();

    ck_assert_int_eq(asyncore_close_all(map), 0);
    ck_assert_uint_eq(asyncore_map_count(map), 0);
    ck_assert_int_eq(destroys, NPAIRS);
    ck_assert_int_eq(th_fd_count(), fds_before - NPAIRS);
    for (i = 0; i < NPAIRS; i++) {
        assert_peer_sees_eof(peers[i]);
        close(peers[i]);
    }
    /* The map stays usable, and looping an empty map returns at once. */
    ck_assert_int_eq(asyncore_loop(map, -1.0, ASYNCORE_FOREVER), 0);
}

START_TEST(close_all_closes_every_dispatcher_of_the_map)
{
    close_all_of(th_map);
}
END_TEST

START_TEST(close_all_of_null_closes_every_dispatcher_of_the_default_map)
{
    int peer;

    /* A dispatcher on another map is not touched. */
    pair_dispatcher(th_map, &idle_handlers, &peer);
    close_all_of(NULL);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(peer);
}
END_TEST

/* ---- dispatchers without a socket ---------------------------------------- */

START_TEST(a_dispatcher_without_a_socket_is_not_counted_but_is_closed_by_close_all)
{
    asyncore_dispatcher *bare;
    int peer;

    destroys = 0;
    bare = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_ptr_nonnull(bare);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    pair_dispatcher(th_map, &idle_handlers, &peer);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);

    ck_assert_int_eq(asyncore_close_all(th_map), 0);
    ck_assert_int_eq(destroys, 2);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    close(peer);
}
END_TEST

START_TEST(map_free_closes_dispatchers_with_and_without_a_socket)
{
    asyncore_map *map = asyncore_map_new(NULL);
    int peer;

    ck_assert_ptr_nonnull(map);
    destroys = 0;
    ck_assert_ptr_nonnull(asyncore_dispatcher_new(map, &idle_handlers, NULL));
    pair_dispatcher(map, &idle_handlers, &peer);
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(destroys, 2);
    assert_peer_sees_eof(peer);
    close(peer);
}
END_TEST

/* NULL is the default map here too (common.h): the README's programs end
 * with asyncore_map_free(NULL) as their clean-up. */
START_TEST(map_free_of_null_frees_the_default_map)
{
    asyncore_map *def = asyncore_map_default();
    int peer, fds_before;

    ck_assert_ptr_nonnull(def);
    destroys = 0;
    pair_dispatcher(NULL, &idle_handlers, &peer);
    ck_assert_uint_eq(asyncore_map_count(NULL), 1);
    fds_before = th_fd_count();
    ck_assert_int_eq(asyncore_map_free(NULL), 0);
    ck_assert_int_eq(destroys, 1);
    assert_peer_sees_eof(peer);
    /* Its socket and the map's own descriptors (base, wake-up) are gone. */
    ck_assert_int_lt(th_fd_count(), fds_before - 1);
    close(peer);
    /* Without a default map it creates none just to free it. */
    fds_before = th_fd_count();
    ck_assert_int_eq(asyncore_map_free(NULL), 0);
    ck_assert_int_eq(th_fd_count(), fds_before);
    /* A new default map is made when next asked for. */
    ck_assert_ptr_nonnull(asyncore_map_default());
}
END_TEST

/* ---- map_free from inside the map's loop ----------------------------------- */

static int free_rc, free_errno;

static void free_own_map(asyncore_dispatcher *d)
{
    errno = 0;
    free_rc = asyncore_map_free(asyncore_dispatcher_map(d));
    free_errno = errno;
    asyncore_close(d);
}

static const asyncore_handlers map_freeing_writer = {
    .handle_write = free_own_map,
    .readable = never,
};

START_TEST(map_free_inside_its_loop_fails_with_ebusy_and_frees_nothing)
{
    int peer1, peer2;

    pair_dispatcher(th_map, &map_freeing_writer, &peer1);
    pair_dispatcher(th_map, &idle_handlers, &peer2);
    free_rc = 0;
    ck_assert_int_eq(asyncore_loop(th_map, 0.01, 1), 0);
    ck_assert_int_eq(free_rc, -1);
    ck_assert_int_eq(free_errno, EBUSY);
    /* Only the dispatcher that closed itself is gone. */
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    close(peer1);
    close(peer2);
}
END_TEST

/* ---- default predicates ------------------------------------------------------ */

static int reads, writes;

static void count_read(asyncore_dispatcher *d)
{
    char buf[16];
    reads++;
    (void)asyncore_recv(d, buf, sizeof(buf));
}

static void count_write(asyncore_dispatcher *d)
{
    (void)d;
    writes++;
}

static const asyncore_handlers default_predicates = {
    .handle_read = count_read,
    .handle_write = count_write,
};

START_TEST(readable_and_writable_default_to_true)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    int peer;

    ck_assert_int_eq(asyncore_default_readable(d), 1);
    ck_assert_int_eq(asyncore_default_writable(d), 1);
    asyncore_close(d);

    /* A table without predicates is read from and written to. */
    reads = writes = 0;
    pair_dispatcher(th_map, &default_predicates, &peer);
    ck_assert_int_eq(send(peer, "x", 1, 0), 1);
    ck_assert_int_eq(asyncore_loop(th_map, 0.5, 1), 0);
    ck_assert_int_eq(reads, 1);
    ck_assert_int_eq(writes, 1);
    close(peer);
}
END_TEST

/* ---- log_info -------------------------------------------------------------------- */

START_TEST(log_info_sends_type_and_message_lines_to_the_sink)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);

    th_log_capture(th_map);
    asyncore_log_info(d, ASYNCORE_LOG_INFO, "Have you got anything without %s?",
                      "spam");
    asyncore_log_info(d, ASYNCORE_LOG_ERROR, "THAT'S got spam in it!");
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "ignored by default");
    ck_assert_str_eq(th_log_text(),
                     "info: Have you got anything without spam?\n"
                     "error: THAT'S got spam in it!\n");

    th_log_reset();
    ck_assert_int_eq(asyncore_dispatcher_set_ignore_log_types(d, 0), 0);
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "egg bacon %d spam", 2);
    ck_assert_str_eq(th_log_text(), "warning: egg bacon 2 spam\n");

    /* Ignoring info and errors too leaves nothing. */
    th_log_reset();
    ck_assert_int_eq(asyncore_dispatcher_set_ignore_log_types(
                         d, ASYNCORE_LOG_INFO | ASYNCORE_LOG_WARNING |
                                ASYNCORE_LOG_ERROR), 0);
    asyncore_log_info(d, ASYNCORE_LOG_INFO, "a");
    asyncore_log_info(d, ASYNCORE_LOG_WARNING, "b");
    asyncore_log_info(d, ASYNCORE_LOG_ERROR, "c");
    ck_assert_str_eq(th_log_text(), "");
    ck_assert_str_eq(asyncore_log_type_name((asyncore_log_type)64), "unknown");
}
END_TEST

static const asyncore_dispatcher *sink_d;
static void *sink_arg;

static void recording_sink(const asyncore_dispatcher *d, asyncore_log_type type,
                           const char *msg, void *arg)
{
    (void)type;
    (void)msg;
    sink_d = d;
    sink_arg = arg;
}

START_TEST(the_sink_gets_the_dispatcher_and_its_argument)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    int tag;

    ck_assert_int_eq(asyncore_map_set_log(th_map, recording_sink, &tag), 0);
    asyncore_log_info(d, ASYNCORE_LOG_INFO, "x");
    ck_assert_ptr_eq(sink_d, d);
    ck_assert_ptr_eq(sink_arg, &tag);

    /* With no dispatcher, the default map's sink is used. */
    sink_d = d;
    sink_arg = NULL;
    ck_assert_int_eq(asyncore_map_set_log(NULL, recording_sink, &tag), 0);
    asyncore_log_info(NULL, ASYNCORE_LOG_INFO, "y");
    ck_assert_ptr_null(sink_d);
    ck_assert_ptr_eq(sink_arg, &tag);
}
END_TEST

/* Run @fn with stderr redirected to a temporary file; return what it wrote. */
static char *capture_stderr(void (*fn)(asyncore_dispatcher *),
                            asyncore_dispatcher *d)
{
    static char out[1024];
    FILE *tmp = tmpfile();
    int saved;
    ssize_t n;

    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    fn(d);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    n = pread(fileno(tmp), out, sizeof(out) - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static void log_two_lines(asyncore_dispatcher *d)
{
    asyncore_log_info(d, ASYNCORE_LOG_INFO, "Lovely spam!");
    asyncore_log_info(d, ASYNCORE_LOG_ERROR, "Wonderful spam!");
}

START_TEST(the_default_sink_writes_lines_to_stderr)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);

    ck_assert_str_eq(capture_stderr(log_two_lines, d),
                     "info: Lovely spam!\nerror: Wonderful spam!\n");
    /* Setting a NULL sink restores the default. */
    th_log_capture(th_map);
    ck_assert_int_eq(asyncore_map_set_log(th_map, NULL, NULL), 0);
    ck_assert_str_eq(capture_stderr(log_two_lines, d),
                     "info: Lovely spam!\nerror: Wonderful spam!\n");
    ck_assert_str_eq(th_log_text(), "");
}
END_TEST

/* ---- the default hooks' warnings -------------------------------------------------- */

static void call_unhandled_defaults(asyncore_dispatcher *d)
{
    asyncore_default_handle_expt(d);
    asyncore_default_handle_read(d);
    asyncore_default_handle_write(d);
    asyncore_default_handle_connect(d);
}

START_TEST(default_hooks_warn_of_unhandled_events_when_warnings_are_shown)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);

    th_log_capture(th_map);
    /* Warnings are ignored by default. */
    call_unhandled_defaults(d);
    ck_assert_str_eq(th_log_text(), "");

    ck_assert_int_eq(asyncore_dispatcher_set_ignore_log_types(d, 0), 0);
    call_unhandled_defaults(d);
    ck_assert_str_eq(th_log_text(),
                     "warning: unhandled incoming priority event\n"
                     "warning: unhandled read event\n"
                     "warning: unhandled write event\n"
                     "warning: unhandled connect event\n");
}
END_TEST

START_TEST(default_handle_close_warns_and_closes)
{
    asyncore_dispatcher *d;
    int peer;

    destroys = 0;
    th_log_capture(th_map);
    d = pair_dispatcher(th_map, &idle_handlers, &peer);
    ck_assert_int_eq(asyncore_dispatcher_set_ignore_log_types(d, 0), 0);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    asyncore_default_handle_close(d);
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    assert_peer_sees_eof(peer);
    ck_assert_str_eq(th_log_text(), "warning: unhandled close event\n");
    ck_assert_int_eq(destroys, 0);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(destroys, 1);
    close(peer);
}
END_TEST

START_TEST(default_handle_accepted_closes_the_connection_and_warns)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    int sv[2];

    th_log_capture(th_map);
    ck_assert_int_eq(asyncore_dispatcher_set_ignore_log_types(d, 0), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    asyncore_default_handle_accepted(d, sv[0], NULL, 0);
    /* Checked before anything else can reuse the number. */
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    assert_peer_sees_eof(sv[1]);
    ck_assert_str_eq(th_log_text(), "warning: unhandled accepted event\n");
    close(sv[1]);
}
END_TEST

START_TEST(map_ignore_log_types_applies_to_dispatchers_created_afterwards)
{
    asyncore_dispatcher *before, *after, *quiet;

    th_log_capture(th_map);
    before = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_map_set_ignore_log_types(th_map, 0), 0);
    after = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    asyncore_log_info(before, ASYNCORE_LOG_WARNING, "before");
    asyncore_log_info(after, ASYNCORE_LOG_WARNING, "after");
    ck_assert_str_eq(th_log_text(), "warning: after\n");

    th_log_reset();
    ck_assert_int_eq(asyncore_map_set_ignore_log_types(th_map, ASYNCORE_LOG_INFO), 0);
    quiet = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    asyncore_log_info(quiet, ASYNCORE_LOG_INFO, "hidden");
    asyncore_log_info(quiet, ASYNCORE_LOG_WARNING, "shown");
    asyncore_log_info(after, ASYNCORE_LOG_INFO, "still shown");
    ck_assert_str_eq(th_log_text(), "warning: shown\ninfo: still shown\n");
}
END_TEST

/* ---- repr -------------------------------------------------------------------------- */

static void expect_repr(asyncore_dispatcher *d, const char *middle)
{
    char want[256], got[256];
    int n;

    snprintf(want, sizeof(want), "<dispatcher%s fd=%d at %p>", middle,
             asyncore_dispatcher_fd(d), (void *)d);
    n = asyncore_dispatcher_repr(d, got, sizeof(got));
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(n, (int)strlen(want));
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

START_TEST(repr_shows_state_address_and_fd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *listener, *conn, *bare;
    char middle[128];
    int client;

    bare = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    expect_repr(bare, "");

    /* A listener shows its addr, the address given to bind (as asyncore's
     * repr does): here port 0, the kernel picked the real one. */
    listener = th_listener(th_map, AF_INET, &idle_handlers, NULL, &ss, &len);
    expect_repr(listener, " listening 127.0.0.1:0");

    /* An adopted connected socket shows its peer. */
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(client, 0);
    ck_assert_int_eq(connect(client, (struct sockaddr *)&ss, len), 0);
    conn = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    ck_assert_int_eq(asyncore_set_socket(conn, client), 0);
    snprintf(middle, sizeof(middle), " connected 127.0.0.1:%u", port_of(&ss));
    expect_repr(conn, middle);

    ck_assert_int_eq(asyncore_dispatcher_hold(conn), 0);
    ck_assert_int_eq(asyncore_close(conn), 0);
    snprintf(middle, sizeof(middle), " closed 127.0.0.1:%u", port_of(&ss));
    expect_repr(conn, middle);
    asyncore_dispatcher_release(conn);
}
END_TEST

START_TEST(repr_of_ipv6_and_unix_addresses)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    char middle[200];

    if (th_has_ipv6()) {
        d = th_listener(th_map, AF_INET6, &idle_handlers, NULL, &ss, &len);
        expect_repr(d, " listening [::1]:0");
        /* A connected one shows its peer's port. */
        d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
        ck_assert_int_eq(asyncore_set_socket(d, th_raw_connect(&ss, len)), 0);
        snprintf(middle, sizeof(middle), " connected [::1]:%u", port_of(&ss));
        expect_repr(d, middle);
    }
    d = th_listener(th_map, AF_UNIX, &idle_handlers, NULL, &ss, &len);
    snprintf(middle, sizeof(middle), " listening %s",
             ((struct sockaddr_un *)&ss)->sun_path);
    expect_repr(d, middle);
}
END_TEST

START_TEST(repr_truncates_like_snprintf)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    char full[256], small[8];
    int n;

    d = th_listener(th_map, AF_INET, &idle_handlers, NULL, &ss, &len);
    n = asyncore_dispatcher_repr(d, full, sizeof(full));
    ck_assert_int_gt(n, (int)sizeof(small));
    memset(small, 'Z', sizeof(small));
    ck_assert_int_eq(asyncore_dispatcher_repr(d, small, sizeof(small)), n);
    ck_assert_int_eq(small[sizeof(small) - 1], '\0');
    ck_assert_int_eq(strncmp(small, full, sizeof(small) - 1), 0);
    /* Size 0 with no buffer asks for the length only. */
    ck_assert_int_eq(asyncore_dispatcher_repr(d, NULL, 0), n);
}
END_TEST

/* ---- the map's event_base ---------------------------------------------------------- */

START_TEST(map_base_is_the_base_passed_in_or_its_own)
{
    struct event_base *base = event_base_new();
    asyncore_map *mine, *other;
    int peer;

    ck_assert_ptr_nonnull(base);
    mine = asyncore_map_new(base);
    ck_assert_ptr_nonnull(mine);
    ck_assert_ptr_eq(asyncore_map_base(mine), base);
    /* A dispatcher on it is served by the caller's base. */
    writes = 0;
    pair_dispatcher(mine, &default_predicates, &peer);
    ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
    ck_assert_int_eq(writes, 1);
    ck_assert_int_eq(asyncore_map_free(mine), 0);
    /* The caller's base survives the map. */
    ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    event_base_free(base);
    close(peer);

    other = asyncore_map_new(NULL);
    ck_assert_ptr_nonnull(other);
    ck_assert_ptr_nonnull(asyncore_map_base(other));
    ck_assert_ptr_nonnull(asyncore_map_base(th_map));
    ck_assert_ptr_ne(asyncore_map_base(other), asyncore_map_base(th_map));
    ck_assert_ptr_eq(asyncore_map_base(NULL),
                     asyncore_map_base(asyncore_map_default()));
    ck_assert_int_eq(asyncore_map_free(other), 0);
}
END_TEST

START_TEST(two_maps_on_one_base_are_independent)
{
    struct event_base *base = event_base_new();
    asyncore_map *a, *b;
    int peer_a, peer_b;

    ck_assert_ptr_nonnull(base);
    a = asyncore_map_new(base);
    b = asyncore_map_new(base);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    destroys = 0;
    pair_dispatcher(a, &idle_handlers, &peer_a);
    pair_dispatcher(b, &idle_handlers, &peer_b);
    ck_assert_int_eq(asyncore_close_all(a), 0);
    ck_assert_int_eq(destroys, 1);
    ck_assert_uint_eq(asyncore_map_count(a), 0);
    ck_assert_uint_eq(asyncore_map_count(b), 1);
    ck_assert_int_eq(asyncore_map_free(a), 0);
    ck_assert_int_eq(asyncore_map_free(b), 0);
    ck_assert_int_eq(destroys, 2);
    event_base_free(base);
    close(peer_a);
    close(peer_b);
}
END_TEST

static Suite *map_suite(void)
{
    Suite *s = suite_create("map");
    TCase *tc = tcase_create("map");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, close_all_closes_every_dispatcher_of_the_map);
    tcase_add_test(tc, close_all_of_null_closes_every_dispatcher_of_the_default_map);
    tcase_add_test(tc, a_dispatcher_without_a_socket_is_not_counted_but_is_closed_by_close_all);
    tcase_add_test(tc, map_free_closes_dispatchers_with_and_without_a_socket);
    tcase_add_test(tc, map_free_of_null_frees_the_default_map);
    tcase_add_test(tc, map_free_inside_its_loop_fails_with_ebusy_and_frees_nothing);
    tcase_add_test(tc, readable_and_writable_default_to_true);
    tcase_add_test(tc, log_info_sends_type_and_message_lines_to_the_sink);
    tcase_add_test(tc, the_sink_gets_the_dispatcher_and_its_argument);
    tcase_add_test(tc, the_default_sink_writes_lines_to_stderr);
    tcase_add_test(tc, default_hooks_warn_of_unhandled_events_when_warnings_are_shown);
    tcase_add_test(tc, default_handle_close_warns_and_closes);
    tcase_add_test(tc, default_handle_accepted_closes_the_connection_and_warns);
    tcase_add_test(tc, map_ignore_log_types_applies_to_dispatchers_created_afterwards);
    tcase_add_test(tc, repr_shows_state_address_and_fd);
    tcase_add_test(tc, repr_of_ipv6_and_unix_addresses);
    tcase_add_test(tc, repr_truncates_like_snprintf);
    tcase_add_test(tc, map_base_is_the_base_passed_in_or_its_own);
    tcase_add_test(tc, two_maps_on_one_base_are_independent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(map_suite());
}
