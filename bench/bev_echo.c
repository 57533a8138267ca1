/* bev_echo -- echo server on libevent's bufferevents (benchmark reference).
 *
 * The idiomatic high-level libevent echo: an evconnlistener accepts, each
 * connection is a socket bufferevent whose read callback moves the whole
 * input buffer to the output buffer (no copy: evbuffer chains move).
 * Reading pauses while more than HIGH_WATER bytes wait to be sent, so a
 * client that does not read cannot make the server buffer without bound.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "listen.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define HIGH_WATER (1u << 20)

struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next;
};

static struct event_base *base;
static struct conn *conns;   /* every live connection, freed at exit */

static void conn_free(struct conn *c)
{
    bufferevent_free(c->bev);   /* BEV_OPT_CLOSE_ON_FREE closes the fd */
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > HIGH_WATER)
        bufferevent_disable(bev, EV_READ);
}

/* Called when the output buffer has drained to its low watermark (0). */
static void on_write(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_enable(bev, EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    bench_nodelay(fd);
    struct conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        fprintf(stderr, "bev_echo: cannot set up connection %d\n", (int)fd);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->bev = bev;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
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
                     "Echo server on libevent bufferevents (benchmark reference).");
    /* bufferevents write with writev(), which raises SIGPIPE when a client
     * has gone; the error is handled through the event callback instead. */
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "bev_echo: event_base_new failed\n");
        return 1;
    }
    int lfd = bench_listen(&a);
    /* Backlog 0: listen() was called already, with a larger backlog than
     * the 128 libevent would choose. */
    struct evconnlistener *l =
        evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 0, lfd);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, NULL);
    if (!l || !term || !intr || event_add(term, NULL) < 0 || event_add(intr, NULL) < 0) {
        fprintf(stderr, "bev_echo: cannot set up events\n");
        return 1;
    }
    int rc = event_base_dispatch(base) < 0;
    while (conns)
        conn_free(conns);
    evconnlistener_free(l);
    event_free(term);
    event_free(intr);
    bench_unlisten(&a);
    event_base_free(base);
    return rc;
}
