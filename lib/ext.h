/*
 * ext.h -- the extensions: their slots, in the order the core calls them,
 * and the little they share with other files.  Each extension's internals
 * are static in its own file.  Not installed.
 *
 *   transports (struct asyncore__transport_ops, core.h):
 *     file.c     a file dispatcher's descriptor: read/write
 *     tls.c      TLS over the socket (OpenSSL)
 *   watchers (struct asyncore__watcher_ops, core.h): the slots below.
 */
#ifndef ASYNCORE_EXT_H
#define ASYNCORE_EXT_H

#include "asyncore-internal.h"

/* THE WATCHERS' ORDER: a connect's end reaches the timeouts first (the
 * attempt's clock stops even when the look-up goes on to the next
 * address), then the connect by name (which may take the outcome over),
 * then the accept back-off (listeners only). */
enum asyncore__watch_slot {
    ASYNCORE__WATCH_TIMEOUTS = 0, /* timeout.c: connect and idle timeouts */
    ASYNCORE__WATCH_RESOLVE = 1,  /* resolve.c: a connect by host name */
    ASYNCORE__WATCH_BACKOFF = 2   /* defaults.c: the accept back-off */
};
_Static_assert(ASYNCORE__WATCH_BACKOFF < ASYNCORE__WATCH_SLOTS,
               "a watcher without a slot");

/* Per-map slots (struct asyncore_map's ext). */
enum asyncore__map_slot_id {
    ASYNCORE__MAP_RESOLVER = 0 /* resolve.c: the evdns_base, the look-ups */
};
_Static_assert(ASYNCORE__MAP_RESOLVER < ASYNCORE__MAP_SLOTS,
               "a map extension without a slot");

/* resolve.c: connect by host name through evdns, without blocking (addr.c
 * calls it for a name that is not numeric). */
int asyncore__resolve_is_name(const char *host);
int asyncore__resolve_connect(asyncore_dispatcher *d, const char *host,
                              unsigned port);

/*
 * A dispatcher class that buffers input or queues output of its own
 * (chat.c) registers how a transport switch (tls.c: starting or stopping
 * TLS on a live connection) reaches those buffers; neither file knows the
 * other's state.  @drop_input: input read before the switch is dropped, and
 * no further record of it is delivered (the class's record-cutting loop
 * stops).  @mark_output: put a mark behind the output queued now and return
 * 1, or return 0 if nothing is queued (no mark), or -1 (ENOMEM); when the
 * class's sending reaches the mark, or drops its queue with the mark in it,
 * it calls asyncore__output_drained().  Neither runs user code.
 */
struct asyncore__buffers_ops {
    const asyncore_handlers *defaults; /* the class's table: d->defaults */
    void (*drop_input)(asyncore_dispatcher *d);
    int (*mark_output)(asyncore_dispatcher *d);
};
void asyncore__buffers_register(const struct asyncore__buffers_ops *ops);
void asyncore__output_drained(asyncore_dispatcher *d);

#endif /* ASYNCORE_EXT_H */
