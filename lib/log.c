/*
 * log.c -- asyncore's log_info() through a replaceable sink, and repr().
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "asyncore-internal.h"

const char *asyncore_log_type_name(asyncore_log_type type)
{
    switch (type) {
    case ASYNCORE_LOG_INFO:
        return "info";
    case ASYNCORE_LOG_WARNING:
        return "warning";
    case ASYNCORE_LOG_ERROR:
        return "error";
    }
    return "unknown";
}

static void log_stderr(const asyncore_dispatcher *d, asyncore_log_type type,
                       const char *msg, void *arg)
{
    (void)d;
    (void)arg;
    fprintf(stderr, "%s: %s\n", asyncore_log_type_name(type), msg);
}

void asyncore__log(const asyncore_dispatcher *d, asyncore_log_type type,
                   const char *msg)
{
    asyncore_map *map = d != NULL ? d->map : asyncore_map_default();

    if (map != NULL && map->log_fn != NULL)
        map->log_fn(d, type, msg, map->log_arg);
    else
        log_stderr(d, type, msg, NULL);
}

void asyncore_log_info(const asyncore_dispatcher *d, asyncore_log_type type,
                       const char *fmt, ...)
{
    unsigned ignored;
    char msg[512];
    va_list ap;

    if (fmt == NULL)
        return;
    if (d != NULL) {
        ignored = d->ignore_log;
    } else {
        asyncore_map *map = asyncore_map_default();
        ignored = map != NULL ? map->ignore_log : ASYNCORE_LOG_WARNING;
    }
    if (ignored & (unsigned)type)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    asyncore__log(d, type, msg);
}

/* "host:port" for inet addresses, the path for AF_UNIX, else "?". */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *buf,
                        size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6 &&
               len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX && len > sizeof(sa_family_t)) {
        const struct sockaddr_un *un = (const void *)sa;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        snprintf(buf, size, "%.*s", (int)n, un->sun_path);
    } else {
        snprintf(buf, size, "?");
    }
}

int asyncore_dispatcher_repr(asyncore_dispatcher *d, char *buf, size_t size)
{
    char addr[INET6_ADDRSTRLEN + 120] = "";
    const char *state = "";

    if (d == NULL || (buf == NULL && size > 0)) {
        errno = EINVAL;
        return -1;
    }
    if (d->accepting)
        state = " listening";
    else if (d->connected)
        state = " connected";
    else if (d->connecting)
        state = " connecting";
    else if (d->closed)
        state = " closed";
    if (d->addrlen != 0) {
        addr[0] = ' ';
        format_addr(asyncore__addr(d), d->addrlen, addr + 1, sizeof(addr) - 1);
    }
    return snprintf(buf, size, "<dispatcher%s%s fd=%d at %p>", state, addr,
                    d->fd, (void *)d);
}
