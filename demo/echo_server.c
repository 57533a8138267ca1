/*
 * echo_server.c -- echo every byte back, to many clients at once.
 *
 *   echo_server [-b ADDR] [-p PORT] [-u PATH] [-R]
 *
 * The shape is the classic asyncore echo server: a listening dispatcher
 * whose handle_accepted gives each new connection a dispatcher_with_send,
 * and that dispatcher's handle_read sends back whatever it reads.  Three
 * things make it a server one can leave running:
 *
 *  - backpressure: a client that sends but does not read would make its
 *    echo queue grow without end; readable() turns false while the queue is
 *    large, so we stop reading from it until it catches up;
 *  - a peer that half-closes (shuts down its writing side) still gets the
 *    rest of its echo before we close;
 *  - SIGINT and SIGTERM close every dispatcher, which ends the loop.
 *
 * Exit status: 0 after a signal, 1 on a runtime failure, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <asyncore.h>

#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_PORT 7007
/* Stop reading from a client while this much of its echo is still queued.
 * One read adds at most READ_CHUNK, so a client costs at most about
 * QUEUE_LIMIT + READ_CHUNK bytes of memory. */
#define QUEUE_LIMIT (256 * 1024)
#define READ_CHUNK 65536

static struct {
    const char *addr, *path;
    long port;
    int reevaluate; /* -R: asyncore's poll() behaviour, for the benchmarks */
} opt = { DEFAULT_ADDR, NULL, DEFAULT_PORT, 0 };

static int got_signal;

/* ---- one client connection ---------------------------------------------- */

/* Per-connection state, reached through the dispatcher's user pointer. */
struct client {
    int peer_done; /* the peer will send no more; close once flushed */
};

static void client_read(asyncore_dispatcher *d)
{
    char buf[READ_CHUNK];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    /* On a dispatcher_with_send, asyncore_send() queues what the socket
     * does not take now; the inherited handle_write flushes it later. */
    if (n > 0 && asyncore_send(d, buf, (size_t)n) < 0 &&
        !asyncore_dispatcher_closed(d))
        asyncore_handle_error(d, errno, "send");
}

/* Backpressure: no reading while the echo queue is over the limit.  The
 * library asks again after every dispatch, so reading resumes by itself
 * once handle_write has drained the queue. */
static int client_readable(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    return !c->peer_done && asyncore_send_pending(d) < QUEUE_LIMIT;
}

/* The inherited flush, then the close that a half-closed peer waits for. */
static void client_write(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    asyncore_with_send_handle_write(d);
    if (c->peer_done && asyncore_send_pending(d) == 0 &&
        !asyncore_dispatcher_closed(d))
        asyncore_close(d);
}

/* The peer closed its side (or the connection broke).  Whatever is still
 * queued is sent first; if the connection is really gone, that send fails
 * and brings us back here a second time, and then we close. */
static void client_close(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    if (c->peer_done || asyncore_send_pending(d) == 0)
        asyncore_close(d);
    else
        c->peer_done = 1;
}

/* The dispatcher is gone: free what we attached to it. */
static void client_destroy(asyncore_dispatcher *d)
{
    free(asyncore_dispatcher_user_data(d));
}

static const asyncore_handlers client_handlers = {
    .handle_read = client_read,
    .handle_write = client_write,
    .handle_close = client_close,
    .readable = client_readable,
    .destroy = client_destroy,
    /* writable is inherited: "data is queued". */
};

/* ---- the listener ------------------------------------------------------- */

static void server_accepted(asyncore_dispatcher *server, int fd,
                            const struct sockaddr *addr, socklen_t len)
{
    struct client *c = calloc(1, sizeof(*c));
    asyncore_dispatcher *d = NULL;

    (void)addr, (void)len;
    if (c != NULL)
        d = asyncore_dispatcher_with_send_new(asyncore_dispatcher_map(server),
                                              &client_handlers, c);
    if (d == NULL || asyncore_set_socket(d, fd) < 0) {
        /* Until set_socket succeeds, the descriptor is still ours. */
        close(fd);
        if (d != NULL)
            asyncore_close(d); /* its destroy hook frees c */
        else
            free(c);
        return;
    }
    /* Echoes are small writes: do not let Nagle hold them back. */
    if (asyncore_dispatcher_family(d) != AF_UNIX)
        (void)asyncore_set_nodelay(d, 1);
}

static const asyncore_handlers server_handlers = {
    .handle_accepted = server_accepted,
};

/* ---- setup -------------------------------------------------------------- */

/* SIGINT/SIGTERM: closing every dispatcher empties the map, and
 * asyncore_loop() returns once the map is empty. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    got_signal = 1;
    asyncore_close_all(NULL);
}

/* Print the one line scripts wait for: the address really bound, which
 * tells the port the kernel picked for -p 0. */
static void print_listening(asyncore_dispatcher *server)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (opt.path != NULL) {
        printf("listening on %s\n", opt.path);
    } else if (getsockname(asyncore_dispatcher_fd(server),
                           (struct sockaddr *)&ss, &len) == 0 &&
               getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
                           port, sizeof(port),
                           NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n"
                                        : "listening on %s:%s\n",
               host, port);
    }
    fflush(stdout);
}

/* Create the listener; on failure print why and return NULL. */
static asyncore_dispatcher *start_server(void)
{
    const char *addr = opt.addr, *path = opt.path;
    unsigned port = (unsigned)opt.port;
    int family = path ? AF_UNIX : strchr(addr, ':') ? AF_INET6 : AF_INET;
    asyncore_dispatcher *server;

    server = asyncore_dispatcher_new(NULL, &server_handlers, NULL);
    if (server == NULL || asyncore_create_socket(server, family, SOCK_STREAM) < 0)
        goto fail;
    /* Restart at once on the same port, despite old TIME_WAIT connections. */
    if (family != AF_UNIX && asyncore_set_reuse_addr(server) < 0)
        goto fail;
    /* For AF_UNIX, asyncore_bind_host() takes the path as host.  A deep
     * backlog lets a burst of connections in at once instead of in waves
     * of SYN retries (the kernel caps it at net.core.somaxconn). */
    if (asyncore_bind_host(server, path ? path : addr, port) < 0 ||
        asyncore_listen(server, 4096) < 0)
        goto fail;
    return server;
fail:
    if (path != NULL)
        fprintf(stderr, "echo_server: cannot listen on %s: %s\n", path,
                strerror(errno));
    else
        fprintf(stderr, "echo_server: cannot listen on %s port %u: %s\n", addr,
                port, strerror(errno));
    return NULL;
}

/* The synopsis; with --help the options too, on stdout. */
static void usage(FILE *to)
{
    fputs("usage: echo_server [-b ADDR] [-p PORT] [-u PATH] [-R]\n", to);
    if (to == stderr) {
        fputs("Try 'echo_server --help' for more.\n", to);
        return;
    }
    fprintf(to,
            "Echo every byte back to every client.\n"
            "  -b ADDR   address to listen on, IPv4 or IPv6 (default %s)\n"
            "  -p PORT   TCP port; 0 picks a free one (default %d)\n"
            "  -u PATH   listen on a Unix socket at PATH instead of TCP\n"
            "  -R        re-evaluate every connection's readable()/writable()\n"
            "            before each wait, as asyncore's poll() did (slower)\n"
            "  -h, --help  show this help\n"
            "Prints \"listening on HOST:PORT\" (or PATH) when ready; SIGINT or\n"
            "SIGTERM stops it.\n",
            DEFAULT_ADDR, DEFAULT_PORT);
}

/* A port number, or -1 if @s is not one. */
static long parse_port(const char *s)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 65535)
        return -1;
    return v;
}

/* Fill opt from the command line; -1 on bad usage. */
static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;

    argv[0] = (char *)"echo_server"; /* getopt's messages: not libtool's path */
    while ((o = getopt_long(argc, argv, "b:p:u:Rh", longopts, NULL)) != -1) {
        switch (o) {
        case 'b': opt.addr = optarg; break;
        case 'R': opt.reevaluate = 1; break;
        case 'u': opt.path = optarg; break;
        case 'p':
            if ((opt.port = parse_port(optarg)) < 0) {
                fprintf(stderr, "echo_server: bad port: %s\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "echo_server: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct event_base *base;
    struct event *sigint = NULL, *sigterm = NULL;
    asyncore_dispatcher *server;
    int rc = 1;

    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    /* The signal events live on the default map's event_base, beside the
     * dispatchers: asyncore_loop() serves them along with the sockets. */
    base = asyncore_map_base(NULL);
    if (base != NULL && opt.reevaluate)
        (void)asyncore_map_set_reevaluate(NULL, 1);
    if (base != NULL) {
        sigint = evsignal_new(base, SIGINT, on_signal, NULL);
        sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    }
    if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sigterm, NULL) < 0) {
        fprintf(stderr, "echo_server: cannot watch signals\n");
    } else if ((server = start_server()) != NULL) {
        print_listening(server);
        if (asyncore_loop(NULL, -1.0, ASYNCORE_FOREVER) < 0)
            fprintf(stderr, "echo_server: %s\n", strerror(errno));
        else if (got_signal)
            rc = 0;
        /* Otherwise the listener failed and closed; its handle_error has
         * already said why. */
        if (opt.path != NULL)
            unlink(opt.path);
    }
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    asyncore_map_free(asyncore_map_default()); /* closes what is left */
    return rc;
}
