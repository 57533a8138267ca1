/*
 * chat.c -- async_chat: a dispatcher class whose input is cut by a
 * terminator and whose output is a FIFO of bytes, producers and a close
 * marker.
 *
 * The class is built as any user's would be: asyncore_dispatcher_new_ex()
 * with a table of defaults and the channel's state in the inline area.
 *
 * Input lives in an evbuffer.  After each read the buffer holds at most the
 * held-back prefix of a string terminator (fewer than len(term) bytes) plus
 * the new bytes, and each search starts at its head: every search covers the
 * new bytes and fewer than len(term) old ones, so a stream of N bytes costs
 * O(N) whatever the read sizes.  CPython concatenates and slices bytes
 * objects instead, which is quadratic in what one read brings.
 *
 * Output bytes of consecutive pushes share one evbuffer (references added
 * with evbuffer_add_reference stay zero-copy); the FIFO records how many of
 * its bytes each DATA entry covers, between producers and close markers.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>

#include "asyncore-internal.h"

/* Terminators up to this length need no allocation. */
#define TERM_INLINE 16

/* ENTRY_MARK: a transport switch waits for the output before it. */
enum entry_kind { ENTRY_DATA, ENTRY_PRODUCER, ENTRY_CLOSE, ENTRY_MARK };

struct chat_entry {
    TAILQ_ENTRY(chat_entry) link;
    enum entry_kind kind;
    size_t len;                  /* DATA: bytes of the output it covers */
    asyncore_producer *producer; /* PRODUCER */
};

TAILQ_HEAD(chat_fifo, chat_entry);

struct chat_state {
    const asyncore_chat_handlers *h;
    struct evbuffer *in;      /* input not handed on yet; lazily made */
    struct evbuffer *out;     /* the DATA entries' bytes, in FIFO order */
    struct evbuffer *staging; /* a producer's fresh output */
    struct chat_fifo fifo;
    int entries;
    asyncore_terminator_kind kind;
    /* BYTES: term_len bytes of terminator, then term_len - 1 bytes of
     * scratch for the input's tail (find_prefix_at_end). */
    unsigned char *term;
    size_t term_len;
    uint64_t count;           /* COUNT: bytes still to collect */
    size_t in_size;
    size_t out_size;
    unsigned out_gen;         /* bumped whenever the output is dropped */
    unsigned reading : 1;     /* the input loop is on the stack */
    unsigned collecting : 1;  /* inside collect_incoming_data */
    unsigned drop_input : 1;  /* discard_buffers asked during it */
    unsigned sending : 1;     /* initiate_send is on the stack */
    unsigned switched : 1;    /* a transport switch dropped the input */
    unsigned char term_inline[2 * TERM_INLINE];
    /* chat_flow.h: the input limit and read pausing. */
    size_t max_input;         /* 0: records of any length */
    size_t record;            /* BYTES: the current record's length so far */
    size_t high_water;        /* 0: never pause reading */
    size_t low_water;
    unsigned skipping : 1;    /* dropping the rest of an oversized record */
    unsigned paused : 1;      /* reading paused until low_water */
};

static void chat_destroy(asyncore_dispatcher *d);
static void chat_buffers_register(void);

static const asyncore_handlers chat_defaults = {
    .handle_read = asyncore_chat_handle_read,
    .handle_write = asyncore_chat_handle_write,
    .handle_close = asyncore_chat_handle_close,
    .readable = asyncore_chat_readable,
    .writable = asyncore_chat_writable,
    .destroy = chat_destroy,
};

static pthread_once_t chat_buffers_once = PTHREAD_ONCE_INIT;

/* The state of a chat channel, or NULL if @d is not one. */
static struct chat_state *chat_state(const asyncore_dispatcher *d)
{
    if (d == NULL || d->defaults != &chat_defaults)
        return NULL;
    return asyncore_dispatcher_area(d);
}

/* The state of an open chat channel, or NULL with EINVAL/EBADF. */
static struct chat_state *chat_open(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);

    if (st == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (d->closed) {
        errno = EBADF;
        return NULL;
    }
    return st;
}

asyncore_dispatcher *asyncore_chat_new(asyncore_map *map,
                                       const asyncore_chat_handlers *h,
                                       void *user_data)
{
    asyncore_dispatcher *d;
    struct chat_state *st;

    /* asynchat raises NotImplementedError at the first byte; a C program
     * is better told at once. */
    if (h == NULL || h->collect_incoming_data == NULL ||
        h->found_terminator == NULL) {
        errno = EINVAL;
        return NULL;
    }
    /* A TLS start or stop on the channel reaches its buffers (tls.c). */
    pthread_once(&chat_buffers_once, chat_buffers_register);
    d = asyncore_dispatcher_new_ex(map, &h->dispatcher, &chat_defaults,
                                   user_data, sizeof(struct chat_state));
    if (d == NULL)
        return NULL;
    st = asyncore_dispatcher_area(d);
    st->h = h;
    TAILQ_INIT(&st->fifo);
    st->kind = ASYNCORE_TERMINATOR_NONE;
    st->in_size = ASYNCORE_CHAT_BUFFER_SIZE;
    st->out_size = ASYNCORE_CHAT_BUFFER_SIZE;
    return d;
}

/* ---- the terminator ------------------------------------------------------ */

int asyncore_chat_set_terminator(asyncore_dispatcher *d, const void *term,
                                 size_t len)
{
    struct chat_state *st = chat_open(d);
    unsigned char *buf;

    if (st == NULL)
        return -1;
    if (term == NULL || len == 0) {
        errno = EINVAL;
        return -1;
    }
    if (len > SIZE_MAX / 2) {
        errno = ENOMEM;
        return -1;
    }
    buf = 2 * len - 1 <= sizeof(st->term_inline) ? st->term_inline
                                                 : malloc(2 * len - 1);
    if (buf == NULL)
        return -1;
    /* @term may be the current terminator (from get_terminator). */
    memmove(buf, term, len);
    if (st->term != NULL && st->term != st->term_inline && st->term != buf)
        free(st->term);
    st->term = buf;
    st->term_len = len;
    st->kind = ASYNCORE_TERMINATOR_BYTES;
    st->record = 0; /* chat_flow.h: a new terminator starts a new record */
    st->skipping = 0;
    return 0;
}

int asyncore_chat_set_terminator_count(asyncore_dispatcher *d, int64_t n)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    if (n < 0) {
        errno = EINVAL;
        return -1;
    }
    st->kind = ASYNCORE_TERMINATOR_COUNT;
    st->count = (uint64_t)n;
    return 0;
}

int asyncore_chat_set_terminator_none(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    st->kind = ASYNCORE_TERMINATOR_NONE;
    return 0;
}

int asyncore_chat_get_terminator(const asyncore_dispatcher *d,
                                 asyncore_chat_terminator *t)
{
    const struct chat_state *st = chat_state(d);

    if (st == NULL || t == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(t, 0, sizeof(*t));
    t->kind = st->kind;
    if (st->kind == ASYNCORE_TERMINATOR_BYTES) {
        t->bytes = st->term;
        t->len = st->term_len;
    } else if (st->kind == ASYNCORE_TERMINATOR_COUNT) {
        t->count = st->count;
    }
    return 0;
}

size_t asyncore_find_prefix_at_end(const void *haystack, size_t hlen,
                                   const void *needle, size_t nlen)
{
    const unsigned char *h = haystack, *n = needle;
    size_t l;

    if (nlen < 2 || hlen == 0)
        return 0;
    l = nlen - 1 < hlen ? nlen - 1 : hlen;
    /* Longest first; the first-byte test skips most candidates. */
    for (; l > 0; l--)
        if (h[hlen - l] == n[0] && memcmp(h + hlen - l, n, l) == 0)
            return l;
    return 0;
}

/* ---- input --------------------------------------------------------------- */

static void discard_input(struct chat_state *st)
{
    /* collect_incoming_data reads from the buffer: drop after it returns. */
    if (st->collecting)
        st->drop_input = 1;
    else if (st->in != NULL)
        evbuffer_drain(st->in, evbuffer_get_length(st->in));
}

/*
 * Hand the first @n bytes of input to collect_incoming_data as one
 * contiguous piece, then drop them.  Pulling up only @n bytes copies each
 * byte at most once, since what was pulled up is drained right after.
 * Returns 0, or -1 if the channel was closed (no hook may run any more).
 */
static int deliver(asyncore_dispatcher *d, struct chat_state *st, size_t n)
{
    unsigned char *p = evbuffer_pullup(st->in, (ev_ssize_t)n);

    if (p == NULL) {
        asyncore_handle_error(d, ENOMEM, "recv");
        return -1;
    }
    st->collecting = 1;
    st->h->collect_incoming_data(d, p, n);
    st->collecting = 0;
    if (st->drop_input) {
        st->drop_input = 0;
        n = evbuffer_get_length(st->in);
    }
    evbuffer_drain(st->in, n);
    return d->closed ? -1 : 0;
}

/* Call found_terminator; -1 if that closed the channel. */
static int found(asyncore_dispatcher *d, struct chat_state *st)
{
    st->record = 0; /* chat_flow.h: the next record starts */
    st->h->found_terminator(d);
    return d->closed ? -1 : 0;
}

/* The length of the input's tail that may begin the terminator. */
static size_t held_prefix(struct chat_state *st, size_t len)
{
    size_t tail = st->term_len - 1 < len ? st->term_len - 1 : len;
    unsigned char *scratch = st->term + st->term_len;
    struct evbuffer_ptr at;

    if (tail == 0)
        return 0;
    if (evbuffer_ptr_set(st->in, &at, len - tail, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_copyout_from(st->in, &at, scratch, tail) != (ev_ssize_t)tail)
        return 0;
    return asyncore_find_prefix_at_end(scratch, tail, st->term, st->term_len);
}

/* chat_flow.h: would @n more bytes make the current record too long? */
static int too_long(const struct chat_state *st, size_t n)
{
    return st->max_input > 0 &&
           (st->record > st->max_input || n > st->max_input - st->record);
}

/*
 * chat_flow.h: the current record is over the limit and its bytes up to
 * here were dropped; @ended if its terminator was too.  handle_error runs
 * once per record; unless it closed the channel, the rest of the record is
 * skipped up to its terminator.  Returns as step_bytes.
 */
static int record_too_long(asyncore_dispatcher *d, struct chat_state *st,
                           int ended)
{
    int first = !st->skipping;

    st->record = 0;
    st->skipping = !ended; /* before the hook: it may set a terminator */
    if (first)
        asyncore_handle_error(d, EMSGSIZE, "input");
    if (d->closed)
        return -1;
    return ended ? 1 : 0;
}

/*
 * One step of the input loop for a string terminator.  Returns 1 to go on
 * (a terminator was found: the next one may differ), 0 to wait for more
 * input, -1 when the channel closed.
 */
static int step_bytes(asyncore_dispatcher *d, struct chat_state *st,
                      size_t len)
{
    size_t tlen = st->term_len; /* the hooks may change the terminator */
    struct evbuffer_ptr at;
    size_t keep;

    /* From the head: all that is left there of earlier reads is a held
     * prefix shorter than the terminator, so this resumes where the last
     * search stopped, minus at most tlen - 1 bytes. */
    at = evbuffer_search(st->in, (const char *)st->term, tlen, NULL);
    if (at.pos >= 0) {
        if (st->skipping || too_long(st, (size_t)at.pos)) {
            evbuffer_drain(st->in, (size_t)at.pos + tlen);
            return record_too_long(d, st, 1);
        }
        /* asynchat never reports the empty string: neither do we. */
        if (at.pos > 0 && deliver(d, st, (size_t)at.pos) < 0)
            return -1;
        if (st->switched)
            return 0; /* the record's input went with the switch */
        evbuffer_drain(st->in, tlen);
        return found(d, st) < 0 ? -1 : 1;
    }
    keep = held_prefix(st, len);
    if (keep < len && (st->skipping || too_long(st, len - keep))) {
        evbuffer_drain(st->in, len - keep);
        return record_too_long(d, st, 0);
    }
    st->record += len - keep; /* before the hook: it may set a terminator */
    if (keep < len && deliver(d, st, len - keep) < 0)
        return -1;
    return 0;
}

/* One step for a byte count (> 0); same returns as step_bytes. */
static int step_count(asyncore_dispatcher *d, struct chat_state *st,
                      size_t len)
{
    size_t n;

    if (st->count > len) {
        /* Counted before the hook runs, so that a terminator it sets is
         * not then decremented. */
        st->count -= len;
        return deliver(d, st, len) < 0 ? -1 : 0;
    }
    n = (size_t)st->count;
    st->count = 0;
    if (deliver(d, st, n) < 0)
        return -1;
    if (st->switched)
        return 0;
    return found(d, st) < 0 ? -1 : 1;
}

static void process_input(asyncore_dispatcher *d, struct chat_state *st)
{
    size_t len;
    int r = 1;

    /* A transport switch inside a hook ends the loop: nothing read before
     * it is handed on after it. */
    while (r > 0 && !d->closed && !st->switched &&
           (len = evbuffer_get_length(st->in)) > 0) {
        if (st->kind == ASYNCORE_TERMINATOR_BYTES)
            r = step_bytes(d, st, len);
        else if (st->kind == ASYNCORE_TERMINATOR_COUNT && st->count > 0)
            r = step_count(d, st, len);
        else /* NONE, or a count that reached 0: asynchat's falsy terminator */
            r = deliver(d, st, len) < 0 ? -1 : 0;
    }
}

static int discard_output(struct chat_state *st);

/* A closed channel keeps nothing queued (see chat.h, LIFETIME). */
static void drop_if_closed(asyncore_dispatcher *d, struct chat_state *st)
{
    if (d->closed) {
        discard_input(st);
        discard_output(st);
    }
}

void asyncore_chat_handle_read(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);
    struct evbuffer_iovec vec;
    ssize_t n;

    /* Re-entered from collect_incoming_data or found_terminator, a read
     * would cut the input under the running loop: refuse. */
    if (st == NULL || d->closed || st->reading)
        return;
    if ((st->in == NULL && (st->in = evbuffer_new()) == NULL) ||
        evbuffer_reserve_space(st->in, (ev_ssize_t)st->in_size, &vec, 1) < 1) {
        asyncore_handle_error(d, ENOMEM, "recv");
        return;
    }
    asyncore__hold(d);
    if (vec.iov_len > st->in_size)
        vec.iov_len = st->in_size;
    /* EAGAIN is not an error (asynchat ignores BlockingIOError); EOF and
     * failures already went to handle_close/handle_error. */
    n = asyncore_recv(d, vec.iov_base, vec.iov_len);
    if (n > 0) {
        vec.iov_len = (size_t)n;
        evbuffer_commit_space(st->in, &vec, 1);
        st->switched = 0;
        st->reading = 1;
        process_input(d, st);
        st->reading = 0;
    }
    drop_if_closed(d, st);
    asyncore__release(d);
}

/* ---- output -------------------------------------------------------------- */

static void entry_free(struct chat_entry *e)
{
    if (e->kind == ENTRY_PRODUCER)
        asyncore_producer_free(e->producer);
    free(e);
}

static void entry_remove(struct chat_state *st, struct chat_entry *e)
{
    TAILQ_REMOVE(&st->fifo, e, link);
    st->entries--;
}

/* Returns how many switch marks went with the output. */
static int discard_output(struct chat_state *st)
{
    struct chat_entry *e;
    int marks = 0;

    st->out_gen++;
    /* Free hooks may push again; keep going until nothing is left. */
    while ((e = TAILQ_FIRST(&st->fifo)) != NULL) {
        marks += e->kind == ENTRY_MARK;
        entry_remove(st, e);
        entry_free(e);
    }
    if (st->out != NULL)
        evbuffer_drain(st->out, evbuffer_get_length(st->out));
    return marks;
}

static struct chat_entry *entry_new(enum entry_kind kind)
{
    struct chat_entry *e = calloc(1, sizeof(*e));

    if (e != NULL)
        e->kind = kind;
    return e;
}

static void append(struct chat_state *st, struct chat_entry *e)
{
    TAILQ_INSERT_TAIL(&st->fifo, e, link);
    st->entries++;
}

/* The DATA entry at the FIFO's tail that new bytes extend; NULL (ENOMEM). */
static struct chat_entry *data_tail(struct chat_state *st)
{
    struct chat_entry *e = TAILQ_LAST(&st->fifo, chat_fifo);

    if (st->out == NULL && (st->out = evbuffer_new()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (e != NULL && e->kind == ENTRY_DATA)
        return e;
    if ((e = entry_new(ENTRY_DATA)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    append(st, e);
    return e;
}

/* A DATA entry that got no bytes must not stay (writable would lie). */
static void drop_if_empty(struct chat_state *st, struct chat_entry *e)
{
    if (e->len == 0) {
        entry_remove(st, e);
        free(e);
    }
}

/* After queueing: try to send, and ask for write interest if needed. */
static int kick(asyncore_dispatcher *d)
{
    asyncore__hold(d);
    (void)asyncore_chat_initiate_send(d);
    if (!d->closed)
        asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

int asyncore_chat_push(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct chat_state *st = chat_open(d);
    struct chat_entry *e;

    if (st == NULL)
        return -1;
    if (data == NULL && len > 0) {
        errno = EINVAL;
        return -1;
    }
    if (len == 0)
        return 0;
    if ((e = data_tail(st)) == NULL)
        return -1;
    if (evbuffer_add(st->out, data, len) < 0) {
        drop_if_empty(st, e);
        errno = ENOMEM;
        return -1;
    }
    e->len += len;
    return kick(d);
}

int asyncore_chat_push_reference(asyncore_dispatcher *d, const void *data,
                                 size_t len, asyncore_chat_free_fn free_fn,
                                 void *arg)
{
    struct chat_state *st = chat_open(d);
    struct chat_entry *e = NULL;
    int err;

    if (st != NULL && data == NULL && len > 0)
        errno = EINVAL;
    else if (st != NULL && len == 0)
        goto release; /* nothing to send: released at once, success */
    else if (st != NULL && (e = data_tail(st)) != NULL &&
             evbuffer_add_reference(st->out, data, len, free_fn, arg) == 0) {
        e->len += len;
        return kick(d);
    } else if (e != NULL) {
        drop_if_empty(st, e);
        errno = ENOMEM;
    }
    /* Every failure: the bytes were given to us, so release them now. */
    err = errno;
    if (free_fn != NULL)
        free_fn(data, len, arg);
    errno = err;
    return -1;
release:
    if (free_fn != NULL)
        free_fn(data, len, arg);
    return 0;
}

int asyncore_chat_push_with_producer(asyncore_dispatcher *d,
                                     asyncore_producer *p)
{
    struct chat_state *st;
    struct chat_entry *e = NULL;
    int err;

    if (p == NULL) {
        errno = EINVAL;
        return -1;
    }
    st = chat_open(d);
    if (st != NULL && (e = entry_new(ENTRY_PRODUCER)) != NULL) {
        e->producer = p;
        append(st, e);
        return kick(d);
    }
    if (st != NULL)
        errno = ENOMEM;
    err = errno;
    asyncore_producer_free(p);
    errno = err;
    return -1;
}

int asyncore_chat_close_when_done(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_open(d);
    struct chat_entry *e;

    if (st == NULL)
        return -1;
    if ((e = entry_new(ENTRY_CLOSE)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    append(st, e);
    /* As asynchat: nothing is sent now; writable() turns true. */
    asyncore__hold(d);
    asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

int asyncore_chat_discard_buffers(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);
    int marks;

    if (st == NULL) {
        errno = EINVAL;
        return -1;
    }
    discard_input(st);
    marks = discard_output(st);
    if (!d->closed) {
        asyncore__hold(d);
        /* A switch waiting for the queue has nothing left to wait for. */
        if (marks > 0)
            asyncore__output_drained(d);
        if (!d->closed)
            asyncore__interest_update(d);
        asyncore__release(d);
    }
    return 0;
}

int asyncore_chat_queued(const asyncore_dispatcher *d, size_t *bytes)
{
    const struct chat_state *st = chat_state(d);

    if (st == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (bytes != NULL)
        *bytes = st->out != NULL ? evbuffer_get_length(st->out) : 0;
    return st->entries;
}

/*
 * Ask the producer at the head for bytes and put them in front of it, as
 * asynchat's appendleft.  The producer is unlinked while its more() runs,
 * so that a discard_buffers or close from inside cannot free it under the
 * call; it is freed here instead.  Returns 1 to go on, 0 to stop, -1 on
 * error (handle_error ran).
 */
static int pull_producer(asyncore_dispatcher *d, struct chat_state *st,
                         struct chat_entry *e)
{
    struct evbuffer_iovec vec;
    struct chat_entry *head;
    unsigned gen = st->out_gen;
    ssize_t n;
    int err;

    if ((st->staging == NULL && (st->staging = evbuffer_new()) == NULL) ||
        evbuffer_reserve_space(st->staging, (ev_ssize_t)st->out_size, &vec,
                               1) < 1) {
        asyncore_handle_error(d, ENOMEM, "more");
        errno = ENOMEM;
        return -1;
    }
    if (vec.iov_len > st->out_size)
        vec.iov_len = st->out_size;
    entry_remove(st, e);
    n = asyncore_producer_more(e->producer, vec.iov_base, vec.iov_len);
    err = errno;
    if (d->closed || gen != st->out_gen || n == 0) {
        entry_free(e); /* exhausted, or the queue was dropped meanwhile */
        return d->closed || gen != st->out_gen ? 0 : 1;
    }
    TAILQ_INSERT_HEAD(&st->fifo, e, link);
    st->entries++;
    if (n < 0 || (size_t)n > vec.iov_len) {
        err = n < 0 ? err : EOVERFLOW;
        asyncore_handle_error(d, err, "more");
        errno = err;
        return -1;
    }
    vec.iov_len = (size_t)n;
    if (evbuffer_commit_space(st->staging, &vec, 1) < 0 ||
        (head = entry_new(ENTRY_DATA)) == NULL) {
        evbuffer_drain(st->staging, evbuffer_get_length(st->staging));
        asyncore_handle_error(d, ENOMEM, "more");
        errno = ENOMEM;
        return -1;
    }
    if (evbuffer_prepend_buffer(st->out, st->staging) < 0) {
        free(head);
        evbuffer_drain(st->staging, evbuffer_get_length(st->staging));
        asyncore_handle_error(d, ENOMEM, "more");
        errno = ENOMEM;
        return -1;
    }
    head->len = (size_t)n;
    TAILQ_INSERT_HEAD(&st->fifo, head, link);
    st->entries++;
    return 1;
}

/* One send of at most ac_out_buffer_size bytes from the DATA entry @e. */
static ssize_t send_data(asyncore_dispatcher *d, struct chat_state *st,
                         struct chat_entry *e)
{
    size_t n = e->len < st->out_size ? e->len : st->out_size;
    unsigned gen = st->out_gen;
    unsigned char *p = evbuffer_pullup(st->out, (ev_ssize_t)n);
    ssize_t sent;

    if (p == NULL) {
        asyncore_handle_error(d, ENOMEM, "send");
        errno = ENOMEM;
        return -1;
    }
    sent = asyncore_send(d, p, n);
    /* handle_close/handle_error may have closed us or dropped the queue. */
    if (sent <= 0 || d->closed || gen != st->out_gen)
        return sent;
    evbuffer_drain(st->out, (size_t)sent);
    e->len -= (size_t)sent;
    if (e->len == 0) {
        entry_remove(st, e);
        free(e);
    }
    return sent;
}

/* asynchat's initiate_send loop: at most one send. */
static ssize_t send_step(asyncore_dispatcher *d, struct chat_state *st)
{
    struct chat_entry *e;
    int r;

    while ((e = TAILQ_FIRST(&st->fifo)) != NULL && d->connected) {
        switch (e->kind) {
        case ENTRY_CLOSE:
            entry_remove(st, e);
            free(e);
            asyncore_handle_close(d);
            return 0;
        case ENTRY_MARK:
            /* The transport switches now (d may stop being connected). */
            entry_remove(st, e);
            free(e);
            asyncore__output_drained(d);
            if (d->closed)
                return 0;
            break;
        case ENTRY_PRODUCER:
            if (st->out == NULL && (st->out = evbuffer_new()) == NULL) {
                asyncore_handle_error(d, ENOMEM, "more");
                errno = ENOMEM;
                return -1;
            }
            r = pull_producer(d, st, e);
            if (r <= 0)
                return r;
            break;
        case ENTRY_DATA:
            return send_data(d, st, e);
        }
    }
    return 0;
}

ssize_t asyncore_chat_initiate_send(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_open(d);
    ssize_t n;
    int err;

    if (st == NULL)
        return -1;
    /* Re-entered from a hook it runs (handle_close from send, a push from
     * more()): the outer call owns the head of the FIFO. */
    if (st->sending)
        return 0;
    asyncore__hold(d);
    st->sending = 1;
    n = send_step(d, st);
    err = errno;
    st->sending = 0;
    drop_if_closed(d, st);
    asyncore__release(d);
    errno = err;
    return n;
}

int asyncore_chat_set_in_buffer_size(asyncore_dispatcher *d, size_t size)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    if (size == 0 || size > SSIZE_MAX) {
        errno = EINVAL;
        return -1;
    }
    st->in_size = size;
    return 0;
}

int asyncore_chat_set_out_buffer_size(asyncore_dispatcher *d, size_t size)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    if (size == 0 || size > SSIZE_MAX) {
        errno = EINVAL;
        return -1;
    }
    st->out_size = size;
    return 0;
}

/* ---- the class's other hooks --------------------------------------------- */

void asyncore_chat_handle_write(asyncore_dispatcher *d)
{
    (void)asyncore_chat_initiate_send(d);
}

void asyncore_chat_handle_close(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);

    if (st == NULL || d->closed)
        return;
    /* Held: called outside the channel's hooks, close would free it. */
    asyncore__hold(d);
    asyncore_close(d);
    drop_if_closed(d, st);
    asyncore__release(d);
}

/* chat_flow.h: pause above high water, resume at low water. */
static int read_paused(struct chat_state *st)
{
    size_t queued = st->out != NULL ? evbuffer_get_length(st->out) : 0;

    if (st->high_water == 0)
        st->paused = 0;
    else if (queued > st->high_water)
        st->paused = 1;
    else if (queued <= st->low_water)
        st->paused = 0;
    return st->paused;
}

int asyncore_chat_readable(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);

    /* asynchat dropped its ac_in_buffer_size test: always readable, unless
     * the program asked for read pausing (chat_flow.h). */
    return st != NULL && !d->closed && !read_paused(st);
}

int asyncore_chat_writable(asyncore_dispatcher *d)
{
    const struct chat_state *st = chat_state(d);

    if (st == NULL || d->closed)
        return 0;
    return !TAILQ_EMPTY(&st->fifo) || !d->connected;
}

/* The class's destroy: runs after the handlers' own, frees the queues. */
static void chat_destroy(asyncore_dispatcher *d)
{
    struct chat_state *st = asyncore_dispatcher_area(d);

    st->collecting = 0;
    discard_input(st);
    discard_output(st);
    if (st->in != NULL)
        evbuffer_free(st->in);
    if (st->out != NULL)
        evbuffer_free(st->out);
    if (st->staging != NULL)
        evbuffer_free(st->staging);
    if (st->term != NULL && st->term != st->term_inline)
        free(st->term);
    st->in = st->out = st->staging = NULL;
    st->term = NULL;
}

/* ---- a transport switch (tls.c) ------------------------------------------ */

static void chat_drop_input(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);

    if (st == NULL)
        return;
    st->switched = 1;
    discard_input(st);
}

static int chat_mark_output(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);
    struct chat_entry *e;

    if (st == NULL || TAILQ_EMPTY(&st->fifo))
        return 0;
    if ((e = entry_new(ENTRY_MARK)) == NULL)
        return -1;
    append(st, e);
    return 1;
}

static const struct asyncore__buffers_ops chat_buffers = {
    .defaults = &chat_defaults,
    .drop_input = chat_drop_input,
    .mark_output = chat_mark_output,
};

static void chat_buffers_register(void)
{
    asyncore__buffers_register(&chat_buffers);
}

/* ---- flow control (chat_flow.h) ------------------------------------------ */

int asyncore_chat_set_max_input(asyncore_dispatcher *d, size_t max)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    st->max_input = max;
    return 0;
}

int asyncore_chat_set_read_high_water(asyncore_dispatcher *d, size_t high,
                                      size_t low)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    if (low > high) {
        errno = EINVAL;
        return -1;
    }
    st->high_water = high;
    st->low_water = low;
    /* readable() may have changed its answer. */
    asyncore__hold(d);
    asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}
