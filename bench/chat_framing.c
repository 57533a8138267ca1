/* chat_framing -- async_chat's input framing, measured in-process.
 *
 *   chat_framing [--total BYTES] [--body-sizes LIST] [--reads LIST]
 *
 * A chat channel sits on one end of an AF_UNIX socketpair whose buffers
 * hold a whole read; the program writes a chunk into the other end and
 * then calls the channel's handle_read directly (no event loop), until the
 * channel has consumed it.  Only the handle_read calls are timed: one
 * recv() of ac_in_buffer_size bytes and the cutting of what it read.  The
 * clock is the thread's CPU time, so that time the machine gives to other
 * processes does not count (the wall time is reported too).
 *
 *   lines: --total bytes of 16-byte "...\r\n" lines, terminator "\r\n",
 *          written and read in chunks of each size of --reads (the
 *          channel's ac_in_buffer_size is set to the chunk size, so every
 *          recv() returns one whole chunk).  collect_incoming_data copies
 *          the piece into a line buffer, found_terminator counts the line
 *          and checks its length: what an application would do.
 *   body:  one body of each size of --body-sizes followed by the
 *          terminator "\r\n\r\n", in 64 KiB reads (the default buffer
 *          size); collect_incoming_data only counts the bytes, so that
 *          the framing is measured, not the caching of a growing copy.
 *          Repeated until --total bytes went through.
 *
 * Output, one line per measurement:
 *   test=lines read=R bytes=B lines=N calls=C secs=S wall_s=W lines_per_s=X
 *   test=body size=B read=R reps=K calls=C secs=S wall_s=W mb_per_s=X
 * (secs: CPU time, from which the rates are computed)
 * (calls: handle_read calls, bytes / R when every recv() got a chunk).
 * bench/asynchat_framing.py does the same with CPython's asynchat.
 * Exit status 0, or 1 if the framing came out wrong.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <asyncore.h>

#define LINE_LEN 16

static unsigned long long calls;   /* handle_read calls of the last feed() */

struct sink {
    unsigned char *buf;   /* the line or body being collected */
    size_t len, cap;
    size_t last;          /* length of the last piece framed */
    unsigned long long lines, bad;
    size_t consumed;      /* bytes taken from the socket, terminators too */
    size_t term_len;
    int keep;             /* copy the pieces (lines), or only count them */
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static double wall;   /* wall-clock seconds of the last feed()'s reads */

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "chat_framing: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct sink *s = asyncore_dispatcher_user_data(d);
    s->consumed += len;
    if (!s->keep) {
        s->len += len;
        return;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->len + len)
            cap *= 2;
        unsigned char *p = realloc(s->buf, cap);
        if (!p)
            die("realloc");
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
}

static void found(asyncore_dispatcher *d)
{
    struct sink *s = asyncore_dispatcher_user_data(d);
    s->consumed += s->term_len;
    s->lines++;
    s->last = s->len;
    if (s->term_len == 2 && s->len != LINE_LEN - 2)
        s->bad++;
    s->len = 0;
}

static const asyncore_chat_handlers handlers = {
    .collect_incoming_data = collect,
    .found_terminator = found,
};

/* Writes all of buf (the socket is blocking and holds a whole chunk). */
static void write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write");
        buf += n;
        len -= (size_t)n;
    }
}

struct rig {
    asyncore_map *map;
    asyncore_dispatcher *chat;
    int peer;
    struct sink sink;
};

static void rig_open(struct rig *r, const char *term, size_t read_size)
{
    int sv[2];
    /* Both buffers: AF_UNIX charges the sender; the doubling by the kernel
     * leaves room for its bookkeeping. */
    int sz = (int)(read_size < 65536 ? 65536 : read_size) * 2;
    memset(r, 0, sizeof *r);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    r->map = asyncore_map_new(NULL);
    r->chat = r->map ? asyncore_chat_new(r->map, &handlers, &r->sink) : NULL;
    if (!r->chat || asyncore_set_socket(r->chat, sv[0]) < 0 ||
        asyncore_chat_set_terminator(r->chat, term, strlen(term)) < 0 ||
        asyncore_chat_set_in_buffer_size(r->chat, read_size) < 0)
        die("chat setup");
    r->peer = sv[1];
    r->sink.term_len = strlen(term);
    r->sink.keep = 1;
}

static void rig_close(struct rig *r)
{
    close(r->peer);
    asyncore_map_free(r->map);   /* closes the channel and its socket */
    free(r->sink.buf);
}

/* Feeds len bytes in chunks of `chunk`; returns the seconds spent inside
 * handle_read.  Each chunk is read until the channel consumed it (all but
 * a held terminator prefix, which the next chunk completes). */
static double feed(struct rig *r, const unsigned char *data, size_t len, size_t chunk)
{
    double spent = 0;
    size_t off = 0;
    calls = 0;
    wall = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        write_all(r->peer, data + off, n);
        off += n;
        for (int tries = 0; r->sink.consumed + r->sink.term_len <= off && tries < 64; tries++) {
            double w0 = clock_s(CLOCK_MONOTONIC), t0 = now_s();
            asyncore_chat_handle_read(r->chat);
            spent += now_s() - t0;
            wall += clock_s(CLOCK_MONOTONIC) - w0;
            calls++;
            if (asyncore_dispatcher_closed(r->chat)) {
                errno = EPIPE;
                die("channel closed");
            }
        }
    }
    return spent;
}

static int run_lines(size_t total, size_t read_size)
{
    size_t len = total / LINE_LEN * LINE_LEN;
    unsigned char *data = malloc(len);
    if (!data)
        die("malloc");
    for (size_t i = 0; i < len; i += LINE_LEN) {
        snprintf((char *)data + i, LINE_LEN, "%013zu", (size_t)(i / LINE_LEN % 10000000000000ULL));
        memcpy(data + i + LINE_LEN - 3, "x\r\n", 3);
    }
    struct rig r;
    rig_open(&r, "\r\n", read_size);
    double secs = feed(&r, data, len, read_size);
    unsigned long long want = len / LINE_LEN;
    int ok = r.sink.lines == want && r.sink.bad == 0;
    printf("test=lines read=%zu bytes=%zu lines=%llu calls=%llu secs=%.4f wall_s=%.4f"
           " lines_per_s=%.0f%s\n", read_size, len, r.sink.lines, calls, secs, wall,
           secs > 0 ? (double)r.sink.lines / secs : 0,
           ok ? "" : " error=wrong_framing");
    fflush(stdout);
    rig_close(&r);
    free(data);
    return ok ? 0 : 1;
}

/* One body of `size` bytes and its terminator, again and again on one
 * channel until --total bytes went through (each found_terminator ends a
 * body, the next one starts afresh), so that small sizes are timed over as
 * many bytes as large ones. */
static int run_body(size_t size, size_t read_size, size_t total)
{
    unsigned char *data = malloc(size + 4);
    if (!data)
        die("malloc");
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)('a' + i % 26);
    memcpy(data + size, "\r\n\r\n", 4);
    size_t reps = total / size ? total / size : 1;
    struct rig r;
    rig_open(&r, "\r\n\r\n", read_size);
    r.sink.keep = 0;   /* the framing alone: no growing copy of the body */
    double secs = 0, all_wall = 0;
    unsigned long long all_calls = 0;
    int ok = 1;
    for (size_t k = 0; k < reps && ok; k++) {
        r.sink.consumed = 0;
        r.sink.lines = 0;
        secs += feed(&r, data, size + 4, read_size);
        all_calls += calls;
        all_wall += wall;
        ok = r.sink.lines == 1 && r.sink.last == size && r.sink.consumed == size + 4;
    }
    double got = ok ? (double)size * (double)reps : 0;
    printf("test=body size=%zu read=%zu reps=%zu calls=%llu secs=%.4f wall_s=%.4f"
           " mb_per_s=%.1f%s\n", size, read_size, reps, all_calls, secs, all_wall,
           secs > 0 ? got / secs / 1e6 : 0,
           ok ? "" : " error=wrong_framing");
    fflush(stdout);
    rig_close(&r);
    free(data);
    return ok ? 0 : 1;
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) {
        fprintf(stderr, "chat_framing: bad size %s\n", s);
        exit(2);
    }
    if (*end == 'K' || *end == 'k')
        v *= 1024, end++;
    else if (*end == 'M' || *end == 'm')
        v *= 1048576, end++;
    if (*end) {
        fprintf(stderr, "chat_framing: bad size %s\n", s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"total", required_argument, 0, 't'}, {"reads", required_argument, 0, 'r'},
        {"body-sizes", required_argument, 0, 'B'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    size_t total = 64u << 20;
    char reads[256] = "4K,64K,1M", bodies[256] = "1M,4M,16M";
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, "t:r:B:h", longs, NULL)) != -1) {
        switch (ch) {
        case 't': total = parse_size(optarg); break;
        case 'r': snprintf(reads, sizeof reads, "%s", optarg); break;
        case 'B': snprintf(bodies, sizeof bodies, "%s", optarg); break;
        case 'h':
            printf("usage: chat_framing [--total BYTES] [--reads LIST] [--body-sizes LIST]\n"
                   "async_chat input framing in-process: 16-byte CRLF lines in reads\n"
                   "of each size of LIST (default 4K,64K,1M; --total 64M of lines),\n"
                   "and bodies of each size (default 1M,4M,16M) before a distant\n"
                   "\"\\r\\n\\r\\n\" in 64 KiB reads, repeated up to --total bytes.\n"
                   "Sizes take K and M suffixes;\n"
                   "an empty LIST skips that test.\n");
            return 0;
        default: return 2;
        }
    }
    for (char *tok = strtok(reads, ","); tok; tok = strtok(NULL, ","))
        rc |= run_lines(total, parse_size(tok));
    for (char *tok = strtok(bodies, ","); tok; tok = strtok(NULL, ","))
        rc |= run_body(parse_size(tok), 65536, total);
    return rc;
}
