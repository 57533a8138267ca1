/*
 * asyncore/chat.h -- async_chat: terminator-framed channels and producers.
 *
 * A chat channel is a dispatcher (asyncore_dispatcher *: every dispatcher
 * method works on it) whose input is cut by a TERMINATOR and whose output is
 * a FIFO of byte strings, producers and a close marker, as asynchat's
 * async_chat.
 *
 * INPUT
 *   Every read appends up to ac_in_buffer_size bytes to the channel's input
 *   and hands them on according to the terminator in force:
 *    - BYTES "t" (any length >= 1): the data before "t" goes to
 *      collect_incoming_data, "t" itself is consumed, then found_terminator
 *      runs.  A tail of the input that may be the start of "t" (a prefix of
 *      "t", asynchat's find_prefix_at_end) is held back until more bytes
 *      tell; it is never passed as data before then.
 *    - COUNT n: the next n bytes go to collect_incoming_data, counting down
 *      across reads; when the count reaches 0, found_terminator runs.  A
 *      count of 0 then behaves as NONE until a new terminator is set.
 *    - NONE: everything that arrives goes to collect_incoming_data.  A new
 *      channel starts with NONE.
 *   collect_incoming_data is never called with 0 bytes, and gets each piece
 *   as one contiguous buffer; how a run of data between two terminators is
 *   cut into calls depends on how it arrived, so concatenate.  Changing the
 *   terminator from inside found_terminator applies to the bytes already
 *   read (a "\r\n\r\n" header, then a byte count for the body, then lines).
 *   Once a hook closes the channel, no further hook runs and what remained
 *   of the input is dropped.
 *
 * OUTPUT
 *   asyncore_chat_push() and friends append to the FIFO and try to send at
 *   once (asynchat's initiate_send).  Each send passes at most
 *   ac_out_buffer_size bytes to the socket; handle_write sends again when
 *   the socket can take more.  A producer is asked for more bytes only when
 *   it reaches the head of the FIFO, with room for ac_out_buffer_size bytes
 *   (asynchat's more() takes no size); what one more() call returns is sent
 *   apart from what surrounds it.  writable() is "something queued, or not
 *   connected yet".
 *
 *   On a stream socket (TCP, AF_UNIX SOCK_STREAM) pushes that wait behind
 *   an unfinished send join the same FIFO entry and leave in as few sends
 *   as the socket takes, up to ac_out_buffer_size each: the peer reads the
 *   same bytes in the same order, in fewer pieces than asynchat sends them
 *   (asyncore_chat_queued() counts such a run as one entry).  On a message
 *   socket (SOCK_SEQPACKET, SOCK_DGRAM) one push is one send, hence one
 *   message, as in asynchat: three pushes arrive as three messages, one
 *   longer than ac_out_buffer_size as one message per slice of that size,
 *   and each more() result as one message.  Pushes made before the channel
 *   has a socket stay apart too.
 *
 *   A push of 0 bytes queues nothing (asynchat's push(b"") on a message
 *   socket sends an empty message; this library sends none) but still runs
 *   initiate_send, as asynchat's does: a close marker at the head of the
 *   FIFO (asyncore_chat_close_when_done()) closes the channel inside that
 *   push, and bytes waiting at the head are sent if the socket takes them.
 *
 * LIFETIME
 *   What is still queued when the channel closes -- input, bytes,
 *   references and producers -- is released exactly once: at once when the
 *   close comes from the default handle_close or from a hook run by the
 *   chat's own reading and sending (including the push functions), and in
 *   any case before the channel's memory is freed.  In that last case (the
 *   program called asyncore_close() itself, say from another dispatcher's
 *   hook) the release comes after the handlers' destroy hook: a producer's
 *   or reference's free hook must then not use state that hook frees, or
 *   the program calls asyncore_chat_discard_buffers() before closing.
 *
 * ERRORS
 *   As everywhere (common.h, dispatcher.h): -1 with errno.  A chat function
 *   given a dispatcher that is not a chat channel fails with EINVAL; one
 *   given a closed channel (still valid inside its hooks or while held)
 *   fails with EBADF.
 */
#ifndef ASYNCORE_CHAT_H
#define ASYNCORE_CHAT_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/uio.h>

#include <asyncore/dispatcher.h>

#ifdef __cplusplus
extern "C" {
#endif

/** asynchat's default ac_in_buffer_size and ac_out_buffer_size. */
#define ASYNCORE_CHAT_BUFFER_SIZE 65536
/** asynchat's default buffer_size of simple_producer. */
#define ASYNCORE_SIMPLE_PRODUCER_SIZE 512

/**
 * The hooks of a chat channel.  @dispatcher holds the dispatcher hooks;
 * NULL entries there take the class's defaults: handle_read (read and cut
 * input), handle_write (initiate_send), handle_close (close and release the
 * queues), readable (always), writable (see OUTPUT), destroy (free the
 * queues); the others are asyncore's.  The table must outlive the channel
 * (make it static const) and be zero-initialised.
 */
typedef struct asyncore_chat_handlers {
    asyncore_handlers dispatcher;
    /**
     * Input data: @len (> 0) bytes at @data, valid only during the call.
     * Required.
     */
    void (*collect_incoming_data)(asyncore_dispatcher *d, const void *data,
                                  size_t len);
    /** The terminator was reached.  Required. */
    void (*found_terminator)(asyncore_dispatcher *d);
    /** Reserved for future hooks; must be NULL. */
    void (*reserved[4])(void);
} asyncore_chat_handlers;

/** What a channel's terminator is (asyncore_chat_get_terminator()). */
typedef enum asyncore_terminator_kind {
    ASYNCORE_TERMINATOR_NONE = 0,  /**< asynchat's None */
    ASYNCORE_TERMINATOR_BYTES = 1, /**< a byte string */
    ASYNCORE_TERMINATOR_COUNT = 2  /**< an integer: bytes still to read */
} asyncore_terminator_kind;

/** A channel's terminator, as asyncore_chat_get_terminator() reports it. */
typedef struct asyncore_chat_terminator {
    asyncore_terminator_kind kind;
    /** BYTES: the terminator (owned by the channel, valid until the next
     *  set_terminator call or the channel's release); NULL otherwise. */
    const void *bytes;
    /** BYTES: its length; 0 otherwise. */
    size_t len;
    /** COUNT: the bytes still to collect before found_terminator. */
    uint64_t count;
} asyncore_chat_terminator;

/**
 * Create a chat channel on @map (NULL: the default map) with no socket yet
 * (give it one with asyncore_create_socket() or asyncore_set_socket()).
 * Its terminator is NONE.  @user_data is asyncore_dispatcher_user_data().
 * Returns NULL with errno EINVAL (@h NULL, or its collect_incoming_data or
 * found_terminator NULL: nothing is created) or ENOMEM.
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_chat_new(asyncore_map *map, const asyncore_chat_handlers *h,
                  void *user_data);

/**
 * asyncore_chat_new() with @area_size bytes of zeroed, maximally aligned
 * memory allocated with the channel (asyncore_chat_area()): the channel's
 * own state, as a Python subclass's attributes, without a malloc and a
 * destroy hook of its own.  The area lives as long as the channel's memory:
 * it is still valid inside the destroy hook.  @area_size 0 is
 * asyncore_chat_new().  Returns NULL with errno EINVAL (as
 * asyncore_chat_new(), or @area_size too large to allocate) or ENOMEM.
 * Safe inside any hook.
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_chat_new_ex(asyncore_map *map, const asyncore_chat_handlers *h,
                     void *user_data, size_t area_size);

/**
 * The inline area of asyncore_chat_new_ex(), or NULL if the channel has
 * none or @d is NULL or not a chat channel.  (asyncore_dispatcher_area()
 * of a chat channel is the class's own state: do not use it.)  Valid on a
 * closed channel as long as its memory is, destroy hook included.
 */
ASYNCORE_API void *asyncore_chat_area(const asyncore_dispatcher *d);

/* ---- the terminator ------------------------------------------------------
 * Safe anywhere, including inside the channel's own hooks; from inside
 * found_terminator the new terminator applies to the input already read. */

/**
 * Terminate on the @len bytes at @term (copied).  Returns 0, or -1 with
 * errno EINVAL (@term NULL or @len 0, or not a chat), EBADF (closed) or
 * ENOMEM (the old terminator is then kept).
 */
ASYNCORE_API int asyncore_chat_set_terminator(asyncore_dispatcher *d,
                                              const void *term, size_t len);

/**
 * Terminate after @n more bytes (asynchat's integer terminator).  Returns
 * 0, or -1 with errno EINVAL (@n negative, or not a chat) or EBADF.
 */
ASYNCORE_API int asyncore_chat_set_terminator_count(asyncore_dispatcher *d,
                                                    int64_t n);

/** No terminator: collect everything.  Returns 0 or -1 (EINVAL, EBADF). */
ASYNCORE_API int asyncore_chat_set_terminator_none(asyncore_dispatcher *d);

/**
 * Store the terminator in force in @t.  A COUNT terminator reports the
 * bytes still expected (0 once found_terminator ran for it).  Works on a
 * closed channel while it is valid.  Returns 0, or -1 with errno EINVAL
 * (@d not a chat, or @t NULL).
 */
ASYNCORE_API int asyncore_chat_get_terminator(const asyncore_dispatcher *d,
                                              asyncore_chat_terminator *t);

/* ---- output ----------------------------------------------------------------
 * The push functions append to the FIFO, then try to send (initiate_send).
 * Like asyncore_send(), that send may find the connection lost and run
 * handle_close: the channel can be closed when they return, and if that
 * happened outside its own hooks and nobody holds it, it is already freed
 * (dispatcher.h, LIFETIME 5).  Safe inside any hook. */

/**
 * Queue a copy of the @len bytes at @data.  Sends take at most
 * ac_out_buffer_size bytes of it at a time; on a message socket each push
 * is sent apart (see OUTPUT).  @len 0 (with @data NULL or not) queues
 * nothing but still tries to send, so a close marker at the head closes
 * the channel now.  Returns 0, or -1 with errno EINVAL (@data NULL with
 * @len > 0, or not a chat), EBADF (closed) or ENOMEM.
 */
ASYNCORE_API int asyncore_chat_push(asyncore_dispatcher *d, const void *data,
                                    size_t len);

/**
 * Queue the bytes of the @iovcnt buffers at @iov, copied, as ONE push: one
 * FIFO entry, hence one send (one message on a message socket) where
 * asyncore_chat_push() of the same bytes would do so -- a reply's code,
 * text and "\r\n" without a copy of one's own.  Buffers of length 0 are
 * allowed (their iov_base may be NULL); a total of 0 bytes is a push of 0
 * bytes.  All or nothing: on failure nothing is queued.  Returns 0, or -1
 * with errno EINVAL (not a chat; @iovcnt negative or above IOV_MAX; @iov
 * NULL with @iovcnt > 0; an iov_base NULL with its iov_len > 0; a total
 * above SSIZE_MAX), EBADF (closed) or ENOMEM.  Safe inside any hook.
 */
ASYNCORE_API int asyncore_chat_pushv(asyncore_dispatcher *d,
                                     const struct iovec *iov, int iovcnt);

/**
 * Queue what printf(3) would print for @fmt and its arguments, as ONE
 * push (see asyncore_chat_pushv()), without the terminating NUL:
 * asyncore_chat_pushf(d, "%d %s\r\n", 250, "OK").  The format is checked
 * by the compiler.  An empty result is a push of 0 bytes.  All or nothing:
 * on failure nothing is queued.  Returns 0, or -1 with errno EINVAL (not
 * a chat, or @fmt NULL), EBADF (closed), ENOMEM, or the errno of a
 * formatting failure as vsnprintf(3) reports it (EOVERFLOW: longer than
 * INT_MAX bytes; EILSEQ: a wide character with no multibyte form).  Safe
 * inside any hook.
 */
ASYNCORE_API int asyncore_chat_pushf(asyncore_dispatcher *d, const char *fmt,
                                     ...) ASYNCORE_PRINTF(2, 3);

/**
 * asyncore_chat_pushf() with a va_list, for wrappers of one's own.  As
 * vprintf(3), @ap is left indeterminate (va_end it).  Returns and errors
 * as asyncore_chat_pushf().
 */
ASYNCORE_API int asyncore_chat_vpushf(asyncore_dispatcher *d, const char *fmt,
                                      va_list ap) ASYNCORE_PRINTF(2, 0);

/** Releases the memory of asyncore_chat_push_reference(). */
typedef void (*asyncore_chat_free_fn)(const void *data, size_t len,
                                      void *arg);

/**
 * Queue the @len bytes at @data without copying them (zero-copy): they
 * must stay valid and unchanged until @free_fn (if not NULL) is called
 * with (@data, @len, @arg).  From this call on the channel owns them:
 * @free_fn runs exactly once -- when the bytes have been sent or dropped
 * (discard_buffers, close), or before an error return, or at once for
 * @len 0 (which sends nothing).  It runs after the library's buffer work is done, before the
 * call that sent or dropped the bytes returns, so it may call anything on
 * the channel: push the next chunk by reference (the zero-copy streaming
 * pattern), discard_buffers, close.  On a closed channel such a push fails
 * with EBADF and its own free hook runs at once.  Returns 0, or -1 with
 * errno EINVAL, EBADF or ENOMEM.
 */
ASYNCORE_API int asyncore_chat_push_reference(asyncore_dispatcher *d,
                                              const void *data, size_t len,
                                              asyncore_chat_free_fn free_fn,
                                              void *arg);

/** A producer: a source of output asked for more bytes on demand. */
typedef struct asyncore_producer asyncore_producer;

/**
 * asynchat's more(): write up to @size (> 0) bytes into @buf and return
 * how many, 0 when there is nothing more (the producer is then released),
 * or -1 with errno set (the channel's handle_error gets it, op "more").
 */
typedef ssize_t (*asyncore_producer_more_fn)(void *arg, void *buf,
                                             size_t size);

/**
 * Create a producer calling @more with @arg; @free_fn (may be NULL) is
 * called with @arg exactly once, when the producer is released.  Returns
 * NULL with errno EINVAL (@more NULL) or ENOMEM; @free_fn is not called
 * then.
 */
ASYNCORE_API asyncore_producer *
asyncore_producer_new(asyncore_producer_more_fn more,
                      void (*free_fn)(void *arg), void *arg);

/**
 * asynchat's simple_producer over a copy of @len bytes at @data, yielding
 * at most @buffer_size bytes per more() (0: ASYNCORE_SIMPLE_PRODUCER_SIZE).
 * Returns NULL with errno EINVAL (@data NULL with @len > 0) or ENOMEM.
 */
ASYNCORE_API asyncore_producer *
asyncore_simple_producer_new(const void *data, size_t len,
                             size_t buffer_size);

/**
 * Call @p's more() (for producers that wrap others, and tests).  Returns
 * as more() does, or -1 with EINVAL (@p or @buf NULL, or @size 0).
 */
ASYNCORE_API ssize_t asyncore_producer_more(asyncore_producer *p, void *buf,
                                            size_t size);

/** Release a producer that was not pushed: its free hook runs.  NULL ok. */
ASYNCORE_API void asyncore_producer_free(asyncore_producer *p);

/**
 * Queue producer @p.  The channel takes @p in every case: on failure it is
 * released (its free hook runs) before the return, so
 * push_with_producer(d, asyncore_simple_producer_new(...)) never leaks.
 * Returns 0, or -1 with errno EINVAL (@p NULL, or not a chat), EBADF
 * (closed) or ENOMEM.
 */
ASYNCORE_API int asyncore_chat_push_with_producer(asyncore_dispatcher *d,
                                                  asyncore_producer *p);

/**
 * Close the channel (its handle_close runs) once everything queued so far
 * has been sent; anything queued after this is never sent.  Returns 0, or
 * -1 with errno EINVAL, EBADF or ENOMEM.
 */
ASYNCORE_API int asyncore_chat_close_when_done(asyncore_dispatcher *d);

/**
 * Drop the unprocessed input and everything queued for output (free hooks
 * of references and producers run now).  From inside collect_incoming_data
 * the input is dropped once that call returns (its @data stays valid).
 * Returns 0, or -1 with errno EINVAL (works on a closed channel).
 */
ASYNCORE_API int asyncore_chat_discard_buffers(asyncore_dispatcher *d);

/**
 * Send from the head of the FIFO, at most ac_out_buffer_size bytes in one
 * send, as asynchat's initiate_send: producers at the head are asked for
 * bytes, a close marker at the head runs handle_close.  Does nothing before
 * the channel is connected, or when called again from a hook it runs.
 * Returns the bytes sent (0 if none), or -1 with errno EINVAL or EBADF, or
 * that of a failed send or more() (after handle_error ran).
 */
ASYNCORE_API ssize_t asyncore_chat_initiate_send(asyncore_dispatcher *d);

/** Bytes and entries still queued: bytes in *@bytes, producers and close
 *  markers not counted there.  Returns the number of FIFO entries, or -1
 *  with EINVAL. */
ASYNCORE_API int asyncore_chat_queued(const asyncore_dispatcher *d,
                                      size_t *bytes);

/**
 * Set ac_in_buffer_size (the most one read takes) or ac_out_buffer_size
 * (the most one send passes); both default to ASYNCORE_CHAT_BUFFER_SIZE.
 * Returns 0, or -1 with errno EINVAL (@size 0, or not a chat) or EBADF.
 */
ASYNCORE_API int asyncore_chat_set_in_buffer_size(asyncore_dispatcher *d,
                                                  size_t size);
ASYNCORE_API int asyncore_chat_set_out_buffer_size(asyncore_dispatcher *d,
                                                   size_t size);

/* ---- the class's hooks, for overrides that call their parent ------------
 * Each does nothing (returns 0) for a NULL, closed or non-chat dispatcher. */

/** Read once (at most ac_in_buffer_size bytes) and cut the input. */
ASYNCORE_API void asyncore_chat_handle_read(asyncore_dispatcher *d);
/** asyncore_chat_initiate_send(). */
ASYNCORE_API void asyncore_chat_handle_write(asyncore_dispatcher *d);
/** Close the channel and release what is queued. */
ASYNCORE_API void asyncore_chat_handle_close(asyncore_dispatcher *d);
/** True, as asynchat's, unless reading is paused (chat_flow.h). */
ASYNCORE_API int asyncore_chat_readable(asyncore_dispatcher *d);
/** Something queued, or not connected yet. */
ASYNCORE_API int asyncore_chat_writable(asyncore_dispatcher *d);

/**
 * asynchat's find_prefix_at_end(): the length of the longest proper prefix
 * of @needle (shorter than @nlen) that ends @haystack; 0 if none.  Assumes
 * @needle does not occur whole at the end.  NULL with a zero length is
 * allowed.  Pure, safe anywhere.
 */
ASYNCORE_API size_t asyncore_find_prefix_at_end(const void *haystack,
                                                size_t hlen,
                                                const void *needle,
                                                size_t nlen);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_CHAT_H */
