/*
 * asyncore/dispatcher.h -- dispatchers: asyncore.dispatcher in C.
 *
 * A dispatcher owns one socket (or, see file.h, one file descriptor) and one
 * libevent event.  When the event fires, the library maps it to asyncore's
 * events and calls the hooks of the dispatcher's handler table.
 *
 * SUBCLASSING
 *   Python subclasses asyncore.dispatcher and overrides methods.  In C you
 *   pass a const table of hooks; a NULL entry means "inherit".  A library
 *   that builds a class on top (dispatcher_with_send, async_chat, your own)
 *   passes a second table of defaults to asyncore_dispatcher_new_ex(): a
 *   hook is looked up in the handlers, then in the defaults, then asyncore's
 *   own default (asyncore_default_*) is used.  Overrides can call their
 *   parent explicitly, as Python's super() does.
 *
 * INTEREST
 *   readable() and writable() are asked when asyncore_loop() or
 *   asyncore_poll() is entered (every dispatcher of the map, once per call:
 *   O(dispatchers) per call, not per iteration), after every dispatch of
 *   the dispatcher, and by the methods that change state (create_socket,
 *   set_socket, connect, listen, send on a buffered dispatcher).  The event
 *   is re-armed only if the set changed, so a steady connection costs no
 *   epoll_ctl().  State set outside any hook between loop calls -- a
 *   buffer filled right after connect, before asyncore_loop() -- is
 *   therefore seen, as in asyncore.  What is not seen by itself is a change
 *   made while the loop runs by code that is no hook of this dispatcher
 *   (another dispatcher filled its buffer by hand, a timer, a callback of
 *   your own on the base): call asyncore_update_interest() then, or turn
 *   on asyncore_map_set_reevaluate() to ask every dispatcher before every
 *   iteration as asyncore did -- O(dispatchers) per iteration instead of
 *   O(active ones).
 *
 * LIFETIME
 *   1. A dispatcher belongs to its map from creation until asyncore_close().
 *   2. asyncore_close() deletes the event, closes the descriptor and removes
 *      the dispatcher from the map at once.
 *   3. The memory is released once the dispatcher is closed and no hook of it
 *      is running and nobody holds it (asyncore_dispatcher_hold()).  Just
 *      before, the destroy hook of the handlers runs, then that of the
 *      defaults: that is where user state may be freed.  Memory may be
 *      released only in the destroy hook or after it returned.
 *   4. Inside a hook the dispatcher stays valid even after it closed itself;
 *      once closed, no further hook runs for the readiness being dispatched
 *      (no handle_write after a handle_read that closed).
 *   5. Outside its own hooks, a closed dispatcher that nobody holds is freed
 *      by asyncore_close() itself: do not touch the pointer afterwards.
 *      Closing other dispatchers, creating new ones and asyncore_close_all()
 *      are all safe from inside any hook.
 *   6. The same holds for a method called outside the dispatcher's hooks
 *      (from main, a timer, another dispatcher's hook) whose failure runs a
 *      hook that closes: asyncore_send(), asyncore_recv() and
 *      asyncore_initiate_send() still return their result and errno, but
 *      the dispatcher may be gone when they return.  Hold it to inspect it
 *      afterwards.
 *   7. A held dispatcher may outlive its map.  asyncore_map_free() closes
 *      it and detaches it: asyncore_dispatcher_map() returns NULL, methods
 *      fail with EBADF (it is closed), the hook wrappers
 *      (asyncore_handle_close(), asyncore_handle_error()) do nothing,
 *      asyncore_log_info() writes to stderr (the map's log function went
 *      with the map), and the accessors, asyncore_dispatcher_repr(),
 *      asyncore_dispatcher_user_data()/_area() and the release keep
 *      working; the destroy hooks run at the last release, as always.
 *   8. asyncore_map_free() from inside any hook, predicate or destroy hook
 *      that a dispatch or a method of the map runs fails with EBUSY, also
 *      when the program runs the map's base itself (map.h).
 *
 * ERRORS
 *   Methods return -1 and set errno.  A method on a closed dispatcher fails
 *   with EBADF; one that needs a socket before asyncore_create_socket() or
 *   asyncore_set_socket() fails with ENOTSOCK.  I/O conditions met while
 *   dispatching go to hooks instead: lost connections to handle_close, other
 *   failures to handle_error (asyncore's uncaught exceptions).
 */
#ifndef ASYNCORE_DISPATCHER_H
#define ASYNCORE_DISPATCHER_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The hooks of a dispatcher, in asyncore's words.  Any entry may be NULL.
 * The table must outlive every dispatcher that uses it (make it static
 * const) and must not change while one does: which hooks are set is read
 * once, when the dispatcher is made.  Zero-initialise it (designated
 * initialisers) so that entries added in later versions are NULL.
 */
typedef struct asyncore_handlers {
    /** Data can be read (asyncore_recv()).  Default: warn "unhandled read event". */
    void (*handle_read)(asyncore_dispatcher *d);
    /** Data can be written.  Default: warn "unhandled write event". */
    void (*handle_write)(asyncore_dispatcher *d);
    /**
     * Urgent (out-of-band) data arrived.  Default: warn "unhandled incoming
     * priority event".  Urgent data is watched only for dispatchers whose
     * handlers or defaults set this hook (it costs a second registration).
     * When normal data arrived with it, handle_expt runs after handle_read
     * (and handle_write) of the same dispatch, as in asyncore, even if
     * handle_read read past the urgent mark.  Unlike asyncore, which calls
     * it on every pass while the byte is unread, it runs once per urgent
     * byte: when the byte arrives, and again only on a read dispatch that
     * finds it still unread.  Read it with recv(fd, &c, 1, MSG_OOB) here.
     * Costs one poll() per read dispatch of such a dispatcher.
     */
    void (*handle_expt)(asyncore_dispatcher *d);
    /** The connection was established; called once per connection. */
    void (*handle_connect)(asyncore_dispatcher *d);
    /**
     * A listening dispatcher can accept.  Default: asyncore_accept() one
     * connection and pass it to handle_accepted.  Where asyncore would
     * close the listener (handle_error), a lack of resources -- EMFILE,
     * ENFILE, ENOBUFS, ENOMEM -- only pauses it: the default stops watching
     * the listener for 100 ms (a timer on the map's base), then tries
     * again; clients wait in the backlog meanwhile, and the first failure of
     * each burst is logged at ASYNCORE_LOG_ERROR.  Other failures go to
     * handle_error(d, err, "accept").
     */
    void (*handle_accept)(asyncore_dispatcher *d);
    /**
     * A connection was accepted by the default handle_accept.  The hook owns
     * @fd (non-blocking, close-on-exec): adopt it with asyncore_set_socket()
     * or close it.  Default: close it and warn "unhandled accepted event".
     */
    void (*handle_accepted)(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *addr, socklen_t addrlen);
    /** The peer closed or the connection was lost.  Default: warn, close. */
    void (*handle_close)(asyncore_dispatcher *d);
    /**
     * An operation failed with @err (an errno value); @op names it
     * ("connect", "recv", "send", "accept", ...).  Default: log one line at
     * ASYNCORE_LOG_ERROR naming the dispatcher, @op, errno and its text,
     * then handle_close.
     */
    void (*handle_error)(asyncore_dispatcher *d, int err, const char *op);
    /** Interest in reading.  Default: true. */
    int (*readable)(asyncore_dispatcher *d);
    /**
     * Interest in writing.  Default: true -- as in asyncore, so a plain
     * dispatcher that keeps the default on a connected socket gets
     * handle_write on every pass and the loop never sleeps (a busy loop).
     * Return true only while there is something to send (for instance
     * "buffer not empty"), or use dispatcher_with_send (send.h), whose
     * writable() does.  Never asked of listeners.
     */
    int (*writable)(asyncore_dispatcher *d);
    /**
     * Runs exactly once, when the dispatcher is closed and released (see
     * LIFETIME).  Free user state here.  The dispatcher may be inspected
     * but no method may be called on it.
     */
    void (*destroy)(asyncore_dispatcher *d);
    /**
     * No read or write dispatch for the idle timeout (timer.h,
     * asyncore_set_idle_timeout()).  Default:
     * asyncore_default_handle_timeout() -- warn "idle timeout", then
     * handle_close.
     */
    void (*handle_timeout)(asyncore_dispatcher *d);
    /** Reserved for future hooks; must be NULL. */
    void (*reserved[5])(void);
} asyncore_handlers;

/**
 * Create a dispatcher on @map (NULL: the default map) with no socket yet.
 * @user_data is returned by asyncore_dispatcher_user_data().
 * Returns NULL with errno EINVAL (@handlers NULL) or ENOMEM.
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_dispatcher_new(asyncore_map *map, const asyncore_handlers *handlers,
                        void *user_data);

/**
 * Create a dispatcher of a derived class: hooks missing from @handlers are
 * taken from @defaults (may be NULL), then from asyncore.  @area_size bytes
 * of zeroed, maximally aligned memory are allocated with the dispatcher
 * (asyncore_dispatcher_area()): the C way to add fields to a subclass.
 * Returns NULL with errno EINVAL or ENOMEM.
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_dispatcher_new_ex(asyncore_map *map, const asyncore_handlers *handlers,
                           const asyncore_handlers *defaults, void *user_data,
                           size_t area_size);

/* ---- socket methods (asyncore.dispatcher's) ---------------------------- */

/**
 * Create a non-blocking, close-on-exec socket of @family (AF_INET,
 * AF_INET6, AF_UNIX) and @type (SOCK_STREAM, SOCK_DGRAM) and add it to the
 * map.  Errors: EISCONN (already has a socket), EAFNOSUPPORT, EMFILE (also
 * when the new descriptor is FD_SETSIZE or above and the map's event_base
 * uses libevent's select backend, which cannot watch it: see
 * asyncore_map_new()), and those of socket(2).
 */
ASYNCORE_API int asyncore_create_socket(asyncore_dispatcher *d, int family,
                                        int type);

/**
 * Adopt @fd, a socket (for instance from handle_accepted), as in
 * dispatcher(sock): it is made non-blocking and close-on-exec, and the
 * dispatcher counts as connected if the socket has a peer.  On success the
 * dispatcher owns @fd; on failure the caller still does.  Errors: EBADF
 * (not an open descriptor), ENOTSOCK (not a socket), EISCONN (the
 * dispatcher already has a socket), EMFILE (@fd is FD_SETSIZE or above and
 * the map uses libevent's select backend: see asyncore_map_new()).
 */
ASYNCORE_API int asyncore_set_socket(asyncore_dispatcher *d, int fd);

/**
 * Set SO_REUSEADDR.  Call it before asyncore_bind()/asyncore_bind_host():
 * the kernel looks at it when binding, so after the bind it has no effect.
 * Errors: ENOTSOCK, EBADF, those of setsockopt(2).
 */
ASYNCORE_API int asyncore_set_reuse_addr(asyncore_dispatcher *d);

/**
 * Set TCP_NODELAY (@on != 0) on a TCP socket, so that small writes are not
 * delayed by Nagle's algorithm.  Errors: ENOTSOCK, EBADF, EOPNOTSUPP (not
 * TCP).
 */
ASYNCORE_API int asyncore_set_nodelay(asyncore_dispatcher *d, int on);

/**
 * Bind to @addr.  Errors: EINVAL (@addr NULL or too short), EAFNOSUPPORT
 * (@addr's family is not the socket's), EADDRINUSE and those of bind(2).
 */
ASYNCORE_API int asyncore_bind(asyncore_dispatcher *d,
                               const struct sockaddr *addr, socklen_t len);

/**
 * Listen; the dispatcher becomes accepting.  The socket must be bound:
 * EDESTADDRREQ otherwise.  Other errors: those of listen(2).
 */
ASYNCORE_API int asyncore_listen(asyncore_dispatcher *d, int backlog);

/**
 * Start connecting to @addr.  If the connection completes at once,
 * handle_connect is called before this returns; if it fails at once, -1 is
 * returned with errno (ECONNREFUSED, ...) and no hook is called.  Otherwise
 * the dispatcher is connecting and returns 0; the outcome arrives as
 * handle_connect or as handle_error(d, err, "connect").  Errors also:
 * EINVAL, EAFNOSUPPORT, EISCONN (already connected or connecting).
 */
ASYNCORE_API int asyncore_connect(asyncore_dispatcher *d,
                                  const struct sockaddr *addr, socklen_t len);

/**
 * Convenience for asyncore_bind() and asyncore_connect(): @host is a
 * numeric address or a name, @port a TCP/UDP port.  If the dispatcher is
 * AF_UNIX, or has no socket yet and @host starts with '/', @host is a socket
 * path and @port is ignored.  With no socket yet, a SOCK_STREAM socket of
 * each address's family is created for the attempt; on failure none is left
 * behind.  asyncore_bind_host() looks names up with getaddrinfo(3), which
 * may block, and tries the addresses in its order; asyncore_connect_host()
 * looks them up without blocking the loop: see resolve.h for how it then
 * connects.  Errors: EINVAL (@host NULL or @port > 65535), EHOSTUNREACH (no
 * such host), EADDRNOTAVAIL (no address the dispatcher can use: for
 * instance a numeric address of the other family than its socket's),
 * ETIMEDOUT (bind_host: the name servers did not answer), ENAMETOOLONG
 * (path), and those of the underlying call.  The same rule holds for a
 * look-up's errors (resolve.h, "NO USABLE ADDRESS").  asyncore_bind() and
 * asyncore_connect() given a struct sockaddr of another family than the
 * socket's fail with EAFNOSUPPORT instead.
 */
ASYNCORE_API int asyncore_bind_host(asyncore_dispatcher *d, const char *host,
                                    unsigned port);
ASYNCORE_API int asyncore_connect_host(asyncore_dispatcher *d,
                                       const char *host, unsigned port);

/**
 * Accept one connection.  Returns the new descriptor (non-blocking,
 * close-on-exec; the caller owns it) and fills @addr/@addrlen when given.
 * "Nothing to accept" (EAGAIN, EWOULDBLOCK, ECONNABORTED, EINTR, and the
 * errors Linux reports for a connection that failed before it was accepted:
 * EPROTO, EPERM, ENETDOWN, ENETUNREACH, EHOSTDOWN, EHOSTUNREACH, ENONET,
 * ENOPROTOOPT, EOPNOTSUPP) returns -1 with errno EAGAIN.  Errors also:
 * EINVAL (not listening), EMFILE (also when the new descriptor is
 * FD_SETSIZE or above on a map over libevent's select backend: the
 * connection is then closed, and the default handle_accept backs off as
 * for any EMFILE), ENFILE, ENOBUFS, ENOMEM, ...
 */
ASYNCORE_API int asyncore_accept(asyncore_dispatcher *d, struct sockaddr *addr,
                                 socklen_t *addrlen);

/**
 * Send up to @len bytes.  Returns the number sent; 0 if the socket buffer
 * is full (EAGAIN); 0 after calling handle_close if the connection is lost
 * (ECONNRESET, ENOTCONN, ESHUTDOWN, ECONNABORTED, EPIPE, EBADF); -1 after
 * calling handle_error for any other failure.  Never raises SIGPIPE, on
 * sockets nor on file dispatchers over a pipe, and never changes the
 * process's signal dispositions (see file.h).  On a
 * buffered dispatcher (send.h) the data is queued instead: the return value
 * is then @len, or -1 with ENOMEM.
 */
ASYNCORE_API ssize_t asyncore_send(asyncore_dispatcher *d, const void *buf,
                                   size_t len);

/**
 * Receive up to @len bytes.  Returns the number received (> 0); 0 after
 * calling handle_close when the peer closed or the connection was lost;
 * -1 with errno EAGAIN when nothing is there; -1 after calling handle_error
 * for any other failure.
 */
ASYNCORE_API ssize_t asyncore_recv(asyncore_dispatcher *d, void *buf,
                                   size_t len);

/**
 * Close: delete the event, close the descriptor, leave the map -- at once.
 * See LIFETIME for when memory is released.  Returns 0, or -1 with errno
 * EBADF if the dispatcher was already closed (only possible while it is
 * still valid: inside its hooks or while held).
 */
ASYNCORE_API int asyncore_close(asyncore_dispatcher *d);

/**
 * Re-evaluate readable()/writable() now and re-arm the event if the set
 * changed.  Needed only when a predicate's answer changed while the loop
 * runs, outside this dispatcher's own hooks and methods (the loop asks
 * every dispatcher when it is entered).  Errors: EINVAL, EBADF.
 */
ASYNCORE_API int asyncore_update_interest(asyncore_dispatcher *d);

/* ---- calling hooks ------------------------------------------------------ */

/** Run the dispatcher's handle_close (as self.handle_close() would). */
ASYNCORE_API void asyncore_handle_close(asyncore_dispatcher *d);
/** Run the dispatcher's handle_error with @err and @op. */
ASYNCORE_API void asyncore_handle_error(asyncore_dispatcher *d, int err,
                                        const char *op);

/* asyncore's own defaults, for overrides that call their parent. */
ASYNCORE_API void asyncore_default_handle_read(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_write(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_expt(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_connect(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_accept(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_accepted(asyncore_dispatcher *d,
                                                   int fd,
                                                   const struct sockaddr *addr,
                                                   socklen_t addrlen);
ASYNCORE_API void asyncore_default_handle_close(asyncore_dispatcher *d);
ASYNCORE_API void asyncore_default_handle_error(asyncore_dispatcher *d,
                                                int err, const char *op);
ASYNCORE_API int asyncore_default_readable(asyncore_dispatcher *d);
/** Returns 1: on a connected socket that is a busy loop (see writable). */
ASYNCORE_API int asyncore_default_writable(asyncore_dispatcher *d);

/* ---- state and accessors ------------------------------------------------
 * Accessors accept NULL and closed dispatchers and then return 0, -1 or
 * NULL as stated.  They are safe anywhere, including inside hooks. */

/** True once connected (after handle_connect, or an adopted peer socket). */
ASYNCORE_API int asyncore_dispatcher_connected(const asyncore_dispatcher *d);
/** True while listening. */
ASYNCORE_API int asyncore_dispatcher_accepting(const asyncore_dispatcher *d);
/** True between a non-blocking connect and its outcome. */
ASYNCORE_API int asyncore_dispatcher_connecting(const asyncore_dispatcher *d);
/** True once closed (still valid only inside its hooks or while held). */
ASYNCORE_API int asyncore_dispatcher_closed(const asyncore_dispatcher *d);
/** The descriptor, or -1 (none yet, closed, NULL). */
ASYNCORE_API int asyncore_dispatcher_fd(const asyncore_dispatcher *d);
/** The socket's address family, or -1. */
ASYNCORE_API int asyncore_dispatcher_family(const asyncore_dispatcher *d);
/**
 * asyncore's addr: the address given to bind() or connect(), or for an
 * adopted socket its peer's.  Stores its length in @len (if not NULL).
 * Returns NULL if there is none.  The pointer is valid until the next
 * method call on @d.
 */
ASYNCORE_API const struct sockaddr *
asyncore_dispatcher_addr(asyncore_dispatcher *d, socklen_t *len);
/** The map the dispatcher was created on. */
ASYNCORE_API asyncore_map *asyncore_dispatcher_map(const asyncore_dispatcher *d);
/** The user pointer given at creation or by _set_user_data(). */
ASYNCORE_API void *asyncore_dispatcher_user_data(const asyncore_dispatcher *d);
/** Replace the user pointer.  Errors: EINVAL. */
ASYNCORE_API int asyncore_dispatcher_set_user_data(asyncore_dispatcher *d,
                                                   void *user_data);
/** The inline area of asyncore_dispatcher_new_ex(), or NULL if none. */
ASYNCORE_API void *asyncore_dispatcher_area(const asyncore_dispatcher *d);
/** The errno of the last failure recorded for a hook, or 0. */
ASYNCORE_API int asyncore_dispatcher_last_error(const asyncore_dispatcher *d);

/**
 * Write a one-line description ("<dispatcher connected 127.0.0.1:80 fd=7
 * at 0x...>", as asyncore's repr) into @buf.  Returns the length it needed,
 * as snprintf(3), or -1 with errno EINVAL.
 */
ASYNCORE_API int asyncore_dispatcher_repr(asyncore_dispatcher *d, char *buf,
                                          size_t size);

/**
 * Keep @d's memory valid after it is closed, until the matching
 * asyncore_dispatcher_release().  Returns 0, or -1 with EINVAL.
 */
ASYNCORE_API int asyncore_dispatcher_hold(asyncore_dispatcher *d);
/** Drop a hold; may run the destroy hooks and free @d.  A release without
 *  a hold of the program's does nothing. */
ASYNCORE_API void asyncore_dispatcher_release(asyncore_dispatcher *d);

/* ---- logging -------------------------------------------------------------*/

/**
 * asyncore's log_info(): send "@fmt ..." to the map's log sink unless
 * @type is in the dispatcher's ignored types (by default: warnings).
 * @d may be NULL (then the default map's settings apply).
 */
ASYNCORE_API void asyncore_log_info(const asyncore_dispatcher *d,
                                    asyncore_log_type type, const char *fmt,
                                    ...) ASYNCORE_PRINTF(3, 4);

/**
 * Set the log types this dispatcher ignores (a mask of asyncore_log_type;
 * 0 shows everything).  New dispatchers take their map's setting.
 * Errors: EINVAL.
 */
ASYNCORE_API int asyncore_dispatcher_set_ignore_log_types(asyncore_dispatcher *d,
                                                          unsigned mask);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_DISPATCHER_H */
