/*
 * test_tls.c -- TLS dispatchers over real loopback sockets: our own client
 * and server, openssl s_server and s_client as peers we did not write,
 * certificate failures, async_chat over TLS, and closing at awkward times.
 *
 * The certificates are made once per run with the openssl command (a CA, a
 * leaf for localhost/127.0.0.1/::1 signed by it, the same leaf expired, and
 * a self-signed one) in a temporary directory removed at exit.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include <openssl/ssl.h>
#include <event2/dns.h>
#include <event2/util.h>

#define MIB (1024 * 1024)

/* ---- certificates, made once per run --------------------------------- */

static char cert_dir[256];
static char ca_crt[300], ca_key[300], srv_crt[300], srv_key[300];
static char expired_crt[300], self_crt[300];

static const char cert_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=asyncore test CA' "
    "  -addext basicConstraints=critical,CA:TRUE "
    "  -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt\n"
    "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost "
    "  -keyout server.key -out server.csr\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n"
    "basicConstraints=CA:FALSE\\n' >leaf.ext\n"
    "printf '[ca]\\ndefault_ca=test\\n[test]\\ndatabase=index.txt\\n"
    "new_certs_dir=.\\nserial=serial\\ndefault_md=sha256\\npolicy=any\\n"
    "unique_subject=no\\n[any]\\ncommonName=supplied\\n' >ca.cnf\n"
    ": >index.txt\n"
    "echo 01 >serial\n"
    "openssl ca -batch -notext -config ca.cnf -cert ca.crt -keyfile ca.key "
    "  -in server.csr -out server.crt -days 2 -extfile leaf.ext\n"
    /* OpenSSL 3.0's x509 cannot date a certificate in the past; ca can. */
    "openssl ca -batch -notext -config ca.cnf -cert ca.crt -keyfile ca.key "
    "  -in server.csr -out expired.crt -startdate 20200101000000Z "
    "  -enddate 20200102000000Z -extfile leaf.ext\n"
    "openssl req -x509 -key server.key -days 2 -subj /CN=localhost "
    "  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -out self.crt\n";

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", cert_dir, name);
}

static int make_certs(void)
{
    const char *tmp = getenv("TMPDIR");
    char cmd[1024];
    FILE *f;
    int rc;

    snprintf(cert_dir, sizeof(cert_dir), "%s/asyncore-tls-XXXXXX",
             tmp != NULL && strlen(tmp) < 200 ? tmp : "/tmp");
    if (mkdtemp(cert_dir) == NULL)
        return -1;
    path_in(cmd, sizeof(cmd), "make.sh");
    if ((f = fopen(cmd, "w")) == NULL)
        return -1;
    fputs(cert_script, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "sh '%s/make.sh' '%s' >'%s/make.log' 2>&1",
             cert_dir, cert_dir, cert_dir);
    rc = system(cmd);
    path_in(ca_crt, sizeof(ca_crt), "ca.crt");
    path_in(ca_key, sizeof(ca_key), "ca.key");
    path_in(srv_crt, sizeof(srv_crt), "server.crt");
    path_in(srv_key, sizeof(srv_key), "server.key");
    path_in(expired_crt, sizeof(expired_crt), "expired.crt");
    path_in(self_crt, sizeof(self_crt), "self.crt");
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/make.log' >&2", cert_dir);
        (void)system(cmd);
    }
    return rc == 0 ? 0 : -1;
}

static void remove_certs(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cert_dir);
    (void)system(cmd);
}

/* ---- contexts, freed after each test ----------------------------------- */

static asyncore_tls_context *contexts[8];
static int n_contexts;

static asyncore_tls_context *track(asyncore_tls_context *c)
{
    ck_assert_ptr_nonnull(c);
    ck_assert_int_lt(n_contexts, 8);
    contexts[n_contexts++] = c;
    return c;
}

static asyncore_tls_context *client_ctx(void)
{
    return track(asyncore_tls_client_context_new(ca_crt));
}

static asyncore_tls_context *server_ctx(const char *crt)
{
    return track(asyncore_tls_server_context_new(crt, srv_key));
}

static void contexts_free(void)
{
    while (n_contexts > 0)
        asyncore_tls_context_free(contexts[--n_contexts]);
}

/* ---- a peer: sends what it is given, keeps what comes ------------------- */

struct peer {
    const unsigned char *out;
    size_t out_len, out_off;
    unsigned char *in;
    size_t in_cap, in_len;
    size_t read_size;    /* most bytes per asyncore_recv (0: 64 KiB) */
    size_t close_at;     /* close once in_len reaches it (0: never) */
    int no_read;         /* readable() is false */
    int close_in_connect;
    int fin_in_connect;  /* shutdown(SHUT_WR) the raw socket: no close_notify */
    const unsigned char *greeting; /* server: sent on connect */
    size_t greeting_len;
    /* what happened */
    int connects, reads, closes, errors, destroys;
    int read_before_connect, hooks_after_close, connected_in_connect;
    int truncated, err;
    char op[16], reason[256];
};

static unsigned char scratch[65536];

static void peer_connect(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);

    p->connects++;
    p->connected_in_connect = asyncore_dispatcher_connected(d);
    ck_assert_int_eq(asyncore_dispatcher_connecting(d), 1);
    if (p->greeting != NULL)
        ck_assert_int_eq(asyncore_send(d, p->greeting, p->greeting_len),
                         (ssize_t)p->greeting_len);
    if (p->fin_in_connect)
        ck_assert_int_eq(shutdown(asyncore_dispatcher_fd(d), SHUT_WR), 0);
    if (p->close_in_connect)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static void peer_read(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    size_t size = p->read_size ? p->read_size : sizeof(scratch);
    unsigned char *at = scratch;
    ssize_t n;

    if (asyncore_dispatcher_closed(d))
        p->hooks_after_close++;
    if (p->connects == 0)
        p->read_before_connect++;
    p->reads++;
    if (p->in != NULL && p->in_len < p->in_cap) {
        at = p->in + p->in_len;
        if (size > p->in_cap - p->in_len)
            size = p->in_cap - p->in_len;
    }
    n = asyncore_recv(d, at, size);
    if (n <= 0)
        return;
    /* A peer with a buffer gets exactly what it expects, no more. */
    ck_assert_msg(p->in == NULL || at != scratch, "%zd unexpected bytes", n);
    p->in_len += (size_t)n;
    if (p->close_at != 0 && p->in_len >= p->close_at)
        ck_assert_int_eq(asyncore_close(d), 0);
}

static void peer_write(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    ssize_t n;

    if (asyncore_dispatcher_closed(d))
        p->hooks_after_close++;
    n = asyncore_send(d, p->out + p->out_off, p->out_len - p->out_off);
    if (n > 0) {
        /* One TLS record at most per send. */
        ck_assert_int_le(n, 16384);
        p->out_off += (size_t)n;
    }
}

static int peer_readable(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    return !p->no_read;
}

static int peer_writable(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    return p->out_off < p->out_len;
}

static int never(asyncore_dispatcher *d)
{
    (void)d;
    return 0;
}

static void note_reason(struct peer *p, asyncore_dispatcher *d)
{
    const char *r = asyncore_tls_last_error(d);
    snprintf(p->reason, sizeof(p->reason), "%s", r ? r : "");
}

static void peer_close(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    p->truncated = asyncore_tls_truncated(d);
    note_reason(p, d);
    ck_assert_int_eq(asyncore_close(d), 0);
}

static void peer_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct peer *p = asyncore_dispatcher_user_data(d);

    p->errors++;
    p->err = err;
    snprintf(p->op, sizeof(p->op), "%s", op);
    note_reason(p, d);
    ck_assert_int_eq(asyncore_close(d), 0);
}

static void peer_destroy(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    p->destroys++;
}

static const asyncore_handlers peer_handlers = {
    .handle_connect = peer_connect,
    .handle_read = peer_read,
    .handle_write = peer_write,
    .handle_close = peer_close,
    .handle_error = peer_error,
    .readable = peer_readable,
    .writable = peer_writable,
    .destroy = peer_destroy,
};

/* The server's side of a connection: a dispatcher_with_send that echoes. */
static void echo_read(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    ssize_t n;

    p->reads++;
    n = asyncore_recv(d, scratch, sizeof(scratch));
    if (n <= 0)
        return;
    p->in_len += (size_t)n;
    ck_assert_int_eq(asyncore_send(d, scratch, (size_t)n), n);
}

static const asyncore_handlers echo_handlers = {
    .handle_connect = peer_connect,
    .handle_read = echo_read,
    .handle_close = peer_close,
    .handle_error = peer_error,
    .readable = peer_readable,
    .destroy = peer_destroy,
};

/* ---- a TLS server ------------------------------------------------------- */

struct server {
    asyncore_tls_context *ctx;      /* NULL: plain TCP */
    const asyncore_handlers *child; /* a dispatcher_with_send's */
    const asyncore_chat_handlers *chat; /* or an async_chat */
    struct peer peer;               /* the (one) connection's record */
    asyncore_dispatcher *conn;
    int accepted;
    struct sockaddr_storage ss;
    socklen_t len;
};

static void server_accepted(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *a, socklen_t l)
{
    struct server *s = asyncore_dispatcher_user_data(d);
    asyncore_map *map = asyncore_dispatcher_map(d);
    asyncore_dispatcher *c;

    (void)a;
    (void)l;
    c = s->chat ? asyncore_chat_new(map, s->chat, &s->peer)
                : asyncore_dispatcher_with_send_new(map, s->child, &s->peer);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
    if (s->chat)
        ck_assert_int_eq(asyncore_chat_set_terminator(c, "\n", 1), 0);
    if (s->ctx != NULL) {
        ck_assert_int_eq(asyncore_tls_start_server(c, s->ctx), 0);
        /* Connected again only once the handshake is done. */
        ck_assert_int_eq(asyncore_dispatcher_connected(c), 0);
        ck_assert_int_eq(asyncore_dispatcher_connecting(c), 1);
    }
    s->conn = c;
    s->accepted++;
}

static const asyncore_handlers server_handlers = {
    .handle_accepted = server_accepted,
};

static void server_listen(struct server *s, int family)
{
    if (s->child == NULL && s->chat == NULL)
        s->child = &echo_handlers;
    th_listener(th_map, family, &server_handlers, s, &s->ss, &s->len);
}

/* A TLS client of @host at @ss; started before the TCP connect. */
static asyncore_dispatcher *client_new(struct peer *p, asyncore_tls_context *ctx,
                                       const char *host,
                                       const struct sockaddr_storage *ss,
                                       socklen_t len)
{
    asyncore_dispatcher *c = asyncore_dispatcher_new(th_map, &peer_handlers, p);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_create_socket(c, ss->ss_family, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(c, ctx, host), 0);
    ck_assert_int_eq(asyncore_connect(c, (const struct sockaddr *)ss, len), 0);
    ck_assert_int_eq(asyncore_dispatcher_connected(c), 0);
    return c;
}

/* Loop until @cond(@arg) holds or @seconds pass; returns @cond(@arg). */
static int loop_while_not(int (*cond)(void *), void *arg, double seconds)
{
    double end = th_now() + seconds;

    while (!cond(arg) && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    return cond(arg);
}

static int peer_done(void *arg)
{
    const struct peer *p = arg;
    return p->closes + p->errors > 0 || p->destroys > 0;
}

static int peers_done(void *arg)
{
    struct peer **pp = arg;
    return peer_done(pp[0]) && peer_done(pp[1]);
}

/* The end of every test: what is still open is closed while the test's
 * locals, which its hooks write to (destroy counts), still exist. */
static void settle(void)
{
    ck_assert_int_eq(asyncore_close_all(th_map), 0);
}

#define FAMILY_OR_SKIP()                                                   \
    int family = th_family(_i);                                            \
    if (th_skip_family(family))                                            \
        return

/* Random-looking bytes, the same on both sides of a comparison. */
static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);
    uint32_t x = seed * 2654435761u + 1;
    size_t i;

    ck_assert_ptr_nonnull(b);
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16);
    }
    return b;
}

/* ---- handshake and data --------------------------------------------------- */

START_TEST(handshake_runs_handle_connect_once_on_each_side_then_data_flows)
{
    static const unsigned char ping[] = "ping over TLS";
    struct server s = { 0 };
    struct peer c = { 0 };
    unsigned char in[64];
    asyncore_dispatcher *d;
    struct peer *both[2] = { &c, &s.peer };
    FAMILY_OR_SKIP();

    s.ctx = server_ctx(srv_crt);
    server_listen(&s, family);
    c.out = ping;
    c.out_len = sizeof(ping);
    c.in = in;
    c.in_cap = sizeof(in);
    c.close_at = sizeof(ping);
    d = client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    ck_assert_ptr_nonnull(asyncore_tls_ssl(d));
    ck_assert(loop_while_not(peers_done, both, 10.0));
    /* The client closed after its echo; the server saw close_notify. */
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_int_eq(c.connected_in_connect, 0); /* asyncore's order */
    ck_assert_int_eq(c.read_before_connect, 0);
    ck_assert_int_eq(s.peer.read_before_connect, 0);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_uint_eq(c.in_len, sizeof(ping));
    ck_assert_mem_eq(in, ping, sizeof(ping));
    ck_assert_uint_eq(s.peer.in_len, sizeof(ping));
    ck_assert_int_eq(s.peer.closes, 1);
    ck_assert_int_eq(s.peer.truncated, 0);
    ck_assert_int_eq(c.destroys, 1);
    settle();
}
END_TEST

START_TEST(four_mebibytes_each_way_arrive_byte_exact)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    unsigned char *data = pattern(4 * MIB, (unsigned)_i + 1);
    unsigned char *in = malloc(4 * MIB);
    struct peer *both[2] = { &c, &s.peer };
    FAMILY_OR_SKIP();

    ck_assert_ptr_nonnull(in);
    s.ctx = server_ctx(srv_crt);
    server_listen(&s, family);
    c.out = data;
    c.out_len = 4 * MIB;
    c.in = in;
    c.in_cap = 4 * MIB;
    c.close_at = 4 * MIB;
    client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    ck_assert(loop_while_not(peers_done, both, 120.0));
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_uint_eq(c.out_off, 4 * MIB);
    ck_assert_uint_eq(s.peer.in_len, 4 * MIB);
    ck_assert_uint_eq(c.in_len, 4 * MIB);
    ck_assert(memcmp(in, data, 4 * MIB) == 0);
    free(data);
    free(in);
    settle();
}
END_TEST

/* One record of 16000 bytes, read 100 at a time: after the first read the
 * rest sits decrypted inside OpenSSL and the socket never becomes readable
 * for it again. */
START_TEST(plaintext_buffered_in_openssl_is_delivered_while_readable)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    unsigned char *greeting = pattern(16000, 7);
    unsigned char in[16000];
    asyncore_dispatcher *d;
    int reads;

    s.ctx = server_ctx(srv_crt);
    s.peer.greeting = greeting;
    s.peer.greeting_len = 16000;
    server_listen(&s, AF_INET);
    c.in = in;
    c.in_cap = sizeof(in);
    c.read_size = 100;
    c.close_at = 0;
    d = client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    /* Wait for the first read, then stop reading for a while: no hook may
     * run for the buffered bytes, and the loop must not spin on them. */
    while (c.in_len == 0 && c.errors == 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    c.no_read = 1;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    reads = c.reads;
    th_loop_for(th_map, 0.2);
    ck_assert_int_eq(c.reads, reads);
    ck_assert_uint_lt(c.in_len, 16000);
    /* Readable again: everything arrives, although the server sends
     * nothing more and keeps the connection open. */
    c.no_read = 0;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    {
        double end = th_now() + 10.0;
        while (c.in_len < 16000 && th_now() < end)
            ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    }
    ck_assert_uint_eq(c.in_len, 16000);
    ck_assert_mem_eq(in, greeting, 16000);
    ck_assert_int_ge(c.reads, 160);
    ck_assert_int_eq(c.errors + s.peer.errors + c.closes + s.peer.closes, 0);
    free(greeting);
    settle();
}
END_TEST

/* The transport owns the interest while connecting: a client whose
 * readable() and writable() are both false until it is connected, and a
 * server that never wants to write, still shake hands. */
static const asyncore_handlers sink_handlers = {
    .handle_connect = peer_connect,
    .handle_read = peer_read,
    .handle_close = peer_close,
    .handle_error = peer_error,
    .readable = peer_readable,
    .writable = never,
    .destroy = peer_destroy,
};

START_TEST(predicates_that_refuse_a_direction_do_not_stall_the_handshake)
{
    static const unsigned char msg[] = "one way";
    struct server s = { 0 };
    struct peer c = { 0 };
    double end;

    s.ctx = server_ctx(srv_crt);
    s.child = &sink_handlers;
    server_listen(&s, AF_INET);
    c.no_read = 1;
    c.greeting = msg; /* sent from handle_connect; nothing to write before */
    c.greeting_len = sizeof(msg);
    client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    end = th_now() + 10.0;
    while (s.peer.in_len < sizeof(msg) && th_now() < end &&
           c.errors + s.peer.errors == 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.02), 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_uint_eq(s.peer.in_len, sizeof(msg));
    ck_assert_int_eq(c.reads, 0);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    settle();
}
END_TEST

/* ---- peers we did not write ---------------------------------------------- */

/* Run @argv with stdin from @in (or /dev/null) and stdout/stderr to
 * files; returns the pid. */
static pid_t spawn(char *const argv[], const char *in, const char *out,
                   const char *err)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int i = open(in ? in : "/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 ||
            dup2(e, 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait for @pid at most @seconds, running the map meanwhile; kill it if it
 * did not exit.  Returns its wait status, or -1 if it had to be killed. */
static int reap(pid_t pid, double seconds)
{
    double end = th_now() + seconds;
    int status;

    while (th_now() < end) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        if (asyncore_map_count(th_map) > 0)
            ck_assert_int_eq(asyncore_poll(th_map, 0.02), 0);
        else
            usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static size_t read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    buf[0] = '\0';
    if (f == NULL)
        return 0;
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

START_TEST(client_talks_to_openssl_s_server)
{
    static const unsigned char line[] = "hello tls\n";
    char out[300], err[300], text[4096], *p;
    char *argv[] = { "openssl", "s_server", "-accept", "127.0.0.1:0",
                     "-cert", srv_crt, "-key", srv_key, "-rev",
                     "-naccept", "1", NULL };
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct peer c = { 0 };
    unsigned char in[64];
    unsigned port = 0;
    double end;
    pid_t pid;

    path_in(out, sizeof(out), "s_server.out");
    path_in(err, sizeof(err), "s_server.err");
    pid = spawn(argv, NULL, out, err);
    for (end = th_now() + 10.0; port == 0 && th_now() < end; usleep(20000)) {
        read_file(out, text, sizeof(text));
        if ((p = strstr(text, "ACCEPT 127.0.0.1:")) != NULL)
            port = (unsigned)atoi(p + strlen("ACCEPT 127.0.0.1:"));
    }
    ck_assert_msg(port != 0, "s_server did not start: %s", text);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    c.out = line;
    c.out_len = sizeof(line) - 1;
    c.in = in;
    c.in_cap = sizeof(in);
    c.close_at = sizeof(line) - 1;
    client_new(&c, client_ctx(), "localhost", (struct sockaddr_storage *)&sin,
               sizeof(sin));
    ck_assert(loop_while_not(peer_done, &c, 10.0));
    /* -naccept 1: it exits once we are gone. */
    ck_assert_int_ne(reap(pid, 10.0), -1);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_uint_eq(c.in_len, sizeof(line) - 1);
    ck_assert_mem_eq(in, "slt olleh\n", sizeof(line) - 1); /* -rev */
    settle();
}
END_TEST

/* An async_chat line server: echoes lines, says BYE to QUIT and closes. */
static char line_buf[256];
static size_t line_len;

static void line_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    ck_assert_uint_le(line_len + len, sizeof(line_buf));
    memcpy(line_buf + line_len, data, len);
    line_len += len;
}

static void line_found(asyncore_dispatcher *d)
{
    if (line_len == 4 && memcmp(line_buf, "QUIT", 4) == 0) {
        ck_assert_int_eq(asyncore_chat_push(d, "BYE\n", 4), 0);
        ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
    } else {
        ck_assert_int_eq(asyncore_chat_push(d, line_buf, line_len), 0);
        ck_assert_int_eq(asyncore_chat_push(d, "\n", 1), 0);
    }
    line_len = 0;
}

static void chat_server_connect(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    p->connects++;
}

static void chat_server_close(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    p->truncated = asyncore_tls_truncated(d);
    asyncore_chat_handle_close(d);
}

static const asyncore_chat_handlers line_server = {
    .dispatcher = {
        .handle_connect = chat_server_connect,
        .handle_close = chat_server_close,
        .handle_error = peer_error,
        .destroy = peer_destroy,
    },
    .collect_incoming_data = line_collect,
    .found_terminator = line_found,
};

START_TEST(server_talks_to_openssl_s_client)
{
    char port[16], connect_to[64], in[300], out[300], err[300], text[4096];
    char *argv[] = { "openssl", "s_client", "-connect", connect_to, "-quiet",
                     "-CAfile", ca_crt, "-verify_hostname", "localhost",
                     "-verify_return_error", "-servername", "localhost", NULL };
    struct server s = { 0 };
    FILE *f;
    pid_t pid;
    int status;

    line_len = 0;
    s.ctx = server_ctx(srv_crt);
    s.chat = &line_server;
    server_listen(&s, AF_INET);
    snprintf(port, sizeof(port), "%u",
             ntohs(((struct sockaddr_in *)&s.ss)->sin_port));
    snprintf(connect_to, sizeof(connect_to), "127.0.0.1:%s", port);
    path_in(in, sizeof(in), "s_client.in");
    path_in(out, sizeof(out), "s_client.out");
    path_in(err, sizeof(err), "s_client.err");
    ck_assert_ptr_nonnull(f = fopen(in, "w"));
    fputs("hello\nQUIT\n", f);
    fclose(f);
    pid = spawn(argv, in, out, err);
    /* -quiet ignores its end of input: it leaves when we close. */
    status = reap(pid, 20.0);
    read_file(err, text, sizeof(text));
    ck_assert_msg(status != -1, "s_client did not finish: %s", text);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "s_client failed: %s", text);
    read_file(out, text, sizeof(text));
    ck_assert_str_eq(text, "hello\nBYE\n");
    ck_assert_int_eq(s.accepted, 1);
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_int_eq(s.peer.errors, 0);
    ck_assert_int_eq(s.peer.destroys, 1);
    settle();
}
END_TEST

/* ---- how connections end -------------------------------------------------- */

START_TEST(peer_closing_without_close_notify_is_handle_close_marked_truncated)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    s.ctx = server_ctx(srv_crt);
    s.peer.fin_in_connect = 1; /* TCP FIN, no close_notify */
    server_listen(&s, AF_INET);
    client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    ck_assert(loop_while_not(peer_done, &c, 10.0));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(c.truncated, 1);
    ck_assert_msg(strstr(c.reason, "unexpected eof") != NULL, "%s", c.reason);
    settle();
}
END_TEST

START_TEST(close_inside_handle_connect_sends_close_notify)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    struct peer *both[2] = { &c, &s.peer };

    s.ctx = server_ctx(srv_crt);
    server_listen(&s, AF_INET);
    c.close_in_connect = 1;
    client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    ck_assert(loop_while_not(peers_done, both, 10.0));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.reads + c.closes + c.errors + c.hooks_after_close, 0);
    ck_assert_int_eq(c.destroys, 1);
    /* The server had its handshake too, then a clean end of stream. */
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_int_eq(s.peer.closes, 1);
    ck_assert_int_eq(s.peer.errors, 0);
    ck_assert_int_eq(s.peer.truncated, 0);
    settle();
}
END_TEST

static int readable_fd(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

/* A TCP server that accepts and never answers: the client is stuck in
 * the middle of its handshake, and is closed there. */
START_TEST(close_in_the_middle_of_the_handshake_is_safe)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct peer c = { 0 };
    unsigned char hello[8];
    asyncore_dispatcher *d;
    int lfd = th_raw_listener(AF_INET, &ss, &len), sfd = -1;
    double end = th_now() + 10.0;

    d = client_new(&c, client_ctx(), "localhost", &ss, len);
    while ((sfd < 0 || !readable_fd(sfd)) && th_now() < end) {
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
        if (sfd < 0)
            sfd = th_raw_accept(lfd, 0);
    }
    ck_assert_int_ge(sfd, 0);
    ck_assert(readable_fd(sfd));
    ck_assert_int_eq(asyncore_dispatcher_connecting(d), 1);
    ck_assert_int_eq(asyncore_close(d), 0);
    ck_assert_int_eq(c.connects + c.closes + c.errors + c.reads, 0);
    ck_assert_int_eq(c.destroys, 1);
    /* The peer got a ClientHello (a handshake record), then the end. */
    ck_assert_int_eq(recv(sfd, hello, 1, 0), 1);
    ck_assert_int_eq(hello[0], 0x16);
    while (recv(sfd, hello, sizeof(hello), MSG_DONTWAIT) > 0)
        ;
    close(sfd);
    close(lfd);
    settle();
}
END_TEST

/* ---- certificate verification --------------------------------------------- */

/* Run a client of @host against a server presenting @crt; both outcomes
 * are left in @c and @s. */
static void verify_case(struct peer *c, struct server *s,
                        asyncore_tls_context *cctx, const char *crt,
                        const char *host)
{
    struct peer *both[2] = { c, &s->peer };

    s->ctx = server_ctx(crt);
    server_listen(s, AF_INET);
    c->out = (const unsigned char *)"x";
    c->out_len = 1;
    c->close_at = 1;
    client_new(c, cctx, host, &s->ss, s->len);
    ck_assert(loop_while_not(peers_done, both, 10.0));
}

/* The client's verdict was refusal: EACCES with op "tls", no connect; the
 * server heard the client's alert. */
static void assert_refused(const struct peer *c, const struct server *s,
                           const char *why)
{
    ck_assert_int_eq(c->errors, 1);
    ck_assert_int_eq(c->err, EACCES);
    ck_assert_str_eq(c->op, "tls");
    ck_assert_int_eq(c->connects, 0);
    ck_assert_msg(strstr(c->reason, "certificate verify failed") != NULL &&
                      strstr(c->reason, why) != NULL,
                  "reason: %s", c->reason);
    ck_assert_int_eq(s->peer.connects, 0);
    ck_assert_int_eq(s->peer.errors, 1);
    ck_assert_str_eq(s->peer.op, "tls");
    ck_assert_int_eq(s->peer.err, EPROTO);
    ck_assert_msg(strstr(s->peer.reason, "alert") != NULL, "server: %s",
                  s->peer.reason);
}

START_TEST(wrong_host_name_is_refused_with_eacces)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, client_ctx(), srv_crt, "wrong.example");
    assert_refused(&c, &s, "hostname mismatch");
    settle();
}
END_TEST

START_TEST(wrong_ip_address_is_refused_with_eacces)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, client_ctx(), srv_crt, "127.0.0.2");
    assert_refused(&c, &s, "IP address mismatch");
    settle();
}
END_TEST

START_TEST(certificate_for_the_ip_address_is_accepted)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, client_ctx(), srv_crt, "127.0.0.1");
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_uint_eq(c.in_len, 1);
    settle();
}
END_TEST

START_TEST(untrusted_certificate_is_refused_with_eacces)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, client_ctx(), self_crt, "localhost");
    assert_refused(&c, &s, "self");
    settle();
}
END_TEST

START_TEST(expired_certificate_is_refused_with_eacces)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, client_ctx(), expired_crt, "localhost");
    assert_refused(&c, &s, "expired");
    settle();
}
END_TEST

START_TEST(system_trust_store_does_not_know_the_test_ca)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    verify_case(&c, &s, track(asyncore_tls_client_context_new(NULL)), srv_crt,
                "localhost");
    assert_refused(&c, &s, "local issuer");
    settle();
}
END_TEST

START_TEST(verification_off_accepts_an_untrusted_certificate)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_tls_context *cctx = client_ctx();

    ck_assert_int_eq(asyncore_tls_set_verify(cctx, 0), 0);
    verify_case(&c, &s, cctx, self_crt, NULL);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_uint_eq(c.in_len, 1);
    settle();
}
END_TEST

START_TEST(ca_loaded_later_makes_a_certificate_trusted)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_tls_context *cctx = track(asyncore_tls_client_context_new(NULL));

    ck_assert_int_eq(asyncore_tls_load_ca(cctx, ca_crt, NULL), 0);
    verify_case(&c, &s, cctx, srv_crt, "localhost");
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_int_eq(c.connects, 1);
    settle();
}
END_TEST

/* A server that requires client certificates: a client without one is
 * refused (EACCES on the server); a client presenting one the server
 * trusts gets in.  In TLS 1.3 the client's handshake is over before the
 * server judges it, so the client hears of the refusal as an alert on its
 * first read. */
static void client_cert_case(struct peer *c, struct server *s, int with_cert)
{
    asyncore_tls_context *cctx = client_ctx();
    struct peer *both[2] = { c, &s->peer };

    if (with_cert) {
        SSL_CTX *ssl_ctx = asyncore_tls_context_ssl_ctx(cctx);
        ck_assert_int_eq(SSL_CTX_use_certificate_file(ssl_ctx, srv_crt,
                                                      SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ssl_ctx, srv_key,
                                                     SSL_FILETYPE_PEM), 1);
    }
    s->ctx = server_ctx(srv_crt);
    ck_assert_int_eq(asyncore_tls_set_verify(s->ctx, 1), 0);
    ck_assert_int_eq(asyncore_tls_load_ca(s->ctx, ca_crt, NULL), 0);
    server_listen(s, AF_INET);
    if (with_cert) {
        c->out = (const unsigned char *)"x";
        c->out_len = 1;
        c->close_at = 1;
    }
    client_new(c, cctx, "localhost", &s->ss, s->len);
    ck_assert(loop_while_not(peers_done, both, 10.0));
}

START_TEST(server_requiring_a_certificate_refuses_a_client_without_one)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    client_cert_case(&c, &s, 0);
    ck_assert_int_eq(s.peer.errors, 1);
    ck_assert_int_eq(s.peer.err, EACCES);
    ck_assert_str_eq(s.peer.op, "tls");
    ck_assert_int_eq(s.peer.connects, 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, EPROTO);
    ck_assert_str_eq(c.op, "recv");
    ck_assert_msg(strstr(c.reason, "alert") != NULL, "%s", c.reason);
    settle();
}
END_TEST

START_TEST(server_requiring_a_certificate_accepts_a_trusted_one)
{
    struct server s = { 0 };
    struct peer c = { 0 };

    client_cert_case(&c, &s, 1);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_uint_eq(c.in_len, 1);
    settle();
}
END_TEST

/* With asyncore's default handle_error, the log line names OpenSSL's
 * reason, not only errno's text ("Permission denied"). */
static const asyncore_handlers default_error_client = {
    .handle_connect = peer_connect,
    .handle_read = peer_read,
    .destroy = peer_destroy,
};

START_TEST(default_handle_error_logs_the_tls_reason)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_dispatcher *d;

    th_log_capture(th_map);
    s.ctx = server_ctx(srv_crt);
    server_listen(&s, AF_INET);
    d = asyncore_dispatcher_new(th_map, &default_error_client, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "wrong.example"), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&s.ss, s.len), 0);
    ck_assert(loop_while_not(peer_done, &c, 10.0));
    ck_assert_int_eq(c.connects, 0);
    ck_assert_int_eq(th_log_count("(tls: errno 13: Permission denied: "
                                  "certificate verify failed: hostname mismatch)"),
                     1);
    settle();
}
END_TEST

/* ---- handshake failures seen by the server --------------------------------- */

/* A raw TCP client sends @data (may be NULL) then closes; the server's
 * outcome is left in @s. */
static void raw_client_case(struct server *s, const char *data)
{
    int fd;
    double end;

    s->ctx = server_ctx(srv_crt);
    server_listen(s, AF_INET);
    fd = th_raw_connect(&s->ss, s->len);
    if (data != NULL)
        ck_assert_int_eq(send(fd, data, strlen(data), 0), (ssize_t)strlen(data));
    end = th_now() + 10.0;
    while (s->accepted == 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    if (data == NULL)
        close(fd);
    ck_assert(loop_while_not(peer_done, &s->peer, 10.0));
    if (data != NULL)
        close(fd);
}

START_TEST(plaintext_client_is_a_handshake_error_eproto)
{
    struct server s = { 0 };

    raw_client_case(&s, "GET / HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(s.peer.errors, 1);
    ck_assert_int_eq(s.peer.err, EPROTO);
    ck_assert_str_eq(s.peer.op, "tls");
    ck_assert_int_eq(s.peer.connects, 0);
    ck_assert_msg(strstr(s.peer.reason, "http request") != NULL, "%s",
                  s.peer.reason);
    settle();
}
END_TEST

START_TEST(peer_leaving_during_the_handshake_is_econnaborted)
{
    struct server s = { 0 };

    raw_client_case(&s, NULL);
    ck_assert_int_eq(s.peer.errors, 1);
    ck_assert_int_eq(s.peer.err, ECONNABORTED);
    ck_assert_str_eq(s.peer.op, "tls");
    ck_assert_int_eq(s.peer.connects + s.peer.closes, 0);
    settle();
}
END_TEST

START_TEST(refused_tcp_connect_stays_a_connect_error)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct peer c = { 0 };
    asyncore_dispatcher *d;
    int lfd = th_raw_listener(AF_INET, &ss, &len);

    close(lfd); /* nobody listens on that port now */
    d = asyncore_dispatcher_new(th_map, &peer_handlers, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    if (asyncore_connect(d, (struct sockaddr *)&ss, len) < 0) {
        ck_assert_int_eq(errno, ECONNREFUSED);
        ck_assert_int_eq(asyncore_close(d), 0);
    } else {
        ck_assert(loop_while_not(peer_done, &c, 10.0));
        ck_assert_int_eq(c.errors, 1);
        ck_assert_int_eq(c.err, ECONNREFUSED);
        ck_assert_str_eq(c.op, "connect");
    }
    ck_assert_int_eq(c.connects, 0);
    settle();
}
END_TEST

/* A server that takes the connection (the kernel does, from the backlog)
 * but never answers the ClientHello: the connect timeout covers the
 * handshake, since handle_connect means "TLS is up". */
START_TEST(connect_timeout_covers_a_stalled_handshake)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct peer c = { 0 };
    asyncore_dispatcher *d;
    int lfd = th_raw_listener(AF_INET, &ss, &len);

    d = asyncore_dispatcher_new(th_map, &peer_handlers, &c);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(asyncore_set_connect_timeout(d, 0.3), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&ss, len), 0);
    ck_assert(loop_while_not(peer_done, &c, 10.0));
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_str_eq(c.op, "connect");
    ck_assert_int_eq(c.connects, 0);
    close(lfd);
    settle();
}
END_TEST

/* The handshake done, the connect timeout is over: a connection that then
 * stays quiet for longer is not timed out. */
START_TEST(connect_timeout_ends_with_the_handshake)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_dispatcher *d;
    double until;

    s.ctx = server_ctx(srv_crt);
    server_listen(&s, AF_INET);
    d = client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    ck_assert_int_eq(asyncore_set_connect_timeout(d, 0.2), 0);
    ck_assert(th_loop_until(th_map, &c.connects, 10));
    until = th_now() + 0.5;
    while (th_now() < until)
        ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(c.connects, 1);
    ck_assert(asyncore_dispatcher_connected(d));
    settle();
}
END_TEST

/* ---- ways to start ----------------------------------------------------------- */

/* Both ends of a socketpair adopted, then upgraded: the client on a
 * connected socket, the server on an adopted one. */
START_TEST(connected_sockets_upgrade_and_connect_again_after_the_handshake)
{
    static const unsigned char msg[] = "upgraded";
    struct peer c = { 0 }, s = { 0 };
    struct peer *both[2] = { &c, &s };
    asyncore_dispatcher *cd, *sd;
    unsigned char in[32];
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cd = asyncore_dispatcher_new(th_map, &peer_handlers, &c);
    sd = asyncore_dispatcher_with_send_new(th_map, &echo_handlers, &s);
    ck_assert_int_eq(asyncore_set_socket(cd, sv[0]), 0);
    ck_assert_int_eq(asyncore_set_socket(sd, sv[1]), 0);
    ck_assert_int_eq(asyncore_dispatcher_connected(cd), 1);
    ck_assert_int_eq(asyncore_tls_start_client(cd, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(asyncore_tls_start_server(sd, server_ctx(srv_crt)), 0);
    ck_assert_int_eq(asyncore_dispatcher_connected(cd), 0);
    ck_assert_int_eq(asyncore_dispatcher_connecting(cd), 1);
    c.out = msg;
    c.out_len = sizeof(msg);
    c.in = in;
    c.in_cap = sizeof(in);
    c.close_at = sizeof(msg);
    ck_assert(loop_while_not(peers_done, both, 10.0));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(s.connects, 1);
    ck_assert_int_eq(c.errors + s.errors, 0);
    ck_assert_mem_eq(in, msg, sizeof(msg));
    settle();
}
END_TEST

/* Started before the dispatcher has a socket; connect_host makes one. */
START_TEST(client_started_before_its_socket_exists_connects_by_host)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_dispatcher *d;
    unsigned char in[8];
    struct peer *both[2] = { &c, &s.peer };

    s.ctx = server_ctx(srv_crt);
    server_listen(&s, AF_INET);
    d = asyncore_dispatcher_new(th_map, &peer_handlers, &c);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(
        asyncore_connect_host(d, "127.0.0.1",
                              ntohs(((struct sockaddr_in *)&s.ss)->sin_port)),
        0);
    c.out = (const unsigned char *)"abc";
    c.out_len = 3;
    c.in = in;
    c.in_cap = sizeof(in);
    c.close_at = 3;
    ck_assert(loop_while_not(peers_done, both, 10.0));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_mem_eq(in, "abc", 3);
    settle();
}
END_TEST

/* The family evdns gives first for @name (answered from its hosts file). */
static void first_family_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    ck_assert_int_eq(result, 0);
    ck_assert_ptr_nonnull(res);
    *(int *)arg = res->ai_family;
    evutil_freeaddrinfo(res);
}

static int first_family(struct evdns_base *dns, const char *name)
{
    struct evutil_addrinfo hints = { 0 };
    int family = 0;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    (void)evdns_getaddrinfo(dns, name, "1", &hints, first_family_cb, &family);
    ck_assert(th_loop_until(th_map, &family, 5));
    return family;
}

/* Held @d closed, and the server's side of it done. */
static asyncore_dispatcher *held;

static int held_closed_and_server_done(void *arg)
{
    return asyncore_dispatcher_closed(held) && peer_done(arg);
}

/* A name whose first address refuses: the client goes on to the next
 * address, and the handshake runs on the socket that connected. */
START_TEST(connect_by_name_moves_past_a_refused_address)
{
    char path[] = "/tmp/asyncore-tls-hosts-XXXXXX";
    struct server s = { 0 };
    struct peer c = { 0 };
    struct evdns_base *dns;
    asyncore_dispatcher *d;
    unsigned char in[8];
    unsigned port;
    int fd, first, refused;
    FILE *f;

    if (th_skip_family(AF_INET6))
        return;
    dns = evdns_base_new(asyncore_map_base(th_map), 0);
    ck_assert_ptr_nonnull(dns);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("127.0.0.1\tdual.test\n::1\tdual.test\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(evdns_base_load_hosts(dns, path), 0);
    unlink(path);
    ck_assert_int_eq(asyncore_map_set_dns(th_map, dns), 0);

    /* The server on the family tried second, a refuser on the first. */
    first = first_family(dns, "dual.test");
    s.ctx = server_ctx(srv_crt);
    s.child = &echo_handlers;
    for (int tries = 0;; tries++) {
        int second = first == AF_INET ? AF_INET6 : AF_INET;
        asyncore_dispatcher *l = th_listener(th_map, second, &server_handlers,
                                             &s, &s.ss, &s.len);

        port = ntohs(s.ss.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&s.ss)->sin6_port
                         : ((struct sockaddr_in *)&s.ss)->sin_port);
        refused = th_refuser(first == AF_INET6 ? "::1" : "127.0.0.1", port);
        if (refused >= 0)
            break;
        ck_assert_int_lt(tries, 20); /* a free port pair comes soon */
        ck_assert_int_eq(asyncore_close(l), 0);
    }

    d = asyncore_dispatcher_new(th_map, &peer_handlers, &c);
    ck_assert_int_eq(asyncore_dispatcher_hold(d), 0); /* read after close */
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(asyncore_connect_host(d, "dual.test", port), 0);
    c.out = (const unsigned char *)"abc";
    c.out_len = 3;
    c.in = in;
    c.in_cap = sizeof(in);
    c.close_at = 3;
    held = d;
    ck_assert(loop_while_not(held_closed_and_server_done, &s.peer, 10.0));
    ck_assert_int_eq(c.connects, 1);
    ck_assert_int_eq(c.errors + s.peer.errors, 0);
    ck_assert_mem_eq(in, "abc", 3);
    ck_assert_int_eq(s.accepted, 1);
    /* The refusal happened, and was not the end of it. */
    ck_assert_int_eq(asyncore_dispatcher_last_error(d), ECONNREFUSED);
    asyncore_dispatcher_release(d);
    close(refused);
    settle();
}
END_TEST

/* ---- async_chat over TLS ------------------------------------------------------ */

struct lines {
    char buf[64];
    size_t len;
    char got[8][64];
    int n, connects, closes, errors, truncated;
};

static void lines_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct lines *l = asyncore_dispatcher_user_data(d);

    ck_assert_uint_le(l->len + len, sizeof(l->buf) - 1);
    memcpy(l->buf + l->len, data, len);
    l->len += len;
}

static void lines_found(asyncore_dispatcher *d)
{
    struct lines *l = asyncore_dispatcher_user_data(d);

    ck_assert_int_lt(l->n, 8);
    l->buf[l->len] = '\0';
    strcpy(l->got[l->n++], l->buf);
    l->len = 0;
}

static void lines_connect(asyncore_dispatcher *d)
{
    struct lines *l = asyncore_dispatcher_user_data(d);
    l->connects++;
}

static void lines_close(asyncore_dispatcher *d)
{
    struct lines *l = asyncore_dispatcher_user_data(d);

    l->closes++;
    l->truncated = asyncore_tls_truncated(d);
    asyncore_chat_handle_close(d);
}

static void lines_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct lines *l = asyncore_dispatcher_user_data(d);

    (void)err;
    (void)op;
    l->errors++;
    asyncore_close(d);
}

static const asyncore_chat_handlers lines_client = {
    .dispatcher = {
        .handle_connect = lines_connect,
        .handle_close = lines_close,
        .handle_error = lines_error,
    },
    .collect_incoming_data = lines_collect,
    .found_terminator = lines_found,
};

START_TEST(async_chat_exchanges_lines_over_tls)
{
    struct server s = { 0 };
    struct lines l = { 0 };
    asyncore_dispatcher *d;
    double end;

    line_len = 0;
    s.ctx = server_ctx(srv_crt);
    s.chat = &line_server;
    server_listen(&s, AF_INET);
    d = asyncore_chat_new(th_map, &lines_client, &l);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\n", 1), 0);
    ck_assert_int_eq(asyncore_create_socket(d, AF_INET, SOCK_STREAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(asyncore_connect(d, (struct sockaddr *)&s.ss, s.len), 0);
    /* Pushed before the handshake: held until handle_connect. */
    ck_assert_int_eq(asyncore_chat_push(d, "one\ntwo\n", 8), 0);
    ck_assert_int_eq(asyncore_chat_push(d, "three\nQUIT\n", 11), 0);
    end = th_now() + 10.0;
    while (l.closes + l.errors == 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(l.connects, 1);
    ck_assert_int_eq(l.errors, 0);
    ck_assert_int_eq(l.closes, 1);
    ck_assert_int_eq(l.truncated, 0); /* close_when_done sent close_notify */
    ck_assert_int_eq(l.n, 4);
    ck_assert_str_eq(l.got[0], "one");
    ck_assert_str_eq(l.got[1], "two");
    ck_assert_str_eq(l.got[2], "three");
    ck_assert_str_eq(l.got[3], "BYE");
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_int_eq(s.peer.errors, 0);
    settle();
}
END_TEST

/* ---- post-handshake messages ---------------------------------------------- */

/* TLS 1.3: the server updates its keys and asks the client to update its
 * own in the middle of a bulk echo.  The KeyUpdate messages travel between
 * application records in both directions while both sides have writes
 * waiting for the socket. */
static int key_update_type = -1;

static void key_update_read(asyncore_dispatcher *d)
{
    struct peer *p = asyncore_dispatcher_user_data(d);
    size_t before = p->in_len;

    echo_read(d);
    if (before < MIB && p->in_len >= MIB)
        ck_assert_int_eq(SSL_key_update(asyncore_tls_ssl(d),
                                        SSL_KEY_UPDATE_REQUESTED),
                         1);
}

/* At the end: NONE once the update went out. */
static void key_update_close(asyncore_dispatcher *d)
{
    key_update_type = SSL_get_key_update_type(asyncore_tls_ssl(d));
    peer_close(d);
}

static const asyncore_handlers key_updating_echo = {
    .handle_connect = peer_connect,
    .handle_read = key_update_read,
    .handle_close = key_update_close,
    .handle_error = peer_error,
    .destroy = peer_destroy,
};

START_TEST(key_update_in_the_middle_of_a_transfer_keeps_the_bytes_exact)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    unsigned char *data = pattern(2 * MIB, 3);
    unsigned char *in = malloc(2 * MIB);
    struct peer *both[2] = { &c, &s.peer };
    asyncore_dispatcher *d;

    ck_assert_ptr_nonnull(in);
    s.ctx = server_ctx(srv_crt);
    s.child = &key_updating_echo;
    server_listen(&s, AF_INET);
    c.out = data;
    c.out_len = 2 * MIB;
    c.in = in;
    c.in_cap = 2 * MIB;
    c.close_at = 2 * MIB;
    key_update_type = -1;
    d = client_new(&c, client_ctx(), "localhost", &s.ss, s.len);
    while (c.connects == 0 && c.errors == 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    ck_assert_int_eq(SSL_version(asyncore_tls_ssl(d)), TLS1_3_VERSION);
    ck_assert(loop_while_not(peers_done, both, 60.0));
    ck_assert_msg(c.errors + s.peer.errors == 0, "client: %s %s; server: %s %s",
                  c.op, c.reason, s.peer.op, s.peer.reason);
    ck_assert_uint_eq(c.in_len, 2 * MIB);
    ck_assert(memcmp(in, data, 2 * MIB) == 0);
    ck_assert_int_eq(key_update_type, SSL_KEY_UPDATE_NONE);
    free(data);
    free(in);
    settle();
}
END_TEST

/* TLS 1.2 renegotiation is refused.  A client configured by hand to ask
 * for it sends a ClientHello from inside SSL_write, which then waits to
 * READ the answer: with readable() false, only the transport's mapping of
 * that want to read interest lets the refusal arrive (without it the
 * client would wait for writability forever). */
START_TEST(renegotiation_asked_by_a_client_is_refused)
{
    struct server s = { 0 };
    struct peer c = { 0 };
    asyncore_tls_context *cctx = client_ctx();
    asyncore_dispatcher *d;
    SSL *ssl;

    SSL_CTX_clear_options(asyncore_tls_context_ssl_ctx(cctx),
                          SSL_OP_NO_RENEGOTIATION);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(
                         asyncore_tls_context_ssl_ctx(cctx), TLS1_2_VERSION),
                     1);
    s.ctx = server_ctx(srv_crt);
    server_listen(&s, AF_INET);
    c.no_read = 1;
    d = client_new(&c, cctx, "localhost", &s.ss, s.len);
    while (c.connects == 0 && c.errors + s.peer.errors == 0)
        ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    ssl = asyncore_tls_ssl(d);
    ck_assert_int_eq(SSL_version(ssl), TLS1_2_VERSION);
    ck_assert_int_eq(SSL_renegotiate(ssl), 1);
    c.out = (const unsigned char *)"abcd";
    c.out_len = 4;
    ck_assert_int_eq(asyncore_update_interest(d), 0);
    ck_assert(loop_while_not(peer_done, &c, 10.0));
    /* The server said no; OpenSSL's client takes that as fatal. */
    ck_assert_int_eq(c.errors, 1);
    ck_assert_int_eq(c.err, EPROTO);
    ck_assert_str_eq(c.op, "send");
    ck_assert_str_eq(c.reason, "no renegotiation");
    ck_assert_int_eq(c.reads, 0);
    ck_assert_int_eq(s.peer.connects, 1);
    ck_assert_int_eq(s.peer.errors, 0);
    settle();
}
END_TEST

/* ---- bad input ---------------------------------------------------------------- */

static const asyncore_handlers idle_handlers = {
    .readable = never,
    .writable = never,
};

START_TEST(bad_arguments_fail_with_their_documented_errno)
{
    asyncore_tls_context *cctx = client_ctx(), *sctx = server_ctx(srv_crt);
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    asyncore_dispatcher *u = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    asyncore_dispatcher *l, *f;
    struct sockaddr_storage ss;
    socklen_t len;
    struct server s = { 0 };
    int pfd[2];

    ck_assert_int_eq(asyncore_tls_start_client(NULL, cctx, "x"), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_start_client(d, NULL, "x"), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_start_client(d, sctx, "x"), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_start_server(d, cctx), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* Verification on needs a name to check. */
    ck_assert_int_eq(asyncore_tls_start_client(d, cctx, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(asyncore_tls_ssl(d));
    /* A server needs a connected socket. */
    ck_assert_int_eq(asyncore_tls_start_server(d, sctx), -1);
    ck_assert_int_eq(errno, ENOTCONN);
    ck_assert_int_eq(asyncore_tls_start_client(d, cctx, "localhost"), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, cctx, "localhost"), -1);
    ck_assert_int_eq(errno, EALREADY);
    ck_assert_ptr_null(asyncore_tls_last_error(d));
    ck_assert_int_eq(asyncore_tls_truncated(d), 0);
    /* Datagrams, listeners and files cannot carry TLS. */
    ck_assert_int_eq(asyncore_create_socket(u, AF_INET, SOCK_DGRAM), 0);
    ck_assert_int_eq(asyncore_tls_start_client(u, cctx, "localhost"), -1);
    ck_assert_int_eq(errno, EPROTOTYPE);
    l = th_listener(th_map, AF_INET, &server_handlers, &s, &ss, &len);
    ck_assert_int_eq(asyncore_tls_start_server(l, sctx), -1);
    ck_assert_int_eq(errno, EOPNOTSUPP);
    ck_assert_int_eq(asyncore_tls_start_client(l, cctx, "localhost"), -1);
    ck_assert_int_eq(errno, EOPNOTSUPP);
    ck_assert_int_eq(pipe(pfd), 0);
    f = asyncore_file_dispatcher_new(th_map, &idle_handlers, NULL, pfd[0]);
    ck_assert_ptr_nonnull(f);
    close(pfd[0]);
    close(pfd[1]);
    ck_assert_int_eq(asyncore_tls_start_client(f, cctx, "localhost"), -1);
    ck_assert_int_eq(errno, ENOTSOCK);
    /* A closed dispatcher, still held. */
    ck_assert_int_eq(asyncore_dispatcher_hold(u), 0);
    ck_assert_int_eq(asyncore_close(u), 0);
    ck_assert_int_eq(asyncore_tls_start_client(u, cctx, "localhost"), -1);
    ck_assert_int_eq(errno, EBADF);
    asyncore_dispatcher_release(u);
    /* Accessors take anything. */
    ck_assert_ptr_null(asyncore_tls_last_error(NULL));
    ck_assert_int_eq(asyncore_tls_truncated(NULL), 0);
    ck_assert_ptr_null(asyncore_tls_ssl(NULL));
    ck_assert_ptr_null(asyncore_tls_ssl(l)); /* not a TLS dispatcher */
    ck_assert_ptr_null(asyncore_tls_last_error(l));
    settle();
}
END_TEST

START_TEST(bad_context_arguments_fail_with_their_documented_errno)
{
    char missing[320];

    path_in(missing, sizeof(missing), "missing.pem");
    ck_assert_ptr_null(asyncore_tls_client_context_new(missing));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_null(asyncore_tls_client_context_new(srv_key)); /* no cert */
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(asyncore_tls_server_context_new(NULL, srv_key));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(asyncore_tls_server_context_new(srv_crt, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(asyncore_tls_server_context_new(srv_crt, missing));
    ck_assert_int_eq(errno, ENOENT);
    /* A key that is not the certificate's. */
    ck_assert_ptr_null(asyncore_tls_server_context_new(srv_crt, ca_key));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_load_ca(NULL, ca_crt, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_load_ca(client_ctx(), NULL, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_load_ca(client_ctx(), missing, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(asyncore_tls_load_ca(client_ctx(), NULL, cert_dir), 0);
    ck_assert_int_eq(asyncore_tls_set_verify(NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(asyncore_tls_context_ssl_ctx(NULL));
    ck_assert_int_eq(errno, EINVAL);
    asyncore_tls_context_free(NULL);
    /* The SSL_CTX belongs to the context. */
    ck_assert_ptr_nonnull(asyncore_tls_context_ssl_ctx(client_ctx()));
    settle();
}
END_TEST

/* ---- upgrades and downgrades on a live connection ---------------------------- */

/* A line protocol peer (async_chat, "\r\n"), plain or TLS, that records the
 * lines it gets and on which side of a switch each one arrived. */
struct proto {
    asyncore_tls_context *ctx; /* to switch with */
    int tls_at_accept;         /* a server that starts TLS at once */
    int (*on_line)(asyncore_dispatcher *d, struct proto *p, const char *line,
                   int tls);
    void (*on_connect)(asyncore_dispatcher *d, struct proto *p, int tls);
    const char *hello;         /* pushed at the plain handle_connect */
    size_t hello_len;
    int slow;                  /* readable() false until the queue is empty */
    const int *wait;           /* and until *wait is set */
    int switched;              /* a switch was asked */
    asyncore_dispatcher *wake; /* whose readable() that changes */
    int rcvbuf;                /* SO_RCVBUF of a client, if not 0 */
    int sndbuf;                /* SO_SNDBUF of an accepted socket, if not 0 */
    char buf[128];
    size_t len;
    char got[16][128];
    int got_tls[16], n;
    long noop, noop_bad, more, more_bad;
    int connects, connects_tls, closes, errors, err, destroys;
    int rc, rc_errno;
    size_t queued_at_switch;
};

static void proto_collect(asyncore_dispatcher *d, const void *data, size_t len)
{
    struct proto *p = asyncore_dispatcher_user_data(d);

    ck_assert_uint_le(p->len + len, sizeof(p->buf) - 1);
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

static void proto_found(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    int tls = asyncore_tls_active(d);

    p->buf[p->len] = '\0';
    p->len = 0;
    if (p->on_line(d, p, p->buf, tls) && p->n < 16) {
        snprintf(p->got[p->n], sizeof(p->got[0]), "%s", p->buf);
        p->got_tls[p->n++] = tls;
    }
}

static void proto_connect(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    int tls = asyncore_tls_active(d);

    p->connects++;
    p->connects_tls += tls;
    if (!tls && p->hello != NULL && p->connects == 1) {
        ck_assert_int_eq(asyncore_chat_push(d, p->hello, p->hello_len), 0);
        p->slow = p->slow != 0;
    }
    if (p->on_connect != NULL)
        p->on_connect(d, p, tls);
}

static void proto_close(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    asyncore_chat_handle_close(d);
}

static void proto_close_plain(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);

    p->closes++;
    asyncore_close(d);
}

static void proto_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct proto *p = asyncore_dispatcher_user_data(d);

    (void)op;
    p->errors++;
    p->err = err;
    asyncore_close(d);
}

static int proto_readable(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    size_t bytes = 0;

    if (p->slow && asyncore_chat_queued(d, &bytes) >= 0 && bytes == 0 &&
        asyncore_dispatcher_connected(d))
        p->slow = 0;
    return !p->slow && (p->wait == NULL || *p->wait) &&
           asyncore_chat_readable(d);
}

static void proto_destroy(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    p->destroys++;
}

static const asyncore_chat_handlers proto_handlers = {
    .dispatcher = {
        .handle_connect = proto_connect,
        .handle_close = proto_close,
        .handle_error = proto_error,
        .readable = proto_readable,
        .destroy = proto_destroy,
    },
    .collect_incoming_data = proto_collect,
    .found_terminator = proto_found,
};

static void proto_push(asyncore_dispatcher *d, const char *s)
{
    ck_assert_int_eq(asyncore_chat_push(d, s, strlen(s)), 0);
}

static void proto_accepted(asyncore_dispatcher *l, int fd,
                           const struct sockaddr *a, socklen_t len)
{
    struct proto *p = asyncore_dispatcher_user_data(l);
    asyncore_dispatcher *c;

    (void)a;
    (void)len;
    c = asyncore_chat_new(asyncore_dispatcher_map(l), &proto_handlers, p);
    ck_assert_ptr_nonnull(c);
    if (p->sndbuf != 0)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &p->sndbuf,
                                    sizeof(p->sndbuf)),
                         0);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\r\n", 2), 0);
    if (p->tls_at_accept)
        ck_assert_int_eq(asyncore_tls_start_server(c, p->ctx), 0);
}

static const asyncore_handlers proto_listener = {
    .handle_accepted = proto_accepted,
};

/* A client of the listener at @ss; TLS from the start if @ctx. */
static asyncore_dispatcher *proto_client(struct proto *p,
                                         const struct sockaddr_storage *ss,
                                         socklen_t len,
                                         asyncore_tls_context *ctx)
{
    asyncore_dispatcher *c = asyncore_chat_new(th_map, &proto_handlers, p);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_chat_set_terminator(c, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_create_socket(c, ss->ss_family, SOCK_STREAM), 0);
    if (p->rcvbuf != 0)
        ck_assert_int_eq(setsockopt(asyncore_dispatcher_fd(c), SOL_SOCKET,
                                    SO_RCVBUF, &p->rcvbuf, sizeof(p->rcvbuf)),
                         0);
    if (ctx != NULL)
        ck_assert_int_eq(asyncore_tls_start_client(c, ctx, "localhost"), 0);
    ck_assert_int_eq(asyncore_connect(c, (const struct sockaddr *)ss, len), 0);
    return c;
}

static int proto_done(void *arg)
{
    struct proto **pp = arg;
    return pp[0]->destroys > 0 && pp[1]->destroys > 0;
}

/* Requests the client makes over TLS after an upgrade, numbered from
 * AFTER_BASE. */
enum { AFTER = 1000, AFTER_BASE = 1000000 };

/* POP3-like server: STLS upgrades, NOOP n answers with n, QUIT ends. */
static int pop_server_line(asyncore_dispatcher *d, struct proto *p,
                           const char *line, int tls)
{
    char reply[64];
    long n;

    (void)tls;
    if (strcmp(line, "STLS") == 0) {
        proto_push(d, "+OK Begin TLS\r\n");
        ck_assert_int_ge(asyncore_chat_queued(d, &p->queued_at_switch), 0);
        p->rc = asyncore_tls_start_server(d, p->ctx);
        p->rc_errno = errno;
        p->switched = 1;
        if (p->wake != NULL) /* a client waiting for it: ask it again */
            ck_assert_int_eq(asyncore_update_interest(p->wake), 0);
        return 1;
    }
    if (strcmp(line, "QUIT") == 0) {
        proto_push(d, "+OK bye\r\n");
        ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
        return 1;
    }
    if (sscanf(line, "NOOP %ld", &n) == 1) {
        /* Long enough replies that they pile up in the queue. */
        snprintf(reply, sizeof(reply), "+OK %ld ................................\r\n", n);
        proto_push(d, reply);
        p->noop++;
        return 0;
    }
    snprintf(reply, sizeof(reply), "+OK %s\r\n", line);
    proto_push(d, reply);
    return 1;
}

static int pop_client_line(asyncore_dispatcher *d, struct proto *p,
                           const char *line, int tls)
{
    long n;

    if (strcmp(line, "+OK Begin TLS") == 0) {
        p->rc = asyncore_tls_start_client(d, p->ctx, "localhost");
        p->rc_errno = errno;
        return 1;
    }
    if (sscanf(line, "+OK %ld", &n) == 1 && tls) {
        /* The requests sent over TLS: answered in order, over TLS. */
        if (n != AFTER_BASE + p->more++)
            p->more_bad++;
        return 0;
    }
    if (sscanf(line, "+OK %ld", &n) == 1) {
        /* Each in order, and in the clear: before the switch. */
        if (n != p->noop++ || tls)
            p->noop_bad++;
        return 0;
    }
    return 1;
}

static void pop_client_connect(asyncore_dispatcher *d, struct proto *p, int tls)
{
    char buf[32];
    int i;

    (void)p;
    if (!tls)
        return;
    /* Traffic both ways over the upgraded connection. */
    proto_push(d, "CMD after\r\n");
    for (i = 0; i < AFTER; i++) {
        snprintf(buf, sizeof(buf), "NOOP %d\r\n", AFTER_BASE + i);
        proto_push(d, buf);
    }
    proto_push(d, "QUIT\r\n");
}

/* Listener and plain client of the POP3-like protocol, the client saying
 * @hello first; runs to the end, the server's record in @s. */
static void pop_run(struct proto *s, struct proto *c, const char *hello,
                    size_t hello_len)
{
    struct proto *both[2] = { s, c };
    struct sockaddr_storage ss;
    socklen_t len;

    s->ctx = server_ctx(srv_crt);
    s->on_line = pop_server_line;
    c->ctx = client_ctx();
    c->on_line = pop_client_line;
    c->on_connect = pop_client_connect;
    c->hello = hello;
    c->hello_len = hello_len;
    th_listener(th_map, AF_INET, &proto_listener, s, &ss, &len);
    s->wake = proto_client(c, &ss, len, NULL);
    ck_assert(loop_while_not(proto_done, both, 60.0));
    ck_assert_int_eq(s->errors, 0);
    ck_assert_int_eq(c->errors, 0);
    ck_assert_int_eq(s->rc, 0);
    ck_assert_int_eq(c->rc, 0);
    /* The client connected TCP, then TLS; the server's only transport
     * change was TLS. */
    ck_assert_int_eq(c->connects, 2);
    ck_assert_int_eq(c->connects_tls, 1);
    ck_assert_int_eq(s->connects, 1);
    ck_assert_int_eq(s->connects_tls, 1);
    ck_assert_int_eq(c->more, AFTER);
    ck_assert_int_eq(c->more_bad, 0);
    /* The server: the upgrade command in the clear, the rest over TLS. */
    ck_assert_int_eq(s->n, 3);
    ck_assert_str_eq(s->got[0], "STLS");
    ck_assert_int_eq(s->got_tls[0], 0);
    ck_assert_str_eq(s->got[1], "CMD after");
    ck_assert_int_eq(s->got_tls[1], 1);
    ck_assert_str_eq(s->got[2], "QUIT");
    ck_assert_int_eq(s->got_tls[2], 1);
    /* The client: the go-ahead in the clear, the answers over TLS. */
    ck_assert_int_eq(c->n, 3);
    ck_assert_str_eq(c->got[0], "+OK Begin TLS");
    ck_assert_int_eq(c->got_tls[0], 0);
    ck_assert_str_eq(c->got[1], "+OK CMD after");
    ck_assert_int_eq(c->got_tls[1], 1);
    ck_assert_str_eq(c->got[2], "+OK bye");
    ck_assert_int_eq(c->got_tls[2], 1);
}

/* CVE-2011-0411: a command pipelined behind STLS in the same segment is
 * plaintext that must never be taken for part of the TLS session. */
START_TEST(command_pipelined_after_stls_never_reaches_found_terminator)
{
    static const char hello[] = "STLS\r\nCMD injected\r\n";
    struct proto s = { 0 }, c = { 0 };

    pop_run(&s, &c, hello, sizeof(hello) - 1);
    /* pop_run checked every line the server got: "CMD injected" is not
     * among them, and no reply to it reached the client. */
    settle();
}
END_TEST

/* 40,000 pipelined requests, read slowly, then STLS: the replies queued
 * when the server starts TLS go out in the clear, each before the switch,
 * and only then does the handshake begin. */
START_TEST(replies_queued_at_stls_go_out_in_the_clear_before_the_handshake)
{
    enum { REQUESTS = 40000 };
    struct proto s = { 0 }, c = { 0 };
    size_t cap = (size_t)REQUESTS * 16 + 16, len = 0;
    char *hello = malloc(cap);
    int i;

    ck_assert_ptr_nonnull(hello);
    for (i = 0; i < REQUESTS; i++)
        len += (size_t)snprintf(hello + len, cap - len, "NOOP %d\r\n", i);
    len += (size_t)snprintf(hello + len, cap - len, "STLS\r\n");
    /* Reads nothing until all is sent and the server got STLS. */
    c.slow = 1;
    c.wait = &s.switched;
    /* The kernel holds a bounded part of the replies. */
    c.rcvbuf = 32768;
    s.sndbuf = 32768;
    pop_run(&s, &c, hello, len);
    ck_assert_int_eq(s.noop, REQUESTS + AFTER);
    ck_assert_int_eq(c.noop, REQUESTS);
    ck_assert_int_eq(c.noop_bad, 0);
    /* The case this is about: replies were still queued at the switch. */
    ck_assert_uint_gt(s.queued_at_switch, 0);
    free(hello);
    settle();
}
END_TEST

/* ---- a side that switches after exactly so many plaintext bytes --------- */

struct exact {
    asyncore_tls_context *ctx;
    int server;                /* the TLS role it takes */
    size_t want, got;
    const unsigned char *expect;
    int mismatch, rc, connects, closes, errors, err, destroys, ping_tls;
    char tail[16];
    size_t tail_len;
};

static void exact_read(asyncore_dispatcher *d)
{
    struct exact *e = asyncore_dispatcher_user_data(d);
    size_t room;
    ssize_t n;

    if (!asyncore_tls_active(d)) {
        room = e->want - e->got < sizeof(scratch) ? e->want - e->got
                                                  : sizeof(scratch);
        ck_assert_uint_gt(room, 0);
        /* Never a byte past the plaintext: what follows is the handshake. */
        n = asyncore_recv(d, scratch, room);
        if (n <= 0)
            return;
        if (memcmp(scratch, e->expect + e->got, (size_t)n) != 0)
            e->mismatch++;
        e->got += (size_t)n;
        if (e->got == e->want)
            e->rc = e->server ? asyncore_tls_start_server(d, e->ctx)
                              : asyncore_tls_start_client(d, e->ctx, "localhost");
        return;
    }
    n = asyncore_recv(d, e->tail + e->tail_len, sizeof(e->tail) - 1 - e->tail_len);
    if (n <= 0)
        return;
    e->tail_len += (size_t)n;
    e->tail[e->tail_len] = '\0';
    if (strcmp(e->tail, "ping\r\n") == 0) {
        e->ping_tls = asyncore_tls_active(d);
        ck_assert_int_eq(asyncore_send(d, "pong\r\n", 6), 6);
    }
}

static void exact_connect(asyncore_dispatcher *d)
{
    struct exact *e = asyncore_dispatcher_user_data(d);
    e->connects++;
}

static void exact_close(asyncore_dispatcher *d)
{
    struct exact *e = asyncore_dispatcher_user_data(d);

    e->closes++;
    asyncore_close(d);
}

static void exact_error(asyncore_dispatcher *d, int err, const char *op)
{
    struct exact *e = asyncore_dispatcher_user_data(d);

    (void)op;
    e->errors++;
    e->err = err;
    asyncore_close(d);
}

static void exact_destroy(asyncore_dispatcher *d)
{
    struct exact *e = asyncore_dispatcher_user_data(d);
    e->destroys++;
}

static const asyncore_handlers exact_handlers = {
    .handle_connect = exact_connect,
    .handle_read = exact_read,
    .handle_close = exact_close,
    .handle_error = exact_error,
    .destroy = exact_destroy,
};

static void exact_accepted(asyncore_dispatcher *l, int fd,
                           const struct sockaddr *a, socklen_t len)
{
    struct exact *e = asyncore_dispatcher_user_data(l);
    asyncore_dispatcher *c;

    (void)a;
    (void)len;
    c = asyncore_dispatcher_with_send_new(asyncore_dispatcher_map(l),
                                          &exact_handlers, e);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(asyncore_set_socket(c, fd), 0);
}

static const asyncore_handlers exact_listener = {
    .handle_accepted = exact_accepted,
};

/* The side that connected: a big plaintext message, then TLS at once. */
static void sender_connect(asyncore_dispatcher *d, struct proto *p, int tls)
{
    if (!tls && p->connects == 1) {
        p->rc = p->tls_at_accept
                    ? asyncore_tls_start_server(d, p->ctx)
                    : asyncore_tls_start_client(d, p->ctx, "localhost");
        p->rc_errno = errno;
        ck_assert_int_ge(asyncore_chat_queued(d, &p->queued_at_switch), 0);
    }
    if (tls)
        proto_push(d, "ping\r\n");
}

static int sender_line(asyncore_dispatcher *d, struct proto *p,
                       const char *line, int tls)
{
    (void)p;
    (void)tls;
    if (strcmp(line, "pong") == 0)
        ck_assert_int_eq(asyncore_close(d), 0);
    return 1;
}

static int sender_done(void *arg)
{
    struct proto *p = arg;
    return p->destroys > 0;
}

/* The same sender as a dispatcher_with_send: its queue is counted. */
static void wsend_connect(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    int tls = asyncore_tls_active(d);

    p->connects++;
    p->connects_tls += tls;
    if (tls) {
        ck_assert_int_eq(asyncore_send(d, "ping\r\n", 6), 6);
        return;
    }
    ck_assert_int_eq(asyncore_send(d, p->hello, p->hello_len),
                     (ssize_t)p->hello_len);
    p->queued_at_switch = asyncore_send_pending(d);
    p->rc = p->tls_at_accept
                ? asyncore_tls_start_server(d, p->ctx)
                : asyncore_tls_start_client(d, p->ctx, "localhost");
}

static void wsend_read(asyncore_dispatcher *d)
{
    struct proto *p = asyncore_dispatcher_user_data(d);
    ssize_t n = asyncore_recv(d, p->buf + p->len, sizeof(p->buf) - 1 - p->len);

    if (n <= 0)
        return;
    p->len += (size_t)n;
    p->buf[p->len] = '\0';
    if (strcmp(p->buf, "pong\r\n") == 0) {
        snprintf(p->got[p->n], sizeof(p->got[0]), "pong");
        p->got_tls[p->n++] = asyncore_tls_active(d);
        ck_assert_int_eq(asyncore_close(d), 0);
    }
}

static const asyncore_handlers wsend_handlers = {
    .handle_connect = wsend_connect,
    .handle_read = wsend_read,
    .handle_close = proto_close_plain,
    .handle_error = proto_error,
    .destroy = proto_destroy,
};

/* Started inside handle_connect of a socket the program connected, with
 * 2 MiB of plaintext queued: the TLS client (_i 0, 2) or the TLS server
 * (_i 1, 3) of the upgrade sends it all in the clear, then does its
 * handshake; the other side reads exactly that much, then starts TLS
 * itself.  The sender is an async_chat (_i 0, 1) or a dispatcher_with_send
 * (_i 2, 3). */
START_TEST(start_inside_handle_connect_sends_the_queue_in_the_clear_first)
{
    const size_t size = 2 * MIB;
    unsigned char *payload = pattern(size, 19);
    struct proto c = { 0 };
    struct exact e = { 0 };
    struct sockaddr_storage ss;
    socklen_t len;
    int server = _i & 1;

    c.tls_at_accept = server; /* here: which role the connecting side takes */
    c.ctx = server ? server_ctx(srv_crt) : client_ctx();
    c.on_line = sender_line;
    c.on_connect = sender_connect;
    c.hello = (const char *)payload;
    c.hello_len = size;
    e.ctx = server ? client_ctx() : server_ctx(srv_crt);
    e.server = !server;
    e.want = size;
    e.expect = payload;
    th_listener(th_map, AF_INET, &exact_listener, &e, &ss, &len);
    if (_i < 2) {
        (void)proto_client(&c, &ss, len, NULL);
    } else {
        asyncore_dispatcher *w =
            asyncore_dispatcher_with_send_new(th_map, &wsend_handlers, &c);

        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(asyncore_create_socket(w, AF_INET, SOCK_STREAM), 0);
        ck_assert_int_eq(asyncore_connect(w, (struct sockaddr *)&ss, len), 0);
    }
    ck_assert(loop_while_not(sender_done, &c, 60.0));
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.queued_at_switch, size);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(e.errors, 0);
    ck_assert_uint_eq(e.got, size);
    ck_assert_int_eq(e.mismatch, 0);
    ck_assert_int_eq(e.rc, 0);
    ck_assert_int_eq(e.ping_tls, 1);
    /* TCP, then TLS; "pong" came over TLS. */
    ck_assert_int_eq(c.connects, 2);
    ck_assert_int_eq(c.connects_tls, 1);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.got[0], "pong");
    ck_assert_int_eq(c.got_tls[0], 1);
    ck_assert_int_eq(e.connects, 1);
    free(payload);
    settle();
}
END_TEST

/* ---- the way back: asyncore_tls_stop() ------------------------------------ */

enum { LINES = 2000 };

static int ccc_server_line(asyncore_dispatcher *d, struct proto *p,
                           const char *line, int tls)
{
    char buf[64];
    long n;
    int i;

    if (strcmp(line, "CCC") == 0) {
        for (i = 0; i < LINES; i++) {
            snprintf(buf, sizeof(buf), "data %d ........................\r\n", i);
            proto_push(d, buf);
        }
        proto_push(d, "200 CCC\r\n");
        p->rc = asyncore_tls_stop(d);
        p->rc_errno = errno;
        /* After the call: waits for plaintext. */
        proto_push(d, "plain from server\r\n");
        return 1;
    }
    if (sscanf(line, "more %ld", &n) == 1) {
        /* Sent over TLS before the client's close_notify: delivered, in
         * order, while the stop goes on. */
        if (n != p->more++ || !tls)
            p->more_bad++;
        return 0;
    }
    if (strcmp(line, "plain from client") == 0) {
        proto_push(d, "bye\r\n");
        ck_assert_int_eq(asyncore_chat_close_when_done(d), 0);
    }
    return 1;
}

static int ccc_client_line(asyncore_dispatcher *d, struct proto *p,
                           const char *line, int tls)
{
    long n;

    if (sscanf(line, "data %ld", &n) == 1) {
        if (n != p->more++ || !tls)
            p->more_bad++;
        return 0;
    }
    if (strcmp(line, "200 CCC") == 0) {
        p->rc = asyncore_tls_stop(d);
        p->rc_errno = errno;
        proto_push(d, "plain from client\r\n");
    }
    return 1;
}

static void ccc_client_connect(asyncore_dispatcher *d, struct proto *p, int tls)
{
    char buf[64];
    int i;

    (void)p;
    if (!tls)
        return;
    /* CCC, and behind it lines still in flight when the server stops. */
    proto_push(d, "CCC\r\n");
    for (i = 0; i < LINES; i++) {
        snprintf(buf, sizeof(buf), "more %d ........................\r\n", i);
        proto_push(d, buf);
    }
}

/* FTP's CCC: both ends stop TLS with data in flight both ways; every line
 * sent before a close_notify arrives over TLS, every line after it in the
 * clear, and each side gets handle_connect for the plaintext. */
START_TEST(stop_with_data_in_flight_both_ways_keeps_each_line_on_its_side)
{
    struct proto s = { 0 }, c = { 0 };
    struct proto *both[2] = { &s, &c };
    struct sockaddr_storage ss;
    socklen_t len;

    s.ctx = server_ctx(srv_crt);
    s.tls_at_accept = 1;
    s.on_line = ccc_server_line;
    c.on_line = ccc_client_line;
    c.on_connect = ccc_client_connect;
    th_listener(th_map, AF_INET, &proto_listener, &s, &ss, &len);
    (void)proto_client(&c, &ss, len, client_ctx());
    ck_assert(loop_while_not(proto_done, both, 60.0));
    ck_assert_int_eq(s.errors, 0);
    ck_assert_int_eq(c.errors, 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(s.more, LINES);
    ck_assert_int_eq(s.more_bad, 0);
    ck_assert_int_eq(c.more, LINES);
    ck_assert_int_eq(c.more_bad, 0);
    /* TLS up, then plaintext again: handle_connect for each. */
    ck_assert_int_eq(s.connects, 2);
    ck_assert_int_eq(s.connects_tls, 1);
    ck_assert_int_eq(c.connects, 2);
    ck_assert_int_eq(c.connects_tls, 1);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.got[0], "CCC");
    ck_assert_int_eq(s.got_tls[0], 1);
    ck_assert_str_eq(s.got[1], "plain from client");
    ck_assert_int_eq(s.got_tls[1], 0);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.got[0], "200 CCC");
    ck_assert_int_eq(c.got_tls[0], 1);
    ck_assert_str_eq(c.got[1], "plain from server");
    ck_assert_int_eq(c.got_tls[1], 0);
    ck_assert_str_eq(c.got[2], "bye");
    ck_assert_int_eq(c.got_tls[2], 0);
    settle();
}
END_TEST

/* Drive a non-blocking OpenSSL call of the test's own peer while the map
 * runs: 1 when it succeeded, 0 on SSL_ERROR_ZERO_RETURN. */
enum raw_op { RAW_CONNECT, RAW_WRITE, RAW_READ };

static int raw_drive(SSL *ssl, enum raw_op op, void *buf, int len)
{
    double end = th_now() + 10.0;
    int r, e = SSL_ERROR_NONE;

    for (;;) {
        r = op == RAW_CONNECT ? SSL_connect(ssl)
            : op == RAW_WRITE ? SSL_write(ssl, buf, len)
                              : SSL_read(ssl, buf, len);
        if (r > 0)
            return 1;
        e = SSL_get_error(ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            th_now() >= end)
            break;
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_msg(e == SSL_ERROR_ZERO_RETURN, "OpenSSL call failed: %d", e);
    return 0;
}

static void raw_read_exact(int fd, char *buf, size_t len)
{
    double end = th_now() + 10.0;
    size_t got = 0;
    ssize_t n;

    while (got < len && th_now() < end) {
        n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else
            ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    }
    ck_assert_uint_eq(got, len);
}

static int raw_server_line(asyncore_dispatcher *d, struct proto *p,
                           const char *line, int tls)
{
    (void)tls;
    if (strcmp(line, "CCC") == 0) {
        proto_push(d, "200 CCC\r\n");
        p->rc = asyncore_tls_stop(d);
        p->rc_errno = errno;
    } else if (strcmp(line, "PLAIN two") == 0) {
        proto_push(d, "+OK plain\r\n");
    }
    return 1;
}

/* The peer sends plaintext right behind its close_notify, both in the
 * socket before the server reads either: the close_notify ends TLS, and
 * not a byte of the plaintext is lost or decrypted -- also when the
 * program turned OpenSSL's read-ahead on (_i 1), which reads as much as
 * the socket holds. */
START_TEST(plaintext_right_behind_the_peers_close_notify_arrives_in_the_clear)
{
    static const char plain[] = "PLAIN one\r\nPLAIN two\r\n";
    struct proto s = { 0 };
    asyncore_dispatcher *d;
    SSL_CTX *cctx;
    SSL *ssl;
    char buf[32];
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    s.ctx = server_ctx(srv_crt);
    if (_i)
        SSL_CTX_set_read_ahead(asyncore_tls_context_ssl_ctx(s.ctx), 1);
    s.on_line = raw_server_line;
    d = asyncore_chat_new(th_map, &proto_handlers, &s);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[1]), 0);
    ck_assert_int_eq(asyncore_tls_start_server(d, s.ctx), 0);
    cctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(cctx);
    ssl = SSL_new(cctx);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_fd(ssl, sv[0]), 1);
    ck_assert(raw_drive(ssl, RAW_CONNECT, NULL, 0));
    ck_assert(raw_drive(ssl, RAW_WRITE, "CCC\r\n", 5));
    memset(buf, 0, sizeof(buf));
    ck_assert(raw_drive(ssl, RAW_READ, buf, 9));
    ck_assert_str_eq(buf, "200 CCC\r\n");
    /* The server's close_notify, then ours with the plaintext behind it
     * before the server runs again. */
    ck_assert(!raw_drive(ssl, RAW_READ, buf, (int)sizeof(buf)));
    ck_assert_int_eq(SSL_shutdown(ssl), 1);
    ck_assert_int_eq(send(sv[0], plain, sizeof(plain) - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof(plain) - 1);
    memset(buf, 0, sizeof(buf));
    raw_read_exact(sv[0], buf, 11);
    ck_assert_str_eq(buf, "+OK plain\r\n");
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(s.errors, 0);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.got[0], "CCC");
    ck_assert_int_eq(s.got_tls[0], 1);
    ck_assert_str_eq(s.got[1], "PLAIN one");
    ck_assert_int_eq(s.got_tls[1], 0);
    ck_assert_str_eq(s.got[2], "PLAIN two");
    ck_assert_int_eq(s.got_tls[2], 0);
    ck_assert_int_eq(s.connects, 2); /* TLS up, then plaintext */
    ck_assert_int_eq(s.connects_tls, 1);
    ck_assert_ptr_null(asyncore_tls_ssl(d));
    SSL_free(ssl);
    SSL_CTX_free(cctx);
    close(sv[0]);
    settle();
}
END_TEST

/* A switch asked inside collect_incoming_data: that record's
 * found_terminator never runs, nor anything for the input behind it. */
static int collect_calls, found_calls;
static asyncore_tls_context *collect_ctx;

static void switch_in_collect(asyncore_dispatcher *d, const void *data,
                              size_t len)
{
    (void)data;
    (void)len;
    collect_calls++;
    ck_assert_int_eq(asyncore_tls_start_server(d, collect_ctx), 0);
}

static void count_found(asyncore_dispatcher *d)
{
    (void)d;
    found_calls++;
}

static const asyncore_chat_handlers switching_collector = {
    .collect_incoming_data = switch_in_collect,
    .found_terminator = count_found,
};

START_TEST(start_inside_collect_incoming_data_delivers_nothing_more)
{
    static const char in[] = "AB\r\nCD\r\nEF\r\n";
    asyncore_dispatcher *d;
    double end;
    int sv[2];

    collect_calls = found_calls = 0;
    collect_ctx = server_ctx(srv_crt);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = asyncore_chat_new(th_map, &switching_collector, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(asyncore_chat_set_terminator(d, "\r\n", 2), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[1]), 0);
    ck_assert_int_eq(send(sv[0], in, sizeof(in) - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof(in) - 1);
    end = th_now() + 10.0;
    while (collect_calls == 0 && th_now() < end)
        ck_assert_int_eq(asyncore_poll(th_map, 0.01), 0);
    ck_assert_int_eq(asyncore_poll(th_map, 0.05), 0);
    ck_assert_int_eq(collect_calls, 1);
    ck_assert_int_eq(found_calls, 0);
    ck_assert_int_eq(asyncore_dispatcher_connecting(d), 1); /* handshake */
    close(sv[0]);
    settle();
}
END_TEST

START_TEST(stop_and_active_validate_their_arguments)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(th_map, &idle_handlers, NULL);
    int sv[2];

    ck_assert_ptr_nonnull(d);
    errno = 0;
    ck_assert_int_eq(asyncore_tls_stop(NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(asyncore_tls_active(NULL), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_tls_stop(d), -1); /* not a TLS dispatcher */
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(asyncore_set_socket(d, sv[0]), 0);
    ck_assert_int_eq(asyncore_tls_start_client(d, client_ctx(), "localhost"), 0);
    ck_assert_int_eq(asyncore_tls_active(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_tls_stop(d), -1); /* no handshake yet */
    ck_assert_int_eq(errno, ENOTCONN);
    asyncore_dispatcher_hold(d);
    ck_assert_int_eq(asyncore_close(d), 0);
    errno = 0;
    ck_assert_int_eq(asyncore_tls_stop(d), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(asyncore_tls_active(d), 0);
    asyncore_dispatcher_release(d);
    close(sv[1]);
    settle();
}
END_TEST

/* ---- the suite ------------------------------------------------------------------ */

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    TCase *up = tcase_create("upgrade and downgrade");
    TCase *bad = tcase_create("bad input");

    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_add_checked_fixture(tc, NULL, contexts_free);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc,
                        handshake_runs_handle_connect_once_on_each_side_then_data_flows,
                        0, TH_NFAMILIES);
    tcase_add_loop_test(tc, four_mebibytes_each_way_arrive_byte_exact, 0,
                        TH_NFAMILIES);
    tcase_add_test(tc, plaintext_buffered_in_openssl_is_delivered_while_readable);
    tcase_add_test(tc, predicates_that_refuse_a_direction_do_not_stall_the_handshake);
    tcase_add_test(tc, client_talks_to_openssl_s_server);
    tcase_add_test(tc, server_talks_to_openssl_s_client);
    tcase_add_test(tc, peer_closing_without_close_notify_is_handle_close_marked_truncated);
    tcase_add_test(tc, close_inside_handle_connect_sends_close_notify);
    tcase_add_test(tc, close_in_the_middle_of_the_handshake_is_safe);
    tcase_add_test(tc, wrong_host_name_is_refused_with_eacces);
    tcase_add_test(tc, wrong_ip_address_is_refused_with_eacces);
    tcase_add_test(tc, certificate_for_the_ip_address_is_accepted);
    tcase_add_test(tc, untrusted_certificate_is_refused_with_eacces);
    tcase_add_test(tc, expired_certificate_is_refused_with_eacces);
    tcase_add_test(tc, system_trust_store_does_not_know_the_test_ca);
    tcase_add_test(tc, verification_off_accepts_an_untrusted_certificate);
    tcase_add_test(tc, ca_loaded_later_makes_a_certificate_trusted);
    tcase_add_test(tc, server_requiring_a_certificate_refuses_a_client_without_one);
    tcase_add_test(tc, server_requiring_a_certificate_accepts_a_trusted_one);
    tcase_add_test(tc, default_handle_error_logs_the_tls_reason);
    tcase_add_test(tc, plaintext_client_is_a_handshake_error_eproto);
    tcase_add_test(tc, peer_leaving_during_the_handshake_is_econnaborted);
    tcase_add_test(tc, refused_tcp_connect_stays_a_connect_error);
    tcase_add_test(tc, connect_timeout_covers_a_stalled_handshake);
    tcase_add_test(tc, connect_timeout_ends_with_the_handshake);
    tcase_add_test(tc, connected_sockets_upgrade_and_connect_again_after_the_handshake);
    tcase_add_test(tc, client_started_before_its_socket_exists_connects_by_host);
    tcase_add_test(tc, connect_by_name_moves_past_a_refused_address);
    tcase_add_test(tc, async_chat_exchanges_lines_over_tls);
    tcase_add_test(tc, key_update_in_the_middle_of_a_transfer_keeps_the_bytes_exact);
    tcase_add_test(tc, renegotiation_asked_by_a_client_is_refused);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(up, th_setup, th_teardown);
    tcase_add_checked_fixture(up, NULL, contexts_free);
    tcase_set_timeout(up, 120);
    tcase_add_test(up, command_pipelined_after_stls_never_reaches_found_terminator);
    tcase_add_test(up, replies_queued_at_stls_go_out_in_the_clear_before_the_handshake);
    tcase_add_loop_test(up, start_inside_handle_connect_sends_the_queue_in_the_clear_first,
                        0, 4);
    tcase_add_test(up, stop_with_data_in_flight_both_ways_keeps_each_line_on_its_side);
    tcase_add_loop_test(up, plaintext_right_behind_the_peers_close_notify_arrives_in_the_clear,
                        0, 2);
    tcase_add_test(up, start_inside_collect_incoming_data_delivers_nothing_more);
    tcase_add_test(up, stop_and_active_validate_their_arguments);
    suite_add_tcase(s, up);

    tcase_add_checked_fixture(bad, th_setup, th_teardown);
    tcase_add_checked_fixture(bad, NULL, contexts_free);
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, bad_arguments_fail_with_their_documented_errno);
    tcase_add_test(bad, bad_context_arguments_fail_with_their_documented_errno);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    int rc;

    if (make_certs() < 0) {
        fprintf(stderr, "test_tls: cannot make certificates with the openssl "
                        "command (install openssl)\n");
        remove_certs();
        return 1;
    }
    rc = th_run_suite(tls_suite());
    remove_certs();
    return rc;
}
