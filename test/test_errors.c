/*
 * test_errors.c -- bad input gets -1 (or NULL) with the errno the headers
 * document, never a crash, and loses nothing: after a refused call the
 * dispatcher, its descriptor and the caller's descriptors are as before.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/un.h>

/* Assert that @call returns @rc with errno @err. */
#define EXPECT_ERR(call, rc, err)                                          \
    do {                                                                   \
        errno = 0;                                                         \
        ck_assert_int_eq((call), (rc));                                    \
        ck_assert_int_eq(errno, (err));                                    \
    } while (0)

#define EXPECT_NULL(call, err)                                             \
    do {                                                                   \
        errno = 0;                                                         \
        ck_assert_ptr_null(call);                                          \
        ck_assert_int_eq(errno, (err));                                    \
    } while (0)

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

static const asyncore_handlers idle = {
    .readable = never,
    .writable = never,
    .destroy = count_destroy,
};

static asyncore_dispatcher *new_idle(void)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle, NULL);
    ck_assert_ptr_nonnull(d);
    return d;
}

static asyncore_dispatcher *new_socket(int family)
{
    asyncore_dispatcher *d = new_idle();
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    return d;
}

/* True if @fd is an open descriptor. */
static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* ---- constructors --------------------------------------------------------- */

START_TEST(constructors_refuse_null_handlers_and_add_nothing)
{
    int fds[2];

    EXPECT_NULL(asyncore_dispatcher_new(th_map, NULL, NULL), EINVAL);
    EXPECT_NULL(asyncore_dispatcher_new_ex(th_map, NULL, &idle, NULL, 0), EINVAL);
    EXPECT_NULL(asyncore_dispatcher_new_ex(th_map, &idle, NULL, NULL, (size_t)-1),
                EINVAL);
    EXPECT_NULL(asyncore_dispatcher_with_send_new(th_map, NULL, NULL), EINVAL);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    EXPECT_NULL(asyncore_file_dispatcher_new(th_map, NULL, NULL, fds[0]), EINVAL);
    close(fds[0]);
    close(fds[1]);

    /* Nothing was added: close_all finds no dispatcher to destroy. */
    destroys = 0;
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    ck_assert_int_eq(asyncore_close_all(th_map), 0);
    ck_assert_int_eq(destroys, 0);
}
END_TEST

START_TEST(file_dispatcher_refuses_bad_descriptors)
{
    int fds[2], closed_fd;

    EXPECT_NULL(asyncore_file_dispatcher_new(th_map, &idle, NULL, -1), EINVAL);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    closed_fd = fds[0];
    close(fds[0]);
    close(fds[1]);
    EXPECT_NULL(asyncore_file_dispatcher_new(th_map, &idle, NULL, closed_fd), EBADF);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
}
END_TEST

/* ---- a NULL dispatcher ---------------------------------------------------- */

START_TEST(methods_refuse_a_null_dispatcher_with_einval)
{
    struct sockaddr_storage ss;
    socklen_t len = th_loopback(AF_INET, &ss);
    char buf[8];
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_ERR(asyncore_create_socket(NULL, AF_INET, SOCK_STREAM), -1, EINVAL);
    EXPECT_ERR(asyncore_set_socket(NULL, sv[0]), -1, EINVAL);
    ck_assert(is_open(sv[0])); /* still the caller's */
    EXPECT_ERR(asyncore_set_reuse_addr(NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_set_nodelay(NULL, 1), -1, EINVAL);
    EXPECT_ERR(asyncore_bind(NULL, (struct sockaddr *)&ss, len), -1, EINVAL);
    EXPECT_ERR(asyncore_listen(NULL, 5), -1, EINVAL);
    EXPECT_ERR(asyncore_connect(NULL, (struct sockaddr *)&ss, len), -1, EINVAL);
    EXPECT_ERR(asyncore_bind_host(NULL, "127.0.0.1", 0), -1, EINVAL);
    EXPECT_ERR(asyncore_connect_host(NULL, "127.0.0.1", 1), -1, EINVAL);
    EXPECT_ERR(asyncore_accept(NULL, NULL, NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_send(NULL, "x", 1), -1, EINVAL);
    EXPECT_ERR(asyncore_recv(NULL, buf, sizeof(buf)), -1, EINVAL);
    EXPECT_ERR(asyncore_close(NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_update_interest(NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_initiate_send(NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_set_send_limit(NULL, 1), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_set_user_data(NULL, buf), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_set_ignore_log_types(NULL, 0), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_hold(NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_repr(NULL, buf, sizeof(buf)), -1, EINVAL);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(hooks_and_defaults_accept_a_null_dispatcher)
{
    /* Nothing to check but that none of these crashes or logs to the
     * default map's sink more than the warnings it ignores. */
    th_log_capture(NULL);
    asyncore_dispatcher_release(NULL);
    asyncore_handle_close(NULL);
    asyncore_handle_error(NULL, EIO, "op");
    asyncore_default_handle_read(NULL);
    asyncore_default_handle_write(NULL);
    asyncore_default_handle_expt(NULL);
    asyncore_default_handle_connect(NULL);
    asyncore_default_handle_accept(NULL);
    asyncore_default_handle_accepted(NULL, -1, NULL, 0);
    asyncore_default_handle_close(NULL);
    asyncore_default_handle_error(NULL, EIO, "op");
    asyncore_with_send_handle_write(NULL);
    ck_assert_int_eq(asyncore_with_send_writable(NULL), 0);
    ck_assert_int_eq(asyncore_default_readable(NULL), 1);
    ck_assert_int_eq(asyncore_default_writable(NULL), 1);
    asyncore_log_info(NULL, ASYNCORE_LOG_INFO, NULL);
    ck_assert_str_eq(th_log_text(), "");
}
END_TEST

START_TEST(accessors_of_a_null_dispatcher_return_neutral_values)
{
    socklen_t len = 99;

    ck_assert_int_eq(asyncore_dispatcher_connected(NULL), 0);
    ck_assert_int_eq(asyncore_dispatcher_accepting(NULL), 0);
    ck_assert_int_eq(asyncore_dispatcher_connecting(NULL), 0);
    ck_assert_int_eq(asyncore_dispatcher_closed(NULL), 0);
    ck_assert_int_eq(asyncore_dispatcher_fd(NULL), -1);
    ck_assert_int_eq(asyncore_dispatcher_family(NULL), -1);
    ck_assert_ptr_null(asyncore_dispatcher_addr(NULL, &len));
    ck_assert_int_eq(len, 0);
    ck_assert_ptr_null(asyncore_dispatcher_addr(NULL, NULL));
    ck_assert_ptr_null(asyncore_dispatcher_map(NULL));
    ck_assert_ptr_null(asyncore_dispatcher_user_data(NULL));
    ck_assert_ptr_null(asyncore_dispatcher_area(NULL));
    ck_assert_int_eq(asyncore_dispatcher_last_error(NULL), 0);
    ck_assert_uint_eq(asyncore_send_pending(NULL), 0);
}
END_TEST

/* ---- maps and the loop ---------------------------------------------------- */

START_TEST(map_functions_refuse_bad_arguments)
{
    EXPECT_ERR(asyncore_map_set_ignore_log_types(th_map, 0x100), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_set_ignore_log_types(new_idle(), 0x100), -1,
               EINVAL);
    EXPECT_ERR(asyncore_loop(th_map, NAN, 1), -1, EINVAL);
    /* NULL is the default map, not an error. */
    ck_assert_int_eq(asyncore_map_free(NULL), 0);
    ck_assert_int_eq(asyncore_loop_stop(NULL), 0);
    ck_assert_int_eq(asyncore_map_set_reevaluate(NULL, 0), 0);
    ck_assert_int_eq(asyncore_map_set_log(NULL, NULL, NULL), 0);
    ck_assert_ptr_nonnull(asyncore_map_base(NULL));
    ck_assert_uint_eq(asyncore_map_count(NULL), 0);
    ck_assert_int_eq(asyncore_close_all(NULL), 0);
    ck_assert_int_eq(asyncore_loop(NULL, 0.0, 1), 0);
}
END_TEST

/* ---- buffer and address arguments ------------------------------------------ */

START_TEST(null_buffers_and_addresses_fail_with_einval)
{
    asyncore_dispatcher *d = new_socket(AF_INET);
    asyncore_dispatcher *ws = asyncore_dispatcher_with_send_new(th_map, &idle, NULL);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char buf[8];

    ck_assert_ptr_nonnull(ws);
    EXPECT_ERR(asyncore_bind(d, NULL, sizeof(struct sockaddr_in)), -1, EINVAL);
    th_loopback(AF_INET, &ss);
    EXPECT_ERR(asyncore_bind(d, (struct sockaddr *)&ss, 1), -1, EINVAL);
    EXPECT_ERR(asyncore_connect(d, NULL, sizeof(struct sockaddr_in)), -1, EINVAL);
    EXPECT_ERR(asyncore_bind_host(d, NULL, 0), -1, EINVAL);
    EXPECT_ERR(asyncore_connect_host(d, NULL, 80), -1, EINVAL);
    EXPECT_ERR(asyncore_send(d, NULL, 5), -1, EINVAL);
    EXPECT_ERR(asyncore_send(ws, NULL, 5), -1, EINVAL);
    EXPECT_ERR(asyncore_recv(d, NULL, 5), -1, EINVAL);
    EXPECT_ERR(asyncore_recv(d, buf, 0), -1, EINVAL);
    EXPECT_ERR(asyncore_dispatcher_repr(d, NULL, 10), -1, EINVAL);
    /* addr and addrlen go together. */
    ck_assert_int_eq(asyncore_bind(d, (struct sockaddr *)&ss,
                                   sizeof(struct sockaddr_in)), 0);
    ck_assert_int_eq(asyncore_listen(d, 5), 0);
    EXPECT_ERR(asyncore_accept(d, (struct sockaddr *)&ss, NULL), -1, EINVAL);
    EXPECT_ERR(asyncore_accept(d, NULL, &len), -1, EINVAL);
    /* Nothing was lost: nothing queued, the listener still listens. */
    ck_assert_uint_eq(asyncore_send_pending(ws), 0);
    ck_assert(asyncore_dispatcher_accepting(d));
    EXPECT_ERR(asyncore_accept(d, NULL, NULL), -1, EAGAIN);
}
END_TEST

START_TEST(recv_of_zero_bytes_fails_with_einval_and_reads_nothing)
{
    asyncore_dispatcher *d = new_idle();
    char buf[8];
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert_int_eq(send(sv[1], "abc", 3, 0), 3);
    EXPECT_ERR(asyncore_recv(d, buf, 0), -1, EINVAL);
    /* Not taken for end of file: the dispatcher is open, data intact. */
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_recv(d, buf, sizeof(buf)), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    close(sv[1]);
}
END_TEST

/* ---- a dispatcher with no socket ------------------------------------------- */

START_TEST(socket_methods_without_a_socket_fail_with_enotsock)
{
    asyncore_dispatcher *d = new_idle();
    struct sockaddr_storage ss;
    socklen_t len = th_loopback(AF_INET, &ss);
    char buf[8];
    int fds[2];
    asyncore_dispatcher *f;

    EXPECT_ERR(asyncore_set_reuse_addr(d), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_set_nodelay(d, 1), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_bind(d, (struct sockaddr *)&ss, len), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_listen(d, 5), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_connect(d, (struct sockaddr *)&ss, len), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_accept(d, NULL, NULL), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_send(d, "x", 1), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_recv(d, buf, sizeof(buf)), -1, ENOTSOCK);
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* A file dispatcher has a descriptor but no socket. */
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    f = asyncore_file_dispatcher_new(th_map, &idle, NULL, fds[0]);
    ck_assert_ptr_nonnull(f);
    close(fds[0]);
    close(fds[1]);
    EXPECT_ERR(asyncore_set_reuse_addr(f), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_bind(f, (struct sockaddr *)&ss, len), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_listen(f, 5), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_connect(f, (struct sockaddr *)&ss, len), -1, ENOTSOCK);
    EXPECT_ERR(asyncore_accept(f, NULL, NULL), -1, ENOTSOCK);
}
END_TEST

/* ---- create_socket and set_socket ------------------------------------------- */

START_TEST(create_socket_twice_or_of_a_bad_family_fails)
{
    asyncore_dispatcher *d = new_idle();
    int fd;

    EXPECT_ERR(asyncore_create_socket(d, AF_PACKET, SOCK_STREAM), -1, EAFNOSUPPORT);
    EXPECT_ERR(asyncore_create_socket(d, 12345, SOCK_STREAM), -1, EAFNOSUPPORT);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    fd = asyncore_dispatcher_fd(d);
    EXPECT_ERR(asyncore_create_socket(d, AF_INET, SOCK_STREAM), -1, EISCONN);
    /* The first socket is kept. */
    ck_assert_int_eq(asyncore_dispatcher_fd(d), fd);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
}
END_TEST

START_TEST(set_socket_refuses_what_is_not_an_open_socket)
{
    asyncore_dispatcher *d = new_idle();
    int fds[2], sv[2], closed_fd, flags;

    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    flags = fcntl(fds[0], F_GETFL);
    EXPECT_ERR(asyncore_set_socket(d, fds[0]), -1, ENOTSOCK);
    /* The pipe is still open, untouched and the caller's. */
    ck_assert(is_open(fds[0]));
    ck_assert_int_eq(fcntl(fds[0], F_GETFL), flags);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    closed_fd = fds[0];
    close(fds[0]);
    close(fds[1]);
    EXPECT_ERR(asyncore_set_socket(d, closed_fd), -1, EBADF);
    EXPECT_ERR(asyncore_set_socket(d, -1), -1, EBADF);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* The dispatcher is still usable; a second socket is refused and
     * stays the caller's. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    EXPECT_ERR(asyncore_set_socket(d, sv[1]), -1, EISCONN);
    ck_assert(is_open(sv[1]));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- bind, listen, accept, connect -------------------------------------------- */

START_TEST(bind_or_connect_to_another_family_fails_with_eafnosupport)
{
    asyncore_dispatcher *d = new_socket(AF_INET);
    struct sockaddr_storage ss6, ssu, ss4;
    socklen_t len6 = th_loopback(AF_INET6, &ss6);
    socklen_t lenu = th_loopback(AF_UNIX, &ssu);
    socklen_t len4 = th_loopback(AF_INET, &ss4);

    EXPECT_ERR(asyncore_bind(d, (struct sockaddr *)&ss6, len6), -1, EAFNOSUPPORT);
    EXPECT_ERR(asyncore_bind(d, (struct sockaddr *)&ssu, lenu), -1, EAFNOSUPPORT);
    EXPECT_ERR(asyncore_connect(d, (struct sockaddr *)&ss6, len6), -1, EAFNOSUPPORT);
    ck_assert_ptr_null(asyncore_dispatcher_addr(d, NULL));
    /* The right family still binds. */
    ck_assert_int_eq(asyncore_bind(d, (struct sockaddr *)&ss4, len4), 0);
}
END_TEST

START_TEST(listen_before_bind_fails_with_edestaddrreq)
{
    int family = th_family(_i);
    asyncore_dispatcher *d;

    if (th_skip_family(family))
        return;
    d = new_socket(family);
    EXPECT_ERR(asyncore_listen(d, 5), -1, EDESTADDRREQ);
    ck_assert(!asyncore_dispatcher_accepting(d));
}
END_TEST

START_TEST(bind_to_a_port_in_use_fails_with_eaddrinuse)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *d;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    th_listener(th_map, AF_INET, &idle, NULL, &ss, &len);
    d = new_idle();
    EXPECT_ERR(asyncore_bind_host(d, "127.0.0.1", ntohs(in->sin_port)), -1,
               EADDRINUSE);
    /* Nothing lost: the dispatcher can still bind elsewhere. */
    ck_assert(!asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_bind_host(d, "127.0.0.1", 0), 0);
    ck_assert_int_eq(asyncore_dispatcher_family(d), AF_INET);
}
END_TEST

START_TEST(accept_on_a_non_listener_fails_with_einval)
{
    asyncore_dispatcher *d = new_socket(AF_INET);
    int sv[2];
    asyncore_dispatcher *c = new_idle();

    EXPECT_ERR(asyncore_accept(d, NULL, NULL), -1, EINVAL);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(c, sv[0]), 0);
    EXPECT_ERR(asyncore_accept(c, NULL, NULL), -1, EINVAL);
    ck_assert(!asyncore_dispatcher_closed(c));
    close(sv[1]);
}
END_TEST

START_TEST(connect_while_connected_or_listening_fails_with_eisconn)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *listener, *c;
    int sv[2], conn, listen_fd;

    /* Adopted connected socket. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c = new_idle();
    ck_assert_int_eq(asyncore_set_socket(c, sv[0]), 0);
    len = th_loopback(AF_UNIX, &ss);
    EXPECT_ERR(asyncore_connect(c, (struct sockaddr *)&ss, len), -1, EISCONN);
    close(sv[1]);

    /* Listening. */
    listener = th_listener(th_map, AF_INET, &idle, NULL, &ss, &len);
    EXPECT_ERR(asyncore_connect(listener, (struct sockaddr *)&ss, len), -1, EISCONN);
    ck_assert(asyncore_dispatcher_accepting(listener));

    /* Connecting (TCP completes in the background), then connected. */
    listen_fd = th_raw_listener(AF_INET, &ss, &len);
    c = new_socket(AF_INET);
    ck_assert_int_eq(asyncore_connect(c, (struct sockaddr *)&ss, len), 0);
    EXPECT_ERR(asyncore_connect(c, (struct sockaddr *)&ss, len), -1, EISCONN);
    conn = th_raw_accept(listen_fd, 3.0);
    ck_assert_int_ge(conn, 0);
    close(conn);
    close(listen_fd);
}
END_TEST

/* ---- bind_host and connect_host ---------------------------------------------- */

START_TEST(host_functions_refuse_bad_ports_hosts_and_paths)
{
    asyncore_dispatcher *d = new_idle();
    asyncore_dispatcher *u;
    char path[200];

    EXPECT_ERR(asyncore_bind_host(d, "127.0.0.1", 70000), -1, EINVAL);
    EXPECT_ERR(asyncore_connect_host(d, "127.0.0.1", 70000), -1, EINVAL);
    EXPECT_ERR(asyncore_bind_host(d, "no-such-host.invalid", 80), -1, EHOSTUNREACH);
    EXPECT_ERR(asyncore_connect_host(d, "no-such-host.invalid", 80), -1,
               EHOSTUNREACH);
    /* No socket was left behind by the failed look-ups. */
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    u = new_socket(AF_UNIX);
    EXPECT_ERR(asyncore_bind_host(u, path, 0), -1, ENAMETOOLONG);
    EXPECT_ERR(asyncore_connect_host(u, path, 0), -1, ENAMETOOLONG);
    EXPECT_ERR(asyncore_bind_host(u, "", 0), -1, EINVAL);
    /* Without a socket, a path would make an AF_UNIX one; a refused path
     * leaves none behind. */
    EXPECT_ERR(asyncore_bind_host(d, path, 0), -1, ENAMETOOLONG);
    ck_assert_int_eq(asyncore_dispatcher_family(d), -1);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
}
END_TEST

/* ---- a closed dispatcher ----------------------------------------------------- */

START_TEST(methods_on_a_closed_dispatcher_fail_with_ebadf_and_leak_nothing)
{
    asyncore_dispatcher *d, *ws;
    struct sockaddr_storage ss;
    socklen_t len = th_loopback(AF_INET, &ss);
    char buf[8];
    int fds_before = th_fd_count(), sv[2];

    destroys = 0;
    d = new_socket(AF_INET);
    ws = asyncore_dispatcher_with_send_new(th_map, &idle, NULL);
    ck_assert_ptr_nonnull(ws);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert_int_eq(asyncore_dispatcher_hold(ws), 0);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(asyncore_close(ws), 0);
    ck_assert_int_eq(th_fd_count(), fds_before);

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_ERR(asyncore_create_socket(d, AF_INET, SOCK_STREAM), -1, EBADF);
    EXPECT_ERR(asyncore_set_socket(d, sv[0]), -1, EBADF);
    ck_assert(is_open(sv[0])); /* still the caller's */
    EXPECT_ERR(asyncore_set_reuse_addr(d), -1, EBADF);
    EXPECT_ERR(asyncore_set_nodelay(d, 1), -1, EBADF);
    EXPECT_ERR(asyncore_bind(d, (struct sockaddr *)&ss, len), -1, EBADF);
    EXPECT_ERR(asyncore_listen(d, 5), -1, EBADF);
    EXPECT_ERR(asyncore_connect(d, (struct sockaddr *)&ss, len), -1, EBADF);
    EXPECT_ERR(asyncore_bind_host(d, "127.0.0.1", 0), -1, EBADF);
    EXPECT_ERR(asyncore_connect_host(d, "127.0.0.1", 1), -1, EBADF);
    EXPECT_ERR(asyncore_accept(d, NULL, NULL), -1, EBADF);
    EXPECT_ERR(asyncore_send(d, "x", 1), -1, EBADF);
    EXPECT_ERR(asyncore_recv(d, buf, sizeof(buf)), -1, EBADF);
    EXPECT_ERR(asyncore_update_interest(d), -1, EBADF);
    EXPECT_ERR(asyncore_close(d), -1, EBADF);
    EXPECT_ERR(asyncore_send(ws, "x", 1), -1, EBADF);
    EXPECT_ERR(asyncore_initiate_send(ws), -1, EBADF);
    EXPECT_ERR(asyncore_set_send_limit(ws, 1), -1, EBADF);
    ck_assert_uint_eq(asyncore_send_pending(ws), 0);

    /* Accessors still answer, without a descriptor. */
    ck_assert(asyncore_dispatcher_closed(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_ptr_eq(asyncore_dispatcher_map(d), th_map);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);

    /* Nothing was created by the refused calls. */
    ck_assert_int_eq(th_fd_count(), fds_before + 2);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(destroys, 0);
    asyncore_dispatcher_release(d);
    asyncore_dispatcher_release(ws);
    ck_assert_int_eq(destroys, 2);
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 30); /* the name look-ups may be slow */
    tcase_add_test(tc, constructors_refuse_null_handlers_and_add_nothing);
    tcase_add_test(tc, file_dispatcher_refuses_bad_descriptors);
    tcase_add_test(tc, methods_refuse_a_null_dispatcher_with_einval);
    tcase_add_test(tc, hooks_and_defaults_accept_a_null_dispatcher);
    tcase_add_test(tc, accessors_of_a_null_dispatcher_return_neutral_values);
    tcase_add_test(tc, map_functions_refuse_bad_arguments);
    tcase_add_test(tc, null_buffers_and_addresses_fail_with_einval);
    tcase_add_test(tc, recv_of_zero_bytes_fails_with_einval_and_reads_nothing);
    tcase_add_test(tc, socket_methods_without_a_socket_fail_with_enotsock);
    tcase_add_test(tc, create_socket_twice_or_of_a_bad_family_fails);
    tcase_add_test(tc, set_socket_refuses_what_is_not_an_open_socket);
    tcase_add_test(tc, bind_or_connect_to_another_family_fails_with_eafnosupport);
    tcase_add_loop_test(tc, listen_before_bind_fails_with_edestaddrreq, 0,
                        TH_NFAMILIES);
    tcase_add_test(tc, bind_to_a_port_in_use_fails_with_eaddrinuse);
    tcase_add_test(tc, accept_on_a_non_listener_fails_with_einval);
    tcase_add_test(tc, connect_while_connected_or_listening_fails_with_eisconn);
    tcase_add_test(tc, host_functions_refuse_bad_ports_hosts_and_paths);
    tcase_add_test(tc, methods_on_a_closed_dispatcher_fail_with_ebadf_and_leak_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(errors_suite());
}
