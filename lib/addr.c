/*
 * addr.c -- bind and connect by host string and port.  Binding and numeric
 * hosts are resolved here with getaddrinfo(); connecting to a name is
 * resolve.c's, which does not block.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "ext.h"

typedef int (*addr_op)(asyncore_dispatcher *, const struct sockaddr *,
                       socklen_t);

/* Attempt @op on one address, creating a socket of its family if there is
 * none; a socket created for a failed attempt is dropped again so that the
 * next family can be tried and a total failure leaves no socket behind. */
static int try_addr(asyncore_dispatcher *d, const struct sockaddr *sa,
                    socklen_t len, addr_op op)
{
    int created = 0, err;

    if (d->fd < 0) {
        if (asyncore_create_socket(d, sa->sa_family, SOCK_STREAM) < 0)
            return -1;
        created = 1;
    }
    if (op(d, sa, len) == 0)
        return 0;
    err = errno;
    if (created && !d->closed && d->fd >= 0)
        asyncore__drop_socket(d);
    errno = err;
    return -1;
}

static int unix_op(asyncore_dispatcher *d, const char *path, addr_op op)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(un.sun_path)) {
        errno = n == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memcpy(un.sun_path, path, n);
    return try_addr(d, (struct sockaddr *)&un,
                    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1),
                    op);
}

/*
 * getaddrinfo()'s errors as errno values, by the rule resolve.h states for
 * every host string: a host that does not exist is EHOSTUNREACH; one that
 * has no address the dispatcher can use (a numeric address of the other
 * family than its socket's, a name with none of IPv4 or IPv6) is
 * EADDRNOTAVAIL; no answer in time is ETIMEDOUT -- as resolve.c maps
 * evdns's answers.
 */
static int gai_errno(int rc)
{
    switch (rc) {
    case EAI_SYSTEM:
        return errno;
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAMILY:
        return EADDRNOTAVAIL;
    case EAI_AGAIN:
    case EAI_FAIL:
        return ETIMEDOUT;
    case EAI_MEMORY:
        return ENOMEM;
    default:
        return EHOSTUNREACH; /* EAI_NONAME: no such host */
    }
}

/* Try each address getaddrinfo() gives, in its order, until one works. */
static int inet_op(asyncore_dispatcher *d, const char *host, unsigned port,
                   addr_op op, int passive)
{
    struct addrinfo hints = { 0 }, *res, *ai;
    char service[8];
    int rc, err = EADDRNOTAVAIL; /* if none is IPv4 or IPv6 */

    if (host[0] == '\0')
        host = NULL; /* "" is every local address, as in asyncore's bind */
    hints.ai_family = d->fd >= 0 ? d->family : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        errno = gai_errno(rc);
        return -1;
    }
    rc = -1;
    for (ai = res; ai != NULL && rc < 0 && !d->closed; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        rc = try_addr(d, ai->ai_addr, ai->ai_addrlen, op);
        if (rc < 0)
            err = errno;
    }
    freeaddrinfo(res);
    if (rc < 0)
        errno = err;
    return rc;
}

/*
 * A hook run by the attempt (handle_connect of an immediate connect) may
 * close the dispatcher: hold it so that it outlives our own bookkeeping.
 */
static int host_op(asyncore_dispatcher *d, const char *host, unsigned port,
                   addr_op op, int passive)
{
    int rc;

    if (asyncore__check(d) < 0)
        return -1;
    if (host == NULL || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    asyncore__hold(d);
    if (d->fd >= 0 ? d->family == AF_UNIX : host[0] == '/')
        rc = unix_op(d, host, op);
    else if (!passive && asyncore__resolve_is_name(host))
        rc = asyncore__resolve_connect(d, host, port); /* resolve.c: evdns */
    else
        rc = inet_op(d, host, port, op, passive);
    {
        int err = errno;
        asyncore__release(d);
        errno = err;
    }
    return rc;
}

int asyncore_bind_host(asyncore_dispatcher *d, const char *host, unsigned port)
{
    return host_op(d, host, port, asyncore_bind, 1);
}

int asyncore_connect_host(asyncore_dispatcher *d, const char *host,
                          unsigned port)
{
    return host_op(d, host, port, asyncore_connect, 0);
}
