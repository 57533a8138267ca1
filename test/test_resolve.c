/*
 * test_resolve.c -- connecting by host name without blocking the loop.
 *
 * Each test runs a tiny DNS server on 127.0.0.1 (evdns's server API on the
 * map's own event_base, answering A and AAAA questions from a table) and
 * gives the map a resolver that asks only it.  Connections go to real
 * loopback listeners; refusals come from sockets bound but not listening.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <event2/util.h>

/* ---- the DNS server ------------------------------------------------------- */

#define MAX_ADDRS 3

struct dns_entry {
    const char *name;
    const char *a[MAX_ADDRS];    /* IPv4 answers, in this order */
    const char *aaaa[MAX_ADDRS]; /* IPv6 answers */
    int silent;                  /* never answer */
};

/* An answer held back by the server's delay. */
struct held {
    struct event *ev;
    struct evdns_server_request *req;
    struct held *next;
};

struct responder {
    struct event_base *base;
    struct evdns_server_port *port;
    evutil_socket_t fd;
    char ns[64];                  /* "127.0.0.1:PORT" */
    const struct dns_entry *table;
    struct timeval delay;         /* before every answer */
    int questions;                /* questions received */
    struct held *held;
};

static struct responder rs;

static const struct dns_entry *lookup_entry(const char *name)
{
    const struct dns_entry *e;

    /* evdns randomises the case of the names it asks for (0x20 bits). */
    for (e = rs.table; e != NULL && e->name != NULL; e++)
        if (strcasecmp(e->name, name) == 0)
            return e;
    return NULL;
}

static int add_answers(struct evdns_server_request *req,
                       const struct evdns_server_question *q,
                       const struct dns_entry *e)
{
    int i, n = 0;

    if (q->type == EVDNS_TYPE_A) {
        struct in_addr a[MAX_ADDRS];

        for (i = 0; i < MAX_ADDRS && e->a[i] != NULL; i++, n++)
            ck_assert_int_eq(inet_pton(AF_INET, e->a[i], &a[n]), 1);
        return n ? evdns_server_request_add_a_reply(req, q->name, n, a, 60) : 0;
    }
    if (q->type == EVDNS_TYPE_AAAA) {
        struct in6_addr a6[MAX_ADDRS];

        for (i = 0; i < MAX_ADDRS && e->aaaa[i] != NULL; i++, n++)
            ck_assert_int_eq(inet_pton(AF_INET6, e->aaaa[i], &a6[n]), 1);
        return n ? evdns_server_request_add_aaaa_reply(req, q->name, n, a6, 60)
                 : 0;
    }
    return 0;
}

/* Known names get their records (none of the asked type is a valid, empty
 * answer), unknown ones NXDOMAIN, silent ones nothing at all. */
static void answer(struct evdns_server_request *req)
{
    int i, rcode = DNS_ERR_NONE;

    for (i = 0; i < req->nquestions; i++) {
        const struct evdns_server_question *q = req->questions[i];
        const struct dns_entry *e = lookup_entry(q->name);

        if (e == NULL) {
            rcode = DNS_ERR_NOTEXIST;
        } else if (e->silent) {
            evdns_server_request_drop(req);
            return;
        } else {
            ck_assert_int_eq(add_answers(req, q, e), 0);
        }
    }
    evdns_server_request_respond(req, rcode);
}

static void held_cb(evutil_socket_t fd, short what, void *arg)
{
    struct held *h = arg, **p;

    (void)fd;
    (void)what;
    for (p = &rs.held; *p != h; p = &(*p)->next)
        ;
    *p = h->next;
    answer(h->req);
    event_free(h->ev);
    free(h);
}

static void server_cb(struct evdns_server_request *req, void *arg)
{
    struct held *h;

    (void)arg;
    rs.questions += req->nquestions;
    if (!evutil_timerisset(&rs.delay)) {
        answer(req);
        return;
    }
    h = calloc(1, sizeof(*h));
    ck_assert_ptr_nonnull(h);
    h->req = req;
    h->ev = evtimer_new(rs.base, held_cb, h);
    ck_assert_ptr_nonnull(h->ev);
    ck_assert_int_eq(evtimer_add(h->ev, &rs.delay), 0);
    h->next = rs.held;
    rs.held = h;
}

/* Start the server on @base for @table, answering after @delay seconds. */
static void responder_start(struct event_base *base,
                            const struct dns_entry *table, double delay)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);

    memset(&rs, 0, sizeof(rs));
    rs.base = base;
    rs.table = table;
    rs.delay.tv_sec = (time_t)delay;
    rs.delay.tv_usec = (suseconds_t)((delay - (double)rs.delay.tv_sec) * 1e6);
    rs.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(rs.fd, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(rs.fd, (struct sockaddr *)&sin, len), 0);
    ck_assert_int_eq(getsockname(rs.fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(rs.ns, sizeof(rs.ns), "127.0.0.1:%u", ntohs(sin.sin_port));
    rs.port = evdns_add_server_port_with_base(base, rs.fd, 0, server_cb, NULL);
    ck_assert_ptr_nonnull(rs.port);
}

/* Before the base goes: answers still held are dropped. */
static void responder_stop(void)
{
    struct held *h;

    while ((h = rs.held) != NULL) {
        rs.held = h->next;
        evdns_server_request_drop(h->req);
        event_free(h->ev);
        free(h);
    }
    evdns_close_server_port(rs.port);
    close(rs.fd);
}

/* A resolver that asks only our server, with no system configuration,
 * given to @map: one try, @timeout seconds. */
static struct evdns_base *use_responder(asyncore_map *map, const char *timeout)
{
    struct evdns_base *dns =
        evdns_base_new(asyncore_map_base(map), EVDNS_BASE_DISABLE_WHEN_INACTIVE);

    ck_assert_ptr_nonnull(dns);
    ck_assert_int_eq(evdns_base_nameserver_ip_add(dns, rs.ns), 0);
    ck_assert_int_eq(evdns_base_set_option(dns, "timeout:", timeout), 0);
    ck_assert_int_eq(evdns_base_set_option(dns, "attempts:", "1"), 0);
    ck_assert_int_eq(asyncore_map_set_dns(map, dns), 0);
    return dns;
}

/* ---- clients and servers ---------------------------------------------------- */

struct client {
    int connects;
    int errors;
    int err;
    char op[16];
    int destroys;
    int done;           /* handle_connect or handle_error ran */
    int close_on_connect;
    int fd_at_error;    /* the descriptor handle_error saw */
};

static int ticks;        /* the ticker's count */
static int ticks_at_connect;

static void client_connect(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    c->connects++;
    c->done = 1;
    ticks_at_connect = ticks;
    if (c->close_on_connect)
        asyncore_close(d);
}

static void client_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    c->errors++;
    c->err = err;
    snprintf(c->op, sizeof(c->op), "%s", op);
    c->fd_at_error = asyncore_dispatcher_fd(d);
    c->done = 1;
    asyncore_close(d);
}

static void client_destroy(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    c->destroys++;
}

/* Clients watch for their connect, reading and writing as asyncore's
 * defaults do (a failed connect is then dispatched as both), and afterwards
 * only wait. */
static int until_connected(asyncore_dispatcher *d)
{
    return !asyncore_dispatcher_connected(d);
}

static const asyncore_handlers client_handlers = {
    .handle_connect = client_connect,
    .handle_error = client_error,
    .destroy = client_destroy,
    .readable = until_connected,
    .writable = until_connected,
};

static asyncore_dispatcher *new_client(asyncore_map *map, struct client *c)
{
    asyncore_dispatcher *d;

    memset(c, 0, sizeof(*c));
    c->fd_at_error = -2;
    d = asyncore_dispatcher_new(map, &client_handlers, c);
    ck_assert_ptr_nonnull(d);
    return d;
}

static int accepted;

static void count_accepted(asyncore_dispatcher *d, int fd,
                           const struct sockaddr *a, socklen_t l)
{
    (void)d;
    (void)a;
    (void)l;
    accepted++;
    close(fd);
}

static const asyncore_handlers listener_handlers = {
    .handle_accepted = count_accepted,
};

static asyncore_dispatcher *listener(int family, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    asyncore_dispatcher *l;

    accepted = 0;
    l = th_listener(th_map, family, &listener_handlers, NULL, &ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return l;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;

    th_sockname(fd, &ss);
    return ntohs(ss.ss_family == AF_INET
                     ? ((struct sockaddr_in *)&ss)->sin_port
                     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* The address the dispatcher connected to, as text. */
static const char *peer_ip(asyncore_dispatcher *d, char *buf, size_t size)
{
    socklen_t len;
    const struct sockaddr *sa = asyncore_dispatcher_addr(d, &len);

    ck_assert_ptr_nonnull(sa);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
                  (socklen_t)size);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                  (socklen_t)size);
    return buf;
}

/* A timer on the map's base that counts while the loop is served. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

static struct event *ticker(void)
{
    struct timeval ten_ms = { 0, 10000 };
    struct event *ev = event_new(asyncore_map_base(th_map), -1, EV_PERSIST,
                                 tick_cb, NULL);

    ck_assert_ptr_nonnull(ev);
    ticks = 0;
    ticks_at_connect = -1;
    ck_assert_int_eq(event_add(ev, &ten_ms), 0);
    return ev;
}

static const struct dns_entry table[] = {
    { .name = "svc.test", .a = { "127.0.0.1" } },
    { .name = "two.test", .a = { "127.0.0.2", "127.0.0.1" } },
    { .name = "dead.test", .a = { "127.0.0.2", "127.0.0.3" } },
    { .name = "dual.test", .a = { "127.0.0.1" }, .aaaa = { "::1" } },
    { .name = "v6only.test", .aaaa = { "::1" } },
    { .name = "silent.test", .silent = 1 },
    { .name = NULL },
};

/* ---- a name connects, and the loop runs meanwhile ------------------------ */

START_TEST(name_connects_without_blocking_the_loop)
{
    struct client c;
    asyncore_dispatcher *l, *d;
    struct event *tick;
    unsigned port;
    char ip[64];

    responder_start(asyncore_map_base(th_map), table, 0.2);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "svc.test", port), 0);
    /* Looking up: connecting, no descriptor, counted. */
    ck_assert(asyncore_dispatcher_connecting(d));
    ck_assert(!asyncore_dispatcher_connected(d));
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 2);
    ck_assert_int_eq(c.connects, 0);

    tick = ticker();
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 0);
    /* The server held its answer back for 0.2 s while the timer kept being
     * served by the same loop: it was never blocked. */
    ck_assert_int_ge(ticks_at_connect, 2);
    ck_assert_int_ge(rs.questions, 1);
    ck_assert(asyncore_dispatcher_connected(d));
    ck_assert_int_ge(asyncore_dispatcher_fd(d), 0);
    ck_assert_int_eq(asyncore_dispatcher_family(d), AF_INET);
    ck_assert_str_eq(peer_ip(d, ip, sizeof(ip)), "127.0.0.1");
    th_loop_until(th_map, &accepted, 10);
    ck_assert_int_eq(accepted, 1);

    event_free(tick);
    asyncore_close(d);
    asyncore_close(l);
    ck_assert_int_eq(c.destroys, 1);
    responder_stop();
}
END_TEST

/* ---- the addresses, in order ------------------------------------------------ */

START_TEST(a_refused_address_moves_on_to_the_next_one)
{
    struct client c;
    asyncore_dispatcher *l, *d;
    unsigned port;
    char ip[64];
    int refused;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    refused = th_refuser("127.0.0.2", port); /* two.test's first address */
    ck_assert_int_ge(refused, 0);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "two.test", port), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), ECONNREFUSED);
    ck_assert_str_eq(peer_ip(d, ip, sizeof(ip)), "127.0.0.1");
    th_loop_until(th_map, &accepted, 10);
    ck_assert_int_eq(accepted, 1);
    asyncore_close(d);
    asyncore_close(l);
    close(refused);
    responder_stop();
}
END_TEST

/* The resolver's own order of a dual-stack name, asked directly. */
static int first_family;

static void order_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    ck_assert_int_eq(result, 0);
    ck_assert_ptr_nonnull(res);
    first_family = res->ai_family;
    *(int *)arg = 1;
    evutil_freeaddrinfo(res);
}

START_TEST(the_other_family_is_tried_after_a_refusal)
{
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC,
                                     .ai_socktype = SOCK_STREAM };
    struct client c;
    asyncore_dispatcher *l, *d;
    unsigned port = 0;
    const char *first_ip;
    char ip[64];
    int refused = -1, got = 0, second, i;

    if (th_skip_family(AF_INET6))
        return;
    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port); /* keeps the map counted meanwhile */
    (void)evdns_getaddrinfo(asyncore_map_dns(th_map), "dual.test", "80", &hints,
                            order_cb, &got);
    ck_assert(th_loop_until(th_map, &got, 10));
    asyncore_close(l);
    l = NULL;

    /* Refuse the first address the resolver gives, listen on the second. */
    second = first_family == AF_INET ? AF_INET6 : AF_INET;
    first_ip = first_family == AF_INET ? "127.0.0.1" : "::1";
    for (i = 0; i < 20 && refused < 0; i++) {
        if (l != NULL)
            asyncore_close(l);
        l = listener(second, &port);
        refused = th_refuser(first_ip, port);
    }
    ck_assert_int_ge(refused, 0);

    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "dual.test", port), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), ECONNREFUSED);
    ck_assert_int_eq(asyncore_dispatcher_family(d), second);
    ck_assert_str_eq(peer_ip(d, ip, sizeof(ip)),
                     second == AF_INET ? "127.0.0.1" : "::1");
    asyncore_close(d);
    asyncore_close(l);
    close(refused);
    responder_stop();
}
END_TEST

START_TEST(every_address_refused_is_a_connect_error_with_the_last_errno)
{
    struct client c;
    asyncore_dispatcher *d;
    int r2, r3;
    unsigned port;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    r2 = th_refuser("127.0.0.2", 0);
    ck_assert_int_ge(r2, 0);
    port = bound_port(r2);
    r3 = th_refuser("127.0.0.3", port);
    ck_assert_int_ge(r3, 0);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "dead.test", port), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 0);
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, ECONNREFUSED);
    ck_assert_str_eq(c.op, "connect");
    ck_assert_int_eq(c.destroys, 1); /* handle_error closed it */
    close(r2);
    close(r3);
    responder_stop();
}
END_TEST

/* ---- names that do not resolve ---------------------------------------------- */

START_TEST(unknown_name_is_a_resolve_error_ehostunreach)
{
    struct client c;
    asyncore_dispatcher *d;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "nosuch.test", 80), 0);
    /* The look-up alone keeps asyncore_loop() going until its outcome. */
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    ck_assert_int_eq(asyncore_loop(th_map, 0.05, -1), 0);
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, EHOSTUNREACH);
    ck_assert_str_eq(c.op, "resolve");
    ck_assert_int_eq(c.fd_at_error, -1);
    ck_assert_int_eq(c.connects, 0);
    ck_assert_int_eq(c.destroys, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    responder_stop();
}
END_TEST

START_TEST(silent_resolver_times_out_with_etimedout)
{
    struct client c;
    asyncore_dispatcher *d;
    double start, waited;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "0.2");
    d = new_client(th_map, &c);
    start = th_now();
    ck_assert_int_eq(asyncore_connect_host(d, "silent.test", 80), 0);
    ck_assert(th_loop_until(th_map, &c.done, 20));
    waited = th_now() - start;
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_str_eq(c.op, "resolve");
    ck_assert_int_eq(c.connects, 0);
    ck_assert_int_ge(rs.questions, 1);
    /* The configured 0.2 s governed it, not evdns's default of 5 s. */
    ck_assert(waited >= 0.15);
    ck_assert(waited < 4.0);
    responder_stop();
}
END_TEST

START_TEST(a_socket_of_the_other_family_gets_eaddrnotavail)
{
    struct client c;
    asyncore_dispatcher *d;
    int fd;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    fd = asyncore_dispatcher_fd(d);
    ck_assert_int_eq(asyncore_connect_host(d, "v6only.test", 80), 0);
    /* The caller's socket waits out of the loop, still counted. */
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert_int_eq(asyncore_dispatcher_family(d), AF_INET);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, EADDRNOTAVAIL);
    ck_assert_str_eq(c.op, "resolve");
    ck_assert_int_eq(c.fd_at_error, fd); /* back when the hook ran */
    ck_assert_int_eq(c.connects, 0);
    responder_stop();
}
END_TEST

/* ---- the caller's socket, and answers from the hosts file ------------------ */

/*
 * One rule for "no usable address": a host that gives no address the
 * dispatcher can use is EADDRNOTAVAIL, whether it is numeric (at once,
 * from bind_host and connect_host) or a name (handle_error "resolve",
 * above); EHOSTUNREACH is kept for a host that does not exist, and
 * EAFNOSUPPORT for a struct sockaddr of another family than the socket's.
 */
START_TEST(a_numeric_host_of_the_other_family_gets_eaddrnotavail)
{
    struct client c;
    asyncore_dispatcher *d;
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
    int fd;

    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    fd = asyncore_dispatcher_fd(d);
    errno = 0;
    ck_assert_int_eq(asyncore_connect_host(d, "::1", 9), -1);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    errno = 0;
    ck_assert_int_eq(asyncore_bind_host(d, "::1", 0), -1);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    /* The caller's socket is left as it was, and no hook ran. */
    ck_assert_int_eq(asyncore_dispatcher_fd(d), fd);
    ck_assert_int_eq(c.errors + c.connects, 0);
    /* A struct sockaddr of another family: the argument is wrong. */
    in6.sin6_addr = in6addr_loopback;
    errno = 0;
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&in6, sizeof(in6)), -1);
    ck_assert_int_eq(errno, EAFNOSUPPORT);
    /* A host that does not exist is still EHOSTUNREACH. */
    errno = 0;
    ck_assert_int_eq(asyncore_bind_host(d, "no-such-host.invalid", 0), -1);
    ck_assert_int_eq(errno, EHOSTUNREACH);
    ck_assert_int_eq(asyncore_close(d), 0);

    if (th_skip_family(AF_INET6))
        return;
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET6, SOCK_STREAM), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_connect_host(d, "127.0.0.1", 9), -1);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    errno = 0;
    ck_assert_int_eq(asyncore_bind_host(d, "127.0.0.1", 0), -1);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    ck_assert_int_eq(asyncore_close(d), 0);
}
END_TEST

START_TEST(the_callers_socket_is_the_one_that_connects)
{
    struct client c;
    asyncore_dispatcher *l, *d;
    unsigned port;
    int fd, on = 0;
    socklen_t len = sizeof(on);

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_set_nodelay(d, 1), 0);
    fd = asyncore_dispatcher_fd(d);
    ck_assert_int_eq(asyncore_connect_host(d, "svc.test", port), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), fd);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    ck_assert_int_ne(on, 0);
    asyncore_close(d);
    asyncore_close(l);
    responder_stop();
}
END_TEST

START_TEST(hosts_file_names_connect_at_once_without_a_query)
{
    char path[] = "/tmp/asyncore-hosts-XXXXXX";
    struct client c;
    struct evdns_base *dns;
    asyncore_dispatcher *l, *d;
    unsigned port;
    FILE *f;
    int fd;

    responder_start(asyncore_map_base(th_map), table, 0);
    dns = use_responder(th_map, "5");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("# hosts of the test\n127.0.0.1\thosted.test other.test\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(evdns_base_load_hosts(dns, path), 0);
    unlink(path);

    l = listener(AF_INET, &port);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "hosted.test", port), 0);
    /* Answered before the call returned: the socket is there already. */
    ck_assert_int_ge(asyncore_dispatcher_fd(d), 0);
    ck_assert(asyncore_dispatcher_connecting(d) || asyncore_dispatcher_connected(d));
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(rs.questions, 0);
    asyncore_close(d);
    asyncore_close(l);
    responder_stop();
}
END_TEST

START_TEST(numeric_and_invalid_hosts_never_ask_the_resolver)
{
    struct client c, c2;
    asyncore_dispatcher *l, *d, *d2;
    unsigned port;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "127.0.0.1", port), 0);
    ck_assert_int_ge(asyncore_dispatcher_fd(d), 0);
    d2 = new_client(th_map, &c2);
    errno = 0;
    ck_assert_int_eq(asyncore_connect_host(d2, "nosuch.invalid", 80), -1);
    ck_assert_int_eq(errno, EHOSTUNREACH);
    ck_assert_int_eq(asyncore_connect_host(d2, "INVALID.", 80), -1);
    ck_assert_int_eq(errno, EHOSTUNREACH);
    ck_assert_int_eq(asyncore_dispatcher_fd(d2), -1);
    ck_assert(!asyncore_dispatcher_connecting(d2));
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(rs.questions, 0);
    ck_assert_int_eq(c2.errors + c2.connects, 0);
    asyncore_close(d);
    asyncore_close(d2);
    asyncore_close(l);
    responder_stop();
}
END_TEST

/* ---- closing and freeing during the look-up ---------------------------------- */

START_TEST(other_socket_methods_fail_with_eisconn_during_the_lookup)
{
    struct client c;
    asyncore_dispatcher *d;
    int sv[2];

    responder_start(asyncore_map_base(th_map), table, 0.2);
    use_responder(th_map, "5");
    d = new_client(th_map, &c);
    ck_assert_int_eq(asyncore_connect_host(d, "svc.test", 80), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_connect_host(d, "svc.test", 80), -1);
    ck_assert_int_eq(errno, EISCONN);
    ck_assert_int_eq(asyncore_connect_host(d, "127.0.0.1", 80), -1);
    ck_assert_int_eq(errno, EISCONN);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), -1);
    ck_assert_int_eq(errno, EISCONN);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), -1);
    ck_assert_int_eq(errno, EISCONN);
    ck_assert_int_eq(asyncore_bind_host(d, "127.0.0.1", 0), -1);
    ck_assert_int_eq(errno, EISCONN);
    ck_assert_int_eq(asyncore_dispatcher_fd(d), -1);
    ck_assert(asyncore_dispatcher_connecting(d));
    /* asyncore_map_set_dns() waits for the map's look-ups. */
    ck_assert_int_eq(asyncore_map_set_dns(th_map, NULL), -1);
    ck_assert_int_eq(errno, EBUSY);
    close(sv[0]);
    close(sv[1]);
    asyncore_close(d);
    responder_stop();
}
END_TEST

START_TEST(close_during_the_lookup_cancels_it)
{
    struct client c, c2;
    asyncore_dispatcher *l, *d, *d2;
    unsigned port;
    int fds;

    responder_start(asyncore_map_base(th_map), table, 0.2);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    fds = th_fd_count();
    d = new_client(th_map, &c);
    d2 = new_client(th_map, &c2);
    ck_assert_int_eq(asyncore_create_socket(d2, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect_host(d, "svc.test", port), 0);
    ck_assert_int_eq(asyncore_connect_host(d2, "svc.test", port), 0);
    ck_assert_uint_eq(asyncore_map_count(th_map), 3);
    ck_assert(th_loop_until(th_map, &rs.questions, 10)); /* asked */
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(asyncore_close(d2), 0); /* and its socket set aside */
    ck_assert_int_eq(c.destroys, 1);
    ck_assert_int_eq(c2.destroys, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 1);
    ck_assert_int_eq(th_fd_count(), fds);
    /* The answers arrive (0.2 s) for look-ups that no longer exist. */
    th_loop_for(th_map, 0.5);
    ck_assert_ptr_null(rs.held);
    ck_assert_int_eq(c.connects + c.errors + c2.connects + c2.errors, 0);
    ck_assert_int_eq(accepted, 0);
    ck_assert_int_eq(th_fd_count(), fds);
    /* The map's resolver is free again. */
    ck_assert_int_eq(asyncore_map_set_dns(th_map, NULL), 0);
    asyncore_close(l);
    responder_stop();
}
END_TEST

/* asyncore_dispatcher_release() without a hold of the program's does
 * nothing (dispatcher.h) -- also while a look-up holds the dispatcher
 * itself, and inside the handle_error that reports its failure: the
 * look-up's own hold must not be the one dropped. */
static void release_then_error(asyncore_dispatcher *d, int err, const char *op)
{
    asyncore_dispatcher_release(d);
    client_error(d, err, op);
}

static const asyncore_handlers release_in_error_handlers = {
    .handle_error = release_then_error,
    .destroy = client_destroy,
    .readable = until_connected,
    .writable = until_connected,
};

START_TEST(a_release_without_a_hold_leaves_the_lookups_hold)
{
    struct client c;
    asyncore_dispatcher *d;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    memset(&c, 0, sizeof(c));
    d = asyncore_dispatcher_new(th_map, _i ? &release_in_error_handlers
                                           : &client_handlers, &c);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_connect_host(d, "nosuch.test", 80), 0);
    if (_i == 0)
        asyncore_dispatcher_release(d); /* during the look-up */
    ck_assert_int_eq(c.destroys, 0);
    ck_assert_int_eq(asyncore_loop(th_map, 0.05, -1), 0);
    /* The answer ran handle_error, which closed: destroyed once, then. */
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, EHOSTUNREACH);
    ck_assert_int_eq(c.destroys, 1);
    ck_assert_uint_eq(asyncore_map_count(th_map), 0);
    responder_stop();
}
END_TEST

START_TEST(map_free_during_the_lookup_cancels_and_frees_everything)
{
    asyncore_map *map;
    struct client c, c2;
    asyncore_dispatcher *d, *d2;
    int fds = th_fd_count();

    map = asyncore_map_new(NULL);
    ck_assert_ptr_nonnull(map);
    responder_start(asyncore_map_base(map), table, 0);
    use_responder(map, "5");
    d = new_client(map, &c);
    d2 = new_client(map, &c2);
    ck_assert_int_eq(asyncore_create_socket(d2, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_connect_host(d, "silent.test", 80), 0);
    ck_assert_int_eq(asyncore_connect_host(d2, "silent.test", 80), 0);
    while (rs.questions < 2)
        ck_assert_int_eq(asyncore_poll(map, 0.05), 0);
    responder_stop(); /* it lives on the map's base */
    ck_assert_int_eq(asyncore_map_free(map), 0);
    ck_assert_int_eq(c.destroys, 1);
    ck_assert_int_eq(c2.destroys, 1);
    ck_assert_int_eq(c.connects + c.errors + c2.connects + c2.errors, 0);
    ck_assert_int_eq(th_fd_count(), fds);
}
END_TEST

/* ---- a connect by name started from handle_read --------------------------- */

static unsigned reread_port;
static int reread_rc = 1;

/* An unconnected socket polls readable and writable at once (its hang-up):
 * the read hook starts the connect, in the dispatch that also carries the
 * write readiness. */
static void connect_from_read(asyncore_dispatcher *d)
{
    if (reread_rc != 1 || asyncore_dispatcher_connecting(d) ||
        asyncore_dispatcher_connected(d))
        return;
    reread_rc = asyncore_connect_host(d, "svc.test", reread_port);
}

static const asyncore_handlers read_connect_handlers = {
    .handle_read = connect_from_read,
    .handle_connect = client_connect,
    .handle_error = client_error,
    .destroy = client_destroy,
};

START_TEST(a_connect_by_name_from_handle_read_ignores_that_dispatchs_write_readiness)
{
    struct client c;
    asyncore_dispatcher *l, *d;

    responder_start(asyncore_map_base(th_map), table, 0.1);
    use_responder(th_map, "5");
    l = listener(AF_INET, &reread_port);
    memset(&c, 0, sizeof(c));
    reread_rc = 1;
    d = asyncore_dispatcher_new(th_map, &read_connect_handlers, &c);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    /* The write readiness of the socket as it was is not the look-up's
     * outcome: no connect error, and the look-up went on to connect. */
    ck_assert_int_eq(reread_rc, 0);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert(asyncore_dispatcher_connected(d));
    ck_assert_int_ge(rs.questions, 1);
    asyncore_close(d);
    asyncore_dispatcher_release(d);
    ck_assert_int_eq(c.destroys, 1);
    asyncore_close(l);
    responder_stop();
}
END_TEST

START_TEST(closing_in_handle_connect_after_a_lookup_frees_once)
{
    struct client c;
    asyncore_dispatcher *l, *d;
    unsigned port;

    responder_start(asyncore_map_base(th_map), table, 0);
    use_responder(th_map, "5");
    l = listener(AF_INET, &port);
    d = new_client(th_map, &c);
    c.close_on_connect = 1;
    ck_assert_int_eq(asyncore_connect_host(d, "two.test", port), 0);
    ck_assert(th_loop_until(th_map, &c.done, 10));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.destroys, 1);
    asyncore_close(l);
    responder_stop();
}
END_TEST

/* ---- the map's resolver --------------------------------------------------- */

START_TEST(the_maps_resolver_is_made_once_and_can_be_replaced)
{
    struct evdns_base *own, *mine;

    own = asyncore_map_dns(th_map);
    ck_assert_ptr_nonnull(own);
    ck_assert_ptr_eq(asyncore_map_dns(th_map), own);
    mine = evdns_base_new(asyncore_map_base(th_map), 0);
    ck_assert_ptr_nonnull(mine);
    ck_assert_int_eq(asyncore_map_set_dns(th_map, mine), 0);
    ck_assert_ptr_eq(asyncore_map_dns(th_map), mine);
    ck_assert_int_eq(asyncore_map_set_dns(th_map, mine), 0); /* no-op */
    ck_assert_int_eq(asyncore_map_set_dns(th_map, NULL), 0);
    ck_assert_ptr_nonnull(asyncore_map_dns(th_map));
    /* th_teardown frees the last one with the map. */
}
END_TEST

/* evdns reports trouble with name servers on stderr by default. */
static void quiet(int is_warning, const char *msg)
{
    (void)is_warning;
    (void)msg;
}

static Suite *resolve_suite(void)
{
    Suite *s = suite_create("resolve");
    TCase *tc = tcase_create("names");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, name_connects_without_blocking_the_loop);
    tcase_add_test(tc, a_refused_address_moves_on_to_the_next_one);
    tcase_add_test(tc, the_other_family_is_tried_after_a_refusal);
    tcase_add_test(tc, every_address_refused_is_a_connect_error_with_the_last_errno);
    tcase_add_test(tc, unknown_name_is_a_resolve_error_ehostunreach);
    tcase_add_test(tc, silent_resolver_times_out_with_etimedout);
    tcase_add_test(tc, a_socket_of_the_other_family_gets_eaddrnotavail);
    tcase_add_test(tc, a_numeric_host_of_the_other_family_gets_eaddrnotavail);
    tcase_add_test(tc, the_callers_socket_is_the_one_that_connects);
    tcase_add_test(tc, hosts_file_names_connect_at_once_without_a_query);
    tcase_add_test(tc, numeric_and_invalid_hosts_never_ask_the_resolver);
    tcase_add_test(tc, other_socket_methods_fail_with_eisconn_during_the_lookup);
    tcase_add_test(tc, close_during_the_lookup_cancels_it);
    tcase_add_test(tc, map_free_during_the_lookup_cancels_and_frees_everything);
    tcase_add_loop_test(tc, a_release_without_a_hold_leaves_the_lookups_hold, 0, 2);
    tcase_add_test(tc, closing_in_handle_connect_after_a_lookup_frees_once);
    tcase_add_test(tc, a_connect_by_name_from_handle_read_ignores_that_dispatchs_write_readiness);
    tcase_add_test(tc, the_maps_resolver_is_made_once_and_can_be_replaced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    evdns_set_log_fn(quiet);
    return th_run_suite(resolve_suite());
}
