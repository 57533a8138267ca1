/* loadgen -- echo load generator for the benchmarks.
 *
 * It is written on raw epoll, not on the library, so that the client side
 * of every measurement is the same fixed cost whichever server is measured.
 * One thread, edge-triggered epoll, every socket registered once: the client
 * never calls epoll_ctl in the steady state.
 *
 * Every byte a connection sends comes from a pseudo-random pattern at a
 * per-connection offset, so every echoed byte can be checked against what
 * was sent (including bytes routed to the wrong connection, duplicated,
 * lost or invented).  Any difference is a mismatch and fails the run.
 *
 * Phases: connections are opened in batches (at most --batch of them set up
 * at once: connect() called, first echo not yet received); each sends one
 * message (or, streaming, one window) as soon as it is connected and pauses
 * once it has been served, so that setting up thousands of connections is
 * not slowed by the traffic of those already set up.  When every connection
 * has been served (or --setup-timeout passes) all start their traffic, and
 * after --warmup the measurement window of --duration seconds starts.
 * Counters, the latency histogram and the CPU samples cover the window only.
 *
 * --idle N opens N more connections first that each send one message,
 * check its echo and then stay silent: the idle population of the memory
 * and scaling measurements.  --count N ends the window after exactly N
 * round trips instead of after a time, so that two runs differ only in the
 * number of round trips (instruction and system-call counts per round trip
 * are taken as the difference of two such runs).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE (4u << 20)       /* largest message / write size */
#define RBUF_SIZE (256u << 10)    /* one recv() reads at most this much */
#define PAT_PERIOD 1000003u       /* prime: offsets of connections differ */
#define STAMPS 64                 /* stream mode: writes timed per conn */
#define MAX_REPORTED_ERRORS 5

enum mode { MODE_PINGPONG, MODE_STREAM };

struct options {
    const char *host;
    const char *port;
    const char *upath;
    int conns;
    size_t size;
    double secs;
    enum mode mode;
    long server_pid;
    int batch;
    double setup_timeout;
    double warmup;
    size_t window;
    bool quickack;
    int idle;          /* silent connections opened before the active ones */
    uint64_t count;    /* > 0: the window ends after this many round trips */
};

enum cstate { CS_NEW, CS_CONNECTING, CS_OPEN, CS_DEAD };

struct stamp {
    uint64_t pos;   /* stream position of the last byte of a write */
    int64_t t;      /* when send() accepted it */
};

struct conn {
    int fd;
    enum cstate st;
    bool served;     /* first echo received */
    bool wblocked;   /* last send was partial: wait for EPOLLOUT */
    bool idle;       /* one message during setup, then silent */
    uint32_t off;    /* pattern offset of stream position 0 */
    uint64_t sent, recvd;
    uint64_t msg_end;   /* ping-pong: stream position ending the message */
    int64_t t_connect, t_msg;
    uint64_t win_done;  /* round trips (or bytes) inside the window */
    struct stamp *stamps;
    unsigned s_head, s_count;
};

/* Latency histogram, log-linear: exact below 64 ns, then 32 buckets per
 * power of two (about 3 % resolution) up to 2^41 ns (about 36 minutes). */
#define H_LIN 64
#define H_SUB 32
#define H_MAXMSB 40
#define H_BUCKETS (H_LIN + (H_MAXMSB - 5) * H_SUB)

#define MAX_TASKS 64                   /* server threads reported one by one */
#define MAX_EPOLLS 16                  /* server epoll instances reported */

struct cpu_sample {
    bool ok;
    unsigned long long utime, stime;   /* server, clock ticks */
    bool run_ok;
    unsigned long long run_ns;         /* server, precise run time */
    int ntasks;                        /* its threads, in tid order */
    long tid[MAX_TASKS];
    unsigned long long task_ns[MAX_TASKS];
    double self_cpu;                   /* this process, seconds */
};

/* The descriptors registered in each of the server's epoll instances (one
 * per event loop): how a multi-threaded server spread its connections. */
struct epoll_watch {
    int n;
    int fd[MAX_EPOLLS];
    int watched[MAX_EPOLLS];
};

struct run {
    struct options o;
    struct conn *c;
    int total;                  /* o.idle + o.conns */
    uint64_t issued;            /* --count: messages started in the window */
    long rss_kb[3];             /* server VmRSS: start, setup end, end */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool is_tcp;
    int epfd;
    int started, pending, served, dead;
    bool connect_retry;         /* AF_UNIX backlog was full: try again soon */
    bool setup_over, in_window;
    int64_t t_setup_end, t_win_start, t_win_end, t_end;
    uint64_t rtts, bytes, errors, mismatches, unserved;
    int64_t connect_max;
    int reported;
    uint64_t hist[H_BUCKETS];
    uint64_t hist_n;
    struct cpu_sample cpu0, cpu1;
    struct epoll_watch ep0, ep1;        /* before the first connect, at the end */
};

static struct run R;
static unsigned char *pat;
static unsigned char rbuf[RBUF_SIZE];

/* ---- small utilities ---------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void h_add(uint64_t v)
{
    unsigned i;
    if (v < H_LIN) {
        i = (unsigned)v;
    } else {
        if (v >> (H_MAXMSB + 1))
            v = (1ULL << (H_MAXMSB + 1)) - 1;
        unsigned msb = 63u - (unsigned)__builtin_clzll(v);
        unsigned shift = msb - 5;
        i = H_LIN + (msb - 6) * H_SUB + (unsigned)((v >> shift) - H_SUB);
    }
    R.hist[i]++;
    R.hist_n++;
}

/* The middle of bucket i, in nanoseconds. */
static double h_value(unsigned i)
{
    if (i < H_LIN)
        return i;
    unsigned oct = (i - H_LIN) / H_SUB, sub = (i - H_LIN) % H_SUB;
    unsigned shift = oct + 1;
    return (double)((uint64_t)(H_SUB + sub) << shift) + (double)(1ULL << shift) / 2;
}

static double h_percentile_us(double p)
{
    if (R.hist_n == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)R.hist_n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        cum += R.hist[i];
        if (cum >= rank)
            return h_value(i) / 1000.0;
    }
    return h_value(H_BUCKETS - 1) / 1000.0;
}

/* pat[i] == pat[i % PAT_PERIOD] for every i < PAT_PERIOD + MAX_SIZE, so any
 * slice of up to MAX_SIZE bytes starting anywhere in the period is
 * contiguous. */
static void pattern_init(void)
{
    size_t len = PAT_PERIOD + (MAX_SIZE > RBUF_SIZE ? MAX_SIZE : RBUF_SIZE);
    pat = malloc(len);
    if (!pat)
        die("out of memory");
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < PAT_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pat[i] = (unsigned char)(x >> 32);
    }
    for (size_t i = PAT_PERIOD; i < len; i++)
        pat[i] = pat[i - PAT_PERIOD];
}

static const unsigned char *pat_at(const struct conn *c, uint64_t pos)
{
    return pat + (c->off + pos) % PAT_PERIOD;
}

/* ---- server CPU from /proc ---------------------------------------------- */

static bool read_proc_cpu(long pid, unsigned long long *ut, unsigned long long *st)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. utime and stime are fields 14, 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    p++;
    for (int field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return false;
    }
    return sscanf(p, " %llu %llu", ut, st) == 2;
}

/* The kernel's precise run time (ns) of one task, from its schedstat.
 * utime and stime are split from it by tick sampling, which is coarse over
 * short windows. */
static bool read_schedstat(const char *path, unsigned long long *ns)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    int n = fscanf(f, "%llu", ns);
    fclose(f);
    return n == 1;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The server's run time summed over all its threads (/proc/PID/schedstat
 * alone is the main thread's, which in a server whose workers do the work
 * only waits for signals), and each thread's, in tid order.  A thread that
 * ended before the sample is missing from the sum. */
static bool read_proc_run(long pid, struct cpu_sample *s)
{
    char path[96];
    long tids[MAX_TASKS];
    int n = 0;

    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_TASKS)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            tids[n++] = strtol(e->d_name, NULL, 10);
    closedir(d);
    qsort(tids, (size_t)n, sizeof *tids, cmp_long);
    s->run_ns = 0;
    s->ntasks = 0;
    for (int i = 0; i < n; i++) {
        unsigned long long ns;
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/schedstat", pid, tids[i]);
        if (!read_schedstat(path, &ns))
            continue;   /* the thread has just ended */
        s->tid[s->ntasks] = tids[i];
        s->task_ns[s->ntasks++] = ns;
        s->run_ns += ns;
    }
    return s->ntasks > 0;
}

/* A thread's run time in the window: 0 at the start if it did not exist. */
static unsigned long long task_window_ns(int i)
{
    for (int j = 0; j < R.cpu0.ntasks; j++)
        if (R.cpu0.tid[j] == R.cpu1.tid[i])
            return R.cpu1.task_ns[i] - R.cpu0.task_ns[j];
    return R.cpu1.task_ns[i];
}

/* Counts the "tfd:" lines of each of the server's epoll descriptors in
 * /proc/PID/fdinfo: the descriptors registered in it, in fd order. */
static void read_epoll_watch(long pid, struct epoll_watch *w)
{
    char path[320], target[64], line[256];
    w->n = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    int fds[MAX_EPOLLS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_EPOLLS) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%ld/fd/%s", pid, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") == 0)
            fds[n++] = atoi(e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)     /* insertion sort: a handful */
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/proc/%ld/fdinfo/%d", pid, fds[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int count = 0;
        while (fgets(line, sizeof line, f))
            count += strncmp(line, "tfd:", 4) == 0;
        fclose(f);
        w->fd[w->n] = fds[i];
        w->watched[w->n++] = count;
    }
}

/* The server's resident set (VmRSS, kB) from /proc/PID/status; -1 if
 * unknown.  Only user-space memory: socket buffers are the kernel's. */
static long read_proc_rss(long pid)
{
    char path[64], line[256];
    long kb = -1;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void cpu_sample(struct cpu_sample *s)
{
    s->self_cpu = self_cpu_s();
    s->ok = R.o.server_pid > 0 &&
            read_proc_cpu(R.o.server_pid, &s->utime, &s->stime);
    s->run_ok = R.o.server_pid > 0 && read_proc_run(R.o.server_pid, s);
}

/* ---- connection failures ------------------------------------------------- */

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);   /* closing drops the epoll registration too */
    c->fd = -1;
    if (!c->served && c->st != CS_NEW)
        R.pending--;
    c->st = CS_DEAD;
    R.dead++;
}

static void report(const struct conn *c, const char *what, int err)
{
    if (R.reported++ >= MAX_REPORTED_ERRORS)
        return;
    fprintf(stderr, "loadgen: connection %ld: %s%s%s\n", (long)(c - R.c), what,
            err ? ": " : "", err ? strerror(err) : "");
}

static void fail(struct conn *c, const char *what, int err)
{
    R.errors++;
    report(c, what, err);
    conn_close(c);
}

/* Not an error of the server's code, but of its capacity: counted apart. */
static void give_up(struct conn *c, const char *what)
{
    R.unserved++;
    report(c, what, 0);
    conn_close(c);
}

static void mismatch(struct conn *c, const unsigned char *got, size_t n)
{
    const unsigned char *want = pat_at(c, c->recvd);
    char what[160];
    if (c->recvd + n > c->sent) {
        snprintf(what, sizeof what,
                 "mismatch: %" PRIu64 " bytes echoed, only %" PRIu64 " sent",
                 c->recvd + n, c->sent);
    } else {
        size_t i = 0;
        while (i < n && got[i] == want[i])
            i++;
        snprintf(what, sizeof what,
                 "mismatch at stream offset %" PRIu64 ": sent 0x%02x, echoed 0x%02x",
                 c->recvd + i, want[i], got[i]);
    }
    R.mismatches++;
    report(c, what, 0);
    conn_close(c);
}

/* ---- traffic --------------------------------------------------------------- */

static void mark_served(struct conn *c, int64_t t)
{
    c->served = true;
    R.served++;
    R.pending--;
    if (t - c->t_connect > R.connect_max)
        R.connect_max = t - c->t_connect;
}

static void stamp_push(struct conn *c, int64_t t)
{
    if (c->s_count == STAMPS)
        return;   /* sampling: the ring is full of writes still in flight */
    struct stamp *s = &c->stamps[(c->s_head + c->s_count) % STAMPS];
    s->pos = c->sent;
    s->t = t;
    c->s_count++;
}

static void stamps_pop(struct conn *c, int64_t t)
{
    while (c->s_count && c->stamps[c->s_head].pos <= c->recvd) {
        if (R.in_window)
            h_add((uint64_t)(t - c->stamps[c->s_head].t));
        c->s_head = (c->s_head + 1) % STAMPS;
        c->s_count--;
    }
}

/* Sends what the mode calls for until the kernel buffer is full. */
static bool pingpong(const struct conn *c)
{
    return c->idle || R.o.mode == MODE_PINGPONG;
}

static void pump(struct conn *c)
{
    while (c->st == CS_OPEN && !c->wblocked) {
        size_t want;
        if (pingpong(c)) {
            want = (size_t)(c->msg_end - c->sent);
        } else if (c->served && !R.setup_over) {
            return;   /* paused until every connection is set up */
        } else {
            uint64_t inflight = c->sent - c->recvd;
            if (inflight >= R.o.window)
                return;
            want = R.o.window - (size_t)inflight;
            if (want > R.o.size)
                want = R.o.size;
        }
        if (want == 0)
            return;
        ssize_t n = send(c->fd, pat_at(c, c->sent), want, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->wblocked = true;
                return;
            }
            fail(c, "send", errno);
            return;
        }
        c->sent += (uint64_t)n;
        if (!pingpong(c))
            stamp_push(c, now_ns());
        /* A short write means the buffer is full; with edge-triggered
         * epoll an EPOLLOUT edge follows when room frees up. */
        if ((size_t)n < want)
            c->wblocked = true;
    }
}

/* --count: may one more message start?  Counts it if so. */
static bool budget_take(void)
{
    if (R.o.count == 0)
        return true;
    if (R.issued >= R.o.count)
        return false;
    R.issued++;
    return true;
}

static void next_message(struct conn *c, int64_t t)
{
    if (!budget_take())
        return;   /* --count reached: this connection stops */
    c->msg_end += R.o.size;
    c->t_msg = t;
}

static void echo_done(struct conn *c, int64_t t)
{
    if (!c->served)
        mark_served(c, t);
    if (!R.setup_over || c->idle)
        return;   /* paused: resume_traffic() sends the next message */
    if (R.in_window) {
        h_add((uint64_t)(t - c->t_msg));
        R.rtts++;
        c->win_done++;
    }
    next_message(c, t);
}

/* Checks n echoed bytes; false when the connection was closed for it. */
static bool take_echo(struct conn *c, const unsigned char *buf, size_t n)
{
    if (c->recvd + n > c->sent || memcmp(buf, pat_at(c, c->recvd), n) != 0) {
        mismatch(c, buf, n);
        return false;
    }
    c->recvd += n;
    if (R.in_window)
        R.bytes += n;
    int64_t t = now_ns();
    if (pingpong(c)) {
        if (c->recvd == c->msg_end)
            echo_done(c, t);
        return true;
    }
    if (!c->served)
        mark_served(c, t);
    if (R.in_window)
        c->win_done += n;
    stamps_pop(c, t);
    return true;
}

static void do_read(struct conn *c, bool hup)
{
    static const int one = 1;
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n > 0) {
            /* Acknowledge at once: a delayed ACK would stall a server
             * whose echo went out in several segments. */
            if (R.o.quickack && R.is_tcp)
                setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
            if (!take_echo(c, rbuf, (size_t)n))
                return;
            /* A short read emptied the socket; a new edge will come. */
            if ((size_t)n < sizeof rbuf && !hup)
                return;
            continue;
        }
        if (n == 0) {
            fail(c, "server closed the connection", 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (hup)
                fail(c, "connection hung up", 0);
            return;
        }
        fail(c, "recv", errno);
        return;
    }
}

static void on_open(struct conn *c)
{
    c->st = CS_OPEN;
    c->t_msg = now_ns();
    c->msg_end = pingpong(c) ? R.o.size : 0;
    pump(c);
}

static void handle_event(struct conn *c, uint32_t ev)
{
    if (c->st == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail(c, "connect", err);
            return;
        }
        on_open(c);
    }
    if (c->st != CS_OPEN)
        return;
    bool hup = (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        do_read(c, hup);
    if (ev & EPOLLOUT)
        c->wblocked = false;
    pump(c);
}

/* ---- connection setup ---------------------------------------------------- */

static void resolve(void)
{
    if (R.o.upath) {
        struct sockaddr_un *un = (struct sockaddr_un *)&R.addr;
        if (strlen(R.o.upath) >= sizeof un->sun_path)
            die("unix socket path too long: %s", R.o.upath);
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, R.o.upath);
        R.addrlen = sizeof *un;
        return;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(R.o.host, R.o.port, &hints, &ai);
    if (rc)
        die("cannot resolve host: %s", gai_strerror(rc));
    memcpy(&R.addr, ai->ai_addr, ai->ai_addrlen);
    R.addrlen = ai->ai_addrlen;
    R.is_tcp = true;
    freeaddrinfo(ai);
}

/* Returns false when the caller should stop starting connections for now. */
static bool start_one(struct conn *c)
{
    static const int one = 1;
    int fd = socket(R.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        R.started++;
        fail(c, "socket", errno);
        return true;
    }
    if (R.is_tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->t_connect = now_ns();
    if (connect(fd, (struct sockaddr *)&R.addr, R.addrlen) < 0 && errno != EINPROGRESS) {
        if (errno == EAGAIN && !R.is_tcp) {
            /* The Unix listener's backlog is full: retry shortly. */
            close(fd);
            R.connect_retry = true;
            return false;
        }
        c->fd = fd;
        c->st = CS_CONNECTING;
        R.started++;
        R.pending++;
        fail(c, "connect", errno);
        return true;
    }
    c->fd = fd;
    c->st = CS_CONNECTING;
    R.started++;
    R.pending++;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u32 = (uint32_t)(c - R.c),
    };
    if (epoll_ctl(R.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        fail(c, "epoll_ctl", errno);
    return true;
}

static void start_connects(void)
{
    R.connect_retry = false;
    while (R.started < R.total && R.pending < R.o.batch)
        if (!start_one(&R.c[R.started]))
            return;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)R.total + 16 > rl.rlim_cur)
        die("too many connections for the open-file limit (%llu)",
            (unsigned long long)rl.rlim_cur);
}

/* ---- phases ------------------------------------------------------------ */

/* Starts the traffic of every connection paused after its first echo. */
static void resume_traffic(void)
{
    int64_t t = now_ns();
    for (int i = 0; i < R.total; i++) {
        struct conn *c = &R.c[i];
        if (c->st != CS_OPEN || c->idle)
            continue;
        if (R.o.mode == MODE_PINGPONG && c->recvd == c->msg_end)
            next_message(c, t);
        pump(c);
    }
}

static void end_setup(int64_t t)
{
    for (int i = 0; i < R.total; i++) {
        struct conn *c = &R.c[i];
        if (c->st == CS_NEW) {
            R.started++;
            give_up(c, "never started within the setup timeout");
        } else if (c->st != CS_DEAD && !c->served) {
            give_up(c, "not served within the setup timeout");
        }
    }
    R.setup_over = true;
    R.t_setup_end = t;
    R.rss_kb[1] = read_proc_rss(R.o.server_pid);
    R.t_win_start = t + (int64_t)(R.o.warmup * 1e9);
    resume_traffic();
}

static void begin_window(int64_t t)
{
    R.in_window = true;
    R.t_win_start = t;
    R.t_win_end = t + (int64_t)(R.o.secs * 1e9);
    for (int i = 0; i < R.total; i++)
        R.c[i].win_done = 0;
    cpu_sample(&R.cpu0);
}

/* Advances the phases; returns the epoll timeout in ms, or -2 when done. */
static int step_phases(int64_t t)
{
    if (!R.setup_over) {
        bool all_set = R.started == R.total && R.pending == 0;
        int64_t deadline = (int64_t)(R.o.setup_timeout * 1e9);
        if (all_set || t >= deadline)
            end_setup(t);
    }
    if (R.setup_over && !R.in_window && t >= R.t_win_start)
        begin_window(t);
    if (R.dead == R.total || (R.in_window && t >= R.t_win_end))
        return -2;
    if (R.in_window && R.o.count && R.rtts >= R.o.count)
        return -2;
    int64_t until = R.in_window ? R.t_win_end : R.setup_over ? R.t_win_start : t + 100000000;
    int ms = (int)((until - t + 999999) / 1000000);
    if (R.connect_retry && ms > 1)
        ms = 1;
    return ms;
}

static void run_loop(void)
{
    struct epoll_event evs[512];
    int64_t t0 = now_ns();
    for (;;) {
        start_connects();
        int ms = step_phases(now_ns() - t0);
        if (ms == -2)
            break;
        int n = epoll_wait(R.epfd, evs, 512, ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = &R.c[evs[i].data.u32];
            if (c->st == CS_CONNECTING || c->st == CS_OPEN)
                handle_event(c, evs[i].events);
        }
    }
    R.t_end = now_ns() - t0;
    if (!R.in_window)
        R.t_win_start = R.t_end;   /* everything failed before the window */
    cpu_sample(&R.cpu1);
    R.rss_kb[2] = read_proc_rss(R.o.server_pid);
    read_epoll_watch(R.o.server_pid, &R.ep1);
}

/* ---- results ------------------------------------------------------------- */

/* " epoll_watch_start=A,B epoll_watch_end=C,D": the instances present at
 * both ends, paired by descriptor number. */
static void print_epoll_watch(void)
{
    const char *sep = " epoll_watch_start=";
    for (int i = 0; i < R.ep1.n; i++)
        for (int j = 0; j < R.ep0.n; j++)
            if (R.ep0.fd[j] == R.ep1.fd[i]) {
                printf("%s%d", sep, R.ep0.watched[j]);
                sep = ",";
            }
    sep = " epoll_watch_end=";
    for (int i = 0; i < R.ep1.n; i++)
        for (int j = 0; j < R.ep0.n; j++)
            if (R.ep0.fd[j] == R.ep1.fd[i]) {
                printf("%s%d", sep, R.ep1.watched[i]);
                sep = ",";
            }
}

static int print_results(void)
{
    int stalled = 0;
    /* With --count, connections may run out of budget before their turn. */
    for (int i = 0; i < R.total && R.o.count == 0; i++)
        if (R.c[i].st == CS_OPEN && !R.c[i].idle && R.c[i].win_done == 0)
            stalled++;
    double secs = (double)(R.t_end - R.t_win_start) / 1e9;
    double units = R.o.mode == MODE_PINGPONG ? (double)R.rtts
                                            : (double)R.bytes / (double)R.o.size;
    printf("conns=%d mode=%s size=%zu secs=%.3f rtts=%.0f rtt_per_s=%.0f mb_per_s=%.2f"
           " p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%" PRIu64 " mismatches=%" PRIu64
           " unserved=%" PRIu64 " stalled=%d connect_max_s=%.4f setup_s=%.3f client_cpu_s=%.2f",
           R.o.conns, R.o.mode == MODE_PINGPONG ? "pingpong" : "stream", R.o.size, secs,
           units, secs > 0 ? units / secs : 0, secs > 0 ? (double)R.bytes / secs / 1e6 : 0,
           h_percentile_us(0.50), h_percentile_us(0.99), h_percentile_us(0.999),
           R.errors, R.mismatches, R.unserved, stalled, (double)R.connect_max / 1e9,
           (double)R.t_setup_end / 1e9, R.cpu1.self_cpu - R.cpu0.self_cpu);
    if (R.o.idle)
        printf(" idle=%d", R.o.idle);
    if (R.rss_kb[0] >= 0 && R.rss_kb[1] >= 0 && R.rss_kb[2] >= 0) {
        /* Growth over the connections still open, measured once they have
         * all been served and again at the end of the window (after the
         * hold); a server that lost some is charged only for the rest. */
        int live = 0;
        for (int i = 0; i < R.total; i++)
            live += R.c[i].st == CS_OPEN;
        printf(" live=%d rss_start_kb=%ld rss_setup_kb=%ld rss_end_kb=%ld"
               " rss_per_conn_b=%.0f", live, R.rss_kb[0], R.rss_kb[1], R.rss_kb[2],
               live ? (double)(R.rss_kb[2] - R.rss_kb[0]) * 1024.0 / live : 0.0);
    }
    if (R.o.server_pid > 0 && R.cpu0.ok && R.cpu1.ok) {
        double tck = (double)sysconf(_SC_CLK_TCK);
        double us = (double)(R.cpu1.utime - R.cpu0.utime) / tck;
        double sy = (double)(R.cpu1.stime - R.cpu0.stime) / tck;
        double per = units > 0 ? 1e6 / units : 0;
        printf(" server_user_s=%.2f server_sys_s=%.2f user_us_per_rtt=%.3f"
               " sys_us_per_rtt=%.3f cpu_us_per_rtt=%.3f",
               us, sy, us * per, sy * per, (us + sy) * per);
        if (R.cpu0.run_ok && R.cpu1.run_ok) {
            double run = (double)(R.cpu1.run_ns - R.cpu0.run_ns) / 1e9;
            printf(" server_run_s=%.3f run_us_per_rtt=%.3f server_threads=%d thread_run_s=",
                   run, run * per, R.cpu1.ntasks);
            for (int i = 0; i < R.cpu1.ntasks; i++)
                printf("%s%.3f", i ? "," : "", (double)task_window_ns(i) / 1e9);
        }
        print_epoll_watch();
    } else if (R.o.server_pid > 0) {
        fprintf(stderr, "loadgen: cannot read /proc/%ld/stat\n", R.o.server_pid);
        R.errors++;
    }
    putchar('\n');
    fflush(stdout);
    if (R.mismatches)
        return 2;
    if (stalled)
        fprintf(stderr, "loadgen: %d connection(s) made no progress in the window\n",
                stalled);
    if (R.o.count && R.rtts < R.o.count)
        fprintf(stderr, "loadgen: only %" PRIu64 " of %" PRIu64
                " round trips within --duration\n", R.rtts, R.o.count);
    bool short_count = R.o.count && R.rtts < R.o.count;
    bool no_traffic = R.o.conns > 0 && units == 0;
    return R.errors || R.unserved || stalled || no_traffic || short_count ? 1 : 0;
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: loadgen [options]\n"
"Drives an echo server and checks every echoed byte.\n"
"\n"
"  -H, --host HOST        server host (default 127.0.0.1)\n"
"  -p, --port PORT        server TCP port (required unless --unix)\n"
"  -u, --unix PATH        connect to a Unix stream socket instead\n"
"  -c, --conns N          concurrent connections (default 1; 0 with --idle)\n"
"  -i, --idle N           open N more connections first; each sends one\n"
"                         message, checks its echo, then stays silent to the\n"
"                         end (the window then only holds them if -c 0)\n"
"  -n, --count N          ping-pong: end the window after exactly N round\n"
"                         trips in all (no message starts beyond N); the\n"
"                         warm-up is skipped and --duration is a time limit\n"
"  -s, --size BYTES       message size (ping-pong) or write size (stream),\n"
"                         1 .. %u (default 64)\n"
"  -d, --duration SECS    length of the measurement window (default 5)\n"
"  -m, --mode MODE        pingpong: each connection sends one message, waits\n"
"                         for its whole echo, then sends the next (default);\n"
"                         stream: each connection keeps up to --window bytes\n"
"                         in flight and checks the echo as it arrives\n"
"  -w, --window BYTES     stream mode: bytes in flight per connection\n"
"                         (default 262144)\n"
"  -P, --server-pid PID   report the server's user and system CPU during the\n"
"                         window, from /proc/PID/stat, and its memory\n"
"                         (VmRSS of /proc/PID/status)\n"
"  -b, --batch N          connections being set up at once (connect() called,\n"
"                         first echo not yet received), default 256\n"
"  -T, --setup-timeout S  connections not served this many seconds after the\n"
"                         start count as errors (default 60)\n"
"  -W, --warmup SECS      traffic between setup and the window (default 0.5)\n"
"      --no-quickack      do not re-arm TCP_QUICKACK after each recv\n"
"  -h, --help             this text\n"
"\n"
"Output: one line of key=value pairs:\n"
"  conns mode size        the run's parameters\n"
"  secs                   measured window length\n"
"  rtts, rtt_per_s        round trips completed in the window, and per second\n"
"                         (stream mode: echoed bytes / size)\n"
"  mb_per_s               echoed bytes per second, in 10^6 bytes\n"
"  p50_us p99_us p999_us  latency percentiles: ping-pong, from sending a\n"
"                         message to receiving its last byte; stream, from\n"
"                         send() of a write to the echo of its last byte\n"
"  errors                 failed connects, resets, closes by the server\n"
"  mismatches             connections that got bytes they did not send\n"
"  unserved               connections not served within --setup-timeout\n"
"  stalled                live connections with no progress in the window\n"
"  connect_max_s          slowest time from connect() to the first echo\n"
"  setup_s                time until every connection had been served\n"
"  client_cpu_s           this program's CPU during the window\n"
"  with --server-pid:\n"
"  server_user_s server_sys_s   the server's CPU in the window, from\n"
"                         /proc/PID/stat (utime, stime: tick-sampled split)\n"
"  user_us_per_rtt sys_us_per_rtt cpu_us_per_rtt   the same per round trip\n"
"  server_run_s run_us_per_rtt  the server's precise run time, summed over\n"
"                         its threads (/proc/PID/task/*/schedstat)\n"
"  server_threads thread_run_s  its threads, and each one's run time in the\n"
"                         window (seconds, comma-separated, in tid order)\n"
"  epoll_watch_start epoll_watch_end   descriptors registered in each of the\n"
"                         server's epoll instances (one per event loop; in\n"
"                         fd order) before the first connect and at the end\n"
"                         of the window: the difference is the connections\n"
"                         each loop holds\n"
"  rss_start_kb rss_setup_kb rss_end_kb   the server's VmRSS before the\n"
"                         first connect, when every connection was served,\n"
"                         and at the end of the window\n"
"  live                   connections still open at the end\n"
"  rss_per_conn_b         (rss_end - rss_start) / live, in bytes\n"
"  idle                   with --idle: the number of idle connections\n"
"Exit status: 0 clean, 1 errors, unserved or stalled connections or no\n"
"traffic, 2 mismatches.\n",
            MAX_SIZE);
}

static double parse_num(const char *s, const char *what, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        die("bad value for %s", what);
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"host", required_argument, 0, 'H'},     {"port", required_argument, 0, 'p'},
        {"unix", required_argument, 0, 'u'},     {"conns", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},     {"duration", required_argument, 0, 'd'},
        {"mode", required_argument, 0, 'm'},     {"window", required_argument, 0, 'w'},
        {"server-pid", required_argument, 0, 'P'}, {"batch", required_argument, 0, 'b'},
        {"setup-timeout", required_argument, 0, 'T'},
        {"warmup", required_argument, 0, 'W'},   {"no-quickack", no_argument, 0, 'Q'},
        {"idle", required_argument, 0, 'i'},     {"count", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    struct options *o = &R.o;
    *o = (struct options){.host = "127.0.0.1", .conns = 1, .size = 64, .secs = 5,
                          .batch = 256, .setup_timeout = 60, .warmup = 0.5, .window = 256 << 10,
                          .quickack = true};
    int ch;
    while ((ch = getopt_long(argc, argv, "H:p:u:c:s:d:m:w:P:b:T:W:i:n:h", longs, 0)) != -1) {
        switch (ch) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = optarg; break;
        case 'u': o->upath = optarg; break;
        case 'c': o->conns = (int)parse_num(optarg, "--conns", 0, 1000000); break;
        case 'i': o->idle = (int)parse_num(optarg, "--idle", 0, 1000000); break;
        case 'n': o->count = (uint64_t)parse_num(optarg, "--count", 1, 1e15); break;
        case 's': o->size = (size_t)parse_num(optarg, "--size", 1, MAX_SIZE); break;
        case 'd': o->secs = parse_num(optarg, "--duration", 0.001, 1e6); break;
        case 'w': o->window = (size_t)parse_num(optarg, "--window", 1, 1 << 30); break;
        case 'P': o->server_pid = (long)parse_num(optarg, "--server-pid", 1, INT_MAX); break;
        case 'b': o->batch = (int)parse_num(optarg, "--batch", 1, 1000000); break;
        case 'T': o->setup_timeout = parse_num(optarg, "--setup-timeout", 0.001, 1e6); break;
        case 'W': o->warmup = parse_num(optarg, "--warmup", 0, 1e6); break;
        case 'Q': o->quickack = false; break;
        case 'm':
            if (strcmp(optarg, "pingpong") == 0)
                o->mode = MODE_PINGPONG;
            else if (strcmp(optarg, "stream") == 0)
                o->mode = MODE_STREAM;
            else
                die("unknown mode %s (pingpong or stream)", optarg);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(1);
        }
    }
    if (optind != argc)
        die("unexpected argument %s", argv[optind]);
    if (!o->port && !o->upath)
        die("give --port PORT or --unix PATH (see --help)");
    if (o->conns + o->idle == 0)
        die("no connections: give --conns or --idle");
    if (o->count && (o->mode != MODE_PINGPONG || o->conns == 0))
        die("--count needs ping-pong mode and active connections");
    if (o->count)
        o->warmup = 0;   /* time-based warm-up would make the count vary */
    R.total = o->idle + o->conns;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_fd_limit();
    resolve();
    pattern_init();
    R.c = calloc((size_t)R.total, sizeof *R.c);
    if (!R.c)
        die("out of memory");
    for (int i = 0; i < R.total; i++) {
        R.c[i].fd = -1;
        R.c[i].idle = i < R.o.idle;
        R.c[i].off = (uint32_t)(((uint64_t)i * 7919u) % PAT_PERIOD);
        if (R.o.mode == MODE_STREAM &&
            !(R.c[i].stamps = calloc(STAMPS, sizeof *R.c[i].stamps)))
            die("out of memory");
    }
    R.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (R.epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    R.rss_kb[0] = read_proc_rss(R.o.server_pid);
    read_epoll_watch(R.o.server_pid, &R.ep0);
    run_loop();
    int rc = print_results();
    for (int i = 0; i < R.total; i++) {
        if (R.c[i].fd >= 0)
            close(R.c[i].fd);
        free(R.c[i].stamps);
    }
    close(R.epfd);
    free(R.c);
    free(pat);
    return rc;
}
