/*
 * asyncore/send.h -- dispatcher_with_send: a dispatcher with an output queue.
 *
 * asyncore_send() on such a dispatcher appends to a libevent evbuffer and
 * tries to send at once; what the socket does not take is flushed by the
 * default handle_write in chunks of at most 64 KiB.  writable() is "not
 * connected, or data queued".
 */
#ifndef ASYNCORE_SEND_H
#define ASYNCORE_SEND_H

#include <asyncore/dispatcher.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The largest chunk one handle_write passes to the socket. */
#define ASYNCORE_SEND_CHUNK 65536

/**
 * Create a dispatcher_with_send.  @handlers may override any hook; NULL
 * entries of handle_write and writable mean the buffered behaviour above.
 * Errors as asyncore_dispatcher_new().
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_dispatcher_with_send_new(asyncore_map *map,
                                  const asyncore_handlers *handlers,
                                  void *user_data);

/** Bytes queued and not yet sent; 0 for any other kind of dispatcher. */
ASYNCORE_API size_t asyncore_send_pending(const asyncore_dispatcher *d);

/**
 * Pause reading while @limit bytes or more are queued (0: never, the
 * default; 1: whenever anything is queued).  While paused, the read
 * interest is withheld whatever readable() answers -- readable() is still
 * asked after every dispatch -- and reading resumes by itself once
 * handle_write has sent the queue below @limit.  A peer that sends faster
 * than it reads then meets TCP's flow control instead of growing the queue
 * without bound: the queue stays below @limit plus what one handle_read
 * queues.  Limits above 4 GiB - 1 act as 4 GiB - 1.  Takes effect at once
 * (readable() and writable() are asked then, as by
 * asyncore_update_interest()); safe anywhere, including the dispatcher's
 * own hooks.  Returns 0, or -1 with errno EINVAL (NULL, or not a
 * dispatcher_with_send) or EBADF (closed).
 */
ASYNCORE_API int asyncore_set_send_limit(asyncore_dispatcher *d,
                                         size_t limit);

/**
 * Send what the socket takes now, at most ASYNCORE_SEND_CHUNK bytes
 * (asyncore's initiate_send).  Returns bytes sent (0 if none could be), or
 * -1 with EINVAL (not a dispatcher_with_send) or EBADF (closed).
 */
ASYNCORE_API ssize_t asyncore_initiate_send(asyncore_dispatcher *d);

/* The class's hooks, for overrides that call their parent. */
ASYNCORE_API void asyncore_with_send_handle_write(asyncore_dispatcher *d);
ASYNCORE_API int asyncore_with_send_writable(asyncore_dispatcher *d);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_SEND_H */
