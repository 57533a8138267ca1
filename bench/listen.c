/* listen.c -- command line and listening socket of the reference servers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* somaxconn's value here: a burst of thousands of connects must not
 * overflow the accept queue of the reference servers. */
#define BACKLOG 4096

__attribute__((noreturn))
static void fatal(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s\n", what, detail);
    exit(1);
}

void bench_parse_args(int argc, char **argv, struct server_args *a, const char *about)
{
    a->addr = "127.0.0.1";
    a->port = 0;
    a->upath = NULL;
    int ch;
    while ((ch = getopt(argc, argv, "b:p:u:h")) != -1) {
        switch (ch) {
        case 'b': a->addr = optarg; break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 65535)
                fatal("bad port", optarg);
            a->port = (int)v;
            break;
        }
        case 'u': a->upath = optarg; break;
        case 'h':
            printf("usage: %s [-b ADDR] [-p PORT] [-u PATH]\n%s\n"
                   "  -b ADDR  IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
                   "  -p PORT  TCP port, 0 picks a free one (default 0)\n"
                   "  -u PATH  listen on a Unix stream socket instead\n"
                   "Prints \"listening on HOST:PORT\" (or PATH) when ready;\n"
                   "SIGTERM and SIGINT close every connection and exit 0.\n",
                   argv[0], about);
            exit(0);
        default:
            exit(1);
        }
    }
    if (optind != argc)
        fatal("unexpected argument", argv[optind]);
}

static int listen_unix(const char *path, char *desc, size_t dlen)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof un.sun_path)
        fatal("path too long", path);
    strcpy(un.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fatal("socket", strerror(errno));
    unlink(path);
    if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0)
        fatal(path, strerror(errno));
    snprintf(desc, dlen, "%s", path);
    return fd;
}

static int listen_tcp(const char *addr, int port, char *desc, size_t dlen)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        fatal("not a numeric address", addr);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fatal("socket", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        fatal(addr, strerror(errno));
    getsockname(fd, (struct sockaddr *)&ss, &len);
    int bound = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    snprintf(desc, dlen, ss.ss_family == AF_INET ? "%s:%d" : "[%s]:%d", addr, bound);
    return fd;
}

int bench_listen(const struct server_args *a)
{
    char desc[256];
    int fd = a->upath ? listen_unix(a->upath, desc, sizeof desc)
                      : listen_tcp(a->addr, a->port, desc, sizeof desc);
    if (listen(fd, BACKLOG) < 0)
        fatal("listen", strerror(errno));
    /* Only now: a script that reads the line connects at once. */
    printf("listening on %s\n", desc);
    fflush(stdout);
    return fd;
}

void bench_unlisten(const struct server_args *a)
{
    if (a->upath)
        unlink(a->upath);
}

void bench_nodelay(int fd)
{
    int one = 1;
    /* Fails with EOPNOTSUPP on Unix sockets, which have no Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
