/*
 * helpers.c -- shared fixtures of the Check suites.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/un.h>

#include <event2/event.h>

asyncore_map *th_map;

static int fd_baseline;
static char unix_paths[8][108];
static int n_unix_paths;
static char log_buf[65536];
static size_t log_len;

int th_fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own descriptor */
}

void th_setup(void)
{
    fd_baseline = th_fd_count();
    n_unix_paths = 0;
    th_log_reset();
    th_map = asyncore_map_new(NULL);
    ck_assert_ptr_nonnull(th_map);
}

void th_teardown(void)
{
    int i;

    ck_assert_int_eq(asyncore_map_free(th_map), 0);
    th_map = NULL;
    /* The default map may have been used by a test; it owns descriptors. */
    asyncore_map_free(asyncore_map_default());
    for (i = 0; i < n_unix_paths; i++)
        unlink(unix_paths[i]);
    ck_assert_int_eq(th_fd_count(), fd_baseline);
}

int th_has_ipv6(void)
{
    struct sockaddr_in6 a = { .sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;

    if (fd < 0)
        return 0;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

socklen_t th_loopback(int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in = (void *)ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*in);
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (void *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        return sizeof(*in6);
    }
    {
        struct sockaddr_un *un = (void *)ss;
        static unsigned seq;
        const char *tmp = getenv("TMPDIR");
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s/asyncore-test-%d-%u",
                 tmp && strlen(tmp) < 60 ? tmp : "/tmp", (int)getpid(), seq++);
        unlink(un->sun_path);
        if (n_unix_paths < 8)
            strcpy(unix_paths[n_unix_paths++], un->sun_path);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                           strlen(un->sun_path) + 1);
    }
}

socklen_t th_sockname(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);

    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)ss, &len), 0);
    return len;
}

int th_raw_listener(int family, struct sockaddr_storage *ss, socklen_t *len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    *len = th_loopback(family, ss);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)ss, *len), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    if (family != AF_UNIX)
        *len = th_sockname(fd, ss);
    return fd;
}

int th_raw_connect(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)ss, len), 0);
    return fd;
}

int th_raw_accept(int listener, double seconds)
{
    struct pollfd p = { .fd = listener, .events = POLLIN };

    if (poll(&p, 1, (int)(seconds * 1000)) != 1)
        return -1;
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

double th_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int th_loop_until(asyncore_map *map, const int *flag, double seconds)
{
    double end = th_now() + seconds;

    while (!*flag && th_now() < end && asyncore_map_count(map) > 0)
        ck_assert_int_eq(asyncore_poll(map, 0.01), 0);
    return *flag;
}

void th_loop_for(asyncore_map *map, double seconds)
{
    double end = th_now() + seconds;

    while (th_now() < end && asyncore_map_count(map) > 0)
        ck_assert_int_eq(asyncore_poll(map, 0.01), 0);
}

asyncore_dispatcher *th_listener(asyncore_map *map, int family,
                                 const asyncore_handlers *h, void *user,
                                 struct sockaddr_storage *ss, socklen_t *len)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(map, h, user);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_set_reuse_addr(d), 0);
    *len = th_loopback(family, ss);
    ck_assert_int_eq(asyncore_bind(d, (struct sockaddr *)ss, *len), 0);
    ck_assert_int_eq(asyncore_listen(d, 64), 0);
    if (family != AF_UNIX)
        *len = th_sockname(asyncore_dispatcher_fd(d), ss);
    return d;
}

static void log_sink(const asyncore_dispatcher *d, asyncore_log_type type,
                     const char *msg, void *arg)
{
    int n;

    (void)d;
    (void)arg;
    n = snprintf(log_buf + log_len, sizeof(log_buf) - log_len, "%s: %s\n",
                 asyncore_log_type_name(type), msg);
    if (n > 0 && log_len + (size_t)n < sizeof(log_buf))
        log_len += (size_t)n;
}

void th_log_capture(asyncore_map *map)
{
    ck_assert_int_eq(asyncore_map_set_log(map, log_sink, NULL), 0);
}

int th_log_count(const char *needle)
{
    const char *p = log_buf;
    int n = 0;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

const char *th_log_text(void)
{
    return log_buf;
}

void th_log_reset(void)
{
    log_len = 0;
    log_buf[0] = '\0';
}

int th_family(int i)
{
    static const int families[TH_NFAMILIES] = { AF_INET, AF_INET6, AF_UNIX };
    return families[i];
}

int th_skip_family(int family)
{
    return family == AF_INET6 && !th_has_ipv6();
}

int th_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

/* A TCP socket bound to @ip:@port and not listening: connecting to it is
 * refused.  Returns -1 if the address is taken. */
int th_refuser(const char *ip, unsigned port)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    int fd;

    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
        len = sizeof(*in);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct event_base *th_base_with_method(const char *method)
{
    struct event_config *cfg = event_config_new();
    const char **m;
    struct event_base *base;

    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV), 0);
    for (m = event_get_supported_methods(); *m != NULL; m++)
        if (strcmp(*m, method) != 0)
            ck_assert_int_eq(event_config_avoid_method(cfg, *m), 0);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    ck_assert_ptr_nonnull(base);
    ck_assert_str_eq(event_base_get_method(base), method);
    return base;
}
