/*
 * fuzz_chat.c -- libFuzzer harness for async_chat's input framing.
 *
 * The fuzz input is a script of terminators, a stream, and a way of cutting
 * the stream into writes:
 *
 *   byte 0      the channel's in_buffer_size for the cut delivery, one of
 *               IN_SIZES (the byte modulo their number)
 *   byte 1      n, the number of cut lengths that follow (modulo 64)
 *   n bytes     cut lengths (byte modulo 64, plus 1), used in turn; once
 *               they are used up, the rest of the stream goes in one write
 *   byte        m, the number of script actions (modulo MAX_ACTIONS, plus 1)
 *   m actions   a kind byte (modulo 4): 0 BYTES, then a length byte
 *               (modulo TERM_MAX, plus 1) and the terminator's bytes;
 *               1 COUNT, then two bytes (little-endian count); 2 NONE;
 *               3 KEEP (change nothing)
 *   the rest    the stream
 *
 * The first action sets the channel's terminator (KEEP there means NONE);
 * each found_terminator applies the next one.  The stream is framed three
 * ways: sent in one write and read whole, sent in the cut pieces and read
 * in_buffer_size bytes at a time, and by a model of asynchat's rules
 * written here from its documentation (asyncore/chat.h).  The three logs
 * -- each found_terminator with the terminator in force and the data
 * collected since the last one, then the data collected after the last
 * one -- must be identical; any difference aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <asyncore.h>

#define MAX_ACTIONS 8
#define TERM_MAX 16
#define MAX_CUTS 64

static const size_t IN_SIZES[] = { 1, 2, 3, 5, 7, 16, 64, 65536 };

enum kind { K_BYTES, K_COUNT, K_NONE, K_KEEP };

struct action {
    enum kind kind;
    unsigned char term[TERM_MAX];
    size_t len;
    int64_t count;
};

struct input {
    size_t in_size;
    size_t cuts[MAX_CUTS];
    int ncuts;
    struct action act[MAX_ACTIONS];
    int nact;
    const unsigned char *stream;
    size_t len;
};

struct log {
    unsigned char *p;
    size_t len, cap;
};

static void log_add(struct log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n)
            cap *= 2;
        l->p = realloc(l->p, cap);
        if (l->p == NULL)
            abort();
        l->cap = cap;
    }
    if (n > 0)
        memcpy(l->p + l->len, p, n);
    l->len += n;
}

/* One record: what framed the data ('B'ytes, 'C'ount, or 'T' for the
 * tail after the last terminator), the terminator, and the data. */
static void log_record(struct log *l, char what, const void *term,
                       size_t tlen, const void *data, size_t dlen)
{
    uint64_t n = tlen;

    log_add(l, &what, 1);
    log_add(l, &n, sizeof(n));
    log_add(l, term, tlen);
    n = dlen;
    log_add(l, &n, sizeof(n));
    log_add(l, data, dlen);
}

/* ---- parsing the fuzz input ----------------------------------------------- */

struct reader {
    const uint8_t *p;
    size_t left;
};

static int take(struct reader *r, uint8_t *b)
{
    if (r->left == 0)
        return 0;
    *b = *r->p++;
    r->left--;
    return 1;
}

static int parse_action(struct reader *r, struct action *a)
{
    uint8_t b, lo, hi;
    size_t i;

    memset(a, 0, sizeof(*a));
    if (!take(r, &b))
        return 0;
    a->kind = (enum kind)(b % 4);
    if (a->kind == K_BYTES) {
        if (!take(r, &b))
            return 0;
        a->len = (size_t)(b % TERM_MAX) + 1;
        for (i = 0; i < a->len; i++)
            if (!take(r, &a->term[i]))
                return 0;
    } else if (a->kind == K_COUNT) {
        if (!take(r, &lo) || !take(r, &hi))
            return 0;
        a->count = lo | (hi << 8);
    }
    return 1;
}

static int parse_input(const uint8_t *data, size_t size, struct input *in)
{
    struct reader r = { data, size };
    uint8_t b;
    int i;

    if (!take(&r, &b))
        return 0;
    in->in_size = IN_SIZES[b % (sizeof(IN_SIZES) / sizeof(IN_SIZES[0]))];
    if (!take(&r, &b))
        return 0;
    in->ncuts = b % MAX_CUTS;
    for (i = 0; i < in->ncuts; i++) {
        if (!take(&r, &b))
            return 0;
        in->cuts[i] = (size_t)(b % 64) + 1;
    }
    if (!take(&r, &b))
        return 0;
    in->nact = b % MAX_ACTIONS + 1;
    for (i = 0; i < in->nact; i++)
        if (!parse_action(&r, &in->act[i]))
            return 0;
    if (in->act[0].kind == K_KEEP)
        in->act[0].kind = K_NONE;
    in->stream = r.p;
    in->len = r.left;
    return 1;
}

/* ---- the channel ---------------------------------------------------------- */

static asyncore_map *map;

struct run {
    const struct input *in;
    struct log *log;
    struct log cur; /* collected since the last found_terminator */
    int next;
};

static void apply(asyncore_dispatcher *d, const struct action *a)
{
    int rc = 0;

    switch (a->kind) {
    case K_BYTES:
        rc = asyncore_chat_set_terminator(d, a->term, a->len);
        break;
    case K_COUNT:
        rc = asyncore_chat_set_terminator_count(d, a->count);
        break;
    case K_NONE:
        rc = asyncore_chat_set_terminator_none(d);
        break;
    case K_KEEP:
        break;
    }
    if (rc != 0)
        abort();
}

static void on_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct run *r = asyncore_dispatcher_user_data(d);

    if (len == 0) /* never with 0 bytes (chat.h) */
        abort();
    log_add(&r->cur, data, len);
}

static void on_found(asyncore_dispatcher *d)
{
    struct run *r = asyncore_dispatcher_user_data(d);
    asyncore_chat_terminator t;

    if (asyncore_chat_get_terminator(d, &t) != 0)
        abort();
    if (t.kind == ASYNCORE_TERMINATOR_BYTES)
        log_record(r->log, 'B', t.bytes, t.len, r->cur.p, r->cur.len);
    else if (t.kind == ASYNCORE_TERMINATOR_COUNT && t.count == 0)
        log_record(r->log, 'C', NULL, 0, r->cur.p, r->cur.len);
    else
        abort(); /* found_terminator without a terminator reached */
    r->cur.len = 0;
    if (r->next < r->in->nact)
        apply(d, &r->in->act[r->next++]);
}

static const asyncore_chat_handlers handlers = {
    .collect_incoming_data = on_collect,
    .found_terminator = on_found,
};

static void write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
}

/* Read until the socket is empty, one handle_read at a time. */
static void consume(asyncore_dispatcher *d)
{
    int pending = 1;

    while (pending > 0) {
        if (ioctl(asyncore_dispatcher_fd(d), FIONREAD, &pending) < 0)
            abort();
        if (pending > 0)
            asyncore_chat_handle_read(d);
    }
}

static void deliver(const struct input *in, int cut, struct log *log)
{
    struct run r = { .in = in, .log = log, .next = 1 };
    asyncore_dispatcher *d;
    size_t off = 0, n;
    int sv[2], k = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    d = asyncore_chat_new(map, &handlers, &r);
    if (d == NULL || asyncore_set_socket(d, sv[0]) < 0)
        abort();
    apply(d, &in->act[0]);
    if (cut && asyncore_chat_set_in_buffer_size(d, in->in_size) < 0)
        abort();
    while (off < in->len) {
        n = in->len - off;
        if (cut && k < in->ncuts && in->cuts[k] < n)
            n = in->cuts[k++];
        write_all(sv[1], in->stream + off, n);
        off += n;
        consume(d);
    }
    log_record(log, 'T', NULL, 0, r.cur.p, r.cur.len);
    free(r.cur.p);
    if (asyncore_close(d) < 0)
        abort();
    close(sv[1]);
}

/* ---- the model ---------------------------------------------------------------- */

static size_t held_prefix(const unsigned char *s, size_t n,
                          const struct action *t)
{
    size_t l;

    /* The longest tail that is a proper prefix of the terminator. */
    for (l = t->len - 1; l > 0; l--)
        if (l <= n && memcmp(s + n - l, t->term, l) == 0)
            return l;
    return 0;
}

static void model(const struct input *in, struct log *log)
{
    const unsigned char *s = in->stream;
    size_t pos = 0, n = in->len;
    struct action t = in->act[0];
    int next = 1;

    for (;;) {
        const unsigned char *hit = NULL;

        if (t.kind == K_BYTES)
            hit = memmem(s + pos, n - pos, t.term, t.len);
        if (hit != NULL) {
            log_record(log, 'B', t.term, t.len, s + pos, (size_t)(hit - (s + pos)));
            pos = (size_t)(hit - s) + t.len;
        } else if (t.kind == K_COUNT && t.count > 0 &&
                   (uint64_t)t.count <= n - pos) {
            log_record(log, 'C', NULL, 0, s + pos, (size_t)t.count);
            pos += (size_t)t.count;
            t.count = 0; /* reached: it then collects everything */
        } else {
            size_t hold = t.kind == K_BYTES ? held_prefix(s + pos, n - pos, &t) : 0;
            log_record(log, 'T', NULL, 0, s + pos, n - pos - hold);
            return;
        }
        if (next < in->nact && in->act[next].kind != K_KEEP)
            t = in->act[next];
        if (next < in->nact)
            next++;
    }
}

static void compare(const struct log *a, const struct log *b, const char *what)
{
    if (a->len != b->len || memcmp(a->p, b->p, a->len) != 0) {
        fprintf(stderr, "fuzz_chat: %s framed the stream differently\n", what);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    map = asyncore_map_new(NULL);
    return map != NULL ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in;
    struct log whole = { 0 }, cut = { 0 }, expect = { 0 };

    if (!parse_input(data, size, &in))
        return 0;
    deliver(&in, 0, &whole);
    deliver(&in, 1, &cut);
    model(&in, &expect);
    compare(&whole, &expect, "one write read whole");
    compare(&cut, &expect, "the cut delivery");
    free(whole.p);
    free(cut.p);
    free(expect.p);
    return 0;
}
