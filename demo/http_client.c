/*
 * http_client.c -- fetch http:// and https:// URLs over async_chat channels.
 *
 *   asyncore-http-client [-k] [--cacert FILE] [-o FILE|-O DIR] [-c PARALLEL] [-q]
 *               [-t SECONDS] URL...
 *
 * An HTTP/1.1 response is a textbook case for async_chat's terminators:
 *
 *   status line, header lines   terminator "\r\n", one line per found_terminator
 *   body of Content-Length N    terminator COUNT N: found_terminator at its end
 *   chunked body                "\r\n" for each chunk-size line, COUNT for its
 *                               data, "\r\n" again for the CRLF after it, and
 *                               "\r\n" for the trailer lines after the last
 *   body until the server closes   terminator NONE; handle_close ends it
 *
 * so the whole protocol is a small state machine in found_terminator: each
 * state sets the terminator of the next.  The syntax itself (status line,
 * header lines, chunk sizes, URLs) is in http_parse.c.
 *
 * Each URL is a job.  Jobs for the same host and port are fetched one after
 * another over one connection, kept alive between them when the server
 * allows; jobs for different servers are fetched at the same time, over at
 * most PARALLEL connections.  Redirects put a job back in the queue with
 * its new URL.  Each connection's connect (over TLS: up to the end of the
 * handshake) and its silences are timed by the library's per-dispatcher
 * timeouts (asyncore_set_connect_timeout, asyncore_set_idle_timeout, whose
 * handle_timeout hook ends the request).
 *
 * https:// is the same channel with TLS started under it
 * (asyncore_tls_start_client): the state machine never sees the difference.
 * The server's certificate is checked against the system's CA bundle (or
 * --cacert's), for the URL's host name, unless -k.  A body that ends when
 * the server closes must end with TLS close_notify, or it may have been
 * cut by an attacker.
 *
 * A body is written to FILE.part (or DIR/.NAME.part) and renamed to its
 * final name only once complete; a failed transfer removes it, and so do
 * SIGINT and SIGTERM.
 *
 * Exit status: 0 when every URL was fetched with a 2xx status; if any
 * failed (one line on stderr says why), the lowest of 1 (a local failure),
 * 3 (connect), 4 (HTTP status), 5 (protocol), 6 (timeout); 2 on bad usage;
 * 128 + the signal's number after SIGINT or SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#include <asyncore.h>

#include "http_parse.h"

#define DEFAULT_PARALLEL 4
#define DEFAULT_TIMEOUT 30.0
#define MAX_REDIRECTS 5
#define DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

static struct {
    const char *file, *dir;
    long parallel;
    int quiet;
    double timeout;
    int insecure;           /* -k: no certificate verification */
    const char *cacert;     /* --cacert FILE */
} opt = { NULL, NULL, DEFAULT_PARALLEL, 0, DEFAULT_TIMEOUT, 0, NULL };

/* The TLS client settings of every https connection; made when needed. */
static asyncore_tls_context *tls_ctx;

/* ---- jobs: one per URL ---------------------------------------------------- */

struct job {
    TAILQ_ENTRY(job) link;  /* in the pending queue while waiting */
    const char *arg;        /* the URL as given, for messages */
    struct http_url url;    /* where it is now, after redirects */
    int redirects;
    int retried;            /* sent again after a kept-alive connection died */
    char *path, *part;      /* final file and its .part; NULL: stdout */
    FILE *out;              /* open while the body is written */
};

/* The exit statuses: one for each kind of failure, so that a script can
 * tell a server that is down from a missing page, a broken response or a
 * slow one.  Of several failures, the lowest status is the one reported. */
enum {
    EXIT_OTHER = 1,    /* a local failure: a file, memory, CA certificates */
    EXIT_USAGE = 2,    /* bad usage */
    EXIT_CONNECT = 3,  /* unknown host, refused, TLS handshake failed */
    EXIT_HTTP = 4,     /* a final status other than 2xx */
    EXIT_PROTOCOL = 5, /* a malformed, cut or lost response; redirects */
    EXIT_TIMEOUT = 6   /* no connection or no data within -t */
};

static TAILQ_HEAD(, job) pending = TAILQ_HEAD_INITIALIZER(pending);
static int jobs_total, jobs_done, jobs_failed;
static int fail_status;     /* the lowest EXIT_ of the failed jobs */
static int got_signal;      /* SIGINT or SIGTERM ended the transfers */

static struct {
    int on;                 /* stderr is a terminal and not -q */
    uint64_t got, expected; /* body bytes, and the sum of known lengths */
    double start;
    struct event *timer;
} progress;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "12.3 MiB" */
static const char *human(uint64_t n, char *buf, size_t size)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    int u = 0;

    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* One line of progress, drawn over itself with \r. */
static void progress_draw(int final)
{
    char got[32], total[32], bar[21];
    int pct;

    if (!progress.on)
        return;
    human(progress.got, got, sizeof(got));
    if (final) {
        fprintf(stderr, "\r\033[K%d/%d files, %s in %.2f s\n",
                jobs_done - jobs_failed, jobs_total, got, now() - progress.start);
        return;
    }
    if (progress.expected == 0) {
        /* No Content-Length known yet: nothing to measure against. */
        fprintf(stderr, "\r\033[K%d/%d files  %s", jobs_done, jobs_total, got);
        return;
    }
    pct = (int)(progress.got * 100 / progress.expected);
    if (pct > 100)
        pct = 100;
    memset(bar, ' ', 20);
    memset(bar, '#', (size_t)pct / 5);
    bar[20] = '\0';
    fprintf(stderr, "\r\033[K%d/%d files  %s of %s  [%s] %3d%%", jobs_done,
            jobs_total, got, human(progress.expected, total, sizeof(total)),
            bar, pct);
}

static void progress_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    progress_draw(0);
}

/* An error line; the progress line, if any, is cleared first. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    if (progress.on)
        fputs("\r\033[K", stderr);
    fputs("asyncore-http-client: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Stop writing the body; the .part file goes, the final name is untouched. */
static void job_drop_output(struct job *j)
{
    if (j->out != NULL && j->out != stdout) {
        fclose(j->out);
        unlink(j->part);
    }
    j->out = NULL;
}

static void job_fail(struct job *j, int status, const char *why)
{
    if (fail_status == 0 || status < fail_status)
        fail_status = status;
    job_drop_output(j);
    say("%s for %s", why, j->arg);
    jobs_done++;
    jobs_failed++;
}

/* A 2xx response is complete: the .part file becomes the real one. */
static void job_succeed(struct job *j)
{
    FILE *out = j->out;

    j->out = NULL;
    if (out == stdout && fflush(stdout) != 0) {
        job_fail(j, EXIT_OTHER, strerror(errno));
        return;
    }
    if (out != stdout && (fclose(out) != 0 || rename(j->part, j->path) != 0)) {
        char why[600];

        snprintf(why, sizeof(why), "cannot write %s: %s", j->path, strerror(errno));
        unlink(j->part);
        job_fail(j, EXIT_OTHER, why);
        return;
    }
    jobs_done++;
}

/* ---- connections ----------------------------------------------------------- */

enum rstate {
    R_STATUS,     /* the status line */
    R_HEADER,     /* header lines, up to the empty one */
    R_BODY,       /* Content-Length bytes: a COUNT terminator */
    R_BODY_EOF,   /* everything until the server closes: NONE */
    R_CHUNK_SIZE, /* a chunk-size line */
    R_CHUNK_DATA, /* that many bytes: COUNT */
    R_CHUNK_END,  /* the CRLF after a chunk's data */
    R_TRAILER,    /* trailer lines after the last chunk */
    R_IDLE        /* no request in flight */
};

struct conn {
    LIST_ENTRY(conn) link;
    asyncore_dispatcher *d;
    char host[HTTP_HOST_MAX];
    unsigned port;
    int https;
    char peer[HTTP_HOST_MAX + 8]; /* "host:port", for messages */
    struct job *job;        /* the request in flight */
    int responses;          /* complete responses on this connection */
    enum rstate st;
    int got_any;            /* any byte of the current response arrived */
    size_t line_len, header_bytes;
    char line[HTTP_LINE_MAX];
    /* the response being read */
    struct http_status status;
    int64_t length;         /* Content-Length, -1 if none */
    int te, chunked;        /* Transfer-Encoding seen; chunked last */
    int close_after;        /* the connection ends with this response */
    int keep_alive;         /* "Connection: keep-alive" (for HTTP/1.0) */
    uint64_t body_got;
    char location[HTTP_LINE_MAX];
};

static LIST_HEAD(, conn) conns = LIST_HEAD_INITIALIZER(conns);
static int nconns;

static void start_jobs(void);

/* The connection is done with: close it, and let waiting jobs start. */
static void conn_end(struct conn *c)
{
    asyncore_dispatcher *d = c->d;

    LIST_REMOVE(c, link);
    nconns--;
    /* Outside the channel's own hooks (the timer) this frees c at once. */
    if (!asyncore_dispatcher_closed(d))
        asyncore_close(d);
    start_jobs();
}

/* The request in flight failed: say why, and drop the connection, whose
 * state is unknown now. */
static void conn_fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(struct conn *c, int status, const char *fmt, ...)
{
    char why[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (c->job != NULL)
        job_fail(c->job, status, why);
    c->job = NULL;
    conn_end(c);
}

/* Send the request of c->job, and get ready for its response. */
static void send_request(struct conn *c)
{
    char req[HTTP_TARGET_MAX + 2 * HTTP_HOST_MAX + 200], host[HTTP_HOST_MAX + 16];
    int n;

    http_url_host_header(&c->job->url, host, sizeof(host));
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\n"
                 "User-Agent: asyncore-http-client/%s (libasyncore)\r\n"
                 "Accept: */*\r\n\r\n",
                 c->job->url.target, host, asyncore_version());
    c->st = R_STATUS;
    c->got_any = 0;
    c->line_len = c->header_bytes = 0;
    c->length = -1;
    c->te = c->chunked = c->close_after = c->keep_alive = 0;
    c->body_got = 0;
    c->location[0] = '\0';
    asyncore_chat_set_terminator(c->d, "\r\n", 2);
    /* The channel queues the request until the connection is made. */
    if (asyncore_chat_push(c->d, req, (size_t)n) < 0 &&
        !asyncore_dispatcher_closed(c->d))
        conn_fail(c, EXIT_OTHER, "cannot send the request: %s", strerror(errno));
}

static int same_server(const struct job *j, const struct conn *c)
{
    return j->url.port == c->port && j->url.https == c->https &&
           strcmp(j->url.host, c->host) == 0;
}

/* Keep-alive: the next job for the same server goes over this connection. */
static void next_request(struct conn *c)
{
    struct job *j;

    TAILQ_FOREACH(j, &pending, link)
        if (same_server(j, c))
            break;
    if (j == NULL) {
        conn_end(c);
        return;
    }
    TAILQ_REMOVE(&pending, j, link);
    c->job = j;
    send_request(c);
}

/* A 3xx with a Location: the job goes back to the queue with its new URL. */
static void job_redirect(struct job *j, const char *location)
{
    struct http_url next;
    char why[HTTP_LINE_MAX + 100];

    switch (http_url_resolve(&j->url, location, strlen(location), &next)) {
    case HTTP_URL_OK:
        break;
    default:
        snprintf(why, sizeof(why), "bad redirect location \"%.*s\"", 200, location);
        job_fail(j, EXIT_PROTOCOL, why);
        return;
    }
    if (++j->redirects > MAX_REDIRECTS) {
        snprintf(why, sizeof(why), "more than %d redirects", MAX_REDIRECTS);
        job_fail(j, EXIT_PROTOCOL, why);
        return;
    }
    j->url = next;
    TAILQ_INSERT_HEAD(&pending, j, link);
}

static int is_redirect(int code)
{
    return code == 301 || code == 302 || code == 303 || code == 307 ||
           code == 308;
}

/* The whole response is in: settle the job, then reuse or close. */
static void response_done(struct conn *c)
{
    struct job *j = c->job;
    int code = c->status.code;

    c->job = NULL;
    c->st = R_IDLE;
    c->responses++;
    if (code >= 200 && code < 300) {
        job_succeed(j);
    } else if (is_redirect(code) && c->location[0] != '\0') {
        job_redirect(j, c->location);
    } else {
        char why[32];

        snprintf(why, sizeof(why), "HTTP %d", code);
        job_fail(j, EXIT_HTTP, why);
    }
    if (c->close_after)
        conn_end(c);
    else
        next_request(c);
}

/* Open where a 2xx body goes: stdout, or the .part file. */
static int open_output(struct conn *c)
{
    struct job *j = c->job;

    if (j->path == NULL) {
        j->out = stdout;
        return 0;
    }
    j->out = fopen(j->part, "wbe");
    if (j->out == NULL) {
        conn_fail(c, EXIT_OTHER, "cannot create %s: %s", j->part, strerror(errno));
        return -1;
    }
    return 0;
}

/* The empty line after the headers: how is the body framed? */
static void headers_done(struct conn *c)
{
    int code = c->status.code;

    if (code >= 100 && code < 200) {
        /* An interim response (100 Continue): the real one follows. */
        if (code == 101) {
            conn_fail(c, EXIT_PROTOCOL, "unexpected 101 Switching Protocols from %s",
                      c->peer);
            return;
        }
        c->st = R_STATUS;
        return;
    }
    if (c->status.minor == 0 && !c->keep_alive)
        c->close_after = 1; /* HTTP/1.0 closes unless told otherwise */
    if (code >= 200 && code < 300 && open_output(c) < 0)
        return;
    if (code >= 200 && code < 300 && c->length > 0 && !c->te)
        progress.expected += (uint64_t)c->length;
    if (code == 204 || code == 304) {
        response_done(c);
    } else if (c->chunked) {
        c->st = R_CHUNK_SIZE;
    } else if (c->length >= 0 && !c->te) {
        if (c->length == 0) {
            response_done(c);
            return;
        }
        c->st = R_BODY;
        asyncore_chat_set_terminator_count(c->d, c->length);
    } else {
        /* No length: the body ends when the server closes. */
        c->st = R_BODY_EOF;
        c->close_after = 1;
        asyncore_chat_set_terminator_none(c->d);
    }
}

static void status_line(struct conn *c)
{
    if (http_parse_status_line(c->line, c->line_len, &c->status) < 0 ||
        c->status.major != 1) {
        conn_fail(c, EXIT_PROTOCOL, "malformed status line from %s", c->peer);
        return;
    }
    c->st = R_HEADER;
}

/* One header line; the empty one ends the header block. */
static void header_line(struct conn *c)
{
    const char *name, *value;
    size_t nlen, vlen;
    uint64_t n;

    if (c->line_len == 0) {
        headers_done(c);
        return;
    }
    if (http_parse_header_line(c->line, c->line_len, &name, &nlen, &value,
                               &vlen) < 0) {
        conn_fail(c, EXIT_PROTOCOL, "malformed header line from %s", c->peer);
        return;
    }
    if (http_name_is(name, nlen, "Content-Length")) {
        /* Two different lengths: which one frames the body?  Refuse. */
        if (http_parse_content_length(value, vlen, &n) < 0 ||
            (c->length >= 0 && (uint64_t)c->length != n)) {
            conn_fail(c, EXIT_PROTOCOL, "bad Content-Length from %s", c->peer);
            return;
        }
        c->length = (int64_t)n;
    } else if (http_name_is(name, nlen, "Transfer-Encoding")) {
        /* With both, Transfer-Encoding wins (RFC 9112 6.3). */
        c->te = 1;
        c->chunked = http_list_ends_with(value, vlen, "chunked");
    } else if (http_name_is(name, nlen, "Connection")) {
        c->close_after |= http_list_has(value, vlen, "close");
        c->keep_alive |= http_list_has(value, vlen, "keep-alive");
    } else if (http_name_is(name, nlen, "Location")) {
        memcpy(c->location, value, vlen); /* vlen < line size */
        c->location[vlen] = '\0';
    }
}

static void chunk_size_line(struct conn *c)
{
    uint64_t n;

    if (http_parse_chunk_size(c->line, c->line_len, &n) < 0) {
        conn_fail(c, EXIT_PROTOCOL, "bad chunk size from %s", c->peer);
        return;
    }
    if (n == 0) {
        c->st = R_TRAILER; /* the last chunk: trailers, then an empty line */
        return;
    }
    c->st = R_CHUNK_DATA;
    asyncore_chat_set_terminator_count(c->d, (int64_t)n);
}

/* ---- the channel's hooks ---------------------------------------------------- */

static void body_data(struct conn *c, const void *data, size_t len)
{
    struct job *j = c->job;

    c->body_got += len;
    if (j->out == NULL)
        return; /* the body of a redirect or an error: not kept */
    if (fwrite(data, 1, len, j->out) != len) {
        conn_fail(c, EXIT_OTHER, "cannot write %s: %s", j->path ? j->part : "stdout",
                  strerror(errno));
        return;
    }
    progress.got += len;
}

static void conn_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct conn *c = asyncore_dispatcher_user_data(d);

    c->got_any = 1;
    switch (c->st) {
    case R_BODY:
    case R_BODY_EOF:
    case R_CHUNK_DATA:
        body_data(c, data, len);
        return;
    case R_IDLE:
        conn_end(c); /* bytes nobody asked for: this connection is unusable */
        return;
    default:
        break;
    }
    /* A line, maybe in pieces: header lines are capped, and so is the
     * header block, or a hostile server could make us buffer without end. */
    if (len > sizeof(c->line) - c->line_len) {
        conn_fail(c, EXIT_PROTOCOL, "header line longer than %d KiB from %s",
                  HTTP_LINE_MAX / 1024, c->peer);
        return;
    }
    memcpy(c->line + c->line_len, data, len);
    c->line_len += len;
    if (c->st != R_CHUNK_SIZE && c->st != R_CHUNK_END &&
        (c->header_bytes += len) > HTTP_HEADER_MAX)
        conn_fail(c, EXIT_PROTOCOL, "response header larger than %d KiB from %s",
                  HTTP_HEADER_MAX / 1024, c->peer);
}

static void conn_found(asyncore_dispatcher *d)
{
    struct conn *c = asyncore_dispatcher_user_data(d);

    c->got_any = 1;
    switch (c->st) {
    case R_STATUS:
    case R_HEADER:
    case R_TRAILER:
        if ((c->header_bytes += 2) > HTTP_HEADER_MAX) {
            conn_fail(c, EXIT_PROTOCOL, "response header larger than %d KiB from %s",
                      HTTP_HEADER_MAX / 1024, c->peer);
            return;
        }
        if (c->st == R_STATUS)
            status_line(c);
        else if (c->st == R_HEADER)
            header_line(c);
        else if (c->line_len == 0)
            response_done(c); /* trailer fields themselves are ignored */
        break;
    case R_BODY:
        response_done(c);
        break;
    case R_CHUNK_SIZE:
        chunk_size_line(c);
        break;
    case R_CHUNK_DATA:
        c->st = R_CHUNK_END;
        asyncore_chat_set_terminator(d, "\r\n", 2);
        break;
    case R_CHUNK_END:
        if (c->line_len != 0)
            conn_fail(c, EXIT_PROTOCOL, "bad chunk from %s: no CRLF after its data",
                      c->peer);
        else
            c->st = R_CHUNK_SIZE;
        break;
    default:
        break;
    }
    c->line_len = 0;
}

/* Nothing to do: the request is queued in the channel already and goes out
 * once the connection (and TLS) is up.  Defined only because asyncore's
 * default handle_connect logs "unhandled connect event". */
static void conn_connected(asyncore_dispatcher *d)
{
    (void)d;
}

/* Nothing read or written for opt.timeout seconds.  Before the connection
 * is up this is a name look-up that is slow to answer (the connect timeout
 * starts with the connect itself). */
static void conn_idle(asyncore_dispatcher *d)
{
    struct conn *c = asyncore_dispatcher_user_data(d);

    if (asyncore_dispatcher_connected(d))
        conn_fail(c, EXIT_TIMEOUT, "timeout: no data from %s for %g s", c->peer,
                  opt.timeout);
    else
        conn_fail(c, EXIT_TIMEOUT, "timeout connecting to %s after %g s", c->peer,
                  opt.timeout);
}

/* Why a close in state @c->st means a failed response. */
static void fail_closed(struct conn *c, int err)
{
    if (err != 0)
        conn_fail(c, EXIT_PROTOCOL, "connection to %s lost: %s", c->peer, strerror(err));
    else if (c->st == R_BODY)
        conn_fail(c, EXIT_PROTOCOL,
                  "truncated body: got %" PRIu64 " of %" PRId64 " bytes",
                  c->body_got, c->length);
    else if (c->st >= R_CHUNK_SIZE)
        conn_fail(c, EXIT_PROTOCOL,
                  "truncated chunked body: %s closed before the last chunk",
                  c->peer);
    else if (!c->got_any)
        conn_fail(c, EXIT_PROTOCOL, "empty reply from %s", c->peer);
    else
        conn_fail(c, EXIT_PROTOCOL, "%s closed the connection in the response header",
                  c->peer);
}

static void conn_closed(asyncore_dispatcher *d)
{
    struct conn *c = asyncore_dispatcher_user_data(d);
    int err = asyncore_dispatcher_last_error(d);

    if (c->job == NULL) {
        conn_end(c);
    } else if (c->st == R_BODY_EOF && err == 0 && asyncore_tls_truncated(d)) {
        conn_fail(c, EXIT_PROTOCOL, "truncated body: %s closed without TLS close_notify",
                  c->peer);
    } else if (c->st == R_BODY_EOF && err == 0) {
        response_done(c); /* the close is how this body ends */
    } else if (c->responses > 0 && !c->got_any && !c->job->retried) {
        /* The server closed a kept-alive connection as we reused it: a GET
         * may be sent again, once, on a new connection. */
        c->job->retried = 1;
        TAILQ_INSERT_HEAD(&pending, c->job, link);
        c->job = NULL;
        conn_end(c);
    } else {
        fail_closed(c, err);
    }
}

static void conn_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct conn *c = asyncore_dispatcher_user_data(d);
    const char *tls = asyncore_tls_last_error(d); /* OpenSSL's reason */

    if (strcmp(op, "connect") == 0 && err == ETIMEDOUT)
        conn_fail(c, EXIT_TIMEOUT, "timeout connecting to %s after %g s", c->peer,
                  opt.timeout);
    else if (strcmp(op, "connect") == 0)
        conn_fail(c, EXIT_CONNECT, "cannot connect to %s: %s", c->peer, strerror(err));
    else if (strcmp(op, "tls") == 0)
        conn_fail(c, EXIT_CONNECT, "TLS handshake with %s failed: %s", c->peer,
                  tls ? tls : strerror(err));
    else if (tls != NULL && err == EPROTO)
        conn_fail(c, EXIT_PROTOCOL, "TLS error from %s: %s", c->peer, tls);
    else
        fail_closed(c, err);
}

static void conn_destroy(asyncore_dispatcher *d)
{
    free(asyncore_dispatcher_user_data(d));
}

static const asyncore_chat_handlers conn_handlers = {
    .dispatcher = {
        .handle_connect = conn_connected,
        .handle_timeout = conn_idle,
        .handle_close = conn_closed,
        .handle_error = conn_error,
        .destroy = conn_destroy,
    },
    .collect_incoming_data = conn_collect,
    .found_terminator = conn_found,
};

/* Is @host a numeric address, not a name to look up? */
static int is_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The TLS client context, made at the first https connection. */
static asyncore_tls_context *tls_context(void)
{
    const char *ca = opt.cacert;

    if (tls_ctx != NULL)
        return tls_ctx;
    /* Without the usual bundle, OpenSSL's own default places. */
    if (ca == NULL && access(DEFAULT_CA, R_OK) == 0)
        ca = DEFAULT_CA;
    tls_ctx = asyncore_tls_client_context_new(ca);
    if (tls_ctx != NULL && opt.insecure)
        asyncore_tls_set_verify(tls_ctx, 0);
    return tls_ctx;
}

/* https: TLS under the channel, for the URL's host (SNI, certificate). */
static int start_tls(struct conn *c)
{
    asyncore_tls_context *ctx = tls_context();

    if (ctx == NULL) {
        conn_fail(c, EXIT_OTHER, "cannot load CA certificates from %s: %s",
                  opt.cacert ? opt.cacert : DEFAULT_CA, strerror(errno));
        return -1;
    }
    if (asyncore_tls_start_client(c->d, ctx, c->host) < 0) {
        conn_fail(c, EXIT_OTHER, "cannot start TLS: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* A new connection to @j's server, with @j as its first request. */
static void conn_open(struct job *j)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->d = asyncore_chat_new(NULL, &conn_handlers, c)) == NULL) {
        free(c);
        job_fail(j, EXIT_OTHER, strerror(ENOMEM));
        return;
    }
    /* From here on the channel owns c: conn_destroy frees it. */
    LIST_INSERT_HEAD(&conns, c, link);
    nconns++;
    c->job = j;
    snprintf(c->host, sizeof(c->host), "%s", j->url.host);
    c->port = j->url.port;
    c->https = j->url.https;
    snprintf(c->peer, sizeof(c->peer), j->url.ipv6 ? "[%s]:%u" : "%s:%u",
             c->host, c->port);
    if (asyncore_set_connect_timeout(c->d, opt.timeout) < 0 ||
        asyncore_set_idle_timeout(c->d, opt.timeout) < 0) {
        conn_fail(c, EXIT_OTHER, "%s", strerror(errno));
        return;
    }
    if (c->https && start_tls(c) < 0)
        return;
    /* getaddrinfo() blocks while it looks the name up. */
    if (asyncore_connect_host(c->d, c->host, c->port) < 0) {
        if (errno == EHOSTUNREACH && !is_numeric(c->host))
            conn_fail(c, EXIT_CONNECT, "unknown host %s", c->host);
        else
            conn_fail(c, EXIT_CONNECT, "cannot connect to %s: %s", c->peer,
                      strerror(errno));
        return;
    }
    send_request(c);
}

/*
 * Start waiting jobs while connections are free.  A job whose server
 * already has a connection waits for it (next_request takes it there).
 * Opening may fail at once and end a connection, which calls us again:
 * that inner call does nothing, and we rescan from the head instead.
 */
static void start_jobs(void)
{
    static int running;
    struct job *j;
    struct conn *c;

    if (running)
        return;
    running = 1;
again:
    TAILQ_FOREACH(j, &pending, link) {
        if (nconns >= opt.parallel)
            break;
        LIST_FOREACH(c, &conns, link)
            if (same_server(j, c))
                break;
        if (c == NULL) {
            TAILQ_REMOVE(&pending, j, link);
            conn_open(j);
            goto again;
        }
    }
    running = 0;
}

/* ---- main ------------------------------------------------------------------- */

/*
 * SIGINT/SIGTERM, delivered by the event loop (a libevent signal event), so
 * that it runs between hooks like any other event.  Nothing more starts,
 * every connection ends, and the loop returns; main() then removes the
 * .part files of the transfers that were cut.  The default disposition
 * would kill the process with them left behind.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct conn *c;

    (void)what, (void)arg;
    got_signal = (int)sig;
    TAILQ_INIT(&pending);
    /* conn_end() frees c at once here: no hook of its channel is running. */
    while ((c = LIST_FIRST(&conns)) != NULL)
        conn_end(c);
    asyncore_close_all(NULL);
}

/* The synopsis; with --help the options too, on stdout. */
static void usage(FILE *to)
{
    fputs("usage: asyncore-http-client [-k] [--cacert FILE] [-o FILE|-O DIR] [-c PARALLEL] [-q]\n"
          "                   [-t SECONDS] URL...\n",
          to);
    if (to == stderr) {
        fputs("Try 'asyncore-http-client --help' for more.\n", to);
        return;
    }
    fprintf(to,
            "Fetch http:// and https:// URLs with HTTP/1.1 GET.\n"
            "  -k, --insecure  do not verify the server's certificate (https)\n"
            "  --cacert FILE   trust the CA certificates of FILE (default %s)\n"
            "  -o FILE      save the body of the one URL in FILE (default: stdout)\n"
            "  -O DIR       save each URL in DIR, under its last path segment\n"
            "  -c PARALLEL  connections at once, to different servers (default %d)\n"
            "  -q           no progress bar\n"
            "  -t SECONDS   connect and idle timeout (default %g)\n"
            "  -h, --help   show this help\n"
            "  --version    show the program's and libasyncore's version\n"
            "Several URLs need -O.  URLs on one server share a connection.\n",
            DEFAULT_CA, DEFAULT_PARALLEL, DEFAULT_TIMEOUT);
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "insecure", no_argument, NULL, 'k' },
        { "cacert", required_argument, NULL, 'C' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int o;

    argv[0] = (char *)"asyncore-http-client"; /* getopt's messages: not libtool's path */
    while ((o = getopt_long(argc, argv, "o:O:c:qt:hk", longopts, NULL)) != -1) {
        switch (o) {
        case 'k': opt.insecure = 1; break;
        case 'C': opt.cacert = optarg; break;
        case 'o': opt.file = optarg; break;
        case 'O': opt.dir = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 'c':
            errno = 0;
            opt.parallel = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || opt.parallel < 1 ||
                opt.parallel > 10000) {
                fprintf(stderr, "asyncore-http-client: bad number for -c: %s\n", optarg);
                return -1;
            }
            break;
        case 't':
            opt.timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.timeout > 0 && opt.timeout <= 1e6)) {
                fprintf(stderr, "asyncore-http-client: bad timeout: %s\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V':
            printf("asyncore-http-client (libasyncore) %s\n", asyncore_version());
            exit(0);
        default: return -1;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "asyncore-http-client: no URL\n");
        return -1;
    }
    if (opt.file != NULL && opt.dir != NULL) {
        fprintf(stderr, "asyncore-http-client: -o and -O exclude each other\n");
        return -1;
    }
    if (argc - optind > 1 && opt.dir == NULL) {
        fprintf(stderr, "asyncore-http-client: several URLs need -O DIR\n");
        return -1;
    }
    return 0;
}

/* "DIR/NAME" or "DIR/.NAME.part" */
static char *dir_path(const char *name, int part)
{
    size_t size = strlen(opt.dir) + strlen(name) + 8;
    char *p = malloc(size);

    if (p != NULL)
        snprintf(p, size, part ? "%s/.%s.part" : "%s/%s", opt.dir, name);
    return p;
}

/* Parse every URL and choose its output before anything is fetched, so
 * that a typo in the last URL does not come after the first download. */
static int make_jobs(struct job *jobs, int n, char **urls)
{
    char name[256];
    struct stat sb;

    if (opt.dir != NULL) {
        int err = stat(opt.dir, &sb) < 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;

        if (err != 0) {
            say("%s: %s", opt.dir, strerror(err));
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        struct job *j = &jobs[i];

        j->arg = urls[i];
        switch (http_url_parse(urls[i], strlen(urls[i]), &j->url)) {
        case HTTP_URL_OK: break;
        default:
            say("bad URL (only http:// and https:// URLs are supported): %s",
                urls[i]);
            return -1;
        }
        if (opt.file != NULL && strcmp(opt.file, "-") != 0) {
            size_t size = strlen(opt.file) + 6;

            j->path = strdup(opt.file);
            if ((j->part = malloc(size)) != NULL)
                snprintf(j->part, size, "%s.part", opt.file);
        } else if (opt.dir != NULL) {
            if (http_save_name(j->url.target, name, sizeof(name)) < 0) {
                say("no file name in %s", urls[i]);
                return -1;
            }
            j->path = dir_path(name, 0);
            j->part = dir_path(name, 1);
        }
        /* "-o -" is standard output: no file, so no path to have failed. */
        if ((j->path != NULL || opt.dir != NULL) &&
            (j->path == NULL || j->part == NULL)) {
            say("%s", strerror(ENOMEM));
            return -1;
        }
        for (int k = 0; k < i && j->path != NULL; k++) {
            const char *clash;

            if (strcmp(jobs[k].path, j->path) == 0) {
                say("%s and %s would both be saved as %s", jobs[k].arg,
                    urls[i], j->path);
                return -1;
            }
            /* A final name must not be another URL's temporary one either
             * (".../a" and ".../.a.part"): one transfer would write into
             * the other's file, or rename it away. */
            clash = strcmp(jobs[k].path, j->part) == 0   ? j->part
                    : strcmp(jobs[k].part, j->path) == 0 ? j->path
                                                         : NULL;
            if (clash != NULL) {
                say("%s and %s would both use %s, one as its temporary file",
                    jobs[k].arg, urls[i], clash);
                return -1;
            }
        }
        TAILQ_INSERT_TAIL(&pending, j, link);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct event *sigint = NULL, *sigterm = NULL;
    struct event_base *base;
    struct job *jobs;
    int n, rc = 1;

    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    n = argc - optind;
    jobs = calloc((size_t)n, sizeof(*jobs));
    if (jobs == NULL) {
        say("%s", strerror(ENOMEM));
        return 1;
    }
    /* The signal events live on the default map's base, beside the
     * dispatchers: asyncore_loop() serves them too. */
    base = asyncore_map_base(NULL);
    if (base != NULL) {
        sigint = evsignal_new(base, SIGINT, on_signal, NULL);
        sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    }
    if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sigterm, NULL) < 0) {
        say("cannot watch signals");
    } else if (make_jobs(jobs, n, argv + optind) == 0) {
        jobs_total = n;
        /* A progress bar on a terminal, unless the body goes there too. */
        progress.on = !opt.quiet && isatty(STDERR_FILENO) &&
                      !(opt.dir == NULL && jobs[0].path == NULL &&
                        isatty(STDOUT_FILENO));
        progress.start = now();
        if (progress.on) {
            struct timeval tick = { 0, 200000 };

            /* A timer of our own, on the same base as the dispatchers. */
            progress.timer = event_new(asyncore_map_base(NULL), -1, EV_PERSIST,
                                       progress_tick, NULL);
            if (progress.timer == NULL || evtimer_add(progress.timer, &tick) < 0)
                progress.on = 0;
        }
        start_jobs();
        if (asyncore_loop(NULL, -1.0, ASYNCORE_FOREVER) < 0)
            say("event loop: %s", strerror(errno));
        else if (got_signal)
            rc = 128 + got_signal; /* as a shell reports a death by it */
        else if (jobs_done == jobs_total)
            rc = fail_status;
        progress_draw(1);
    }
    if (progress.timer != NULL)
        event_free(progress.timer);
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    asyncore_map_free(asyncore_map_default());
    asyncore_tls_context_free(tls_ctx);
    for (int i = 0; i < n; i++) {
        job_drop_output(&jobs[i]);
        free(jobs[i].path);
        free(jobs[i].part);
    }
    free(jobs);
    return rc;
}
