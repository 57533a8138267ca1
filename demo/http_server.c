/*
 * http_server.c -- serve the files under a directory over HTTP/1.1.
 *
 *   asyncore-http-server [-b ADDR] [-p PORT] [-r ROOT] [-t SECONDS] [-l FILE]
 *
 * A small static file server in the medusa tradition: a listening
 * dispatcher hands each connection to an async_chat channel, and the
 * channel's terminators do the framing of requests:
 *
 *   request line, header lines   terminator "\r\n"
 *   a request body (ignored)     terminator COUNT Content-Length
 *
 * Responses are pushed onto the channel's output queue.  A small file is
 * read at once and pushed with its header as one piece, which the push
 * sends in one send(): nothing stays queued, so the connection never asks
 * for write events.  A larger file goes as a producer that reads it 64 KiB
 * at a time when the socket can take more, so a 1 GiB file never sits in
 * memory.  Because the queue is a FIFO, pipelined requests are answered in
 * order for free.
 *
 * GET and HEAD; Last-Modified, If-Modified-Since (304) and one byte range
 * (206, 416: see serve_file); keep-alive for HTTP/1.1 (and HTTP/1.0 that
 * asks for it); 400 for malformed requests, 403, 404, 405 with Allow, 414
 * and 431 for oversized request lines and headers, 503 when out of
 * descriptors, 505 for HTTP/2 and later.  An access log with -l.  No path
 * leaves ROOT: ".." segments are refused after percent-decoding, and a
 * file is opened relative to ROOT with symlinks resolved beneath it
 * (openat2 RESOLVE_BENEATH); a path the kernel will not resolve that way
 * is checked as before, by its real path.
 *
 * A connection that makes no progress for -t SECONDS, in either direction,
 * is closed by the library's idle timeout: a client silent between
 * requests, and one that stopped reading a large answer, whose send then
 * waits.  A client dripping a header or body byte now and then is never
 * idle: a request (header and body) must also be complete SECONDS after it
 * began to arrive, and a last answer (Connection: close) must move at
 * least every SECONDS.
 * After that answer the close goes in stages (linger_start).
 *
 * Exit status: 0 after SIGINT or SIGTERM, 1 on a runtime failure, 2 on bad
 * usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* O_PATH, syscall() */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#if defined(SYS_openat2) && defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define USE_OPENAT2 1
#endif
#endif
#endif

#include <event2/event.h>

#include <asyncore.h>

#include "http_parse.h"

#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_PORT 8000
/* Stop reading a client's requests while this much of its answers waits:
 * a client that pipelines requests and never reads cannot grow our queue
 * without end. */
#define QUEUE_LIMIT_ENTRIES 16
#define QUEUE_LIMIT_BYTES (256 * 1024)
/* How long, at most, a connection waits for the client's close once its
 * last answer is out (see linger_start). */
#define LINGER_SECONDS 2.0

/* Seconds a connection may make no progress, and a request header may take
 * to arrive in full once it has begun (slowloris). */
#define DEFAULT_TIMEOUT 30.0

static struct {
    const char *addr, *root;
    long port;
    double timeout;
    const char *log;        /* -l FILE: the access log, "-" for stdout */
} opt = { DEFAULT_ADDR, ".", DEFAULT_PORT, DEFAULT_TIMEOUT, NULL };

static FILE *access_log;   /* open when -l was given */

static char root[PATH_MAX]; /* realpath of ROOT */
static size_t root_len;
static int root_fd = -1;    /* ROOT itself, what files are opened beneath */
static int got_signal;
#ifdef USE_OPENAT2
static int have_openat2 = 1; /* cleared when the kernel says ENOSYS */
#endif

/* A file we serve is opened without waiting (a FIFO would block) and
 * without becoming our terminal; fstat() then refuses what is not a
 * regular file. */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)

/* Files up to this size, with their header, go out in one piece: the
 * chat's out-buffer size, the most one of its sends passes. */
#define ONE_PIECE_MAX ASYNCORE_CHAT_BUFFER_SIZE

/* ---- files under ROOT ------------------------------------------------------- */

/* Is the real path @p ROOT or inside it? */
static int under_root(const char *p)
{
    if (root_len == 1)
        return 1; /* ROOT is "/" */
    return strncmp(p, root, root_len) == 0 &&
           (p[root_len] == '\0' || p[root_len] == '/');
}

/* The status for a failed open(): only a missing file is a 404, and no
 * descriptor left (EMFILE, ENFILE) is the server's passing trouble, a 503
 * that the client may try again, not a 403 it would believe. */
static int open_status(int err)
{
    if (err == EMFILE || err == ENFILE)
        return 503;
    return err == ENOENT || err == ENOTDIR ? 404 : 403;
}

/*
 * The portable check: the realpath() of ROOT/@rel must lie under ROOT's,
 * and that real path is opened without following a symlink, so that one
 * put there meanwhile is not followed either.  Returns 200 with @fd set,
 * or an error status.
 */
static int open_checked(const char *rel, int *fd)
{
    char full[PATH_MAX + HTTP_TARGET_MAX], real[PATH_MAX];

    if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, rel) >= PATH_MAX)
        return 404;
    if (realpath(full, real) == NULL)
        return errno == EACCES ? 403 : open_status(errno) == 503 ? 503 : 404;
    /* A symlink may point anywhere: what counts is where it lands. */
    if (!under_root(real))
        return 403;
    if ((*fd = open(real, OPEN_FLAGS | O_NOFOLLOW)) < 0)
        return open_status(errno);
    return 200;
}

/*
 * Open @rel (relative to ROOT, no ".." segment, no NUL).  The kernel
 * resolves it beneath ROOT in one call, symlinks included; it refuses a
 * path that leaves ROOT on the way even if it comes back, or whose
 * symlink is absolute, and then the real path decides as it always did.
 * Returns 200 with @fd set, or an error status.
 */
static int open_beneath(const char *rel, int *fd)
{
#ifdef USE_OPENAT2
    struct open_how how;

    if (have_openat2) {
        memset(&how, 0, sizeof(how));
        how.flags = OPEN_FLAGS;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        *fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (*fd >= 0)
            return 200;
        if (errno == ENOENT || errno == ENOTDIR)
            return 404; /* as realpath() would say */
        if (errno == EMFILE || errno == ENFILE)
            return 503;
        if (errno == ENOSYS)
            have_openat2 = 0; /* a kernel before 5.6 */
        /* EXDEV (out of ROOT), EACCES, ELOOP...: the real path decides. */
    }
#endif
    return open_checked(rel, fd);
}

/* open_beneath() and fstat(); on failure @fd is closed. */
static int open_stat(const char *rel, int *fd, struct stat *sb)
{
    int code = open_beneath(rel, fd);

    if (code == 200 && fstat(*fd, sb) < 0) {
        code = open_status(errno);
        close(*fd);
        *fd = -1;
    }
    return code;
}

/*
 * Map a request target to an open regular file: its descriptor in @fd,
 * its stat in @sb and its path under ROOT (percent-decoded, for the
 * Content-Type and a later open) in @path.  Returns 200, 301 (a directory
 * without its '/': @location is set), or an error status.
 */
static int find_file(const char *target, char *path, size_t path_size, int *fd,
                     struct stat *sb, char *location, size_t loc_size)
{
    static const char index_html[] = "index.html";
    const char *rel;
    size_t path_len;
    long n;
    int code;

    /* The absolute form "http://host/path" (RFC 9112 3.2.2). */
    if (strncasecmp(target, "http://", 7) == 0) {
        target = strchr(target + 7, '/');
        if (target == NULL)
            target = "/";
    }
    if (target[0] != '/')
        return 400;
    path_len = strcspn(target, "?");
    /* Room is left for "index.html"; the decoding refuses an encoded NUL. */
    n = http_percent_decode(target, path_len, path, path_size - sizeof(index_html));
    if (n < 0 || http_path_has_dotdot(path, (size_t)n))
        return 400;
    /* Relative to ROOT: what follows the leading slashes, or ROOT itself. */
    for (rel = path; *rel == '/'; rel++)
        continue;
    if ((code = open_stat(*rel ? rel : ".", fd, sb)) != 200)
        return code;
    if (S_ISDIR(sb->st_mode)) {
        close(*fd);
        *fd = -1;
        /* "/dir" to "/dir/", so that the page's relative links work.
         * The Location is an absolute path with one leading slash: "//x/"
         * would be scheme-relative, a redirect to the host x, and browsers
         * read "/\x/" the same way. */
        if (path[n - 1] != '/') {
            const char *p = target;
            size_t skip;

            while (p[1] == '/')
                p++; /* the last of the leading slashes */
            skip = p[1] == '\\' ? 2 : 1;
            snprintf(location, loc_size, "/%s%.*s/%s", skip == 2 ? "%5C" : "",
                     (int)(path_len - (size_t)(p - target) - skip), p + skip,
                     target + path_len);
            return 301;
        }
        memcpy(path + n, index_html, sizeof(index_html));
        if ((code = open_stat(rel, fd, sb)) != 200)
            return code;
    }
    if (!S_ISREG(sb->st_mode)) {
        close(*fd);
        *fd = -1;
        return 403;
    }
    return 200;
}

/* A producer that reads a file in chunks as the socket drains.  It is
 * given the open file when it will run at once; queued behind other
 * answers, it opens the file again on its first call, so that a client
 * pipelining a thousand requests holds one open file, not a thousand. */
struct file_body {
    char *rel; /* the path under ROOT, when fd is -1 */
    int fd;
    uint64_t pos;  /* where the next read starts (a range's first byte) */
    uint64_t left; /* bytes promised by Content-Length and not yet read */
};

static ssize_t file_more(void *arg, void *buf, size_t size)
{
    struct file_body *f = arg;
    ssize_t n;

    if (f->left == 0)
        return 0;
    if (f->fd < 0 && (n = open_beneath(f->rel, &f->fd)) != 200) {
        /* The header is out: the error closes the connection. */
        errno = n == 404 ? ENOENT : n == 503 ? EMFILE : EACCES;
        return -1;
    }
    if (size > f->left)
        size = (size_t)f->left;
    n = pread(f->fd, buf, size, (off_t)f->pos);
    if (n == 0) {
        /* The file shrank: the client would wait for the rest forever.
         * The error closes the connection instead. */
        errno = EIO;
        return -1;
    }
    if (n > 0) {
        f->pos += (uint64_t)n;
        f->left -= (uint64_t)n;
    }
    return n;
}

static void file_free(void *arg)
{
    struct file_body *f = arg;

    if (f->fd >= 0)
        close(f->fd);
    free(f->rel);
    free(f);
}

/* A producer of @size bytes from @offset of the open file @fd (which it
 * owns from now on, even on failure), or of @rel opened later if @fd is -1. */
static asyncore_producer *file_producer(int fd, const char *rel, uint64_t offset,
                                        uint64_t size)
{
    struct file_body *f = malloc(sizeof(*f));
    asyncore_producer *p;

    if (f == NULL || (fd < 0 && (f->rel = strdup(rel)) == NULL)) {
        free(f);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (fd >= 0)
        f->rel = NULL;
    f->fd = fd;
    f->pos = offset;
    f->left = size;
    p = asyncore_producer_new(file_more, file_free, f);
    if (p == NULL)
        file_free(f);
    return p;
}

/* ---- one client connection ---------------------------------------------------- */

enum qstate {
    Q_LINE,   /* the request line */
    Q_HEADER, /* header lines, up to the empty one */
    Q_BODY,   /* a request body, skipped: COUNT terminator */
    Q_DONE,   /* the last answer is queued: input is dropped */
    Q_LINGER  /* it is sent and our side shut: input is dropped until EOF */
};

struct client {
    enum qstate st;
    char *line;               /* the line being read, grown up to 8 KiB */
    size_t line_len, line_cap, header_bytes;
    /* the request being read */
    char *target;
    int head, other_method;   /* HEAD; neither GET nor HEAD */
    int minor, bad_version;
    int has_host, close_tok, keep_alive_tok, te;
    int has_ims, has_if_range;  /* If-Modified-Since, If-Range: valid dates */
    time_t ims, if_range;
    int if_range_other;       /* an If-Range that is not a date (an ETag) */
    char *range;              /* the Range header's value, if any */
    int64_t length;           /* Content-Length, -1 if none */
    int peer_closed;          /* EOF seen while answers were queued */
    int partial;              /* part of a request has arrived, not all */
    char *request;            /* its request line as sent, for the log */
    char peer[NI_MAXHOST];    /* the client's address, for the log */
    asyncore_timer *deadline; /* the partial header's, or the last answer's */
};

/* Are so many answers queued that we stop reading (see client_readable)? */
static int backlogged(asyncore_dispatcher *d)
{
    size_t bytes;
    int entries = asyncore_chat_queued(d, &bytes);

    return entries >= QUEUE_LIMIT_ENTRIES || bytes >= QUEUE_LIMIT_BYTES;
}

/*
 * One deadline per connection, for two stalls that the idle timeout
 * (server_accepted) cannot see because the client keeps sending:
 *
 * - Slowloris: a client that drips a header (or body) byte now and then is
 *   never idle, so a request, its header and any body, must be complete
 *   within opt.timeout seconds of its first bytes.  While we do not read
 *   because too many answers are queued, the rest of it may be waiting in
 *   the kernel: that is not the client's delay, and a client that stopped
 *   reading them is the idle timeout's to close.
 * - After the last answer (Q_DONE) the client's bytes are read and
 *   dropped, so each of them would reset the idle timeout, and a client
 *   that drips and never reads would be held for ever.  So that answer
 *   itself must move: every write dispatch (the client made room by
 *   reading) moves the deadline on (client_write).
 */
static void deadline_over(asyncore_timer *t, void *arg)
{
    asyncore_dispatcher *d = arg;
    struct client *c = asyncore_dispatcher_user_data(d);

    if (c->st != Q_DONE && c->st != Q_LINGER && backlogged(d) &&
        asyncore_timer_rearm(t, opt.timeout) == 0)
        return;
    c->deadline = NULL; /* a one-shot is released when this returns */
    asyncore_close(d);
}

/* Only a request that did not arrive whole in one read, or a last answer,
 * costs a timer: the common keep-alive request never has one. */
static void deadline_start(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    if (opt.timeout > 0 && c->deadline == NULL)
        c->deadline = asyncore_call_later(asyncore_dispatcher_map(d),
                                          opt.timeout, deadline_over, d);
}

/* The request is read (or answered with an error): no deadline runs until
 * the next one begins to arrive. */
static void request_complete(struct client *c)
{
    c->partial = 0;
    asyncore_timer_cancel(c->deadline);
    c->deadline = NULL;
}

/* The Date header's value, formatted once per second. */
static const char *http_date(void)
{
    static char date[64];
    static time_t last = (time_t)-1;
    time_t t = time(NULL);
    struct tm tm;

    if (t != last) {
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT",
                 gmtime_r(&t, &tm));
        last = t;
    }
    return date;
}

/* "Server: ...\r\nDate: ", the header lines every response begins with
 * after its status line, made once (see set_server_line). */
static char server_line[128];
static size_t server_line_len;

static void set_server_line(void)
{
    int n = snprintf(server_line, sizeof(server_line),
                     "Server: asyncore-http-server (libasyncore %s)\r\nDate: ",
                     asyncore_version());

    server_line_len = n < 0 ? 0 : (size_t)n < sizeof(server_line) ? (size_t)n
                                                                  : sizeof(server_line) - 1;
}

/* Append @len bytes at @p; the end of what was written. */
static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* A string literal: its length is known when compiling. */
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

static char *put_u64(char *p, uint64_t v)
{
    char digits[20];
    size_t i = 0;

    do
        digits[i++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (i > 0)
        *p++ = digits[--i];
    return p;
}

/*
 * The response header, at @out; its length.  snprintf() would parse the
 * format on every request: this is a tenth of the server's own work per
 * request.  @out holds at least 1 KiB plus @extra.
 */
static size_t put_header(char *out, int code, const char *type, uint64_t size,
                         const char *extra, int keep)
{
    char *p = PUT_LIT(out, "HTTP/1.1 ");

    p = put_u64(p, (uint64_t)code);
    *p++ = ' ';
    p = put_str(p, http_reason(code));
    p = PUT_LIT(p, "\r\n");
    p = put(p, server_line, server_line_len);
    p = put_str(p, http_date());
    p = PUT_LIT(p, "\r\nContent-Type: ");
    p = put_str(p, type);
    p = PUT_LIT(p, "\r\nContent-Length: ");
    p = put_u64(p, size);
    p = PUT_LIT(p, "\r\n");
    if (extra != NULL)
        p = put_str(p, extra);
    p = keep ? PUT_LIT(p, "Connection: keep-alive\r\n\r\n")
             : PUT_LIT(p, "Connection: close\r\n\r\n");
    return (size_t)(p - out);
}

/* Read all @size bytes of @fd from @offset into @buf; -1 if it fails or
 * ends sooner. */
static int read_all(int fd, char *buf, uint64_t offset, size_t size)
{
    ssize_t n;

    while (size > 0) {
        n = pread(fd, buf, size, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        offset += (uint64_t)n;
        size -= (size_t)n;
    }
    return 0;
}

/*
 * One line of the access log in the Common Log Format, as Apache's and
 * nginx's "common" format write it:
 *
 *   127.0.0.1 - - [07/Dec/2026:16:04:05 +0000] "GET /a HTTP/1.1" 200 1234
 *
 * The request line is quoted with '"', '\\' and bytes outside printable
 * ASCII written as \xHH, so that a client cannot forge a line or a field;
 * "-" when none was read (a request line over the limit).  The size is
 * that of the body, "-" for none.  The log is line-buffered: each line is
 * out when its answer is queued, for tail -f.
 */
static void log_access(const struct client *c, int code, uint64_t bytes)
{
    char date[64];
    time_t t = time(NULL);
    struct tm tm;

    if (access_log == NULL)
        return;
    strftime(date, sizeof(date), "%d/%b/%Y:%H:%M:%S %z", localtime_r(&t, &tm));
    fprintf(access_log, "%s - - [%s] ", c->peer[0] ? c->peer : "-", date);
    if (c->request == NULL) {
        fputc('-', access_log);
    } else {
        fputc('"', access_log);
        for (const unsigned char *p = (const unsigned char *)c->request; *p; p++) {
            if (*p == '"' || *p == '\\' || *p < 0x20 || *p >= 0x7f)
                fprintf(access_log, "\\x%02X", *p);
            else
                fputc(*p, access_log);
        }
        fputc('"', access_log);
    }
    if (bytes > 0)
        fprintf(access_log, " %d %llu\n", code, (unsigned long long)bytes);
    else
        fprintf(access_log, " %d -\n", code);
}

/*
 * Queue one response: the header, and the body as @text, or as @size
 * bytes from @offset of the open file @fd (which this takes over) whose
 * path under ROOT is @rel.  The header and a body that fits beside it in
 * ONE_PIECE_MAX are pushed as one piece, so that they leave in one send; a
 * larger file follows the header as a producer.  A 304 has no body, its
 * Content-Length is the one a 200 would have.  Then either read the next
 * request or close.
 */
static void respond(asyncore_dispatcher *d, int code, const char *type,
                    const char *text, int fd, const char *rel, uint64_t offset,
                    uint64_t size, const char *extra, int keep)
{
    static char out[ONE_PIECE_MAX];
    struct client *c = asyncore_dispatcher_user_data(d);
    size_t n, body = 0;
    int queued = asyncore_chat_queued(d, NULL), failed;
    int no_body = c->head || code == 304;
    asyncore_producer *p = NULL;

    log_access(c, code, no_body ? 0 : size);
    free(c->request);
    c->request = NULL;
    /* Room: @extra is at most a Location of HTTP_TARGET_MAX bytes. */
    n = put_header(out, code, type, size, extra, keep);
    if (no_body) {
        /* No body. */
    } else if (text != NULL) {
        memcpy(out + n, text, (size_t)size); /* error pages: a short line */
        body = (size_t)size;
    } else if (fd >= 0 && size <= sizeof(out) - n) {
        body = (size_t)size;
        if (read_all(fd, out + n, offset, body) < 0) {
            /* Changed under us: the header would promise what we lack. */
            close(fd);
            asyncore_close(d);
            return;
        }
    } else if (fd >= 0) {
        /* Behind other answers it will open the file again when its turn
         * comes: see struct file_body. */
        if (queued > 0) {
            close(fd);
            fd = -1;
        }
        p = file_producer(fd, rel, offset, size);
        fd = -1;
        if (p == NULL) {
            asyncore_close(d);
            return;
        }
    }
    if (fd >= 0 && p == NULL)
        close(fd); /* read already, or not wanted (HEAD) */
    /* A failed push has closed the channel or left it without memory:
     * either way it is dropped here. */
    if (asyncore_chat_push(d, out, n + body) < 0) {
        asyncore_producer_free(p);
        failed = 1;
    } else {
        failed = p != NULL && asyncore_chat_push_with_producer(d, p) < 0;
    }
    if (failed) {
        if (!asyncore_dispatcher_closed(d))
            asyncore_close(d);
        return;
    }
    /* Forget the request: an error found in the next one's first line
     * must not be answered as if it were a HEAD. */
    request_complete(c);
    free(c->target);
    c->target = NULL;
    c->head = 0;
    if (!keep) {
        c->st = Q_DONE;
        deadline_start(d);
        asyncore_chat_close_when_done(d);
        return;
    }
    c->st = Q_LINE;
    asyncore_chat_set_terminator(d, "\r\n", 2);
}

/* An error page.  After a malformed request we cannot tell where the next
 * one would start, so those close the connection. */
static void respond_error(asyncore_dispatcher *d, int code, int keep)
{
    char text[128];

    snprintf(text, sizeof(text), "%d %s\n", code, http_reason(code));
    respond(d, code, "text/plain; charset=utf-8", text, -1, NULL, 0, strlen(text),
            code == 405   ? "Allow: GET, HEAD\r\n"
            : code == 503 ? "Retry-After: 1\r\n"
                          : NULL,
            keep);
}

/*
 * Answer with the open regular file @fd (@path as requested, @rel under
 * ROOT), taking the request's conditions into account:
 *
 * - If-Modified-Since, when the file is not newer: 304, no body.
 * - Range, one byte range: 206 with Content-Range and those bytes, or 416
 *   with "Content-Range: bytes STAR/SIZE" when no byte of the file is in
 *   it; several ranges, or one we do not understand, get the whole file.
 *   With If-Range, only when its date is the file's Last-Modified (an
 *   ETag never matches: we send none).
 *
 * Every answer says Last-Modified and Accept-Ranges: bytes, which is what
 * lets curl -C - and wget -c resume a download.
 */
static void serve_file(asyncore_dispatcher *d, const char *path, const char *rel,
                       int fd, const struct stat *sb, int keep)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    uint64_t size = (uint64_t)sb->st_size, first = 0, last = 0;
    char lm[40], extra[200];
    int n, range = -1;

    http_format_date(sb->st_mtime, lm, sizeof(lm));
    n = snprintf(extra, sizeof(extra), "Last-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                 lm);
    if (c->has_ims && sb->st_mtime <= c->ims) {
        close(fd);
        respond(d, 304, http_content_type(path), "", -1, NULL, 0, size, extra, keep);
        return;
    }
    if (c->range != NULL && !c->if_range_other &&
        (!c->has_if_range || c->if_range == sb->st_mtime))
        range = http_parse_range(c->range, strlen(c->range), size, &first, &last);
    if (range == 0) {
        static const char text[] = "416 Range Not Satisfiable\n";

        close(fd);
        snprintf(extra + n, sizeof(extra) - (size_t)n,
                 "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
        respond(d, 416, "text/plain; charset=utf-8", text, -1, NULL, 0,
                sizeof(text) - 1, extra, keep);
    } else if (range == 1) {
        snprintf(extra + n, sizeof(extra) - (size_t)n,
                 "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
                 (unsigned long long)last, (unsigned long long)size);
        respond(d, 206, http_content_type(path), NULL, fd, rel, first,
                last - first + 1, extra, keep);
    } else {
        respond(d, 200, http_content_type(path), NULL, fd, rel, 0, size, extra, keep);
    }
}

/* The request is complete: find the file and answer. */
static void serve(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    char path[HTTP_TARGET_MAX + 16], location[HTTP_TARGET_MAX + 64];
    char extra[sizeof(location) + 16];
    /* HTTP/1.1 keeps the connection unless told; 1.0 only when asked. */
    int keep = c->minor >= 1 ? !c->close_tok : c->keep_alive_tok;
    struct stat sb;
    int fd = -1;
    int code = find_file(c->target, path, sizeof(path), &fd, &sb, location,
                         sizeof(location));
    const char *rel = path;

    if (code == 200) {
        while (*rel == '/')
            rel++;
        serve_file(d, path, rel, fd, &sb, keep);
    } else if (code == 301) {
        snprintf(extra, sizeof(extra), "Location: %s\r\n", location);
        respond(d, 301, "text/plain; charset=utf-8", "", -1, NULL, 0, 0, extra, keep);
    } else {
        respond_error(d, code, keep && code != 400);
    }
}

/* The empty line: decide what to do with the request. */
static void headers_done(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    /* Every answer below ends the request's deadline (respond); a body to
     * skip first stays under it, or a client dripping the body a byte at
     * a time would never be idle and never be done. */
    if (c->bad_version)
        respond_error(d, 505, 0);
    else if (c->other_method)
        respond_error(d, 405, 0); /* and its body, if any, is not read */
    else if (c->te || (c->minor >= 1 && !c->has_host))
        respond_error(d, 400, 0); /* a body we cannot frame; no Host */
    else if (c->length > 0) {
        c->st = Q_BODY; /* a GET with a body: skip it, then answer */
        asyncore_chat_set_terminator_count(d, c->length);
    } else
        serve(d);
}

static void request_line(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    struct http_request_line rl;

    if (c->line_len == 0)
        return; /* empty lines before a request are allowed (RFC 9112 2.2) */
    if (access_log != NULL) {
        free(c->request);
        c->request = strndup(c->line, c->line_len); /* NULL: logged as "-" */
    }
    if (http_parse_request_line(c->line, c->line_len, &rl) < 0 ||
        (c->target = strndup(rl.target, rl.target_len)) == NULL) {
        respond_error(d, 400, 0);
        return;
    }
    c->head = rl.method_len == 4 && memcmp(rl.method, "HEAD", 4) == 0;
    c->other_method = !c->head && !(rl.method_len == 3 &&
                                    memcmp(rl.method, "GET", 3) == 0);
    c->bad_version = rl.major != 1;
    c->minor = rl.minor;
    c->has_host = c->close_tok = c->keep_alive_tok = c->te = 0;
    c->has_ims = c->has_if_range = c->if_range_other = 0;
    free(c->range);
    c->range = NULL;
    c->length = -1;
    c->header_bytes = c->line_len;
    c->st = Q_HEADER;
}

static void header_line(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    const char *name, *value;
    size_t nlen, vlen;
    uint64_t n;

    if (c->line_len == 0) {
        headers_done(d);
        return;
    }
    if (http_parse_header_line(c->line, c->line_len, &name, &nlen, &value,
                               &vlen) < 0) {
        respond_error(d, 400, 0);
        return;
    }
    if (http_name_is(name, nlen, "Host")) {
        c->has_host = 1;
    } else if (http_name_is(name, nlen, "Connection")) {
        c->close_tok |= http_list_has(value, vlen, "close");
        c->keep_alive_tok |= http_list_has(value, vlen, "keep-alive");
    } else if (http_name_is(name, nlen, "Transfer-Encoding")) {
        c->te = 1;
    } else if (http_name_is(name, nlen, "Content-Length")) {
        if (http_parse_content_length(value, vlen, &n) < 0 ||
            (c->length >= 0 && (uint64_t)c->length != n)) {
            respond_error(d, 400, 0);
            return;
        }
        c->length = (int64_t)n;
    } else if (http_name_is(name, nlen, "If-Modified-Since")) {
        /* An invalid date is ignored (RFC 9110 13.1.3). */
        c->has_ims = http_parse_date(value, vlen, &c->ims) == 0;
    } else if (http_name_is(name, nlen, "If-Range")) {
        c->has_if_range = http_parse_date(value, vlen, &c->if_range) == 0;
        c->if_range_other = !c->has_if_range;
    } else if (http_name_is(name, nlen, "Range") && c->range == NULL) {
        /* Kept until the file's size is known; NULL without memory: the
         * whole file then, as for a Range we do not understand. */
        c->range = strndup(value, vlen);
    }
}

static void client_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    size_t cap = c->line_cap;
    char *p;

    if (c->st == Q_BODY || c->st == Q_DONE || c->st == Q_LINGER)
        return;
    c->partial = 1;
    if (len > HTTP_LINE_MAX - c->line_len) {
        respond_error(d, c->st == Q_LINE ? 414 : 431, 0);
        return;
    }
    if (c->st == Q_HEADER && (c->header_bytes += len) > HTTP_HEADER_MAX) {
        respond_error(d, 431, 0);
        return;
    }
    while (cap < c->line_len + len)
        cap = cap ? 2 * cap : 256;
    if (cap != c->line_cap) {
        if ((p = realloc(c->line, cap)) == NULL) {
            asyncore_close(d);
            return;
        }
        c->line = p;
        c->line_cap = cap;
    }
    memcpy(c->line + c->line_len, data, len);
    c->line_len += len;
}

static void client_found(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    /* Even an empty line before a request counts: a client dripping
     * CRLFs must not hold the connection for ever either. */
    if (c->st == Q_LINE || c->st == Q_HEADER)
        c->partial = 1;
    switch (c->st) {
    case Q_LINE:
        request_line(d);
        break;
    case Q_HEADER:
        if ((c->header_bytes += 2) > HTTP_HEADER_MAX)
            respond_error(d, 431, 0);
        else
            header_line(d);
        break;
    case Q_BODY:
        serve(d);
        break;
    case Q_DONE:
    case Q_LINGER:
        break;
    }
    c->line_len = 0;
}

/* Backpressure: no new requests while many answers wait to be sent.  The
 * library asks again after each dispatch, so reading resumes by itself.
 * Once the last answer is queued (Q_DONE), what the client still sends is
 * read and dropped: closing with unread data would send a reset, which can
 * destroy the answer before the client reads it. */
static int client_readable(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    if (c->peer_closed)
        return 0; /* EOF is not read twice */
    return c->st == Q_DONE || c->st == Q_LINGER || !backlogged(d);
}

/* The chat's read, which frames and answers every whole request that came;
 * what is left is a request begun and not finished: its deadline starts. */
static void client_read(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    asyncore_chat_handle_read(d);
    if (c->partial && !asyncore_dispatcher_closed(d))
        deadline_start(d);
}

/* The chat's write; after the last answer, progress moves its deadline. */
static void client_write(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    asyncore_chat_handle_write(d);
    if (c->st == Q_DONE && c->deadline != NULL && !asyncore_dispatcher_closed(d))
        asyncore_timer_rearm(c->deadline, opt.timeout);
}

/* No byte in or out for opt.timeout: a client idle between requests, or
 * one that stopped reading its answer (our send makes no progress).  It is
 * closed without a word, as a late header is: a busy server would
 * otherwise log every idle keep-alive connection. */
static void client_idle(asyncore_dispatcher *d)
{
    asyncore_close(d);
}

/*
 * The last answer is out (close_when_done's mark was reached).  Closing now
 * would reset the connection if the client's bytes were still arriving, and
 * a reset can destroy the end of the answer before the client has read it.
 * So the close goes in stages (RFC 9112, section 9.6): our side is shut,
 * which the client reads as the end of the answer, and what it still sends
 * is dropped until it closes too, or for LINGER_SECONDS at most -- a
 * deadline no input moves on.  -1 if that cannot be set up: close at once.
 */
static int linger_start(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    double wait = opt.timeout > 0 && opt.timeout < LINGER_SECONDS
                      ? opt.timeout : LINGER_SECONDS;

    asyncore_timer_cancel(c->deadline);
    c->deadline = NULL;
    if (shutdown(asyncore_dispatcher_fd(d), SHUT_WR) < 0)
        return -1;
    c->deadline = asyncore_call_later(asyncore_dispatcher_map(d), wait,
                                      deadline_over, d);
    if (c->deadline == NULL)
        return -1;
    c->st = Q_LINGER;
    return 0;
}

/* The peer closed, maybe only its sending side after its last request (a
 * half-close): it still gets the answers it asked for.  If the connection
 * is really gone, sending them fails and brings us back here.  The close
 * mark of the last answer brings us here too, with nothing left queued. */
static void client_close(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);
    int gone = c->peer_closed || asyncore_dispatcher_last_error(d) != 0;
    int sent = asyncore_chat_queued(d, NULL) == 0;

    if (c->st == Q_DONE && !gone && sent && linger_start(d) == 0)
        return;
    if (gone || sent) {
        asyncore_chat_handle_close(d); /* the parent's: close, drop the queue */
        return;
    }
    c->peer_closed = 1;
    if (c->st != Q_DONE) {
        c->st = Q_DONE;
        asyncore_chat_close_when_done(d);
    }
}

static void client_destroy(asyncore_dispatcher *d)
{
    struct client *c = asyncore_dispatcher_user_data(d);

    request_complete(c);
    free(c->line);
    free(c->target);
    free(c->request);
    free(c->range);
    free(c);
}

static const asyncore_chat_handlers client_handlers = {
    .dispatcher = {
        .handle_read = client_read,
        .handle_write = client_write,
        .readable = client_readable,
        .handle_close = client_close,
        .handle_timeout = client_idle,
        .destroy = client_destroy,
        /* writable: the chat class's. */
    },
    .collect_incoming_data = client_collect,
    .found_terminator = client_found,
};

/* ---- the listener ------------------------------------------------------------- */

static void server_accepted(asyncore_dispatcher *server, int fd,
                            const struct sockaddr *addr, socklen_t len)
{
    struct client *c = calloc(1, sizeof(*c));
    asyncore_dispatcher *d = NULL;

    if (c != NULL && access_log != NULL &&
        getnameinfo(addr, len, c->peer, sizeof(c->peer), NULL, 0, NI_NUMERICHOST) != 0)
        c->peer[0] = '\0';
    if (c != NULL)
        d = asyncore_chat_new(asyncore_dispatcher_map(server), &client_handlers, c);
    if (d == NULL || asyncore_set_socket(d, fd) < 0) {
        close(fd); /* until set_socket succeeds, the descriptor is ours */
        if (d != NULL)
            asyncore_close(d); /* its destroy hook frees c */
        else
            free(c);
        return;
    }
    /* A large file's header and first chunk go out in separate sends:
     * without TCP_NODELAY the chunk would wait for the header's ACK. */
    (void)asyncore_set_nodelay(d, 1);
    asyncore_chat_set_terminator(d, "\r\n", 2);
    /* One timer per connection, armed once: the library only notes the
     * time of each dispatch, so progress costs no timer operation. */
    if (opt.timeout > 0 && asyncore_set_idle_timeout(d, opt.timeout) < 0)
        asyncore_close(d);
}

static const asyncore_handlers server_handlers = {
    .handle_accepted = server_accepted,
};

/* ---- setup ------------------------------------------------------------------- */

/* SIGINT/SIGTERM: closing every dispatcher ends asyncore_loop(). */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    got_signal = 1;
    asyncore_close_all(NULL);
}

/* The one line scripts wait for, with the port the kernel picked for -p 0. */
static void print_listening(asyncore_dispatcher *server)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getsockname(asyncore_dispatcher_fd(server), (struct sockaddr *)&ss,
                    &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n"
                                        : "listening on %s:%s\n",
               host, port);
    fflush(stdout);
}

static asyncore_dispatcher *start_server(void)
{
    int family = strchr(opt.addr, ':') ? AF_INET6 : AF_INET;
    asyncore_dispatcher *server;

    server = asyncore_dispatcher_new(NULL, &server_handlers, NULL);
    if (server == NULL || asyncore_create_socket(server, family, SOCK_STREAM) < 0 ||
        asyncore_set_reuse_addr(server) < 0 ||
        asyncore_bind_host(server, opt.addr, (unsigned)opt.port) < 0 ||
        asyncore_listen(server, 4096) < 0) {
        fprintf(stderr, "asyncore-http-server: cannot listen on %s port %ld: %s\n",
                opt.addr, opt.port, strerror(errno));
        return NULL;
    }
    return server;
}

static void usage(FILE *to)
{
    fputs("usage: asyncore-http-server [-b ADDR] [-p PORT] [-r ROOT] [-t SECONDS]\n"
          "                   [-l FILE]\n", to);
    if (to == stderr) {
        fputs("Try 'asyncore-http-server --help' for more.\n", to);
        return;
    }
    fprintf(to,
            "Serve the files under ROOT over HTTP/1.1 (GET and HEAD).\n"
            "  -b ADDR   address to listen on, IPv4 or IPv6 (default %s)\n"
            "  -p PORT   TCP port; 0 picks a free one (default %d)\n"
            "  -r ROOT   directory to serve (default: the current one)\n"
            "  -t SECONDS  close a connection that makes no progress for this\n"
            "            long, or whose request header is not complete this\n"
            "            long after it began to arrive (default %g; 0: never)\n"
            "  -l FILE   append a line per answer to FILE in the Common Log\n"
            "            Format (\"-\": standard output)\n"
            "  -h, --help  show this help\n"
            "  --version   show the program's and libasyncore's version\n"
            "Prints \"listening on HOST:PORT\" when ready; SIGINT or SIGTERM\n"
            "stops it.\n",
            DEFAULT_ADDR, DEFAULT_PORT, DEFAULT_TIMEOUT);
}

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int o;

    argv[0] = (char *)"asyncore-http-server"; /* getopt's messages: not libtool's path */
    while ((o = getopt_long(argc, argv, "b:p:r:t:l:h", longopts, NULL)) != -1) {
        switch (o) {
        case 'b': opt.addr = optarg; break;
        case 'l': opt.log = optarg; break;
        case 'r': opt.root = optarg; break;
        case 'p':
            errno = 0;
            opt.port = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || opt.port < 0 || opt.port > 65535) {
                fprintf(stderr, "asyncore-http-server: bad port: %s\n", optarg);
                return -1;
            }
            break;
        case 't':
            errno = 0;
            opt.timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(opt.timeout >= 0) ||
                opt.timeout > 86400) {
                fprintf(stderr, "asyncore-http-server: bad timeout: %s\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V':
            printf("asyncore-http-server (libasyncore) %s\n", asyncore_version());
            exit(0);
        default: return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asyncore-http-server: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ROOT's real path, which every served file's must start with, and ROOT
 * opened, for opening files beneath it. */
static int set_root(void)
{
    struct stat sb;

    if (realpath(opt.root, root) == NULL || stat(root, &sb) < 0) {
        fprintf(stderr, "asyncore-http-server: %s: %s\n", opt.root, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "asyncore-http-server: %s: %s\n", opt.root, strerror(ENOTDIR));
        return -1;
    }
    root_len = strlen(root);
#ifdef USE_OPENAT2
    /* O_PATH needs no read permission on ROOT, as realpath() needs none. */
    if ((root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        have_openat2 = 0; /* every path is checked by its real path */
#endif
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
    if (set_root() < 0)
        return 1;
    if (opt.log != NULL) {
        access_log = strcmp(opt.log, "-") == 0 ? stdout : fopen(opt.log, "ae");
        if (access_log == NULL) {
            fprintf(stderr, "asyncore-http-server: %s: %s\n", opt.log, strerror(errno));
            if (root_fd >= 0)
                close(root_fd);
            return 1;
        }
        setvbuf(access_log, NULL, _IOLBF, 0);
    }
    set_server_line();
    /* The signal events live on the default map's base, beside the
     * dispatchers: asyncore_loop() serves them too. */
    base = asyncore_map_base(NULL);
    if (base != NULL) {
        sigint = evsignal_new(base, SIGINT, on_signal, NULL);
        sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    }
    if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sigterm, NULL) < 0) {
        fprintf(stderr, "asyncore-http-server: cannot watch signals\n");
    } else if ((server = start_server()) != NULL) {
        print_listening(server);
        if (asyncore_loop(NULL, -1.0, ASYNCORE_FOREVER) < 0)
            fprintf(stderr, "asyncore-http-server: %s\n", strerror(errno));
        else if (got_signal)
            rc = 0;
    }
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    asyncore_map_free(asyncore_map_default()); /* closes what is left */
    if (root_fd >= 0)
        close(root_fd);
    if (access_log != NULL && access_log != stdout)
        fclose(access_log);
    return rc;
}
