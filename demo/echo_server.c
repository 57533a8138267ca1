/*
 * echo_server.c -- echo every byte back, to many clients at once.
 *
 *   asyncore-echo-server [-b ADDR] [-p PORT] [-u PATH] [-t THREADS] [-R]
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
 * With -t N it uses N cores: N threads, each running a map of its own with
 * a listener of its own on the same port (SO_REUSEPORT), so the kernel
 * spreads the connections and no map is shared.  The main thread then only
 * waits for a signal and stops the workers with call_soon_threadsafe.
 *
 * Exit status: 0 after a signal, 1 on a runtime failure, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
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
#define MAX_THREADS 256

static struct {
    const char *addr, *path;
    long port;
    int reevaluate; /* -R: asyncore's poll() behaviour, for the benchmarks */
    long threads;   /* -t: maps, each in a thread of its own */
} opt = { DEFAULT_ADDR, NULL, DEFAULT_PORT, 0, 1 };

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

    if (c->peer_done || asyncore_send_pending(d) == 0) {
        asyncore_close(d);
        return;
    }
    /* Read no more: at end of file every read would come back here.  A
     * limit of one byte pauses reading while anything is queued, and the
     * queue is not empty now; once it is, client_write closes. */
    c->peer_done = 1;
    (void)asyncore_set_send_limit(d, 1);
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
    /* Backpressure: no reading while the echo queue is at the limit; the
     * library resumes reading once handle_write has drained it. */
    (void)asyncore_set_send_limit(d, QUEUE_LIMIT);
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

/* Create a listener on @map and @port; on failure print why and return
 * NULL.  With @shared, other listeners may bind the same port. */
static asyncore_dispatcher *start_server(asyncore_map *map, unsigned port,
                                         int shared)
{
    const char *addr = opt.addr, *path = opt.path;
    int family = path ? AF_UNIX : strchr(addr, ':') ? AF_INET6 : AF_INET;
    asyncore_dispatcher *server;

    server = asyncore_dispatcher_new(map, &server_handlers, NULL);
    if (server == NULL || asyncore_create_socket(server, family, SOCK_STREAM) < 0)
        goto fail;
    /* Restart at once on the same port, despite old TIME_WAIT connections. */
    if (family != AF_UNIX && asyncore_set_reuse_addr(server) < 0)
        goto fail;
    /* -t: one listener per thread on the same port; set before bind. */
    if (shared && asyncore_set_reuse_port(server) < 0)
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
        fprintf(stderr, "asyncore-echo-server: cannot listen on %s: %s\n", path,
                strerror(errno));
    else
        fprintf(stderr, "asyncore-echo-server: cannot listen on %s port %u: %s\n", addr,
                port, strerror(errno));
    return NULL;
}

/* ---- -t: one map per thread ----------------------------------------------- */

/* A worker: a map of its own, with its own listener, and the thread that
 * runs its loop.  The main thread makes the map before the thread starts
 * and frees it after the thread is joined; in between, only the worker
 * touches it, and the main thread reaches it through call_soon_threadsafe. */
struct worker {
    asyncore_map *map;
    pthread_t thread;
    int started;
    int rc, err; /* asyncore_loop()'s result and errno, read after the join */
};

static pthread_t main_thread;

/* What the main thread waits for: the stop signals, and SIGUSR1 from a
 * worker whose loop ended by itself.  Every thread blocks them. */
static void wait_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGUSR1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    w->rc = asyncore_loop(w->map, -1.0, ASYNCORE_FOREVER);
    w->err = errno;
    /* If nobody stopped us, our listener failed: the main thread must stop
     * the others.  If it did stop us, the signal stays blocked, unseen. */
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

/* Runs in a worker's thread, queued there by the main thread. */
static void stop_worker(asyncore_map *map, void *arg)
{
    (void)arg;
    asyncore_close_all(map); /* the map is empty: its loop returns */
}

/* The port a listener is bound to (the kernel's pick for -p 0). */
static unsigned bound_port(asyncore_dispatcher *server)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(asyncore_dispatcher_fd(server), (struct sockaddr *)&ss,
                    &len) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6
                     ? ((struct sockaddr_in6 *)&ss)->sin6_port
                     : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Make every worker's map and listener, here, in order: the first takes the
 * port, the others join it.  Returns how many maps were made; *@ok is 1 if
 * all were. */
static long make_workers(struct worker *w, int *ok)
{
    asyncore_dispatcher *server, *first = NULL;
    unsigned port = (unsigned)opt.port;
    long n;

    *ok = 0;
    for (n = 0; n < opt.threads; n++) {
        if ((w[n].map = asyncore_map_new(NULL)) == NULL) {
            fprintf(stderr, "asyncore-echo-server: %s\n", strerror(errno));
            return n;
        }
        if (opt.reevaluate)
            (void)asyncore_map_set_reevaluate(w[n].map, 1);
        if ((server = start_server(w[n].map, port, 1)) == NULL)
            return n + 1;
        if (first == NULL) {
            first = server;
            port = bound_port(server);
        }
    }
    print_listening(first);
    *ok = 1;
    return n;
}

/* Start the threads, wait for a signal, stop and join them.  0 if stopped
 * by SIGINT/SIGTERM, 1 if a thread could not start or a loop failed. */
static int run_workers(struct worker *w, long n, sigset_t *set)
{
    int sig = 0, rc = 0;
    long i;

    for (i = 0; i < n; i++) {
        if ((errno = pthread_create(&w[i].thread, NULL, worker_main, &w[i])) != 0) {
            fprintf(stderr, "asyncore-echo-server: cannot start a thread: %s\n",
                    strerror(errno));
            rc = 1;
            break;
        }
        w[i].started = 1;
    }
    /* A worker's SIGUSR1 means its loop ended by itself (its handle_error
     * has said why); anything else is a stop signal. */
    if (rc == 0 && (sigwait(set, &sig) != 0 || sig == SIGUSR1))
        rc = 1;
    for (i = 0; i < n && w[i].started; i++) {
        if (asyncore_map_call_soon_threadsafe(w[i].map, stop_worker, NULL) < 0) {
            /* The worker cannot be told to stop: leave without it. */
            fprintf(stderr, "asyncore-echo-server: %s\n", strerror(errno));
            exit(1);
        }
    }
    for (i = 0; i < n && w[i].started; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].rc < 0) {
            fprintf(stderr, "asyncore-echo-server: %s\n", strerror(w[i].err));
            rc = 1;
        }
    }
    return rc;
}

/* -t THREADS (> 1): serve with THREADS maps, a thread each. */
static int serve_threads(void)
{
    struct worker *w = calloc((size_t)opt.threads, sizeof(*w));
    sigset_t set;
    long n, i;
    int ok, rc = 1;

    if (w == NULL) {
        fprintf(stderr, "asyncore-echo-server: %s\n", strerror(errno));
        return 1;
    }
    /* Blocked before any thread exists, so that every thread inherits the
     * mask and the signals reach only the main thread's sigwait(). */
    main_thread = pthread_self();
    wait_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    n = make_workers(w, &ok);
    if (ok)
        rc = run_workers(w, n, &set);
    for (i = 0; i < n; i++)
        asyncore_map_free(w[i].map); /* closes what is left */
    free(w);
    return rc;
}

/* The synopsis; with --help the options too, on stdout. */
static void usage(FILE *to)
{
    fputs("usage: asyncore-echo-server [-b ADDR] [-p PORT] [-u PATH] [-t THREADS] [-R]\n", to);
    if (to == stderr) {
        fputs("Try 'asyncore-echo-server --help' for more.\n", to);
        return;
    }
    fprintf(to,
            "Echo every byte back to every client.\n"
            "  -b ADDR   address to listen on, IPv4 or IPv6 (default %s)\n"
            "  -p PORT   TCP port; 0 picks a free one (default %d)\n"
            "  -u PATH   listen on a Unix socket at PATH instead of TCP\n"
            "  -t THREADS  serve TCP with THREADS threads, a listener each\n"
            "            on the same port (SO_REUSEPORT; default 1)\n"
            "  -R        re-evaluate every connection's readable()/writable()\n"
            "            before each wait, as asyncore's poll() did (slower)\n"
            "  -h, --help  show this help\n"
            "  --version   show the program's and libasyncore's version\n"
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

/* A number from 1 to @max, or -1 if @s is not one. */
static long parse_count(const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
        return -1;
    return v;
}

/* Fill opt from the command line; -1 on bad usage. */
static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int o;

    argv[0] = (char *)"asyncore-echo-server"; /* getopt's messages: not libtool's path */
    while ((o = getopt_long(argc, argv, "b:p:u:t:Rh", longopts, NULL)) != -1) {
        switch (o) {
        case 'b': opt.addr = optarg; break;
        case 'R': opt.reevaluate = 1; break;
        case 'u': opt.path = optarg; break;
        case 'p':
            if ((opt.port = parse_port(optarg)) < 0) {
                fprintf(stderr, "asyncore-echo-server: bad port: %s\n", optarg);
                return -1;
            }
            break;
        case 't':
            if ((opt.threads = parse_count(optarg, MAX_THREADS)) < 0) {
                fprintf(stderr, "asyncore-echo-server: bad thread count: %s\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V':
            printf("asyncore-echo-server (libasyncore) %s\n", asyncore_version());
            exit(0);
        default: return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asyncore-echo-server: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (opt.threads > 1 && opt.path != NULL) {
        fprintf(stderr, "asyncore-echo-server: -t needs TCP: Unix sockets cannot share a path\n");
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
    if (opt.threads > 1)
        return serve_threads();
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
        fprintf(stderr, "asyncore-echo-server: cannot watch signals\n");
    } else if ((server = start_server(NULL, (unsigned)opt.port, 0)) != NULL) {
        print_listening(server);
        if (asyncore_loop(NULL, -1.0, ASYNCORE_FOREVER) < 0)
            fprintf(stderr, "asyncore-echo-server: %s\n", strerror(errno));
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
