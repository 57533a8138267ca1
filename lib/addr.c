/*
 * addr.c -- bind and connect by host string and port.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "asyncore-internal.h"

typedef int (*addr_op)(asyncore_dispatcher *, const struct sockaddr *,
                       socklen_t);

static int unix_op(asyncore_dispatcher *d, const char *path, addr_op op)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(un.sun_path)) {
        errno = n == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memcpy(un.sun_path, path, n);
    return op(d, (struct sockaddr *)&un,
              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1));
}

/*
 * Try each address getaddrinfo() gives, in its order, until one works.
 * Without a socket yet, one of each address's family is created for the
 * attempt; a failed attempt's socket is dropped so the next family can be
 * tried.
 */
static int host_op(asyncore_dispatcher *d, const char *host, unsigned port,
                   addr_op op, int passive)
{
    struct addrinfo hints = { 0 }, *res, *ai;
    char service[8];
    int rc, err = EHOSTUNREACH;

    if (asyncore__check(d) < 0)
        return -1;
    if (host == NULL || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    if (d->fd < 0 && host[0] == '/' &&
        asyncore_create_socket(d, AF_UNIX, SOCK_STREAM) < 0)
        return -1;
    if (d->fd >= 0 && d->family == AF_UNIX)
        return unix_op(d, host, op);
    if (host[0] == '\0')
        host = NULL; /* "" is every local address, as in asyncore's bind */
    hints.ai_family = d->fd >= 0 ? d->family : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    rc = -1;
    for (ai = res; ai != NULL && rc < 0; ai = ai->ai_next) {
        int created = 0;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (d->fd < 0) {
            if (asyncore_create_socket(d, ai->ai_family, SOCK_STREAM) < 0) {
                err = errno;
                continue;
            }
            created = 1;
        }
        rc = op(d, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0) {
            err = errno;
            if (created && !d->closed && ai->ai_next != NULL)
                asyncore__drop_socket(d);
        }
        if (d->closed)
            break;
    }
    freeaddrinfo(res);
    if (rc < 0)
        errno = err;
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
