/* listen.h -- what the benchmark's reference echo servers share: their
 * command line and their listening socket, so that each program's own code
 * is only its echo loop. */
#ifndef BENCH_LISTEN_H
#define BENCH_LISTEN_H

#include <stddef.h>

struct server_args {
    const char *addr;    /* -b, default 127.0.0.1 */
    int port;            /* -p, 0 = let the kernel pick */
    const char *upath;   /* -u, a Unix stream socket instead */
};

/* Parses -b ADDR, -p PORT, -u PATH and -h; exits on --help or errors.
 * `about` is the one-line description printed by --help. */
void bench_parse_args(int argc, char **argv, struct server_args *a, const char *about);

/* Creates a non-blocking listening socket, prints "listening on HOST:PORT"
 * (or the path) on stdout and flushes it, so that scripts can wait for the
 * line.  Exits the program on failure. */
int bench_listen(const struct server_args *a);

/* Removes the Unix socket file, if any. */
void bench_unlisten(const struct server_args *a);

/* TCP_NODELAY on an accepted socket: echoes made of several sends must not
 * wait for the peer's delayed ACK.  A no-op for Unix sockets. */
void bench_nodelay(int fd);

#endif
