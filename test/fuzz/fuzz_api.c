/*
 * fuzz_api.c -- a model-based fuzzer of the public API's lifetime contract.
 *
 * The fuzz input is a program.  Its bytes are read one at a time, as the
 * program runs, to choose what to do next; when they run out every choice
 * is "nothing", so each input ends.  The program makes a few maps (each
 * with a resolver pointed at a DNS responder on loopback), and on them
 * plain, dispatcher_with_send, async_chat and file dispatchers over
 * socketpairs, loopback TCP, UDP and pipes, listeners, timers, periodic
 * timers, connect and idle timeouts, producers, references with free hooks,
 * callbacks queued with asyncore_map_call_soon_threadsafe() (from a thread
 * too), and connects by name.  It runs the maps' loops, or their bases
 * itself, and from EVERY hook and callback the library calls -- the
 * handle_* hooks, readable/writable, collect_incoming_data,
 * found_terminator, destroy, timer callbacks and free hooks, producers'
 * more() and free hooks, reference free hooks, call_soon callbacks -- it
 * does more of the same to the dispatcher itself and to the others: close,
 * close_all, send, recv, push, discard_buffers, close_when_done,
 * set_terminator, pushf/pushv, set_max_record, cancel a timer (its own
 * too), a nested loop, map free, a release without a hold.
 *
 * Beside the library the program keeps a model of what it made, and checks
 * the contract against it (any violation prints what and aborts):
 *   - no hook of a dispatcher runs once it is closed (for the library or
 *     the model), nor after its destroy hook;
 *   - destroy runs exactly once per dispatcher, after its close, never
 *     while one of its hooks is on the stack, and for every dispatcher by
 *     the time its map is freed;
 *   - every timer's, producer's and reference's free hook runs exactly
 *     once, never while its callback runs; a cancelled timer never fires;
 *     a freed producer is never asked for more;
 *   - every call_soon callback that was queued runs exactly once, by the
 *     loop or by asyncore_map_free();
 *   - a method on a closed dispatcher fails with EBADF; a nested loop fails
 *     with EBUSY, and so does a map free wherever map.h says the map is in
 *     use (its loop, its dispatchers' hooks, its timer and call_soon
 *     callbacks, the hooks its free runs -- also under the program's own
 *     event_base_loop()), while one outside every callback succeeds;
 *   - a release without a hold neither closes nor frees; every other
 *     failing call sets an errno its header documents for it (an I/O
 *     failure only after handle_error got that errno);
 *   - the library never raises SIGPIPE;
 *   - every loop returns in bounded time; no descriptor is left open
 *     (/proc/self/fd) after the maps are freed, and LeakSanitizer finds no
 *     leak.
 *
 * When the program's own steps are done, the maps are freed; the hooks and
 * callbacks that run then (destroy and free hooks, queued callbacks) read the
 * input again from its start.  FUZZ_API_TRACE=1 in the environment prints
 * each hook and operation, to read a failing input: test/fuzz/run.sh
 * builds the harness, fuzz_api FILE replays one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>

#include <asyncore.h>

#define MAXM 3   /* maps */
#define MAXD 16  /* dispatchers */
#define MAXT 16  /* timers */
#define MAXP 24  /* producers */
#define MAXR 48  /* references */
#define MAXC 64  /* call_soon callbacks */
#define MAXF 16  /* raw descriptors: peers the program holds itself */
#define MAX_NEST 6
#define MAIN_STEPS 96

/* ---- reporting ---------------------------------------------------------- */

static void violation(const char *fmt, ...) ASYNCORE_PRINTF(1, 2);

static void violation(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_api: INVARIANT VIOLATED: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- the input ---------------------------------------------------------- */

static const uint8_t *in_p;
static size_t in_left;

static unsigned byte(void)
{
    if (in_left == 0)
        return 0;
    in_left--;
    return *in_p++;
}

static unsigned pick(unsigned n)
{
    return n ? byte() % n : 0;
}

/* ---- the model ---------------------------------------------------------- */

enum dkind { K_PLAIN, K_SEND, K_CHAT, K_FILE };

struct mslot {
    asyncore_map *m;
    int live;
    int loops;    /* asyncore_loop() of it on the stack */
    int bases;    /* the program's own event_base_loop() of it on the stack */
    int freeing;  /* asyncore_map_free() of it on the stack */
    int inuse;    /* its hooks and callbacks on the stack that map.h says
                   * make asyncore_map_free() of it fail with EBUSY */
    unsigned port; /* a listener's port on it, or 0 */
};

struct dslot {
    asyncore_dispatcher *d; /* NULL when unused or destroyed */
    int used;
    int kind;
    int map;
    int closed;     /* the model's view */
    int destroyed;
    int depth;      /* its hooks on the stack */
    int creating;   /* inside its constructor */
    unsigned err_at[160]; /* by errno: when handle_error last got it */
    int listener;
    int saved_map;  /* here_map before its innermost hook */
};

struct tslot {
    asyncore_timer *t;
    int used, map, periodic;
    int released, cancelled, in_cb;
};

struct pslot {
    int used, freed, left, fail;
};

struct rslot {
    int used, freed, chat;
};

struct cslot {
    int used, ran, map;
};

static struct mslot maps[MAXM];
static struct dslot ds[MAXD];
static struct tslot ts[MAXT];
static struct pslot ps[MAXP];
static struct rslot refs[MAXR];
static struct cslot cs[MAXC];
static int rawfd[MAXF];
static int trace;       /* FUZZ_API_TRACE set: print each operation */
static unsigned errors; /* handle_error calls so far */
static int nest;        /* hooks and callbacks on the stack */
static int restricted;  /* inside a destroy or free hook */
static int unsure;      /* callbacks on the stack for which map.h does not
                         * say whether the map counts as in use: producers'
                         * more() and free hooks, references' free hooks,
                         * timers' free hooks */

static const char payload[512] =
    "fuzz_api payload\r\n0123456789abcdef\r\n\r\nGET / HTTP/1.0\r\n";

static int op(int self);
static void ops(int self, int n);

/* ---- errno checks ------------------------------------------------------- */

static int in_set(int e, const int *set)
{
    for (; *set != 0; set++)
        if (*set == e)
            return 1;
    return 0;
}

#define SET(...) ((const int[]){ __VA_ARGS__, 0 })

/* What connect(2) and socket(2) may say, which asyncore_connect() and
 * asyncore_connect_host() pass on ("those of the underlying call"). */
#define CONNECT_ERRORS                                                       \
    EACCES, EPERM, EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EAGAIN, EALREADY, \
        EBADF, ECONNREFUSED, ECONNABORTED, ECONNRESET, EINPROGRESS, EINTR,   \
        EISCONN, ENETUNREACH, EHOSTUNREACH, ENOTSOCK, EPROTOTYPE, ETIMEDOUT,  \
        EMFILE, ENFILE, ENOBUFS, ENOMEM

static void check_errno(const char *call, int e, const int *set)
{
    if (!in_set(e, set))
        violation("%s failed with errno %d (%s), which its header does not "
                  "document", call, e, strerror(e));
}

/* A method on a dispatcher the model knew closed (@was) must fail with
 * EBADF. */
static void check_closed_fails(const char *call, int slot, int was, long rc,
                               int e)
{
    if (was && !(rc == -1 && e == EBADF))
        violation("%s on closed dispatcher %d returned %ld (errno %d), "
                  "not -1 with EBADF", call, slot, rc, e);
}

/* Did dispatcher @slot's handle_error get @e after the moment @since? */
static int error_hook_ran(int slot, int e, unsigned since)
{
    return e > 0 && e < 160 && ds[slot].err_at[e] > since;
}

/* A transfer's result on dispatcher @slot: a closed one fails with EBADF;
 * any other failure went to handle_error or is one of @quiet, which the
 * call reports without a hook. */
static void check_transfer(const char *call, int slot, int was, long rc,
                           int e, unsigned since, const int *quiet)
{
    check_closed_fails(call, slot, was, rc, e);
    if (rc < 0 && !error_hook_ran(slot, e, since) && !in_set(e, quiet))
        violation("%s on dispatcher %d (kind %d) failed with errno %d (%s) "
                  "without handle_error", call, slot, ds[slot].kind, e,
                  strerror(e));
}

/* ---- DNS responder (a thread of its own, on loopback) ------------------- */

static char ns_addr[64];
static struct event_base *dns_base;

static void dns_answer(struct evdns_server_request *req)
{
    int i, rcode = DNS_ERR_NONE;

    for (i = 0; i < req->nquestions; i++) {
        const struct evdns_server_question *q = req->questions[i];

        if (strcasecmp(q->name, "a.test") == 0 ||
            strcasecmp(q->name, "slow.test") == 0) {
            if (q->type == EVDNS_TYPE_A) {
                struct in_addr a;

                inet_pton(AF_INET, "127.0.0.1", &a);
                evdns_server_request_add_a_reply(req, q->name, 1, &a, 60);
            }
        } else if (strcasecmp(q->name, "silent.test") == 0) {
            evdns_server_request_drop(req);
            return;
        } else {
            rcode = DNS_ERR_NOTEXIST;
        }
    }
    evdns_server_request_respond(req, rcode);
}

static void dns_delayed(evutil_socket_t fd, short what, void *arg)
{
    struct evdns_server_request *req = arg;

    (void)fd;
    (void)what;
    dns_answer(req);
}

static void dns_cb(struct evdns_server_request *req, void *arg)
{
    int i;

    (void)arg;
    for (i = 0; i < req->nquestions; i++)
        if (strcasecmp(req->questions[i]->name, "slow.test") == 0) {
            struct timeval tv = { 0, 8000 };

            event_base_once(dns_base, -1, EV_TIMEOUT, dns_delayed, req, &tv);
            return;
        }
    dns_answer(req);
}

static void *dns_thread(void *arg)
{
    (void)arg;
    event_base_loop(dns_base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void dns_quiet(int is_warning, const char *msg)
{
    (void)is_warning;
    (void)msg;
}

static void dns_start(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    pthread_t th;
    int fd;

    evdns_set_log_fn(dns_quiet);
    dns_base = event_base_new();
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (dns_base == NULL || fd < 0)
        abort();
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        abort();
    snprintf(ns_addr, sizeof(ns_addr), "127.0.0.1:%u", ntohs(sin.sin_port));
    if (evdns_add_server_port_with_base(dns_base, fd, 0, dns_cb, NULL) == NULL)
        abort();
    if (pthread_create(&th, NULL, dns_thread, NULL) != 0)
        abort();
    pthread_detach(th);
}

/* ---- descriptors -------------------------------------------------------- */

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own */
}

/* Keep @fd, a peer end the program holds itself (non-blocking: the
 * program never waits for it). */
static void raw_keep(int fd)
{
    int i;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (i = 0; i < MAXF; i++)
        if (rawfd[i] < 0) {
            rawfd[i] = fd;
            return;
        }
    close(fd);
}

/* SIGPIPE: the library's sends never raise it (dispatcher.h); the
 * program's own writes to its raw peers may, and those are ignored. */
static volatile sig_atomic_t raw_writing;

static void on_sigpipe(int sig)
{
    static const char msg[] = "fuzz_api: INVARIANT VIOLATED: SIGPIPE raised "
                              "inside the library\n";

    (void)sig;
    if (raw_writing)
        return;
    (void)!write(2, msg, sizeof(msg) - 1);
    abort();
}

static void raw_op(void)
{
    int i = (int)pick(MAXF), fd = rawfd[i];

    if (fd < 0)
        return;
    switch (pick(4)) {
    case 0:
        raw_writing = 1;
        (void)!write(fd, payload, 1 + pick(sizeof(payload) - 1));
        raw_writing = 0;
        break;
    case 1:
        shutdown(fd, SHUT_WR);
        break;
    case 2: {
        char buf[4096];

        (void)!read(fd, buf, sizeof(buf));
        break;
    }
    default:
        close(fd);
        rawfd[i] = -1;
    }
}

/* ---- slots -------------------------------------------------------------- */

static int slot_of(asyncore_dispatcher *d)
{
    struct dslot *s = asyncore_dispatcher_user_data(d);

    if (s == NULL || s < ds || s >= ds + MAXD)
        violation("a hook got dispatcher %p with no slot", (void *)d);
    return (int)(s - ds);
}

static int free_dslot(void)
{
    int i;

    for (i = 0; i < MAXD; i++)
        if (!ds[i].used)
            return i;
    return -1;
}

/* A live dispatcher (its pointer valid) chosen by the input, or -1. */
static int target(int self)
{
    unsigned b = byte();
    int i;

    if (self >= 0 && b % 2 == 0 && ds[self].d != NULL)
        return self;
    i = (int)(b / 2 % MAXD);
    return ds[i].d != NULL ? i : -1;
}

/* The map of the hook or callback that runs, or -1: operations favour it. */
static int here_map = -1;

/* A map that is live and not being freed, chosen by the input, or -1. */
static int live_map(void)
{
    unsigned b = byte();
    int i = here_map >= 0 && b % 2 ? here_map : (int)(b / 2 % MAXM);

    return maps[i].live && !maps[i].freeing ? i : -1;
}

/* ---- hooks -------------------------------------------------------------- */

/* Every hook starts here: the checks that make "no hook after close". */
static int enter(asyncore_dispatcher *d, const char *hook)
{
    int i = slot_of(d);
    struct dslot *s = &ds[i];

    if (trace)
        fprintf(stderr, "fuzz_api: %*s%s of %d\n", nest * 2, "", hook, i);
    if (s->creating && s->d == NULL)
        s->d = d;
    if (s->destroyed || s->d != d)
        violation("%s ran on dispatcher %d after its destroy hook", hook, i);
    if (s->closed)
        violation("%s ran on dispatcher %d after it was closed", hook, i);
    if (asyncore_dispatcher_closed(d))
        violation("%s ran on dispatcher %d, which the library says is closed",
                  hook, i);
    s->depth++;
    maps[s->map].inuse++;
    s->saved_map = here_map;
    here_map = s->map;
    nest++;
    return i;
}

static void leave(int i)
{
    ds[i].depth--;
    maps[ds[i].map].inuse--;
    here_map = ds[i].saved_map;
    nest--;
}

/* The close a default hook (or the program) does: the model learns it. */
static void closes(int i, int how)
{
    asyncore_dispatcher *d = ds[i].d;
    int rc;

    switch (how) {
    case 0:
        if (ds[i].kind == K_CHAT)
            asyncore_chat_handle_close(d);
        else
            asyncore_default_handle_close(d);
        break;
    default:
        rc = asyncore_close(d);
        if (rc < 0)
            violation("asyncore_close() of open dispatcher %d: errno %d", i,
                      errno);
    }
    if (ds[i].d != NULL)
        ds[i].closed = 1;
}

static void h_read(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_read");
    char buf[1024];

    ops(i, (int)pick(3));
    if (!ds[i].closed && ds[i].d != NULL) {
        if (ds[i].kind == K_CHAT) {
            asyncore_chat_handle_read(d);
        } else if (pick(8) != 0) {
            unsigned since = errors;
            ssize_t n = asyncore_recv(d, buf, 1 + pick(sizeof(buf) - 1));
            int e = errno;

            if (n < 0 && e != EAGAIN && !error_hook_ran(i, e, since) &&
                !in_set(e, SET(EBADF, EINVAL, ENOTSOCK)))
                violation("recv failed with errno %d without handle_error", e);
        }
    }
    if (!ds[i].closed)
        ops(i, (int)pick(2));
    leave(i);
}

static void h_write(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_write");

    ops(i, (int)pick(3));
    if (!ds[i].closed) {
        if (ds[i].kind == K_CHAT)
            asyncore_chat_handle_write(d);
        else if (ds[i].kind == K_SEND)
            asyncore_with_send_handle_write(d);
        else if (pick(2))
            (void)asyncore_send(d, payload, 1 + pick(64));
    }
    leave(i);
}

static void h_connect(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_connect");

    ops(i, (int)pick(3));
    leave(i);
}

static void h_accept(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_accept");

    ops(i, (int)pick(2));
    if (!ds[i].closed)
        asyncore_default_handle_accept(d);
    leave(i);
}

static int make_dispatcher(int map, int kind, int fd);

static void h_accepted(asyncore_dispatcher *d, int fd,
                       const struct sockaddr *addr, socklen_t len)
{
    int i = enter(d, "handle_accepted");

    (void)addr;
    (void)len;
    if (pick(4) == 0 || make_dispatcher(ds[i].map, (int)pick(3), fd) < 0)
        close(fd);
    ops(i, (int)pick(2));
    leave(i);
}

static void h_close(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_close");

    ops(i, (int)pick(2));
    if (!ds[i].closed && pick(4) != 0)
        closes(i, (int)pick(2));
    leave(i);
}

static void h_error(asyncore_dispatcher *d, int err, const char *opname)
{
    int i = enter(d, "handle_error");

    if (trace)
        fprintf(stderr, "fuzz_api: %*s(errno %d, \"%s\")\n", nest * 2, "",
                err, opname ? opname : "NULL");
    if (err <= 0 || opname == NULL)
        violation("handle_error(%d, %s) on dispatcher %d", err,
                  opname ? opname : "NULL", i);
    if (err < 160)
        ds[i].err_at[err] = ++errors;
    ops(i, (int)pick(2));
    if (!ds[i].closed) {
        switch (pick(4)) {
        case 0:
            break;
        case 1:
            closes(i, 1);
            break;
        default:
            asyncore_default_handle_error(d, err, opname);
            if (ds[i].d != NULL && asyncore_dispatcher_closed(d))
                ds[i].closed = 1;
        }
    }
    leave(i);
}

static void h_timeout(asyncore_dispatcher *d)
{
    int i = enter(d, "handle_timeout");

    ops(i, (int)pick(2));
    if (!ds[i].closed && pick(2)) {
        asyncore_default_handle_timeout(d);
        if (ds[i].d != NULL && asyncore_dispatcher_closed(d))
            ds[i].closed = 1;
    }
    leave(i);
}

static int h_readable(asyncore_dispatcher *d)
{
    int i = enter(d, "readable"), r;

    if (pick(4) == 0)
        ops(i, 1);
    if (ds[i].closed)
        r = 0;
    else if (ds[i].kind == K_CHAT)
        r = pick(8) ? asyncore_chat_readable(d) : 0;
    else
        r = pick(8) != 0;
    leave(i);
    return r;
}

static int h_writable(asyncore_dispatcher *d)
{
    int i = enter(d, "writable"), r;

    if (pick(4) == 0)
        ops(i, 1);
    if (ds[i].closed)
        r = 0;
    else if (ds[i].kind == K_CHAT)
        r = asyncore_chat_writable(d);
    else if (ds[i].kind == K_SEND)
        r = asyncore_with_send_writable(d);
    else
        r = pick(4) == 0;
    leave(i);
    return r;
}

static void h_destroy(asyncore_dispatcher *d)
{
    int i = slot_of(d), saved;
    struct dslot *s = &ds[i];

    if (trace)
        fprintf(stderr, "fuzz_api: %*sdestroy of %d\n", nest * 2, "", i);
    if (s->destroyed)
        violation("destroy ran twice on dispatcher %d", i);
    if (!asyncore_dispatcher_closed(d))
        violation("destroy ran on dispatcher %d before it was closed", i);
    if (s->depth > 0)
        violation("destroy ran on dispatcher %d while %d of its hooks run", i,
                  s->depth);
    s->destroyed = 1;
    s->closed = 1;
    s->d = NULL;
    saved = here_map;
    here_map = s->map;
    nest++;
    restricted++;
    maps[s->map].inuse++;
    ops(i, (int)pick(3));
    maps[s->map].inuse--;
    restricted--;
    nest--;
    here_map = saved;
}

static void h_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    int i = enter(d, "collect_incoming_data");

    if (len == 0 || data == NULL)
        violation("collect_incoming_data with %zu bytes", len);
    ops(i, (int)pick(2));
    leave(i);
}

static void h_found(asyncore_dispatcher *d)
{
    int i = enter(d, "found_terminator"), r;

    r = asyncore_chat_record_truncated(d);
    if (r != 0 && r != 1)
        violation("asyncore_chat_record_truncated returned %d", r);

    ops(i, (int)pick(3));
    leave(i);
}

static const asyncore_handlers plain_handlers = {
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_connect = h_connect,
    .handle_accept = h_accept,
    .handle_accepted = h_accepted,
    .handle_close = h_close,
    .handle_error = h_error,
    .readable = h_readable,
    .writable = h_writable,
    .destroy = h_destroy,
    .handle_timeout = h_timeout,
};

static const asyncore_chat_handlers chat_handlers = {
    .dispatcher = {
        .handle_read = h_read,
        .handle_write = h_write,
        .handle_connect = h_connect,
        .handle_close = h_close,
        .handle_error = h_error,
        .readable = h_readable,
        .writable = h_writable,
        .destroy = h_destroy,
        .handle_timeout = h_timeout,
    },
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
};

/* ---- timers ------------------------------------------------------------- */

static void timer_cb(asyncore_timer *t, void *arg)
{
    struct tslot *s = arg;
    int saved;

    if (s->released || s->t != t)
        violation("timer %d fired after its release", (int)(s - ts));
    if (s->cancelled)
        violation("timer %d fired after it was cancelled", (int)(s - ts));
    if (s->in_cb)
        violation("timer %d fired inside its own callback", (int)(s - ts));
    s->in_cb = 1;
    saved = here_map;
    here_map = s->map;
    nest++;
    maps[s->map].inuse++;
    ops(-1, 1 + (int)pick(3));
    maps[s->map].inuse--;
    nest--;
    here_map = saved;
    s->in_cb = 0;
}

static void timer_free(void *arg)
{
    struct tslot *s = arg;
    int saved;

    if (s->released)
        violation("timer %d released twice", (int)(s - ts));
    if (s->in_cb)
        violation("timer %d released while its callback runs", (int)(s - ts));
    s->released = 1;
    s->t = NULL;
    saved = here_map;
    here_map = s->map;
    nest++;
    restricted++;
    unsure++;
    ops(-1, (int)pick(2));
    unsure--;
    restricted--;
    nest--;
    here_map = saved;
}

static void new_timer(int map, int periodic)
{
    double sec = pick(4) * 0.001;
    asyncore_timer *t;
    int i;

    for (i = 0; i < MAXT && ts[i].used; i++)
        ;
    if (i == MAXT)
        return;
    memset(&ts[i], 0, sizeof(ts[i]));
    if (periodic)
        t = asyncore_call_every(maps[map].m, sec + 0.001, timer_cb, &ts[i]);
    else
        t = asyncore_call_later(maps[map].m, sec, timer_cb, &ts[i]);
    if (t == NULL) {
        check_errno("asyncore_call_later", errno, SET(EINVAL, ENOMEM));
        return;
    }
    ts[i].used = 1;
    ts[i].t = t;
    ts[i].map = map;
    ts[i].periodic = periodic;
    if (asyncore_timer_set_free(t, timer_free) != 0)
        violation("asyncore_timer_set_free failed");
}

static void timer_op(void)
{
    struct tslot *s = &ts[pick(MAXT)];
    int rc;

    if (s->t == NULL || s->cancelled)
        return;
    if (pick(3) != 0) {
        s->cancelled = 1;
        if (asyncore_timer_cancel(s->t) != 0)
            violation("asyncore_timer_cancel returned non-zero");
        if (!s->in_cb && !s->released)
            violation("timer %d not released by its cancel", (int)(s - ts));
    } else {
        rc = asyncore_timer_rearm(s->t, 0.001 + pick(4) * 0.001);
        if (rc < 0)
            check_errno("asyncore_timer_rearm", errno, SET(EINVAL, ECANCELED));
    }
}

/* ---- producers and references ------------------------------------------- */

static ssize_t prod_more(void *arg, void *buf, size_t size)
{
    struct pslot *s = arg;
    size_t n;

    if (s->freed)
        violation("producer %d asked for more after its release",
                  (int)(s - ps));
    if (size == 0)
        violation("producer %d asked for 0 bytes", (int)(s - ps));
    nest++;
    unsure++;
    ops(-1, (int)pick(2));
    unsure--;
    nest--;
    if (s->fail) {
        errno = EIO;
        return -1;
    }
    if (s->left == 0)
        return 0;
    s->left--;
    n = size < 37 ? size : 37;
    memcpy(buf, payload, n);
    return (ssize_t)n;
}

static void prod_free(void *arg)
{
    struct pslot *s = arg;

    if (s->freed)
        violation("producer %d released twice", (int)(s - ps));
    s->freed = 1;
    nest++;
    restricted++;
    unsure++;
    ops(-1, (int)pick(2));
    unsure--;
    restricted--;
    nest--;
}

static void ref_free(const void *data, size_t len, void *arg)
{
    struct rslot *s = arg;

    (void)data;
    (void)len;
    if (s->freed)
        violation("reference %d released twice", (int)(s - refs));
    s->freed = 1;
    nest++;
    restricted++;
    unsure++;
    /* The natural streaming pattern: push the next chunk from here. */
    if (ds[s->chat].d != NULL && pick(2)) {
        if (pick(4) == 0)
            (void)asyncore_chat_discard_buffers(ds[s->chat].d);
        else
            (void)asyncore_chat_push(ds[s->chat].d, payload, 1 + pick(64));
    }
    ops(s->chat, (int)pick(2));
    unsure--;
    restricted--;
    nest--;
}

static void push_op(int i)
{
    asyncore_dispatcher *d = ds[i].d;
    int rc, e, k, was = ds[i].closed;

    switch (pick(6)) {
    case 0:
    case 1:
        rc = asyncore_chat_push(d, payload, pick(sizeof(payload)));
        e = errno;
        check_closed_fails("asyncore_chat_push", i, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_push", e, SET(EINVAL, EBADF, ENOMEM));
        break;
    case 2:
    case 3:
        for (k = 0; k < MAXR && refs[k].used; k++)
            ;
        if (k == MAXR)
            return;
        refs[k].used = 1;
        refs[k].freed = 0;
        refs[k].chat = i;
        rc = asyncore_chat_push_reference(d, payload, pick(sizeof(payload)),
                                          ref_free, &refs[k]);
        e = errno;
        if (ds[i].d != NULL) /* the dispatcher may be gone now */
            check_closed_fails("asyncore_chat_push_reference", i, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_push_reference", e,
                        SET(EINVAL, EBADF, ENOMEM));
        if (rc < 0 && !refs[k].freed)
            violation("push_reference failed without releasing reference %d",
                      k);
        break;
    default: {
        asyncore_producer *p;

        for (k = 0; k < MAXP && ps[k].used; k++)
            ;
        if (k == MAXP)
            return;
        memset(&ps[k], 0, sizeof(ps[k]));
        ps[k].left = (int)pick(6);
        ps[k].fail = pick(8) == 0;
        p = asyncore_producer_new(prod_more, prod_free, &ps[k]);
        if (p == NULL)
            return;
        ps[k].used = 1;
        rc = asyncore_chat_push_with_producer(d, p);
        e = errno;
        if (ds[i].d != NULL)
            check_closed_fails("asyncore_chat_push_with_producer", i, was, rc,
                               e);
        if (rc < 0)
            check_errno("asyncore_chat_push_with_producer", e,
                        SET(EINVAL, EBADF, ENOMEM));
        if (rc < 0 && !ps[k].freed)
            violation("push_with_producer failed without releasing "
                      "producer %d", k);
    }
    }
}

/* asyncore_chat_pushf() or asyncore_chat_pushv() to chat @i (@was: closed
 * in the model).  A push of 0 bytes runs initiate_send, which behind
 * close_when_done closes the channel inside the push. */
static void pushv_op(int i, int was)
{
    struct iovec iov[3];
    int rc, e, n = (int)pick(4), k;

    if (pick(2)) {
        rc = asyncore_chat_pushf(ds[i].d, "%.*s%u\r\n", (int)pick(40),
                                 payload, pick(1000));
        e = errno;
        if (ds[i].d != NULL)
            check_closed_fails("asyncore_chat_pushf", i, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_pushf", e,
                        SET(EINVAL, EBADF, ENOMEM, EOVERFLOW, EILSEQ));
    } else {
        for (k = 0; k < n; k++) {
            iov[k].iov_len = pick(3) ? pick(64) : 0;
            iov[k].iov_base = iov[k].iov_len ? (void *)payload : NULL;
        }
        rc = asyncore_chat_pushv(ds[i].d, n ? iov : NULL, n);
        e = errno;
        if (ds[i].d != NULL)
            check_closed_fails("asyncore_chat_pushv", i, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_pushv", e, SET(EINVAL, EBADF, ENOMEM));
    }
    if (ds[i].d != NULL && asyncore_dispatcher_closed(ds[i].d))
        ds[i].closed = 1;
}

/* ---- call_soon ---------------------------------------------------------- */

static void soon_cb(asyncore_map *m, void *arg)
{
    struct cslot *s = arg;
    int saved;

    if (s->ran)
        violation("call_soon callback %d ran twice", (int)(s - cs));
    if (!maps[s->map].live || maps[s->map].m != m)
        violation("call_soon callback %d ran with a map that is not its own",
                  (int)(s - cs));
    s->ran = 1;
    saved = here_map;
    here_map = s->map;
    nest++;
    maps[s->map].inuse++;
    if (maps[s->map].freeing)
        restricted++;
    ops(-1, (int)pick(3));
    if (maps[s->map].freeing)
        restricted--;
    maps[s->map].inuse--;
    nest--;
    here_map = saved;
}

static int soon(int map)
{
    int k;

    for (k = 0; k < MAXC && cs[k].used; k++)
        ;
    if (k == MAXC)
        return -1;
    cs[k].used = 1;
    cs[k].ran = 0;
    cs[k].map = map;
    if (asyncore_map_call_soon_threadsafe(maps[map].m, soon_cb, &cs[k]) < 0) {
        check_errno("asyncore_map_call_soon_threadsafe", errno,
                    SET(EINVAL, ENOMEM));
        cs[k].used = 0;
        return -1;
    }
    return 0;
}

struct soon_job {
    int map, n;
};

static void *soon_thread(void *arg)
{
    struct soon_job *j = arg;
    int i;

    for (i = 0; i < j->n; i++)
        (void)soon(j->map);
    return NULL;
}

/* From another thread, while this one waits for it: the model is not
 * shared with the loop's thread while that thread runs. */
static void soon_from_thread(int map)
{
    struct soon_job j = { map, 1 + (int)pick(3) };
    pthread_t th;

    if (pthread_create(&th, NULL, soon_thread, &j) != 0)
        return;
    pthread_join(th, NULL);
}

/* ---- dispatchers -------------------------------------------------------- */

static void quiet_log(const asyncore_dispatcher *d, asyncore_log_type type,
                      const char *msg, void *arg)
{
    (void)d;
    (void)type;
    (void)msg;
    (void)arg;
}

/* A new dispatcher of @kind on @map, adopting @fd (-1: none).  On failure
 * the caller still owns @fd.  Returns the slot, or -1. */
static int make_dispatcher(int map, int kind, int fd)
{
    int i = free_dslot();
    asyncore_dispatcher *d;

    if (i < 0 || !maps[map].live || maps[map].freeing)
        return -1;
    memset(&ds[i], 0, sizeof(ds[i]));
    ds[i].used = 1;
    ds[i].kind = kind;
    ds[i].map = map;
    ds[i].creating = 1;
    switch (kind) {
    case K_SEND:
        d = asyncore_dispatcher_with_send_new(maps[map].m, &plain_handlers,
                                              &ds[i]);
        break;
    case K_CHAT:
        d = asyncore_chat_new(maps[map].m, &chat_handlers, &ds[i]);
        break;
    case K_FILE:
        d = asyncore_file_dispatcher_new(maps[map].m, &plain_handlers, &ds[i],
                                         fd);
        if (d == NULL) {
            check_errno("asyncore_file_dispatcher_new", errno,
                        SET(EINVAL, EBADF, EMFILE, ENOMEM, ECANCELED));
            if (errno != ECANCELED)
                ds[i].used = 0;
            else if (!ds[i].destroyed)
                violation("file_dispatcher_new: ECANCELED without destroy");
            return -1;
        }
        ds[i].d = d;
        ds[i].creating = 0;
        close(fd); /* the dispatcher works on a duplicate */
        return i;
    default:
        d = asyncore_dispatcher_new(maps[map].m, &plain_handlers, &ds[i]);
    }
    if (d == NULL) {
        ds[i].used = 0;
        return -1;
    }
    ds[i].d = d;
    ds[i].creating = 0;
    if (fd >= 0 && asyncore_set_socket(d, fd) < 0) {
        check_errno("asyncore_set_socket", errno,
                    SET(EBADF, ENOTSOCK, EISCONN));
        ds[i].closed = 1;
        asyncore_close(d);
        return -1;
    }
    return i;
}

static const char *const names[] = { "a.test", "nx.test", "silent.test",
                                     "slow.test", "x.invalid", "127.0.0.1" };

static void connect_host(int i)
{
    unsigned port = maps[ds[i].map].port ? maps[ds[i].map].port : 9;
    int rc, e, was = ds[i].closed;

    rc = asyncore_connect_host(ds[i].d, names[pick(6)], port);
    e = errno;
    if (ds[i].d != NULL)
        check_closed_fails("asyncore_connect_host", i, was, rc, e);
    if (rc < 0)
        check_errno("asyncore_connect_host", e,
                    SET(EINVAL, ENAMETOOLONG, CONNECT_ERRORS));
}

/* A new connection, listener or endpoint of some kind on @map. */
static void new_endpoint(int map)
{
    int sv[2], a, b, i;

    switch (pick(8)) {
    case 0:
    case 1: /* a socketpair: two dispatchers, or one and a raw peer */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return;
        a = make_dispatcher(map, (int)pick(3), sv[0]);
        if (a < 0)
            close(sv[0]);
        if (pick(2)) {
            int m2 = live_map();

            b = make_dispatcher(m2 >= 0 ? m2 : map, (int)pick(3), sv[1]);
            if (b < 0)
                close(sv[1]);
        } else {
            raw_keep(sv[1]);
        }
        break;
    case 2: { /* a listener on loopback */
        struct sockaddr_in sin = { .sin_family = AF_INET };
        socklen_t len = sizeof(sin);

        i = make_dispatcher(map, K_PLAIN, -1);
        if (i < 0)
            return;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (asyncore_create_socket(ds[i].d, AF_INET, SOCK_STREAM) < 0 ||
            asyncore_bind(ds[i].d, (struct sockaddr *)&sin, len) < 0 ||
            asyncore_listen(ds[i].d, 16) < 0 ||
            getsockname(asyncore_dispatcher_fd(ds[i].d),
                        (struct sockaddr *)&sin, &len) < 0) {
            if (ds[i].d != NULL) {
                ds[i].closed = 1;
                asyncore_close(ds[i].d);
            }
            return;
        }
        ds[i].listener = 1;
        maps[map].port = ntohs(sin.sin_port);
        break;
    }
    case 3:
    case 4: { /* a TCP client: by address or by name */
        struct sockaddr_in sin = { .sin_family = AF_INET };
        int rc, e;

        i = make_dispatcher(map, (int)pick(3), -1);
        if (i < 0)
            return;
        if (pick(2)) {
            connect_host(i);
        } else {
            sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sin.sin_port = htons(maps[map].port ? maps[map].port : 9);
            if (asyncore_create_socket(ds[i].d, AF_INET, SOCK_STREAM) < 0)
                return;
            rc = asyncore_connect(ds[i].d, (struct sockaddr *)&sin,
                                  sizeof(sin));
            e = errno;
            if (rc < 0)
                check_errno("asyncore_connect", e,
                            SET(EINVAL, CONNECT_ERRORS));
        }
        if (ds[i].d != NULL && pick(2))
            (void)asyncore_set_connect_timeout(ds[i].d,
                                               0.001 + pick(4) * 0.003);
        break;
    }
    case 5: /* a pipe: a file dispatcher at one end or both */
        if (pipe2(sv, O_CLOEXEC) < 0)
            return;
        if (make_dispatcher(map, K_FILE, sv[0]) < 0)
            close(sv[0]);
        if (pick(2)) {
            if (make_dispatcher(map, K_FILE, sv[1]) < 0)
                close(sv[1]);
        } else {
            raw_keep(sv[1]);
        }
        break;
    case 6: /* UDP, with no destination */
        i = make_dispatcher(map, (int)pick(2), -1);
        if (i >= 0)
            (void)asyncore_create_socket(ds[i].d, AF_INET, SOCK_DGRAM);
        break;
    default: /* a TCP socket that is not connected (yet) */
        i = make_dispatcher(map, (int)pick(3), -1);
        if (i >= 0)
            (void)asyncore_create_socket(ds[i].d, AF_INET, SOCK_STREAM);
    }
}

/* ---- loops -------------------------------------------------------------- */

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void run_loop(int map, int count)
{
    double t0 = now();
    int rc;

    maps[map].loops++;
    rc = asyncore_loop(maps[map].m, 0.001, count);
    if (rc < 0)
        check_errno("asyncore_loop", errno, SET(EDEADLK, EINVAL));
    maps[map].loops--;
    if (now() - t0 > 5.0)
        violation("asyncore_loop(count %d) took %.1f s", count, now() - t0);
}

/* Has @map a timer of the program's that will fire? */
static int timer_pending(int map)
{
    int i;

    for (i = 0; i < MAXT; i++)
        if (ts[i].t != NULL && ts[i].map == map && !ts[i].cancelled)
            return 1;
    return 0;
}

/* The program runs the map's base itself, as timer.h suggests for waiting
 * on timers alone: one pass, which waits for the next timer if there is
 * one of the program's (never longer than its few milliseconds). */
static void run_base(int map)
{
    struct event_base *base = asyncore_map_base(maps[map].m);
    int flags = EVLOOP_ONCE;
    double t0 = now();

    if (!timer_pending(map) || pick(2))
        flags |= EVLOOP_NONBLOCK;
    maps[map].bases++;
    event_base_loop(base, flags);
    if (maps[map].live)
        maps[map].bases--;
    if (now() - t0 > 5.0)
        violation("event_base_loop took %.1f s", now() - t0);
}

static void model_closed_all(int map)
{
    int i;

    for (i = 0; i < MAXD; i++)
        if (ds[i].d != NULL && ds[i].map == map)
            ds[i].closed = 1;
}

/*
 * map.h: EBUSY wherever the map is in use -- inside its loop, and (also
 * when the program runs its base itself) inside a hook, predicate or
 * destroy hook of one of its dispatchers, a timer callback, a call_soon
 * callback, or the hooks asyncore_map_free() itself runs.  Anywhere else
 * outside every callback it must succeed; inside callbacks the header
 * does not name (producers, references, a timer's free hook run by a
 * cancel), or those of other maps only, either answer is allowed.
 */
static void map_free(int map)
{
    int busy = maps[map].loops > 0 || maps[map].freeing > 0 ||
               maps[map].inuse > 0;
    int sure = busy || unsure == 0;
    int rc, e;

    maps[map].freeing++;
    rc = asyncore_map_free(maps[map].m);
    e = errno;
    maps[map].freeing--;
    if (rc == 0) {
        if (busy)
            violation("asyncore_map_free() of map %d in use (loops %d, "
                      "hooks %d) returned 0", map, maps[map].loops,
                      maps[map].inuse);
        maps[map].live = 0;
        maps[map].m = NULL;
        model_closed_all(map);
        return;
    }
    if (e != EBUSY)
        check_errno("asyncore_map_free", e, SET(EBUSY));
    if (!busy && sure)
        violation("asyncore_map_free() of map %d not in use failed with "
                  "EBUSY", map);
}

/* ---- operations --------------------------------------------------------- */

/*
 * One operation, chosen by the input, done from where the program is:
 * @self is the dispatcher whose hook runs (-1: none).  Inside destroy and
 * free hooks (restricted) only what those may do: queue callbacks, cancel
 * timers, close or push to other dispatchers.  Returns 0 when the input is
 * used up.
 */
static int op(int self)
{
    int t, m, rc, e, was;
    unsigned what;

    if (in_left == 0)
        return 0;
    what = byte();
    if (nest > MAX_NEST)
        return 1;
    if (trace)
        fprintf(stderr, "fuzz_api: %*sop %u%s from %d\n", nest * 2, "",
                restricted ? what % 5 : what % 32, restricted ? "r" : "", self);
    if (restricted) {
        switch (what % 5) {
        case 0: /* on one's own map too, while asyncore_map_free() runs */
            m = here_map >= 0 && pick(2) ? here_map : (int)pick(MAXM);
            if (maps[m].live)
                (void)soon(m);
            break;
        case 1:
            timer_op();
            break;
        case 2:
            t = target(-1);
            if (t >= 0 && t != self && !ds[t].closed) {
                ds[t].closed = 1;
                (void)asyncore_close(ds[t].d);
            }
            break;
        case 3:
            t = target(-1);
            if (t >= 0 && t != self && ds[t].kind == K_CHAT)
                (void)asyncore_chat_push(ds[t].d, payload, 1 + pick(32));
            break;
        default:
            break;
        }
        return 1;
    }
    switch (what % 32) {
    case 0: /* close */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        if (ds[t].closed) {
            rc = asyncore_close(ds[t].d);
            check_closed_fails("asyncore_close", t, was, rc, errno);
        } else {
            ds[t].closed = 1;
            if (asyncore_close(ds[t].d) < 0)
                violation("asyncore_close() of open dispatcher %d: errno %d",
                          t, errno);
        }
        break;
    case 1: /* close_all */
        if ((m = live_map()) < 0 || pick(4) != 0)
            break;
        if (asyncore_close_all(maps[m].m) != 0)
            violation("asyncore_close_all returned non-zero");
        model_closed_all(m);
        break;
    case 2:
    case 3:
    case 4: { /* send */
        unsigned since = errors;
        ssize_t n;

        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        n = asyncore_send(ds[t].d, payload, 1 + pick(sizeof(payload) - 1));
        e = errno;
        if (ds[t].d == NULL)
            break;
        check_transfer("asyncore_send", t, was, n, e, since,
                       SET(EBADF, EINVAL, ENOTSOCK, ENOMEM));
        break;
    }
    case 5: { /* recv */
        unsigned since = errors;
        char buf[2048];
        ssize_t n;

        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        n = asyncore_recv(ds[t].d, buf, 1 + pick(sizeof(buf) - 1));
        e = errno;
        if (ds[t].d == NULL)
            break;
        check_transfer("asyncore_recv", t, was, n, e, since,
                       SET(EAGAIN, EBADF, EINVAL, ENOTSOCK));
        break;
    }
    case 6:
    case 7:
    case 8: /* push, push_reference, push_with_producer */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t >= 0 && ds[t].kind == K_CHAT)
            push_op(t);
        break;
    case 9: /* discard_buffers */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t >= 0 && ds[t].kind == K_CHAT &&
            asyncore_chat_discard_buffers(ds[t].d) != 0)
            violation("asyncore_chat_discard_buffers failed: errno %d", errno);
        break;
    case 10: /* close_when_done */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t >= 0 && ds[t].kind == K_CHAT) {
            rc = asyncore_chat_close_when_done(ds[t].d);
            e = errno;
            if (ds[t].d != NULL)
                check_closed_fails("asyncore_chat_close_when_done", t, was,
                                   rc, e);
            if (rc < 0)
                check_errno("asyncore_chat_close_when_done", e,
                            SET(EINVAL, EBADF, ENOMEM));
        }
        break;
    case 11: /* set_terminator */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0 || ds[t].kind != K_CHAT)
            break;
        switch (pick(3)) {
        case 0:
            rc = asyncore_chat_set_terminator(ds[t].d, "\r\n", 1 + pick(2));
            break;
        case 1:
            rc = asyncore_chat_set_terminator_count(ds[t].d, (int64_t)pick(64));
            break;
        default:
            rc = asyncore_chat_set_terminator_none(ds[t].d);
        }
        e = errno;
        check_closed_fails("asyncore_chat_set_terminator", t, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_set_terminator", e,
                        SET(EINVAL, EBADF, ENOMEM));
        break;
    case 12:
    case 13: /* a timer */
        if ((m = live_map()) >= 0)
            new_timer(m, (int)pick(3) == 0);
        break;
    case 14:
    case 15: /* cancel or re-arm a timer (its own, another's) */
        timer_op();
        break;
    case 16: /* a nested loop */
        m = self >= 0 ? ds[self].map : live_map();
        if (m < 0 || !maps[m].live || maps[m].loops == 0)
            break;
        rc = asyncore_loop(maps[m].m, 0, 1);
        if (rc != -1 || errno != EBUSY)
            violation("a nested asyncore_loop() returned %d (errno %d), "
                      "not -1 with EBUSY", rc, errno);
        break;
    case 17: /* map free (seldom from the program itself: it ends all) */
        if ((m = live_map()) < 0 || (nest == 0 && pick(3) != 0))
            break;
        map_free(m);
        break;
    case 18:
    case 19: /* call_soon, from here or from a thread */
        if ((m = live_map()) < 0)
            break;
        if (pick(2))
            (void)soon(m);
        else
            soon_from_thread(m);
        break;
    case 20:
    case 21:
    case 22: /* a new connection or endpoint */
        if ((m = live_map()) >= 0)
            new_endpoint(m);
        break;
    case 23:
    case 24: /* connect by name (also on one's own unconnected socket) */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t >= 0)
            connect_host(t);
        break;
    case 25: /* timeouts */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        if (pick(2))
            rc = asyncore_set_idle_timeout(ds[t].d, pick(4) * 0.002);
        else
            rc = asyncore_set_connect_timeout(ds[t].d, pick(4) * 0.002);
        e = errno;
        check_closed_fails("asyncore_set_*_timeout", t, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_set_*_timeout", e,
                        SET(EINVAL, EBADF, ENOMEM));
        break;
    case 26: /* initiate_send */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        if (ds[t].kind == K_CHAT)
            (void)asyncore_chat_initiate_send(ds[t].d);
        else if (ds[t].kind == K_SEND)
            (void)asyncore_initiate_send(ds[t].d);
        break;
    case 27: /* the raw peers */
        raw_op();
        break;
    case 28: /* loop_stop */
        if ((m = live_map()) >= 0)
            (void)asyncore_loop_stop(maps[m].m);
        break;
    case 30: /* the formatted and gathered pushes, one FIFO entry each */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t >= 0 && ds[t].kind == K_CHAT)
            pushv_op(t, was);
        break;
    case 31: /* record size; a release without a hold does nothing */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0)
            break;
        if (pick(2)) {
            asyncore_dispatcher_release(ds[t].d);
            if (ds[t].d == NULL)
                violation("a release without a hold destroyed dispatcher %d",
                          t);
            if (!was && asyncore_dispatcher_closed(ds[t].d))
                violation("a release without a hold closed dispatcher %d", t);
            break;
        }
        if (ds[t].kind != K_CHAT)
            break;
        rc = asyncore_chat_set_max_record(ds[t].d, pick(4) * 8);
        e = errno;
        check_closed_fails("asyncore_chat_set_max_record", t, was, rc, e);
        if (rc < 0)
            check_errno("asyncore_chat_set_max_record", e, SET(EINVAL, EBADF));
        rc = asyncore_chat_record_truncated(ds[t].d);
        if (rc != 0 && rc != 1)
            violation("asyncore_chat_record_truncated returned %d", rc);
        break;
    case 29: /* run handle_close, or handle_error, as a method */
        t = target(self);
        was = t >= 0 && ds[t].closed;
        if (t < 0 || ds[t].closed)
            break;
        if (pick(2))
            asyncore_handle_close(ds[t].d);
        else
            asyncore_handle_error(ds[t].d, EPROTO, "fuzz");
        break;
    default:
        break;
    }
    return 1;
}

static void ops(int self, int n)
{
    while (n-- > 0 && op(self))
        ;
}

/* ---- one input ---------------------------------------------------------- */

static int fds_before = -1;

static void setup_map(int i)
{
    struct evdns_base *dns;

    memset(&maps[i], 0, sizeof(maps[i]));
    maps[i].m = asyncore_map_new(NULL);
    if (maps[i].m == NULL)
        abort();
    maps[i].live = 1;
    asyncore_map_set_log(maps[i].m, quiet_log, NULL);
    dns = evdns_base_new(asyncore_map_base(maps[i].m), 0);
    if (dns == NULL || evdns_base_nameserver_ip_add(dns, ns_addr) != 0 ||
        evdns_base_set_option(dns, "timeout:", "0.02") != 0 ||
        evdns_base_set_option(dns, "attempts:", "1") != 0 ||
        evdns_base_set_option(dns, "randomize-case:", "0") != 0 ||
        asyncore_map_set_dns(maps[i].m, dns) != 0)
        abort();
}

static void final_checks(void)
{
    int i, n;

    for (i = 0; i < MAXD; i++)
        if (ds[i].used && !ds[i].destroyed)
            violation("dispatcher %d was never destroyed", i);
    for (i = 0; i < MAXT; i++)
        if (ts[i].used && !ts[i].released)
            violation("timer %d was never released", i);
    for (i = 0; i < MAXP; i++)
        if (ps[i].used && !ps[i].freed)
            violation("producer %d was never released", i);
    for (i = 0; i < MAXR; i++)
        if (refs[i].used && !refs[i].freed)
            violation("reference %d was never released", i);
    for (i = 0; i < MAXC; i++)
        if (cs[i].used && !cs[i].ran)
            violation("call_soon callback %d never ran", i);
    n = count_fds();
    if (n != fds_before)
        violation("%d descriptors open after the maps were freed, %d before",
                  n, fds_before);
}

static void run_program(const uint8_t *data, size_t size)
{
    int i, step, nmaps;

    in_p = data;
    in_left = size;
    memset(ds, 0, sizeof(ds));
    memset(ts, 0, sizeof(ts));
    memset(ps, 0, sizeof(ps));
    memset(refs, 0, sizeof(refs));
    memset(cs, 0, sizeof(cs));
    memset(maps, 0, sizeof(maps));
    for (i = 0; i < MAXF; i++)
        rawfd[i] = -1;
    nest = restricted = unsure = 0;
    errors = 0;
    here_map = -1;
    fds_before = count_fds();

    nmaps = 1 + (int)pick(MAXM);
    for (i = 0; i < nmaps; i++)
        setup_map(i);
    for (step = 0; step < MAIN_STEPS && in_left > 0; step++) {
        unsigned b = byte();
        int m = (int)(b / 8 % MAXM);

        switch (b % 8) {
        case 0:
        case 1:
            if (maps[m].live)
                run_loop(m, 1 + (int)pick(4));
            break;
        case 2:
        case 3:
            if (maps[m].live)
                run_base(m);
            break;
        default:
            op(-1);
        }
    }
    /* Let what is under way finish a little, then free everything.  The
     * hooks and callbacks that run meanwhile (destroy hooks, free hooks,
     * callbacks asyncore_map_free() runs) read the input again from its
     * start: their part of the program is as rich as the rest. */
    in_p = data;
    in_left = size;
    here_map = -1;
    for (i = 0; i < MAXM; i++)
        if (maps[i].live)
            run_loop(i, 2);
    for (i = 0; i < MAXM; i++)
        if (maps[i].live) {
            maps[i].freeing++;
            if (asyncore_map_free(maps[i].m) != 0)
                violation("asyncore_map_free() at the end: errno %d", errno);
            maps[i].freeing--;
            maps[i].live = 0;
            model_closed_all(i);
        }
    for (i = 0; i < MAXF; i++)
        if (rawfd[i] >= 0)
            close(rawfd[i]);
    final_checks();
}

/* ---- entry points ------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sigaction sa;

    (void)argc;
    (void)argv;
    trace = getenv("FUZZ_API_TRACE") != NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
    dns_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_program(data, size);
    return 0;
}
