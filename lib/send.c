/*
 * send.c -- dispatcher_with_send: output queued in an evbuffer.
 *
 * The evbuffer is allocated only when the socket does not take a send whole,
 * so idle and request/response connections that keep up cost nothing more
 * than a plain dispatcher.
 */
#include "config.h"

#include <errno.h>

#include <event2/buffer.h>

#include "asyncore-internal.h"

static const asyncore_handlers with_send_defaults = {
    .handle_write = asyncore_with_send_handle_write,
    .writable = asyncore_with_send_writable,
};

asyncore_dispatcher *asyncore_dispatcher_with_send_new(asyncore_map *map,
                                                       const asyncore_handlers *handlers,
                                                       void *user_data)
{
    asyncore_dispatcher *d;

    d = asyncore_dispatcher_new_ex(map, handlers, &with_send_defaults,
                                   user_data, 0);
    if (d != NULL)
        d->buffered = 1;
    return d;
}

size_t asyncore_send_pending(const asyncore_dispatcher *d)
{
    /* What was queued when the dispatcher closed will never be sent: it is
     * discarded (freed on release), so a caller waiting for the queue to
     * drain on a held, closed dispatcher must not wait forever. */
    if (d == NULL || d->closed)
        return 0;
    return asyncore__queued(d);
}

int asyncore_set_send_limit(asyncore_dispatcher *d, size_t limit)
{
    if (asyncore__check(d) < 0)
        return -1;
    if (!d->buffered) {
        errno = EINVAL;
        return -1;
    }
    d->send_limit = limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
    /* Takes effect now, not at the next dispatch: a limit set on an idle
     * connection must pause (or resume) its reading at once. */
    asyncore__interest_update(d);
    return 0;
}

ssize_t asyncore_initiate_send(asyncore_dispatcher *d)
{
    size_t len;
    ssize_t n;

    if (asyncore__check(d) < 0)
        return -1;
    if (!d->buffered) {
        errno = EINVAL;
        return -1;
    }
    if (d->out == NULL || d->fd < 0)
        return 0;
    len = evbuffer_get_length(d->out);
    if (len == 0)
        return 0;
    if (len > ASYNCORE_SEND_CHUNK)
        len = ASYNCORE_SEND_CHUNK;
    n = asyncore__send_plain(d, evbuffer_pullup(d->out, (ssize_t)len), len);
    /* A hook run by the send may have closed us; the buffer lives on
     * until release, so draining it is still safe. */
    if (n > 0)
        evbuffer_drain(d->out, (size_t)n);
    return n;
}

/*
 * What the first attempt of a buffered send left: a failure mapped to hooks
 * (only this path runs them, so only it holds the dispatcher), or the rest
 * of the bytes queued.  @n is what the attempt returned: -1 for a failure,
 * else the bytes it sent, 0 when there was no attempt.
 */
static ASYNCORE__NOINLINE ssize_t queue_rest(asyncore_dispatcher *d,
                                             const void *buf, size_t len,
                                             ssize_t n)
{
    if (n < 0) {
        int over;

        asyncore__hold(d);
        n = asyncore__send_failed(d);
        over = d->closed || n < 0; /* read before the release frees d */
        asyncore__release(d);
        if (over)
            return n < 0 ? -1 : (ssize_t)len;
    }
    if (d->out == NULL && (d->out = evbuffer_new()) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (evbuffer_add(d->out, (const char *)buf + n, len - (size_t)n) < 0) {
        errno = ENOMEM;
        return -1;
    }
    asyncore__interest_update(d);
    return (ssize_t)len;
}

/*
 * asyncore's send() appends and calls initiate_send().  With nothing queued
 * we try the caller's bytes first and copy only what the socket refused:
 * the common case then copies nothing.
 */
static ssize_t send_buffered(asyncore_dispatcher *d, const void *buf,
                             size_t len)
{
    ssize_t n = 0;

    if (len == 0)
        return 0;
    if (asyncore__queued(d) == 0 && d->connected && d->fd >= 0) {
        size_t first = len < ASYNCORE_SEND_CHUNK ? len : ASYNCORE_SEND_CHUNK;

        n = asyncore__raw_send(d, buf, first);
        if (n >= 0 && (size_t)n == len)
            return n;
    }
    return queue_rest(d, buf, len, n);
}

void asyncore_with_send_handle_write(asyncore_dispatcher *d)
{
    (void)asyncore_initiate_send(d);
}

int asyncore_with_send_writable(asyncore_dispatcher *d)
{
    return d != NULL &&
           (!d->connected || (!d->closed && asyncore__queued(d) > 0));
}

/* Checked once here; the buffered path and the plain one trust it. */
static ASYNCORE__NOINLINE ssize_t send_checked(asyncore_dispatcher *d,
                                               const void *buf, size_t len)
{
    if (asyncore__check(d) < 0)
        return -1;
    if (buf == NULL && len > 0) {
        errno = EINVAL;
        return -1;
    }
    if (d->buffered)
        return send_buffered(d, buf, len);
    return asyncore__send_plain(d, buf, len);
}

/*
 * Every echo and every response calls this: a plain connected socket with
 * nothing queued and at most one chunk to send goes straight to send() --
 * what send_buffered() and asyncore__send_plain() would do, without their
 * checks -- and everything else through the checks.
 */
ssize_t asyncore_send(asyncore_dispatcher *d, const void *buf, size_t len)
{
    if (d != NULL && buf != NULL && len - 1 < ASYNCORE_SEND_CHUNK &&
        asyncore__plain_socket(d) && asyncore__queued(d) == 0) {
        ssize_t n = send(d->fd, buf, len, MSG_NOSIGNAL);

        if (n == (ssize_t)len)
            return n;
        if (d->buffered)
            return queue_rest(d, buf, len, n);
        return n >= 0 ? n : asyncore__send_failed(d);
    }
    return send_checked(d, buf, len);
}
