/*
 * resolve.c -- connect by host name without blocking the loop.
 *
 * A name goes to evdns_getaddrinfo() on the map's event_base.  While it is
 * looked up the dispatcher is connecting but watches no socket; the answer's
 * addresses are then tried one after the other through asyncore_connect(),
 * the next one whenever an attempt fails.  A watcher (core.h): the core
 * hands it each connect's outcome while the dispatcher's slot holds one
 * (connect_done), and asyncore_close() cancels it (close).  See asyncore/resolve.h for the
 * rules.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>

#include "ext.h"

/* ---- names ------------------------------------------------------------------ */

/* Numeric hosts and "" (loopback) keep their synchronous path (addr.c). */
int asyncore__resolve_is_name(const char *host)
{
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST }, *res;

    if (host[0] == '\0')
        return 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 1;
    freeaddrinfo(res);
    return 0;
}

/* RFC 6761, 6.4: resolvers should answer names under "invalid." at once,
 * negatively, without asking a name server. */
static int is_invalid_name(const char *host)
{
    size_t n = strlen(host);
    static const char tld[] = "invalid";
    size_t t = sizeof(tld) - 1;

    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n < t || strncasecmp(host + n - t, tld, t) != 0)
        return 0;
    return n == t || host[n - t - 1] == '.';
}

#if ASYNCORE_WITH_RESOLVE

#include <event2/dns.h>
#include <event2/util.h>

/*
 * One connect by name.  While evdns works on it (req != NULL) it is on its
 * map's list of look-ups, and evdns owns it: only lookup_cb() frees it.
 * Afterwards it lives on in d's watcher slot while an attempt at one of its
 * addresses is in progress, keeping the addresses left to try.
 */
struct asyncore__resolve {
    asyncore_dispatcher *d;     /* NULL once asyncore_close() cancelled */
    asyncore_map *map;          /* NULL once off the map's list */
    struct asyncore__resolve *next_lookup, **prev_lookup;
    struct evdns_getaddrinfo_request *req;
    struct evutil_addrinfo *res;  /* the answer, freed with us */
    struct evutil_addrinfo *next; /* the next address to try */
    struct event *retry;          /* runs the next attempt, see below */
    int answer;                   /* an answer given at once: EVUTIL_EAI_* */
    int set_aside;                /* the caller's socket during the look-up */
    unsigned in_call : 1;         /* evdns_getaddrinfo() is on the stack */
    unsigned counted : 1;         /* map->count holds the socket-less one */
    unsigned own_socket : 1;      /* this attempt's socket was made for it */
    unsigned retrying : 1;        /* the retry event is active */
};

static void lookup_cb(int result, struct evutil_addrinfo *res, void *arg);

static const struct asyncore__watcher_ops resolve_watcher;
static void resolve_close(asyncore_dispatcher *d);

/* d's connect by name in progress, or NULL. */
static struct asyncore__resolve *resolve_of(const asyncore_dispatcher *d)
{
    return asyncore__watch_state(d, ASYNCORE__WATCH_RESOLVE);
}

/* Make @r d's (the slot exists: asyncore__resolve_connect made the block),
 * or d's no longer. */
static void resolve_set(asyncore_dispatcher *d, struct asyncore__resolve *r)
{
    if (r != NULL)
        (void)asyncore__watch_set(d, ASYNCORE__WATCH_RESOLVE, &resolve_watcher, r);
    else
        asyncore__watch_clear(d, ASYNCORE__WATCH_RESOLVE);
}

/* A map's resolver (the map's slot): NULL until first used. */
struct resolver {
    struct evdns_base *dns;
    /* The look-ups evdns has not reported back yet, cancelled ones too. */
    struct asyncore__resolve *lookups;
};

static void resolver_map_free(asyncore_map *map);

static struct resolver *resolver_of(const asyncore_map *map)
{
    return map->ext[ASYNCORE__MAP_RESOLVER].state;
}

/* The map's resolver, made on first use; NULL with ENOMEM. */
static struct resolver *resolver_get(asyncore_map *map)
{
    struct resolver *rs = resolver_of(map);

    if (rs == NULL) {
        if ((rs = calloc(1, sizeof(*rs))) == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        map->ext[ASYNCORE__MAP_RESOLVER].state = rs;
        map->ext[ASYNCORE__MAP_RESOLVER].free = resolver_map_free;
    }
    return rs;
}

/* ---- the map's resolver --------------------------------------------------- */

/*
 * EVDNS_BASE_DISABLE_WHEN_INACTIVE keeps an idle resolver from holding the
 * event_base busy.  libevent 2.1.12 ignores that flag for the name servers
 * that EVDNS_BASE_INITIALIZE_NAMESERVERS adds (it is applied after them), so
 * the system's configuration is parsed as a second step.  DNS_OPTIONS_ALL
 * includes DNS_OPTION_HOSTSFILE: /etc/hosts is read there too.
 */
static struct evdns_base *system_dns(struct event_base *base)
{
    struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);

    if (dns == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* 1 (no resolv.conf) still leaves evdns's default, 127.0.0.1. */
    if (evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf") > 1) {
        evdns_base_free(dns, 0);
        errno = ENOMEM;
        return NULL;
    }
    return dns;
}

struct evdns_base *asyncore_map_dns(asyncore_map *map)
{
    struct resolver *rs;

    map = asyncore__map_get(map);
    if (map == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((rs = resolver_get(map)) == NULL)
        return NULL;
    if (rs->dns == NULL)
        rs->dns = system_dns(map->base);
    return rs->dns;
}

int asyncore_map_set_dns(asyncore_map *map, struct evdns_base *dns)
{
    struct resolver *rs;

    map = asyncore__map_get(map);
    if (map == NULL) {
        errno = EINVAL;
        return -1;
    }
    rs = resolver_of(map);
    /* evdns still holds our look-ups, and a hook may be inside one. */
    if ((rs != NULL && rs->lookups != NULL) || map->running) {
        errno = EBUSY;
        return -1;
    }
    if (rs == NULL && dns == NULL)
        return 0;
    if (rs == NULL && (rs = resolver_get(map)) == NULL)
        return -1;
    if (rs->dns != NULL && rs->dns != dns)
        evdns_base_free(rs->dns, 0);
    rs->dns = dns;
    return 0;
}

/* On the map's list (its resolver exists: the look-up used its evdns). */
static void link_lookup(asyncore_map *map, struct asyncore__resolve *r)
{
    struct resolver *rs = resolver_of(map);

    r->map = map;
    r->next_lookup = rs->lookups;
    if (rs->lookups != NULL)
        rs->lookups->prev_lookup = &r->next_lookup;
    r->prev_lookup = &rs->lookups;
    rs->lookups = r;
}

static void unlink_lookup(struct asyncore__resolve *r)
{
    if (r->map == NULL)
        return;
    *r->prev_lookup = r->next_lookup;
    if (r->next_lookup != NULL)
        r->next_lookup->prev_lookup = r->prev_lookup;
    r->map = NULL;
}

/*
 * asyncore_close_all() cancelled every look-up; evdns reports each
 * cancellation from a deferred callback, so the loop has to run before the
 * resolver (and the event_base) can go.
 */
static void resolver_map_free(asyncore_map *map)
{
    struct resolver *rs = resolver_of(map);
    int i;

    map->ext[ASYNCORE__MAP_RESOLVER].state = NULL;
    for (i = 0; rs->lookups != NULL && i < 16; i++)
        if (event_base_loop(map->base, EVLOOP_NONBLOCK) < 0)
            break; /* called from inside the base's own loop */
    if (rs->lookups != NULL) {
        /* Their callbacks will run later and must not find the map; the
         * evdns_base stays allocated, as evdns reads it in those
         * callbacks. */
        while (rs->lookups != NULL)
            unlink_lookup(rs->lookups);
        free(rs);
        return;
    }
    if (rs->dns != NULL) {
        evdns_base_free(rs->dns, 0);
        /* Freeing cancels a name server probe in flight, reported from the
         * loop as well: let it finish before the base goes. */
        if (map->own_base)
            (void)event_base_loop(map->base, EVLOOP_NONBLOCK);
    }
    free(rs);
}

/* evdns_getaddrinfo()'s errors as errno values (see resolve.h). */
static int eai_errno(int eai)
{
    switch (eai) {
    case EVUTIL_EAI_NONAME:
        return EHOSTUNREACH;
    case EVUTIL_EAI_NODATA:
    case EVUTIL_EAI_ADDRFAMILY:
        return EADDRNOTAVAIL;
    case EVUTIL_EAI_FAIL:
    case EVUTIL_EAI_AGAIN:
        return ETIMEDOUT;
    case EVUTIL_EAI_MEMORY:
        return ENOMEM;
    default:
        return EINVAL;
    }
}

static void free_resolve(struct asyncore__resolve *r)
{
    if (r->retry != NULL)
        event_free(r->retry);
    if (r->res != NULL)
        evutil_freeaddrinfo(r->res);
    free(r);
}

/* ---- attempts ------------------------------------------------------------ */

/* An address we can connect to: IPv4 or IPv6, and of the caller's socket's
 * family if there is one. */
static int usable(const asyncore_dispatcher *d, const struct evutil_addrinfo *ai)
{
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
        return 0;
    return d->fd < 0 || d->family == ai->ai_family;
}

/* One asyncore_connect(), with a socket made for it if there is none; a
 * socket made for a failed attempt is dropped again. */
static int attempt(asyncore_dispatcher *d, struct asyncore__resolve *r,
                   const struct evutil_addrinfo *ai)
{
    int err;

    r->own_socket = d->fd < 0;
    if (r->own_socket &&
        asyncore_create_socket(d, ai->ai_family, SOCK_STREAM) < 0)
        return -1;
    if (asyncore_connect(d, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0)
        return 0;
    err = errno;
    if (r->own_socket && !d->closed && d->fd >= 0)
        asyncore__drop_socket(d);
    errno = err;
    return -1;
}

/*
 * Try the addresses from r->next on until an attempt starts.  Returns 0 when
 * one did (connected at once, or in progress: then r is in d's slot
 * until its outcome), -1 with errno when none could; *tried tells whether
 * any usable address was there.  r is d's or freed on return, never both.
 * No hook is called here but those of asyncore_connect() itself.
 */
static int try_addresses(asyncore_dispatcher *d, struct asyncore__resolve *r,
                         int *tried)
{
    struct evutil_addrinfo *ai;
    int err = EADDRNOTAVAIL;

    *tried = 0;
    while ((ai = r->next) != NULL && !d->closed) {
        r->next = ai->ai_next;
        if (!usable(d, ai))
            continue;
        *tried = 1;
        if (attempt(d, r, ai) == 0) {
            if (!d->closed && d->connecting && !d->connected) {
                r->d = d;
                resolve_set(d, r);
            } else
                free_resolve(r);
            return 0;
        }
        err = errno;
        d->last_error = err;
    }
    free_resolve(r);
    errno = d->closed ? EBADF : err;
    return -1;
}

/* Every address was tried, from a callback: the error path, as a connect's. */
static void attempts_failed(asyncore_dispatcher *d, int tried, int err)
{
    if (d->closed)
        return;
    d->last_error = err;
    asyncore_handle_error(d, err, tried ? "connect" : "resolve");
}

/*
 * The next attempt runs from an event of its own: the failure arrives in a
 * dispatch that may still report the old socket writable, and the hooks
 * around asyncore__connect_event() (timeouts, ...) should see one attempt
 * end before the next begins.
 */
static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct asyncore__resolve *r = arg;
    asyncore_dispatcher *d = r->d;
    int tried;

    (void)fd;
    (void)what;
    r->retrying = 0;
    asyncore__hold(d);
    resolve_set(d, NULL);
    if (d->fd >= 0)
        asyncore__drop_socket(d);
    if (try_addresses(d, r, &tried) < 0)
        attempts_failed(d, 1, tried ? errno : d->last_error);
    asyncore__release(d);
}

/* The watcher's connect_done, while d's slot holds a connect by name: 1
 * when the outcome is ours (the next address is tried), 0 to let it go on.
 * Only the socket's stage concerns it: once connected, it is gone. */
static int resolve_connect_done(asyncore_dispatcher *d, int err, int over)
{
    struct asyncore__resolve *r = resolve_of(d);

    (void)over;

    if (r->retrying)
        return 1; /* the failed attempt's readiness, reported again */
    if (err == 0 || r->next == NULL || !r->own_socket) {
        resolve_set(d, NULL); /* connected, or nothing else to try */
        free_resolve(r);
        return 0;
    }
    if (r->retry == NULL)
        r->retry = event_new(d->map->base, -1, 0, retry_cb, r);
    if (r->retry == NULL) {
        resolve_set(d, NULL);
        free_resolve(r);
        return 0;
    }
    d->last_error = err;
    r->retrying = 1;
    event_active(r->retry, EV_TIMEOUT, 1);
    return 1;
}

/* ---- the look-up ------------------------------------------------------------ */

/* While looking up, the dispatcher watches nothing but stays counted. */
static void wait_for_answer(asyncore_dispatcher *d, struct asyncore__resolve *r)
{
    r->d = d;
    link_lookup(d->map, r);
    r->set_aside = -1;
    if (d->fd >= 0) {
        /* An unconnected socket polls writable: out of the loop with it. */
        asyncore__interest_disarm(d);
        r->set_aside = d->fd;
        d->fd = -1;
    } else {
        d->map->count++;
        r->counted = 1;
    }
    d->connecting = 1;
    d->connect_done = 0;
    resolve_set(d, r);
    asyncore__hold_ext(d); /* the look-up's, until lookup_cb or close */
}

/* The answer is in: back to a plain dispatcher that asyncore_connect()
 * accepts. */
static void end_wait(asyncore_dispatcher *d, struct asyncore__resolve *r)
{
    resolve_set(d, NULL);
    d->connecting = 0;
    if (r->set_aside >= 0) {
        d->fd = r->set_aside;
        r->set_aside = -1;
    } else if (r->counted) {
        d->map->count--;
        r->counted = 0;
    }
}

static void lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct asyncore__resolve *r = arg;
    asyncore_dispatcher *d = r->d;
    int tried, err;

    if (r->in_call) { /* answered at once: asyncore__resolve_connect goes on */
        r->answer = result;
        r->res = res;
        return;
    }
    r->req = NULL;
    r->res = r->next = res;
    unlink_lookup(r);
    if (d == NULL) { /* cancelled by asyncore_close(): nobody to tell */
        free_resolve(r);
        return;
    }
    /* This frame's hold keeps d while hooks run, and takes over from the
     * look-up's, dropped now: from here on every long hold is the
     * program's, which asyncore_dispatcher_release() may drop. */
    asyncore__hold(d);
    asyncore__ext_hold_end(d);
    end_wait(d, r);
    if (result != 0) {
        free_resolve(r);
        attempts_failed(d, 0, eai_errno(result));
    } else if (try_addresses(d, r, &tried) < 0) {
        err = errno;
        attempts_failed(d, tried, err);
    }
    /* A socket of the caller's that is still unconnected rejoins the loop. */
    if (!d->closed && !d->connecting && !d->connected)
        asyncore__interest_update(d);
    asyncore__release(d);
}

/* The resolver answered before evdns_getaddrinfo() returned: the numeric
 * rules apply, -1 and errno without a hook. */
static int answered_at_once(asyncore_dispatcher *d, struct asyncore__resolve *r)
{
    int tried;

    if (r->answer != 0) {
        int err = eai_errno(r->answer);

        free_resolve(r);
        errno = err;
        return -1;
    }
    r->next = r->res;
    return try_addresses(d, r, &tried);
}

static const struct asyncore__watcher_ops resolve_watcher = {
    .name = "resolve",
    .connect_done = resolve_connect_done,
    .close = resolve_close,
};

int asyncore__resolve_connect(asyncore_dispatcher *d, const char *host,
                              unsigned port)
{
    struct evutil_addrinfo hints = { 0 };
    struct asyncore__resolve *r;
    struct evdns_base *dns;
    char service[8];

    if (resolve_of(d) != NULL || d->connecting || d->connected ||
        d->accepting) {
        errno = EISCONN;
        return -1;
    }
    if (is_invalid_name(host)) {
        errno = EHOSTUNREACH;
        return -1;
    }
    dns = asyncore_map_dns(d->map);
    if (dns == NULL || asyncore__ext(d) == NULL) /* d's watcher slot below */
        return -1;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    /* Both families: a caller's socket is matched against the answer, so
     * that "no address of its family" can be told from "no address". */
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(service, sizeof(service), "%u", port);
    r->set_aside = -1;
    r->in_call = 1;
    r->req = evdns_getaddrinfo(dns, host, service, &hints, lookup_cb, r);
    r->in_call = 0;
    if (r->req == NULL)
        return answered_at_once(d, r);
    wait_for_answer(d, r);
    return 0;
}

/*
 * asyncore_close() while d's slot holds a connect by name (the watcher's
 * close).  During the look-up, evdns
 * still owns r: it is cancelled (lookup_cb then runs with EVUTIL_EAI_CANCEL,
 * later, and finds no dispatcher).  During an attempt, the addresses left go.
 */
static void resolve_close(asyncore_dispatcher *d)
{
    struct asyncore__resolve *r = resolve_of(d);

    resolve_set(d, NULL);
    if (r->req == NULL) {
        free_resolve(r);
        return;
    }
    if (r->set_aside >= 0) {
        (void)close(r->set_aside); /* never watched while set aside */
        r->set_aside = -1;
        d->map->count--;
    } else if (r->counted) {
        d->map->count--;
        r->counted = 0;
    }
    r->d = NULL;
    evdns_getaddrinfo_cancel(r->req);
    asyncore__release_ext(d); /* the look-up's; asyncore_close holds too */
}

#else /* !ASYNCORE_WITH_RESOLVE */

/* Configured --disable-resolve: no evdns.  Numeric hosts keep their
 * synchronous path (addr.c); a name fails with ENOTSUP once the checks
 * every build makes have passed. */

struct evdns_base *asyncore_map_dns(asyncore_map *map)
{
    (void)map;
    errno = ENOTSUP;
    return NULL;
}

int asyncore_map_set_dns(asyncore_map *map, struct evdns_base *dns)
{
    (void)map;
    (void)dns;
    errno = ENOTSUP;
    return -1;
}

int asyncore__resolve_connect(asyncore_dispatcher *d, const char *host,
                              unsigned port)
{
    (void)port;
    if (d->connecting || d->connected || d->accepting) {
        errno = EISCONN;
        return -1;
    }
    errno = is_invalid_name(host) ? EHOSTUNREACH : ENOTSUP;
    return -1;
}

#endif /* ASYNCORE_WITH_RESOLVE */
