/*
 * fiu_accept4.c -- an LD_PRELOAD shim giving accept4() a libfiu failure
 * point, for test/fiu.sh.
 *
 * libfiu's POSIX preload library fails accept() but not accept4(), which
 * the library uses.  This shim fails accept4() under the same point name,
 * "posix/io/net/accept", with an error a healthy listener can get from the
 * kernel, chosen at random: a connection that went away (ECONNABORTED,
 * EPROTO, EPERM, ENETDOWN, EHOSTUNREACH ...), an interrupted call, or a
 * shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM).  Errors that mean a broken
 * listener (EBADF, EINVAL, ENOTSOCK) are left out: the server may rightly
 * give up on those.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FIU_ENABLE 1 /* without it, fiu.h turns fiu_fail() into 0 */
#include <fiu.h>

static const int errors[] = {
    EAGAIN, EINTR, ECONNABORTED, EPROTO, EPERM, ENETDOWN, EHOSTUNREACH,
    ENETUNREACH, EMFILE, ENFILE, ENOBUFS, ENOMEM,
};

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
    static accept4_fn real;

    if (fiu_fail("posix/io/net/accept")) {
        errno = errors[rand() % (int)(sizeof(errors) / sizeof(errors[0]))];
        return -1;
    }
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "accept4");
        memcpy(&real, &sym, sizeof(real));
    }
    return real(fd, addr, len, flags);
}
