/*
 * pkgconfig_prog.c -- a program built out of tree against an *installed*
 * libasyncore with nothing but `pkg-config --cflags --libs asyncore`.
 *
 * It proves the installed headers, library and .pc work together: it
 * prints the header and library versions and the file the library was
 * loaded from (so the caller can check it is the installed one, not the
 * build tree's), then sends "ping" from one end of a socketpair to the
 * other through two dispatchers and back.  Exit status 0 only if the
 * versions agree and the round trip completed.
 */
#define _GNU_SOURCE
#include <asyncore.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char reply[16];
static size_t reply_len;
static int sent;

/* The pinger sends once it can, then waits for the echo. */
static void ping_write(asyncore_dispatcher *d)
{
    if (!sent && asyncore_send(d, "ping", 4) == 4)
        sent = 1;
}

static int ping_writable(asyncore_dispatcher *d)
{
    (void)d;
    return !sent;
}

static void ping_read(asyncore_dispatcher *d)
{
    ssize_t n = asyncore_recv(d, reply + reply_len,
                              sizeof(reply) - 1 - reply_len);
    if (n > 0)
        reply_len += (size_t)n;
    if (reply_len >= 4)
        asyncore_close_all(asyncore_dispatcher_map(d));
}

/* The echoer sends back what it reads; its output queue does the rest. */
static void echo_read(asyncore_dispatcher *d)
{
    char buf[64];
    ssize_t n = asyncore_recv(d, buf, sizeof(buf));

    if (n > 0)
        asyncore_send(d, buf, (size_t)n);
}

static const asyncore_handlers ping_handlers = {
    .handle_read = ping_read,
    .handle_write = ping_write,
    .writable = ping_writable,
};
static const asyncore_handlers echo_handlers = { .handle_read = echo_read };

static int round_trip(void)
{
    asyncore_map *map = asyncore_map_new(NULL);
    asyncore_dispatcher *a, *b;
    int sv[2], rc;

    if (map == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    a = asyncore_dispatcher_new(map, &ping_handlers, NULL);
    b = asyncore_dispatcher_with_send_new(map, &echo_handlers, NULL);
    if (a == NULL || b == NULL || asyncore_set_socket(a, sv[0]) < 0 ||
        asyncore_set_socket(b, sv[1]) < 0) {
        perror("set up");
        return -1;
    }
    /* Bounded: 100 iterations of at most 0.1 s each. */
    rc = asyncore_loop(map, 0.1, 100);
    asyncore_map_free(map);
    return rc == 0 && reply_len == 4 && memcmp(reply, "ping", 4) == 0 ? 0 : -1;
}

int main(void)
{
    Dl_info info;
    const char *where = "?";

    /* The string lives in the library's own data: a function pointer
     * could be the executable's PLT entry instead. */
    if (dladdr(asyncore_version(), &info) != 0 && info.dli_fname)
        where = info.dli_fname;
    printf("header %s library %s\n", ASYNCORE_VERSION_STRING,
           asyncore_version());
    printf("loaded from %s\n", where);
    if (strcmp(asyncore_version(), ASYNCORE_VERSION_STRING) != 0 ||
        asyncore_version_number() != ASYNCORE_VERSION_NUMBER) {
        fprintf(stderr, "version mismatch\n");
        return 1;
    }
    if (round_trip() < 0) {
        fprintf(stderr, "round trip failed (reply \"%.*s\")\n",
                (int)reply_len, reply);
        return 1;
    }
    printf("round trip ok\n");
    return 0;
}
