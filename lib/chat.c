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
 * On a stream socket consecutive pushes extend one DATA entry, so that what
 * they queued goes out in as few sends as the socket takes; on a message
 * socket (SOCK_SEQPACKET, SOCK_DGRAM) each push keeps an entry of its own,
 * since there each send is one message, as in asynchat.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "ext.h"

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

/*
 * A reference's release (asyncore_chat_push_reference).  libevent calls
 * the cleanup of a reference from inside evbuffer_drain, _pullup or _free,
 * where the user's free hook must not run: evbuffer is not re-entrant, and
 * the natural free hook pushes the next chunk or discards (rule 2 of
 * asyncore-internal.h).  The cleanup only queues this record on the
 * channel; run_releases() calls the free hook after the evbuffer call
 * returned.
 */
struct chat_ref {
    struct chat_ref *next;
    struct chat_state *st;
    asyncore_chat_free_fn free_fn;
    void *arg;
    const void *data;
    size_t len;
};

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
    unsigned sock_known : 1;  /* sock_stream tells the socket's kind */
    unsigned sock_stream : 1; /* pushes may share a DATA entry */
    unsigned releasing : 1;   /* run_releases is on the stack */
    /* References released by libevent, their free hooks still to run. */
    struct chat_ref *released, *released_tail;
    unsigned switched : 1;    /* a transport switch dropped the input */
    unsigned char term_inline[2 * TERM_INLINE];
    /* chat_flow.h: the input limit and read pausing. */
    size_t max_input;         /* 0: records of any length */
    size_t record;            /* BYTES: the current record's length so far */
    size_t high_water;        /* 0: never pause reading */
    size_t low_water;
    size_t max_record;        /* 0: records are not cut */
    unsigned skipping : 1;    /* dropping the rest of an oversized record */
    unsigned paused : 1;      /* reading paused until low_water */
    unsigned cut : 1;         /* the current record was cut at max_record */
    unsigned cut_ended : 1;   /* found_terminator runs for a cut record */
    unsigned has_area : 1;    /* asyncore_chat_new_ex() gave an area */
};

/* The user's inline area (asyncore_chat_new_ex) follows the class's state
 * in the dispatcher's own area, as aligned as that one. */
#define AREA_ALIGN _Alignof(max_align_t)
#define AREA_OFFSET                                                         \
    ((sizeof(struct chat_state) + AREA_ALIGN - 1) / AREA_ALIGN * AREA_ALIGN)

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

asyncore_dispatcher *asyncore_chat_new_ex(asyncore_map *map,
                                          const asyncore_chat_handlers *h,
                                          void *user_data, size_t area_size)
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
    /* asyncore_dispatcher_new_ex's own bound, applied to the whole. */
    if (area_size > SIZE_MAX / 2 - AREA_OFFSET) {
        errno = EINVAL;
        return NULL;
    }
    /* A TLS start or stop on the channel reaches its buffers (tls.c). */
    pthread_once(&chat_buffers_once, chat_buffers_register);
    d = asyncore_dispatcher_new_ex(map, &h->dispatcher, &chat_defaults,
                                   user_data,
                                   area_size ? AREA_OFFSET + area_size
                                             : sizeof(struct chat_state));
    if (d == NULL)
        return NULL;
    st = asyncore_dispatcher_area(d);
    st->h = h;
    TAILQ_INIT(&st->fifo);
    st->kind = ASYNCORE_TERMINATOR_NONE;
    st->in_size = ASYNCORE_CHAT_BUFFER_SIZE;
    st->out_size = ASYNCORE_CHAT_BUFFER_SIZE;
    st->has_area = area_size != 0;
    return d;
}

asyncore_dispatcher *asyncore_chat_new(asyncore_map *map,
                                       const asyncore_chat_handlers *h,
                                       void *user_data)
{
    return asyncore_chat_new_ex(map, h, user_data, 0);
}

void *asyncore_chat_area(const asyncore_dispatcher *d)
{
    struct chat_state *st = chat_state(d);

    if (st == NULL || !st->has_area)
        return NULL;
    return (char *)st + AREA_OFFSET;
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
    st->cut = 0;
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
    st->cut = 0; /* chat_flow.h: a cut applies to BYTES records only */
    return 0;
}

int asyncore_chat_set_terminator_none(asyncore_dispatcher *d)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    st->kind = ASYNCORE_TERMINATOR_NONE;
    st->cut = 0;
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

/*
 * Call found_terminator; -1 if that closed the channel.  The record's cut
 * flag moves to cut_ended for the call, where asyncore_chat_record_truncated
 * reads it, so that a terminator set by the hook (a new record) cannot
 * hide it.
 */
static int found(asyncore_dispatcher *d, struct chat_state *st)
{
    st->record = 0; /* chat_flow.h: the next record starts */
    st->cut_ended = st->cut;
    st->cut = 0;
    st->h->found_terminator(d);
    st->cut_ended = 0;
    return d->closed ? -1 : 0;
}

/*
 * chat_flow.h: hand the @n bytes at the input's head, all of the current
 * record, to collect_incoming_data -- or, with max_record set, only what
 * still fits below it: the rest is dropped and the record marked cut
 * (before the hook runs, so the hook that gets its last kept bytes can tell
 * already).  The record's length counts every byte received, kept or not,
 * for max_input.  Returns as deliver().
 */
static int deliver_record(asyncore_dispatcher *d, struct chat_state *st,
                          size_t n)
{
    size_t keep = n;

    if (st->max_record > 0) {
        size_t room =
            st->record < st->max_record ? st->max_record - st->record : 0;

        if (keep > room) {
            keep = room;
            st->cut = 1;
        }
    }
    /* Before the hook: it may set a terminator, starting a new record.
     * Saturated: an endless cut record must not wrap into "short". */
    st->record = n > SIZE_MAX - st->record ? SIZE_MAX : st->record + n;
    if (keep > 0 && deliver(d, st, keep) < 0)
        return -1;
    /* The dropped bytes follow the kept ones (a discard_buffers in the
     * hook may already have taken them: draining more than is there is
     * harmless). */
    if (keep < n)
        evbuffer_drain(st->in, n - keep);
    return 0;
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
    st->cut = 0; /* dropped whole: no found_terminator to report it to */
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
        if (at.pos > 0 && deliver_record(d, st, (size_t)at.pos) < 0)
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
    if (keep < len && deliver_record(d, st, len - keep) < 0)
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
static void run_releases(asyncore_dispatcher *d, struct chat_state *st);

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
    run_releases(d, st);
    asyncore__release(d);
}

/* ---- output -------------------------------------------------------------- */

/* libevent's cleanup of a reference: queue it (see struct chat_ref). */
static void ref_released(const void *data, size_t len, void *extra)
{
    struct chat_ref *r = extra;
    struct chat_state *st = r->st;

    r->data = data;
    r->len = len;
    r->next = NULL;
    if (st->released == NULL)
        st->released = r;
    else
        st->released_tail->next = r;
    st->released_tail = r;
}

/*
 * Run the free hooks that evbuffer calls queued, in order, each exactly
 * once.  Called after every evbuffer call on the output that can release
 * references, by the public entry points and hooks of the class, with
 * nothing of the channel's half done.  @d is held across the hooks; a hook
 * may push (more references queue, run by this same loop, not by a nested
 * one: a streaming free hook would otherwise recurse once per chunk),
 * discard or close.  Callers re-check d->closed afterwards.
 */
static void run_releases(asyncore_dispatcher *d, struct chat_state *st)
{
    struct chat_ref *r;

    if (st->released == NULL || st->releasing)
        return;
    asyncore__hold(d);
    st->releasing = 1;
    while ((r = st->released) != NULL) {
        st->released = r->next;
        r->free_fn(r->data, r->len, r->arg);
        free(r);
    }
    st->released_tail = NULL;
    st->releasing = 0;
    asyncore__release(d);
}

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

/*
 * May a push extend the DATA entry before it?  Only on a stream socket: a
 * stream peer sees the same bytes however the sends cut them, but on a
 * message socket one send is one message, and asynchat sends one push
 * (one producer_fifo entry) per send.  Before the channel has a socket its
 * kind is unknown and entries stay apart.  A socket is given once and kept
 * until the close, so the answer is asked of the kernel once.
 */
static int stream_socket(const asyncore_dispatcher *d, struct chat_state *st)
{
    int type = 0;
    socklen_t len = sizeof(type);

    if (st->sock_known)
        return st->sock_stream;
    if (d->fd < 0)
        return 0;
    st->sock_known = 1;
    st->sock_stream =
        getsockopt(d->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type == SOCK_STREAM;
    return st->sock_stream;
}

/* The DATA entry that a push's bytes go to: the one at the FIFO's tail on
 * a stream socket, else a new one.  NULL with ENOMEM. */
static struct chat_entry *data_tail(asyncore_dispatcher *d,
                                    struct chat_state *st)
{
    struct chat_entry *e = TAILQ_LAST(&st->fifo, chat_fifo);

    if (st->out == NULL && (st->out = evbuffer_new()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (e != NULL && e->kind == ENTRY_DATA && stream_socket(d, st))
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
    /* Nothing to queue, but asynchat's push still runs initiate_send: a
     * close marker at the head closes the channel now. */
    if (len == 0)
        return kick(d);
    if ((e = data_tail(d, st)) == NULL)
        return -1;
    if (evbuffer_add(st->out, data, len) < 0) {
        drop_if_empty(st, e);
        errno = ENOMEM;
        return -1;
    }
    e->len += len;
    return kick(d);
}

/*
 * Queue @len (> 0) bytes as one push: room for @len + 1 bytes is reserved
 * contiguously at the output's end, @fill writes the bytes there (and may
 * write one more, a vsnprintf's NUL), and only then are they committed.
 * A failure leaves the output as it was.  Returns 0, or -1 with errno
 * ENOMEM, or that of @fill.
 */
static int push_filled(asyncore_dispatcher *d, struct chat_state *st,
                       size_t len, int (*fill)(void *dst, size_t len, void *arg),
                       void *arg)
{
    struct evbuffer_iovec vec;
    struct chat_entry *e;

    if (len >= (size_t)EV_SSIZE_MAX) {
        errno = ENOMEM;
        return -1;
    }
    if ((e = data_tail(d, st)) == NULL)
        return -1;
    if (evbuffer_reserve_space(st->out, (ev_ssize_t)(len + 1), &vec, 1) < 1) {
        drop_if_empty(st, e);
        errno = ENOMEM;
        return -1;
    }
    if (fill(vec.iov_base, len, arg) < 0) {
        int err = errno;

        drop_if_empty(st, e); /* the reservation is simply not committed */
        errno = err;
        return -1;
    }
    vec.iov_len = len;
    if (evbuffer_commit_space(st->out, &vec, 1) < 0) {
        drop_if_empty(st, e);
        errno = ENOMEM;
        return -1;
    }
    e->len += len;
    return kick(d);
}

struct gather {
    const struct iovec *iov;
    int iovcnt;
};

static int fill_gather(void *dst, size_t len, void *arg)
{
    const struct gather *g = arg;
    unsigned char *p = dst;
    int i;

    (void)len;
    for (i = 0; i < g->iovcnt; i++) {
        if (g->iov[i].iov_len > 0)
            memcpy(p, g->iov[i].iov_base, g->iov[i].iov_len);
        p += g->iov[i].iov_len;
    }
    return 0;
}

int asyncore_chat_pushv(asyncore_dispatcher *d, const struct iovec *iov,
                        int iovcnt)
{
    struct chat_state *st = chat_open(d);
    struct gather g = { iov, iovcnt };
    size_t total = 0;
    int i;

    if (st == NULL)
        return -1;
    if (iovcnt < 0 || iovcnt > IOV_MAX || (iov == NULL && iovcnt > 0)) {
        errno = EINVAL;
        return -1;
    }
    /* Checked whole before anything is queued: one entry or nothing. */
    for (i = 0; i < iovcnt; i++) {
        if ((iov[i].iov_base == NULL && iov[i].iov_len > 0) ||
            iov[i].iov_len > (size_t)SSIZE_MAX - total) {
            errno = EINVAL;
            return -1;
        }
        total += iov[i].iov_len;
    }
    if (total == 0)
        return kick(d); /* as a push of 0 bytes */
    return push_filled(d, st, total, fill_gather, &g);
}

struct format {
    const char *fmt;
    va_list ap;
};

static int fill_format(void *dst, size_t len, void *arg)
{
    struct format *f = arg;
    int n = vsnprintf(dst, len + 1, f->fmt, f->ap);

    /* The same format and arguments measured @len a moment ago. */
    if (n < 0 || (size_t)n != len) {
        if (n >= 0 || errno == 0)
            errno = EINVAL;
        return -1;
    }
    return 0;
}

int asyncore_chat_vpushf(asyncore_dispatcher *d, const char *fmt, va_list ap)
{
    struct chat_state *st = chat_open(d);
    struct format f;
    va_list measure;
    int n, r;

    if (st == NULL)
        return -1;
    if (fmt == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* Measure first, then format straight into the output: one copy. */
    va_copy(measure, ap);
    errno = 0;
    n = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    if (n < 0) {
        if (errno == 0)
            errno = EINVAL;
        return -1;
    }
    if (n == 0)
        return kick(d); /* as a push of 0 bytes */
    f.fmt = fmt;
    va_copy(f.ap, ap);
    r = push_filled(d, st, (size_t)n, fill_format, &f);
    va_end(f.ap);
    return r;
}

int asyncore_chat_pushf(asyncore_dispatcher *d, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = asyncore_chat_vpushf(d, fmt, ap);
    va_end(ap);
    return r;
}

int asyncore_chat_push_reference(asyncore_dispatcher *d, const void *data,
                                 size_t len, asyncore_chat_free_fn free_fn,
                                 void *arg)
{
    struct chat_state *st = chat_open(d);
    struct chat_entry *e = NULL;
    struct chat_ref *r = NULL;
    int err;

    if (st != NULL && data == NULL && len > 0)
        errno = EINVAL;
    else if (st != NULL && len == 0)
        goto release; /* nothing to send: released at once, success */
    else if (st != NULL && free_fn != NULL &&
             (r = calloc(1, sizeof(*r))) == NULL)
        errno = ENOMEM;
    else if (st != NULL && (e = data_tail(d, st)) != NULL &&
             evbuffer_add_reference(st->out, data, len,
                                    r != NULL ? ref_released : NULL, r) == 0) {
        e->len += len;
        if (r != NULL) {
            r->st = st;
            r->free_fn = free_fn;
            r->arg = arg;
        }
        return kick(d);
    } else if (e != NULL) {
        drop_if_empty(st, e);
        errno = ENOMEM;
    }
    /* Every failure: the bytes were given to us, so release them now --
     * here, outside any evbuffer call. */
    err = errno;
    free(r);
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
    asyncore__hold(d);
    discard_input(st);
    marks = discard_output(st);
    run_releases(d, st);
    /* A switch waiting for the queue has nothing left to wait for. */
    if (marks > 0 && !d->closed)
        asyncore__output_drained(d);
    if (!d->closed)
        asyncore__interest_update(d);
    asyncore__release(d);
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
    run_releases(d, st); /* what the send drained, or the close dropped */
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
    run_releases(d, st);
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
    /* The references the frees above released; a free hook that pushes
     * now gets EBADF and its own bytes back at once. */
    run_releases(d, st);
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

int asyncore_chat_set_max_record(asyncore_dispatcher *d, size_t max)
{
    struct chat_state *st = chat_open(d);

    if (st == NULL)
        return -1;
    st->max_record = max;
    return 0;
}

int asyncore_chat_record_truncated(const asyncore_dispatcher *d)
{
    const struct chat_state *st = chat_state(d);

    if (st == NULL) {
        errno = EINVAL;
        return 0;
    }
    return st->cut || st->cut_ended;
}
