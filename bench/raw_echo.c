/* raw_echo -- the benchmark's ceiling: an echo server written directly on
 * libevent, the way one would without our library.
 *
 * One persistent EV_READ event per connection; each callback does one
 * recv() into a stack buffer and sends what it read.  When the kernel
 * takes only part of it, the rest waits in a per-connection buffer, a
 * second (EV_WRITE) event drains it, and reading pauses meanwhile so that
 * a client that does not read cannot make the server buffer without
 * bound.  In a ping-pong steady state this is one recv, one send and no
 * epoll_ctl per message: the cost our dispatcher layer is measured against.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "listen.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

/* The read size of demo/asyncore-echo-server, so that the two differ only in the
 * layer between the code and libevent. */
#define READ_SIZE 65536

struct conn {
    int fd;
    struct event *rev, *wev;
    char *pend;           /* unsent rest of the last echo */
    size_t plen, pcap;
    struct conn *prev, *next;
};

static struct event_base *base;
static struct conn *conns;   /* every live connection, freed at exit */

static void conn_free(struct conn *c)
{
    /* The events go before the fd closes (a reused fd number would
     * otherwise be confused with this one by the backend). */
    event_free(c->rev);
    event_free(c->wev);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->pend);
    free(c);
}

static int keep_rest(struct conn *c, const char *data, size_t len)
{
    if (len > c->pcap) {
        char *p = realloc(c->pend, len);
        if (!p)
            return -1;
        c->pend = p;
        c->pcap = len;
    }
    memmove(c->pend, data, len);
    c->plen = len;
    event_del(c->rev);
    event_add(c->wev, NULL);
    return 0;
}

/* Sends data; keeps what the kernel refused.  -1: the connection is dead. */
static int echo(struct conn *c, const char *data, size_t len)
{
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        n = 0;
    }
    if ((size_t)n == len)
        return 0;
    return keep_rest(c, data + n, len - (size_t)n);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char buf[READ_SIZE];
    (void)what;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0 || echo(c, buf, (size_t)n) < 0)
        conn_free(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    ssize_t n = send(fd, c->pend, c->plen, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_free(c);
        return;
    }
    c->plen -= (size_t)n;
    memmove(c->pend, c->pend + n, c->plen);
    if (c->plen == 0) {
        event_del(c->wev);
        event_add(c->rev, NULL);
    }
}

static void conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c) {
        c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    }
    if (!c || !c->rev || !c->wev || event_add(c->rev, NULL) < 0) {
        fprintf(stderr, "raw_echo: cannot watch connection %d\n", fd);
        if (c && c->rev)
            event_free(c->rev);
        if (c && c->wev)
            event_free(c->wev);
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                perror("raw_echo: accept");
            return;
        }
        bench_nodelay(fd);
        conn_new(fd);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct server_args a;
    bench_parse_args(argc, argv, &a,
                     "Echo server on plain libevent events (benchmark reference).");
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "raw_echo: event_base_new failed\n");
        return 1;
    }
    int lfd = bench_listen(&a);
    struct event *lev = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, NULL);
    if (!lev || !term || !intr || event_add(lev, NULL) < 0 || event_add(term, NULL) < 0 ||
        event_add(intr, NULL) < 0) {
        fprintf(stderr, "raw_echo: cannot set up events\n");
        return 1;
    }
    int rc = event_base_dispatch(base) < 0;
    while (conns)
        conn_free(conns);
    event_free(lev);
    event_free(term);
    event_free(intr);
    close(lfd);
    bench_unlisten(&a);
    event_base_free(base);
    return rc;
}
