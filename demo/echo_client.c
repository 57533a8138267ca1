/*
 * echo_client.c -- check an echo server, or talk to one.
 *
 *   asyncore-echo-client [-H HOST] [-p PORT] [-u PATH] [-c CONNS] [-n COUNT] [-s SIZE]
 *
 * With -n, a load test: CONNS connections each send COUNT messages of SIZE
 * random bytes, one at a time -- send a message, wait for its whole echo,
 * compare, send the next -- and a summary line goes to stdout.
 *
 * Without -n, an interactive client: what arrives on stdin is sent to the
 * server and what comes back is written to stdout, so
 * `printf 'hello\n' | asyncore-echo-client` prints hello.  stdin is one more
 * dispatcher (a file_dispatcher) in the same loop as the socket.  The
 * summary goes to stderr, leaving stdout to the echo.
 *
 * Every connection is a dispatcher_with_send, so asyncore_send() never
 * loses what the socket could not take at once.  Exit status: 0 when every
 * byte came back unchanged; else the lowest of 1 (a local failure), 3 (a
 * failed connect) and 5 (a mismatch or a connection closed early); 2 on
 * bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include <asyncore.h>

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 7007
/* Interactive mode stops reading stdin while this many bytes are on their
 * way to the server and back, so a fast stdin cannot fill our memory. */
#define IN_FLIGHT_LIMIT (256 * 1024)

static struct {
    const char *host, *path;
    long port, conns, count, size;
} opt = { DEFAULT_HOST, NULL, DEFAULT_PORT, 1, 0, 1000 };

static struct {
    unsigned long messages, mismatches, failures;
    unsigned long long bytes;
} stats;

static char peer[300]; /* "HOST:PORT" or PATH, for messages */

/* The exit statuses, one for each kind of failure; of several, the lowest
 * is the one returned. */
enum {
    EXIT_OTHER = 1,    /* a local failure: memory, the event loop */
    EXIT_USAGE = 2,    /* bad usage */
    EXIT_CONNECT = 3,  /* the server cannot be reached */
    EXIT_PROTOCOL = 5  /* an echo that differs, or never came back */
};
static int fail_status;

static void note_status(int status)
{
    if (fail_status == 0 || status < fail_status)
        fail_status = status;
}

/* Say what went wrong, once: with 50 connections to a closed port, one
 * line is clearer than fifty.  The summary counts every failure, and the
 * exit status says the worst kind (see note_status). */
static void fail(int status, const char *what, int err)
{
    note_status(status);
    if (stats.failures++ == 0)
        fprintf(stderr, "asyncore-echo-client: %s %s%s%s\n", what, peer,
                err ? ": " : "", err ? strerror(err) : "");
}

/* Connection errors of both modes: "connect" is the refused or
 * unreachable server; anything else broke an open connection. */
static void conn_error(asyncore_dispatcher *d, int err, const char *op)
{
    if (strcmp(op, "connect") == 0)
        fail(EXIT_CONNECT, "cannot connect to", err);
    else
        fail(EXIT_PROTOCOL, "connection lost to", err);
    asyncore_close(d);
}

/* Start connecting @d, a new dispatcher, to the server.  Returns 0, or -1
 * with the failure reported and @d closed.  The outcome of the connect
 * arrives as handle_connect or as handle_error(d, err, "connect"). */
static int connect_server(asyncore_dispatcher *d)
{
    /* For AF_UNIX, asyncore_connect_host() takes the path as host. */
    if ((opt.path != NULL && asyncore_create_socket(d, AF_UNIX, SOCK_STREAM) < 0) ||
        asyncore_connect_host(d, opt.path ? opt.path : opt.host,
                              (unsigned)opt.port) < 0) {
        fail(EXIT_CONNECT, "cannot connect to", errno);
        asyncore_close(d); /* no hook ran, so it is still open */
        return -1;
    }
    return 0;
}

/* ---- load test: COUNT messages per connection, one at a time ------------ */

struct load_conn {
    uint64_t rng;          /* xorshift state: random message bytes */
    unsigned long done;    /* messages echoed and compared */
    size_t got;            /* bytes of the current echo received */
    unsigned char buf[];   /* the message, then room for its echo */
};

static void fill_random(uint64_t *state, unsigned char *p, size_t n)
{
    while (n > 0) {
        uint64_t x = *state;
        size_t k = n < 8 ? n : 8;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        *state = x;
        memcpy(p, &x, k);
        p += k, n -= k;
    }
}

static void load_send_next(asyncore_dispatcher *d)
{
    struct load_conn *c = asyncore_dispatcher_user_data(d);

    fill_random(&c->rng, c->buf, (size_t)opt.size);
    c->got = 0;
    /* Queued by the dispatcher_with_send if the socket is full. */
    if (asyncore_send(d, c->buf, (size_t)opt.size) < 0 &&
        !asyncore_dispatcher_closed(d))
        asyncore_handle_error(d, errno, "send");
}

static void load_connect(asyncore_dispatcher *d)
{
    load_send_next(d);
}

static void load_read(asyncore_dispatcher *d)
{
    struct load_conn *c = asyncore_dispatcher_user_data(d);
    unsigned char *echo = c->buf + opt.size;
    ssize_t n = asyncore_recv(d, echo + c->got, (size_t)opt.size - c->got);

    if (n <= 0)
        return; /* nothing yet, or handle_close/handle_error already ran */
    c->got += (size_t)n;
    stats.bytes += (unsigned long long)n;
    if (c->got < (size_t)opt.size)
        return;
    stats.messages++;
    if (memcmp(c->buf, echo, (size_t)opt.size) != 0)
        stats.mismatches++;
    if (++c->done == (unsigned long)opt.count)
        asyncore_close(d); /* finished */
    else
        load_send_next(d);
}

/* The server closed before echoing everything we sent. */
static void load_close(asyncore_dispatcher *d)
{
    fail(EXIT_PROTOCOL, "connection closed early by", 0);
    asyncore_close(d);
}

static void load_destroy(asyncore_dispatcher *d)
{
    free(asyncore_dispatcher_user_data(d));
}

static const asyncore_handlers load_handlers = {
    .handle_connect = load_connect,
    .handle_read = load_read,
    .handle_close = load_close,
    .handle_error = conn_error,
    .destroy = load_destroy,
};

static void start_load(void)
{
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    for (long i = 0; i < opt.conns; i++) {
        struct load_conn *c = calloc(1, sizeof(*c) + 2 * (size_t)opt.size);
        asyncore_dispatcher *d = NULL;

        if (c != NULL)
            d = asyncore_dispatcher_with_send_new(NULL, &load_handlers, c);
        if (d == NULL) {
            free(c);
            fail(EXIT_OTHER, "out of memory for", ENOMEM);
            return;
        }
        /* From here on the dispatcher owns c: its destroy hook frees it. */
        c->rng = (seed + (uint64_t)i) * 0x9e3779b97f4a7c15u | 1; /* never 0 */
        if (connect_server(d) < 0)
            return;
    }
}

/* ---- interactive: stdin to the server, its echo to stdout --------------- */

static asyncore_dispatcher *server_conn, *input;
static struct evbuffer *unechoed; /* sent, not yet back: to compare */
static int input_done;

/* Once stdin is exhausted and everything came back, we are done. */
static void finish_if_done(void)
{
    if (input_done && evbuffer_get_length(unechoed) == 0 && server_conn != NULL)
        asyncore_close(server_conn);
}

static void input_read(asyncore_dispatcher *d)
{
    char buf[4096];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n <= 0 || server_conn == NULL)
        return;
    if (evbuffer_add(unechoed, buf, (size_t)n) < 0 ||
        asyncore_send(server_conn, buf, (size_t)n) < 0) {
        fail(EXIT_OTHER, "out of memory talking to", ENOMEM);
        asyncore_close_all(NULL);
    }
}

static int input_readable(asyncore_dispatcher *d)
{
    (void)d;
    return evbuffer_get_length(unechoed) < IN_FLIGHT_LIMIT;
}

/* We only read stdin.  (asyncore's default writable() is true, and a
 * terminal is writable: we would be woken for nothing, over and over.) */
static int input_writable(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

/* End of stdin. */
static void input_close(asyncore_dispatcher *d)
{
    input_done = 1;
    asyncore_close(d);
    finish_if_done();
}

static void input_error(asyncore_dispatcher *d, int err, const char *op)
{
    (void)d;
    fprintf(stderr, "asyncore-echo-client: stdin: %s: %s\n", op, strerror(err));
    stats.failures++;
    asyncore_close_all(NULL);
}

static void input_destroy(asyncore_dispatcher *d)
{
    (void)d;
    input = NULL;
}

static const asyncore_handlers input_handlers = {
    .handle_read = input_read,
    .handle_close = input_close,
    .handle_error = input_error,
    .readable = input_readable,
    .writable = input_writable,
    .destroy = input_destroy,
};

static void talk_read(asyncore_dispatcher *d)
{
    char buf[4096];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));
    size_t len = evbuffer_get_length(unechoed);

    if (n <= 0)
        return;
    if ((size_t)n > len || memcmp(evbuffer_pullup(unechoed, n), buf, (size_t)n) != 0)
        stats.mismatches++;
    evbuffer_drain(unechoed, (size_t)n);
    for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
        stats.messages++;
    stats.bytes += (unsigned long long)n;
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    /* stdin's readable() depends on our progress, which the library cannot
     * see: tell it to ask again. */
    if (input != NULL)
        asyncore_update_interest(input);
    finish_if_done();
}

static void talk_close(asyncore_dispatcher *d)
{
    fail(EXIT_PROTOCOL, "connection closed early by", 0);
    asyncore_close(d);
    asyncore_close_all(NULL); /* stdin too: nobody to send it to */
}

static void talk_error(asyncore_dispatcher *d, int err, const char *op)
{
    conn_error(d, err, op);
    asyncore_close_all(NULL);
}

static void talk_destroy(asyncore_dispatcher *d)
{
    (void)d;
    server_conn = NULL;
}

static const asyncore_handlers talk_handlers = {
    .handle_read = talk_read,
    .handle_close = talk_close,
    .handle_error = talk_error,
    .destroy = talk_destroy,
};

static int start_interactive(void)
{
    unechoed = evbuffer_new();
    if (unechoed == NULL) {
        fail(EXIT_OTHER, "out of memory for", ENOMEM);
        return -1;
    }
    server_conn = asyncore_dispatcher_with_send_new(NULL, &talk_handlers, NULL);
    if (server_conn == NULL) {
        fail(EXIT_OTHER, "out of memory for", ENOMEM);
        return -1;
    }
    if (connect_server(server_conn) < 0)
        return -1; /* talk_destroy has reset server_conn */
    input = asyncore_file_dispatcher_new(NULL, &input_handlers, NULL,
                                         STDIN_FILENO);
    if (input == NULL) {
        fprintf(stderr, "asyncore-echo-client: stdin: %s\n", strerror(errno));
        stats.failures++;
        return -1;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

/* The synopsis; with --help the options too, on stdout. */
static void usage(FILE *to)
{
    fputs("usage: asyncore-echo-client [-H HOST] [-p PORT] [-u PATH] [-c CONNS] [-n COUNT]\n"
          "                   [-s SIZE]\n", to);
    if (to == stderr) {
        fputs("Try 'asyncore-echo-client --help' for more.\n", to);
        return;
    }
    fprintf(to,
            "Send data to an echo server and check that it comes back unchanged.\n"
            "  -H, --host HOST  server name or address (default %s)\n"
            "  -p PORT   server TCP port (default %d)\n"
            "  -u PATH   connect to a Unix socket at PATH instead of TCP\n"
            "  -c CONNS  connections at once (default 1)\n"
            "  -n COUNT  messages per connection; without -n, echo stdin to stdout\n"
            "  -s SIZE   bytes per message (default 1000)\n"
            "  -h, --help  show this help\n"
            "  --version   show the program's and libasyncore's version\n",
            DEFAULT_HOST, DEFAULT_PORT);
}

/* A number in [@min, @max], or -1 if @s is not one. */
static long parse_num(const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "host", required_argument, NULL, 'H' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int o;

    argv[0] = (char *)"asyncore-echo-client"; /* getopt's messages: not libtool's path */
    /* -h was HOST before it meant help, as in the other demos.  "-h NAME"
     * (a word after it, where help takes none) still works, with a word
     * on stderr: this client takes no other arguments, so it is never a
     * mistake for one. */
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 && argv[i + 1][0] != '-') {
            fprintf(stderr, "asyncore-echo-client: -h HOST is now -H HOST\n");
            argv[i] = (char *)"-H";
        }
    }
    while ((o = getopt_long(argc, argv, "H:p:u:c:n:s:h", longopts, NULL)) != -1) {
        long *num = NULL, min = 1, max = 1L << 30;

        switch (o) {
        case 'H': opt.host = optarg; break;
        case 'u': opt.path = optarg; break;
        case 'p': num = &opt.port, min = 1, max = 65535; break;
        case 'c': num = &opt.conns, max = 100000; break;
        case 'n': num = &opt.count; break;
        case 's': num = &opt.size; break;
        case 'h': usage(stdout); exit(0);
        case 'V':
            printf("asyncore-echo-client (libasyncore) %s\n", asyncore_version());
            exit(0);
        default: return -1;
        }
        if (num != NULL && (*num = parse_num(optarg, min, max)) < 0) {
            fprintf(stderr, "asyncore-echo-client: bad number for -%c: %s\n", o, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asyncore-echo-client: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (opt.count == 0 && opt.conns != 1) {
        fprintf(stderr, "asyncore-echo-client: -c needs -n\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double start;
    int interactive;

    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    interactive = opt.count == 0;
    if (opt.path != NULL)
        snprintf(peer, sizeof(peer), "%s", opt.path);
    else
        snprintf(peer, sizeof(peer), strchr(opt.host, ':') ? "[%s]:%ld" : "%s:%ld",
                 opt.host, opt.port);

    start = now();
    if (interactive && start_interactive() < 0)
        asyncore_close_all(NULL);
    else if (!interactive)
        start_load();
    if (asyncore_loop(NULL, -1.0, ASYNCORE_FOREVER) < 0)
        fail(EXIT_OTHER, "event loop failed talking to", errno);

    fprintf(interactive ? stderr : stdout,
            "%lu messages, %llu bytes, %lu mismatches, %.3f seconds\n",
            stats.messages, stats.bytes, stats.mismatches, now() - start);
    asyncore_map_free(asyncore_map_default());
    if (unechoed != NULL)
        evbuffer_free(unechoed);
    if (stats.mismatches)
        note_status(EXIT_PROTOCOL);
    return fail_status;
}
