/*
 * asyncore/resolve.h -- connecting by host name without blocking the loop.
 *
 * Python's dispatcher.connect() calls getaddrinfo(), which stops the whole
 * loop for as long as the name servers take.  asyncore_connect_host()
 * instead asks libevent's asynchronous resolver (evdns_getaddrinfo()) on
 * the map's event_base and lets the loop run while it waits.
 *
 * WHAT HAPPENS AT ONCE
 *   A numeric host (IPv4 or IPv6 literal), "" and an AF_UNIX path connect
 *   synchronously, exactly as asyncore_connect() does: handle_connect may
 *   run before asyncore_connect_host() returns, and a failure at once is
 *   -1 with errno and no hook.  So does a name the resolver can answer
 *   without a query (an entry of its hosts file).  A name under ".invalid"
 *   fails at once with EHOSTUNREACH (RFC 6761 reserves it: it never
 *   resolves), and so does any name on a dispatcher that is already
 *   connected, connecting or listening (EISCONN).
 *
 * WHILE THE NAME IS LOOKED UP
 *   asyncore_connect_host() returns 0 and the dispatcher is connecting
 *   (asyncore_dispatcher_connecting() is true).  It has no descriptor yet:
 *   asyncore_dispatcher_fd() is -1, and no hook runs for it.  A socket it
 *   already had (asyncore_create_socket(), options, a bind) is set aside,
 *   out of the loop, and used for the connection once the answer is there.
 *   Either way the dispatcher counts in asyncore_map_count(), so that
 *   asyncore_loop() keeps running.  Methods that would give it a socket
 *   (create_socket, set_socket, bind_host, connect_host) fail with EISCONN
 *   meanwhile.  asyncore_close() cancels the look-up: no hook of the
 *   dispatcher runs afterwards and the socket set aside is closed.
 *
 * THE ANSWER
 *   The addresses are tried in the resolver's order (libevent 2.1 gives a
 *   name's IPv4 addresses before its IPv6 ones), each through
 *   asyncore_connect() with a new SOCK_STREAM socket of its family.  When
 *   an attempt fails -- at once, or later as the connect's outcome
 *   (refused, unreachable, ...) -- its socket is closed, the failure is
 *   recorded in asyncore_dispatcher_last_error() and the next address is
 *   tried; the first connection that succeeds runs handle_connect, once.
 *   When every address failed, the last failure goes to
 *   handle_error(d, err, "connect").  A socket of the caller's is used for
 *   the addresses of its own family only, and after a failure that arrives
 *   later no other address is tried with it (a socket cannot portably
 *   connect again).
 *
 *   When the name cannot be resolved, handle_error(d, err, "resolve") runs
 *   with:
 *     EHOSTUNREACH   the name does not exist (NXDOMAIN): unknown host.  The
 *                    code asyncore_connect_host() always had for it, and a
 *                    connect's own EHOSTUNREACH comes with "connect".
 *     EADDRNOTAVAIL  the answer has no address of a usable family: neither
 *                    IPv4 nor IPv6, or not the family of the socket the
 *                    dispatcher already had.
 *     ETIMEDOUT      the resolver got no usable answer: no name server
 *                    answered in time (evdns's "timeout:" and "attempts:"
 *                    options), or they answered with a failure (SERVFAIL,
 *                    which evdns treats as a timeout, or REFUSED), or the
 *                    name exists but has no address record at all.
 *                    libevent 2.1's evdns_getaddrinfo() reports all of
 *                    these as the one error EVUTIL_EAI_FAIL.
 *     ENOMEM         out of memory.
 *
 * NO USABLE ADDRESS: ONE RULE
 *   Every call that takes a host string (asyncore_bind_host(),
 *   asyncore_connect_host(), numeric or name, at once or from the loop)
 *   reports the same condition with the same code:
 *     EHOSTUNREACH   the host does not exist;
 *     EADDRNOTAVAIL  it exists but gives no address the dispatcher can use:
 *                    a numeric address of the other family than the socket
 *                    the dispatcher already has ("::1" on an AF_INET
 *                    socket), or a name with no IPv4 or IPv6 address, or
 *                    none of that socket's family;
 *     ETIMEDOUT      no usable answer in time.
 *   At once these are -1 with errno and no hook; from a look-up,
 *   handle_error(d, err, "resolve").  EAFNOSUPPORT stays what it is for
 *   a struct sockaddr given to asyncore_bind() or asyncore_connect() whose
 *   family is not the socket's (the argument is wrong, as bind(2) and
 *   connect(2) say) and for asyncore_create_socket() with a family other
 *   than AF_INET, AF_INET6 and AF_UNIX.
 *
 * BINDING
 *   asyncore_bind_host() still uses getaddrinfo(3), which may block:
 *   binding is a start-up operation, done before the loop serves anyone.
 *
 * THE RESOLVER
 *   Each map has one evdns_base, on its event_base, created on first use
 *   from the system's configuration (/etc/resolv.conf, and /etc/hosts,
 *   which evdns reads with it).  Inactive, it watches nothing, so an idle
 *   map stays idle.  asyncore_map_set_dns() gives the map another one.
 *   asyncore_map_free() cancels the look-ups still in progress.  libevent
 *   completes a cancellation from its loop, so when there were some,
 *   asyncore_map_free() runs the event_base once without waiting
 *   (EVLOOP_NONBLOCK) before it frees the resolver: on a caller's
 *   event_base, callbacks of the caller's events that are ready at that
 *   moment run then.  Called from inside a callback of that event_base
 *   (where libevent refuses to loop again), it leaves the resolver
 *   allocated instead of freeing memory that libevent is still to use.
 *
 * BUILT WITHOUT IT
 *   A library configured --disable-resolve has this API but no evdns:
 *   asyncore_connect_host() with a name (anything but a numeric host, ""
 *   or an AF_UNIX path, which connect as above) fails with -1 and errno
 *   ENOTSUP, after the checks that fail at once (EISCONN; EHOSTUNREACH for
 *   ".invalid"); asyncore_map_dns() returns NULL and
 *   asyncore_map_set_dns() -1, both with ENOTSUP.
 */
#ifndef ASYNCORE_RESOLVE_H
#define ASYNCORE_RESOLVE_H

#include <asyncore/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evdns_base;

/**
 * The map's resolver (NULL: the default map), created on first use on the
 * map's event_base from /etc/resolv.conf and /etc/hosts.  The map owns
 * it; change its options (evdns_base_set_option(), for instance
 * "timeout:"), name servers or hosts file through this pointer, but never
 * free it.  Returns NULL with errno ENOMEM (or EINVAL: no default map).
 * Safe inside hooks.
 */
ASYNCORE_API struct evdns_base *asyncore_map_dns(asyncore_map *map);

/**
 * Make @dns, an evdns_base created on the map's event_base, the map's
 * resolver for the look-ups started from now on (NULL: go back to one made
 * from the system's configuration on first use).  The map takes @dns over
 * and frees it in asyncore_map_free() or when it is replaced: it must be
 * freed before the event_base it lives on, which may be the map's own, and
 * only the map knows when its look-ups are over.  The resolver it replaces
 * is freed now.  Returns 0, or -1 with errno EBUSY (look-ups of the map
 * are in progress, or their cancellation has not completed yet -- it does
 * in the next loop iteration -- or the map's loop is running: call it
 * before asyncore_loop(); @dns then stays the caller's) or EINVAL (no
 * default map).
 */
ASYNCORE_API int asyncore_map_set_dns(asyncore_map *map, struct evdns_base *dns);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_RESOLVE_H */
