/*
 * tls.c -- the TLS transport: OpenSSL under a dispatcher, driven by the
 * dispatcher's own event.
 *
 * A transport (core.h), reached through its table and nowhere else:
 *   send, recv     plaintext through SSL_write/SSL_read;
 *   event          before readiness is mapped to hooks: drives the
 *                  transport's own pending output and close_notify, asks
 *                  the core for the connect stage while handshaking, and
 *                  says which hooks the readiness stands for;
 *   update         a started transport on a connected socket begins its
 *                  handshake (connected becomes connecting again);
 *   interest       (pure) readable()/writable() as what OpenSSL needs the
 *                  socket for, and whether decrypted input waits;
 *   handshaking,   once TCP is up, connecting means the handshake: its
 *   connect_event  steps, and whether it is done;
 *   close          close_notify, one attempt, before the descriptor goes;
 *   destroy        the state, kept past close for tls_last_error.
 * A class with buffers of its own (async_chat) takes part in a switch on a
 * live connection through struct asyncore__buffers_ops, registered once.
 *
 * States: PRE (TLS started, TCP not connected yet), DRAIN (connected, the
 * plaintext output queued at the start still going out in the clear),
 * HANDSHAKE, DONE, CLOSING (asyncore_tls_stop(): our close_notify sent or
 * being sent, the peer's awaited), STOPPED (the peer's close_notify read:
 * plaintext again once handle_connect ran, which frees this state), FAILED.
 * While PRE, HANDSHAKE or STOPPED the dispatcher is asyncore-"connecting".
 *
 * OpenSSL talks to the socket through a BIO of ours so that writes use
 * send(MSG_NOSIGNAL): its socket BIO uses write(2), which raises SIGPIPE
 * when the peer is gone, and a library must not kill its host.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ext.h"

static const struct asyncore__transport_ops tls_transport;
static void tls_destroy(asyncore_dispatcher *d);

/* The most plaintext one record carries: one asyncore_send() at most. */
#define TLS_CHUNK 16384

/* The TLS record header: type, version (2 bytes), length (2 bytes). */
#define TLS_HEADER 5

enum tls_phase {
    PHASE_PRE,
    PHASE_DRAIN,
    PHASE_HANDSHAKE,
    PHASE_DONE,
    PHASE_CLOSING,
    PHASE_STOPPED,
    PHASE_FAILED
};

struct asyncore_tls_context {
    SSL_CTX *ctx;
    int server;
};

struct asyncore__tls {
    SSL *ssl;                 /* NULL once closed */
    unsigned char *pend;      /* accepted plaintext SSL has not taken yet */
    size_t pend_off, pend_len;
    int fd;                   /* the BIO's socket */
    int bio_errno;            /* errno of the BIO's last failed call */
    enum tls_phase phase;
    short hs_want;            /* what the handshake waits for */
    short read_want;          /* what SSL_read waits for (EV_WRITE: renegotiation) */
    short write_want;         /* what SSL_write waits for */
    short user_want;          /* readable()/writable() at the last update */
    short shut_want;          /* what sending close_notify waits for */
    /* A switch waits for the output queued when it was asked: bytes of
     * dispatcher_with_send's queue still to go, or SIZE_MAX when the
     * class's mark decides (asyncore__output_drained). */
    size_t drain_left;
    const struct asyncore__buffers_ops *bufs; /* the class's, or NULL */
    /* The bytes of the current record the BIO has not read yet, or the
     * part of its header read so far (rec_left == 0). */
    size_t rec_left;
    unsigned char hdr[TLS_HEADER];
    unsigned char hdr_have;
    unsigned server : 1;
    unsigned eof : 1;         /* the socket read end of file */
    unsigned fatal : 1;       /* no close_notify may be sent any more */
    unsigned truncated : 1;   /* end of file without close_notify */
    unsigned read_blocked : 1; /* the last SSL_read wanted more input */
    unsigned marked : 1;      /* the output queued at the start was marked */
    unsigned draining : 1;    /* a switch waits for the queue (drain_left) */
    unsigned stopping : 1;    /* asyncore_tls_stop() was asked */
    unsigned notify_sent : 1; /* our close_notify went out */
    unsigned peer_notify : 1; /* the peer's close_notify was read */
    char reason[256];
};

/* @d's TLS state, or NULL when its transport is not TLS. */
static struct asyncore__tls *tls_of(const asyncore_dispatcher *d)
{
    return asyncore__transport_state(d, &tls_transport);
}

/* ---- the BIO: the dispatcher's socket, without SIGPIPE ------------------- */

static int retryable(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    struct asyncore__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0) {
        t->bio_errno = errno;
        if (retryable(errno))
            BIO_set_retry_write(b);
    }
    return (int)n;
}

/*
 * Reads never cross a record boundary: the header, then the body, each
 * read at most to its end.  OpenSSL asks for just that unless read-ahead
 * is on (it is off by default; a program may turn it on through the
 * SSL_CTX), and what follows the peer's close_notify is plaintext after
 * asyncore_tls_stop(): it must stay in the socket, not in OpenSSL's buffer.
 */
static size_t record_room(const struct asyncore__tls *t, size_t len)
{
    size_t room = t->rec_left > 0 ? t->rec_left
                                  : (size_t)(TLS_HEADER - t->hdr_have);

    return len < room ? len : room;
}

static void record_account(struct asyncore__tls *t, const char *buf, size_t n)
{
    if (t->rec_left > 0) {
        t->rec_left -= n;
        return;
    }
    memcpy(t->hdr + t->hdr_have, buf, n);
    t->hdr_have += (unsigned char)n;
    if (t->hdr_have == TLS_HEADER) {
        t->rec_left = (size_t)t->hdr[3] << 8 | t->hdr[4];
        t->hdr_have = 0;
    }
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct asyncore__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    n = recv(t->fd, buf, record_room(t, (size_t)len), 0);
    if (n == 0)
        t->eof = 1;
    if (n > 0)
        record_account(t, buf, (size_t)n);
    if (n < 0) {
        t->bio_errno = errno;
        if (retryable(errno))
            BIO_set_retry_read(b);
    }
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct asyncore__tls *t = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF: /* lets OpenSSL call an end of file "unexpected" */
        return t->eof;
    case BIO_C_GET_FD: /* SSL_get_fd() */
        if (ptr != NULL)
            *(int *)ptr = t->fd;
        return t->fd;
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Once per process (maps may live in several threads); never freed, like
 * OpenSSL's own methods. */
static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                     BIO_TYPE_DESCRIPTOR,
                                 "asyncore socket");

    if (m != NULL && BIO_meth_set_write(m, bio_write) &&
        BIO_meth_set_read(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* Connect the SSL to the dispatcher's socket: 0, or -1 (ENOMEM). */
static int bind_socket(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);
    BIO *b;

    pthread_once(&bio_once, bio_method_init);
    if (bio_method == NULL || (b = BIO_new(bio_method)) == NULL)
        return -1;
    t->fd = d->fd;
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    SSL_set_bio(t->ssl, b, b);
    return 0;
}

/* ---- reasons and error codes --------------------------------------------- */

static void set_reason(struct asyncore__tls *t, const char *a, const char *b)
{
    snprintf(t->reason, sizeof(t->reason), "%s%s%s", a, b ? ": " : "",
             b ? b : "");
}

/* The first error OpenSSL queued, in its words; the queue is then emptied
 * so that it misleads no later caller in this thread. */
static void reason_from_queue(struct asyncore__tls *t, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    char code[32];

    if (r == NULL && e != 0) {
        snprintf(code, sizeof(code), "error:%08lX", e);
        r = code;
    }
    set_reason(t, r ? r : fallback, NULL);
    ERR_clear_error();
}

/*
 * Classify a failure of SSL_do_handshake/SSL_read/SSL_write whose
 * SSL_get_error() is @e: the errno it maps to, the reason recorded.  An
 * end of file without close_notify returns 0 (the caller decides).
 */
static int classify(struct asyncore__tls *t, int e)
{
    long v;

    if (e == SSL_ERROR_ZERO_RETURN) {
        set_reason(t, "the peer sent close_notify", NULL);
        return ECONNABORTED;
    }
    if (t->eof && !(SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN)) {
        reason_from_queue(t, "unexpected eof while reading");
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        int err = t->bio_errno ? t->bio_errno : EIO;
        set_reason(t, strerror(err), NULL);
        return err;
    }
    if (e == SSL_ERROR_SSL && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
        (v = SSL_get_verify_result(t->ssl)) != X509_V_OK) {
        set_reason(t, "certificate verify failed",
                   X509_verify_cert_error_string(v));
        ERR_clear_error();
        return EACCES;
    }
    /* A server that requires a client certificate and got none refused
     * the peer as surely as one whose certificate failed. */
    if (e == SSL_ERROR_SSL && ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SSL &&
        ERR_GET_REASON(ERR_peek_error()) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        reason_from_queue(t, "peer did not return a certificate");
        return EACCES;
    }
    reason_from_queue(t, "TLS protocol error");
    return e == SSL_ERROR_SYSCALL && t->bio_errno ? t->bio_errno : EPROTO;
}

/* The handshake failed with @err: report it once, with op "tls". */
static int handshake_failed(asyncore_dispatcher *d, int err)
{
    tls_of(d)->phase = PHASE_FAILED;
    tls_of(d)->fatal = 1;
    asyncore_handle_error(d, err, "tls");
    return -1;
}

/* ---- the handshake ------------------------------------------------------- */

/* 1 done, 0 waiting (hs_want says for what), -1 failed and reported. */
static int handshake_step(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);
    int r, e, err;

    ERR_clear_error();
    t->bio_errno = 0;
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->phase = PHASE_DONE;
        t->read_want = EV_READ;
        t->write_want = EV_WRITE;
        return 1;
    }
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->hs_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        return 0;
    }
    err = classify(t, e);
    /* An end of file before the handshake is done is an abort, not an end
     * of the stream: the connection never existed for the user. */
    return handshake_failed(d, err ? err : ECONNABORTED);
}

/* ---- switching a live connection ----------------------------------------- */

#define MAX_CLASSES 4

static const struct asyncore__buffers_ops *classes[MAX_CLASSES];
static int n_classes;
static pthread_mutex_t classes_lock = PTHREAD_MUTEX_INITIALIZER;

void asyncore__buffers_register(const struct asyncore__buffers_ops *ops)
{
    pthread_mutex_lock(&classes_lock);
    if (n_classes < MAX_CLASSES)
        classes[n_classes++] = ops;
    pthread_mutex_unlock(&classes_lock);
}

/* The buffers of @d's class, or NULL for a class without any. */
static const struct asyncore__buffers_ops *buffers_of(const asyncore_dispatcher *d)
{
    const struct asyncore__buffers_ops *ops = NULL;
    int i;

    if (d->defaults == NULL)
        return NULL;
    pthread_mutex_lock(&classes_lock);
    for (i = 0; i < n_classes && ops == NULL; i++)
        if (classes[i]->defaults == d->defaults)
            ops = classes[i];
    pthread_mutex_unlock(&classes_lock);
    return ops;
}

/*
 * A switch asked with output queued waits for it: 1 if it must (drain_left
 * or the class's mark then tells when it is gone), 0 if nothing is queued,
 * -1 (ENOMEM).
 */
static int mark_queue(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);
    int r = t->bufs != NULL ? t->bufs->mark_output(d) : 0;

    if (r < 0) {
        errno = ENOMEM;
        return -1;
    }
    t->drain_left = r > 0 ? SIZE_MAX : asyncore__queued(d);
    t->draining = t->drain_left > 0;
    return t->draining;
}

/* @n bytes of the queue that the switch waits for went out. */
static void drain_account(asyncore_dispatcher *d, size_t n)
{
    struct asyncore__tls *t = tls_of(d);

    if (!t->draining || t->drain_left == SIZE_MAX)
        return;
    t->drain_left -= n < t->drain_left ? n : t->drain_left;
    if (t->drain_left == 0)
        asyncore__output_drained(d);
}

static int begin_handshake(asyncore_dispatcher *d);
static int send_close_notify(asyncore_dispatcher *d);

/*
 * The output a switch waited for is gone: an upgrade starts its handshake,
 * a stop sends close_notify.  Called from inside the class's sending (a
 * hook may be on the stack); a failure goes to handle_error(d, err, "tls").
 */
void asyncore__output_drained(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    if (t == NULL || d->closed || !t->draining)
        return;
    t->draining = 0;
    t->drain_left = 0;
    if (t->phase == PHASE_DRAIN) {
        t->phase = PHASE_PRE;
        if (begin_handshake(d) < 0)
            asyncore_handle_error(d, errno, "tls");
    } else if (t->phase == PHASE_DONE && t->stopping) {
        if (send_close_notify(d) < 0)
            asyncore_handle_error(d, errno, "tls");
    }
}

/*
 * A started transport on a socket that is connected already (adopted, or
 * upgraded after its own handle_connect) goes back to "connecting" for
 * its handshake: handle_connect will mean "TLS is up".  Output queued
 * then is sent in the clear first (DRAIN).
 */
static int begin_if_connected(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);
    int r;

    if (t->phase != PHASE_PRE || !d->connected || d->fd < 0)
        return 0;
    if (!t->marked) {
        t->marked = 1;
        if ((r = mark_queue(d)) > 0) {
            t->phase = PHASE_DRAIN;
            return 0;
        }
        if (r < 0) {
            t->phase = PHASE_FAILED;
            set_reason(t, "out of memory", NULL);
            return -1;
        }
    }
    return begin_handshake(d);
}

/* Connected, nothing queued: connecting again, for the handshake. */
static int begin_handshake(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    if (bind_socket(d) < 0) {
        /* Still connected in asyncore's eyes: its hooks meet ENOTCONN. */
        t->phase = PHASE_FAILED;
        set_reason(t, "out of memory", NULL);
        errno = ENOMEM;
        return -1;
    }
    d->connected = 0;
    d->connecting = 1;
    d->connect_done = 0;
    t->phase = PHASE_HANDSHAKE;
    t->hs_want = t->server ? EV_READ : EV_WRITE;
    return 0;
}

static int tls_handshaking(const asyncore_dispatcher *d)
{
    const struct asyncore__tls *t = tls_of(d);

    return t->phase == PHASE_HANDSHAKE || t->phase == PHASE_FAILED ||
           t->phase == PHASE_STOPPED;
}

/* The connect stage, called by the core once TCP is up (its outcome taken
 * there, as for any socket), then for every readiness of the handshake:
 * ASYNCORE__CONNECT_UP, _WAITING or _FAILED (reported). */
static int tls_connect_event(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    if (t->phase == PHASE_DONE)
        return 1;
    if (t->phase == PHASE_FAILED)
        return -1;
    if (t->phase == PHASE_STOPPED) {
        /* Plaintext again: what async_chat holds of an unfinished TLS
         * record is dropped, so that no record mixes the two, and the
         * dispatcher is a plain one when handle_connect runs. */
        const struct asyncore__buffers_ops *bufs = t->bufs;

        tls_destroy(d);
        if (bufs != NULL)
            bufs->drop_input(d);
        return 1;
    }
    if (t->phase == PHASE_PRE) {
        if (bind_socket(d) < 0)
            return handshake_failed(d, ENOMEM);
        t->phase = PHASE_HANDSHAKE;
    }
    return handshake_step(d);
}

/* ---- plaintext ----------------------------------------------------------- */

/* A failure of SSL_read/SSL_write after the handshake: -1 with errno. */
static ssize_t io_failed(struct asyncore__tls *t, int e)
{
    int err = classify(t, e);

    if (err == 0) {
        t->truncated = 1;
        return 0;
    }
    if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
        t->fatal = 1; /* OpenSSL forbids SSL_shutdown after these */
    if (err == EPROTO)
        t->phase = PHASE_FAILED;
    errno = err;
    return -1;
}

/* The peer's close_notify after asyncore_tls_stop(): plaintext follows
 * once handle_connect ran (tls_connect_event frees the state). */
static void stopped(asyncore_dispatcher *d)
{
    tls_of(d)->phase = PHASE_STOPPED;
    d->connected = 0;
    d->connecting = 1;
    d->connect_done = 0;
}

static ssize_t tls_recv(asyncore_dispatcher *d, void *buf, size_t len)
{
    struct asyncore__tls *t = tls_of(d);
    size_t n = 0;
    int e;

    if ((t->phase != PHASE_DONE && t->phase != PHASE_CLOSING) ||
        t->ssl == NULL || t->peer_notify) {
        errno = t->phase == PHASE_FAILED ? ENOTCONN : EAGAIN;
        return -1;
    }
    ERR_clear_error();
    t->bio_errno = 0;
    t->read_blocked = 0;
    if (SSL_read_ex(t->ssl, buf, len, &n) == 1) {
        t->read_want = EV_READ;
        return (ssize_t)n;
    }
    e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->read_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        t->read_blocked = e == SSL_ERROR_WANT_READ;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN && t->stopping) {
        /* Not an end of file: the way back to plaintext. */
        t->peer_notify = 1;
        if (t->phase == PHASE_CLOSING)
            stopped(d);
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0; /* close_notify: the end of the stream */
    return io_failed(t, e);
}

/* One SSL_write of @len bytes: bytes taken, or -1 with errno (EAGAIN when
 * OpenSSL waits for the socket; write_want says which way). */
static ssize_t write_some(struct asyncore__tls *t, const void *buf, size_t len)
{
    size_t n = 0;
    int e;

    ERR_clear_error();
    t->bio_errno = 0;
    if (SSL_write_ex(t->ssl, buf, len, &n) == 1) {
        t->write_want = EV_WRITE;
        return (ssize_t)n;
    }
    e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->write_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (io_failed(t, e) == 0)
        errno = EPIPE; /* writing to a peer that is gone */
    return -1;
}

/* Hand OpenSSL the plaintext it still owes the peer: 0 when all is taken,
 * -1 with errno otherwise.  A retry repeats the same bytes and length, as
 * OpenSSL requires after WANT_READ/WANT_WRITE. */
static int flush_pending(struct asyncore__tls *t)
{
    ssize_t n;

    while (t->pend_len > 0) {
        n = write_some(t, t->pend + t->pend_off, t->pend_len);
        if (n < 0)
            return -1;
        t->pend_off += (size_t)n;
        t->pend_len -= (size_t)n;
    }
    t->pend_off = 0;
    return 0;
}

/*
 * asyncore_send() over TLS.  A record the socket cannot take now is kept
 * (copied: the caller's buffer is not ours to hold) and counted as sent,
 * so that every caller -- retrying or not, with the same bytes or not --
 * sees send(2)'s contract.  Nothing more is taken until it is gone.
 */
/* Before the handshake of an upgrade: the queued plaintext, in the clear,
 * no more of it than the switch waits for. */
static ssize_t send_clear(asyncore_dispatcher *d, const void *buf, size_t len)
{
    struct asyncore__tls *t = tls_of(d);
    ssize_t n;

    if (len > t->drain_left)
        len = t->drain_left;
    if (len == 0) {
        errno = EAGAIN;
        return -1;
    }
    n = send(d->fd, buf, len, MSG_NOSIGNAL);
    if (n > 0)
        drain_account(d, (size_t)n);
    return n;
}

static ssize_t tls_send(asyncore_dispatcher *d, const void *buf, size_t len)
{
    struct asyncore__tls *t = tls_of(d);
    size_t chunk = len < TLS_CHUNK ? len : TLS_CHUNK;
    ssize_t n;

    if (t->phase == PHASE_DRAIN)
        return send_clear(d, buf, len);
    if (t->phase != PHASE_DONE || t->ssl == NULL ||
        (t->stopping && !t->draining)) {
        errno = t->phase == PHASE_FAILED ? ENOTCONN : EAGAIN;
        return -1;
    }
    /* A stop waits for the queue it was asked behind: no more than that
     * goes out over TLS. */
    if (t->stopping && chunk > t->drain_left)
        chunk = t->drain_left;
    if (t->pend_len > 0 && flush_pending(t) < 0)
        return -1;
    if (chunk == 0)
        return 0;
    n = write_some(t, buf, chunk);
    if (n > 0 && t->stopping)
        drain_account(d, (size_t)n);
    if (n >= 0 || errno != EAGAIN)
        return n;
    if (t->pend == NULL && (t->pend = malloc(TLS_CHUNK)) == NULL) {
        /* OpenSSL holds the record and needs the same bytes again: a
         * caller that cannot be told so must not go on. */
        t->phase = PHASE_FAILED;
        t->fatal = 1;
        set_reason(t, "out of memory", NULL);
        errno = ENOMEM;
        return -1;
    }
    memcpy(t->pend, buf, chunk);
    t->pend_off = 0;
    t->pend_len = chunk;
    if (t->stopping)
        drain_account(d, chunk);
    return (ssize_t)chunk;
}

/*
 * asyncore_tls_stop(), once the output it waits for is gone: what OpenSSL
 * still owes the peer, then close_notify.  0 when sent or waiting for the
 * socket (shut_want), -1 with errno when TLS failed.  If the peer's
 * close_notify was read already, the stop is over at once.
 */
static int send_close_notify(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);
    int r, e, err;

    t->phase = PHASE_CLOSING;
    t->shut_want = EV_WRITE;
    if (t->pend_len > 0 && flush_pending(t) < 0) {
        if (errno == EAGAIN) {
            t->shut_want = t->write_want;
            return 0;
        }
        t->phase = PHASE_FAILED;
        return -1;
    }
    ERR_clear_error();
    t->bio_errno = 0;
    r = SSL_shutdown(t->ssl);
    if (r >= 0) {
        t->notify_sent = 1;
        if (r == 1 || t->peer_notify)
            stopped(d);
        return 0;
    }
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        t->shut_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        return 0;
    }
    err = classify(t, e);
    t->fatal = 1;
    t->phase = PHASE_FAILED;
    errno = err ? err : ECONNABORTED;
    return -1;
}

/* ---- the event mapping ---------------------------------------------------- */

/* Plaintext that no socket readiness will announce: decrypted bytes the
 * caller's buffer had no room for, or whole records read ahead. */
static int has_buffered_input(const struct asyncore__tls *t)
{
    return SSL_pending(t->ssl) > 0 ||
           (SSL_has_pending(t->ssl) && !t->read_blocked);
}

/* Before interest is asked: the user's interest, for tls_event, and a
 * handshake to begin on a socket that is connected now. */
static void tls_update(asyncore_dispatcher *d, short want)
{
    struct asyncore__tls *t = tls_of(d);

    t->user_want = want;
    if (t->ssl != NULL)
        (void)begin_if_connected(d);
}

/* What OpenSSL needs the socket for, the user wanting @want.  Pure. */
static short tls_interest(const asyncore_dispatcher *d, short want)
{
    const struct asyncore__tls *t = tls_of(d);
    short out = 0;

    if (t->ssl == NULL)
        return want;
    switch (t->phase) {
    case PHASE_PRE:
        /* The handshake must hear of the TCP connect whatever the
         * predicates say: it writes first. */
        return d->connecting ? EV_WRITE : want;
    case PHASE_HANDSHAKE:
        return d->connecting ? t->hs_want : 0;
    case PHASE_FAILED:
        /* Connecting: nothing to wait for (a level-triggered readiness
         * would spin).  Connected: let the hooks meet ENOTCONN. */
        return d->connecting ? 0 : want;
    case PHASE_DRAIN:
        /* The socket's input is the handshake's: nothing is read. */
        return want & EV_WRITE;
    case PHASE_STOPPED:
        /* A writable TCP socket: handle_connect in the next dispatch. */
        return EV_WRITE;
    case PHASE_CLOSING:
        if (!t->notify_sent)
            out |= t->shut_want;
        want &= ~EV_WRITE; /* output waits for plaintext */
        break;
    case PHASE_DONE:
        break;
    }
    if (t->peer_notify)
        want &= ~EV_READ; /* nothing more to read over TLS */
    if (want & EV_READ)
        out |= t->read_want;
    if ((want & EV_WRITE) || t->pend_len > 0)
        out |= t->write_want;
    /* Decrypted input no readiness will announce: the core dispatches it
     * in the next iteration (tls_event turns it into a read). */
    if ((want & EV_READ) && has_buffered_input(t))
        out |= ASYNCORE__EV_PENDING;
    return out;
}

/* Pending output when the socket allows; hooks run as asyncore_send()'s
 * would.  Returns -1 if @d closed. */
static int flush_from_event(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    if (flush_pending(t) == 0 || errno == EAGAIN)
        return 0;
    d->last_error = errno;
    if (asyncore__is_disconnect(errno))
        asyncore_handle_close(d);
    else
        asyncore_handle_error(d, d->last_error, "send");
    return d->closed ? -1 : 0;
}

static short tls_event(asyncore_dispatcher *d, short what)
{
    struct asyncore__tls *t = tls_of(d);
    short ww = t->write_want, out = 0;

    if (!d->connected) {
        if (!d->connecting || t->ssl == NULL) /* no connect asked yet? */
            return t->phase == PHASE_PRE ? what : 0;
        /* The handshake: the core's connect stage, which uses the
         * readiness up. */
        return ASYNCORE__EV_CONNECT;
    }
    if (t->phase == PHASE_CLOSING && !t->notify_sent && (what & t->shut_want)) {
        if (send_close_notify(d) < 0) {
            d->last_error = errno;
            asyncore_handle_error(d, d->last_error, "tls");
            return 0;
        }
        if (t->phase != PHASE_CLOSING)
            return 0;
    }
    if (t->phase == PHASE_CLOSING && t->ssl != NULL)
        return (t->user_want & EV_READ) &&
                       ((what & t->read_want) || has_buffered_input(t))
                   ? EV_READ
                   : 0;
    if (t->phase != PHASE_DONE || t->ssl == NULL)
        return what;
    if (t->pend_len > 0 && (what & ww) && flush_from_event(d) < 0)
        return 0;
    if ((t->user_want & EV_READ) &&
        ((what & t->read_want) || has_buffered_input(t)))
        out |= EV_READ;
    if ((t->user_want & EV_WRITE) && t->pend_len == 0 && (what & ww))
        out |= EV_WRITE;
    return out;
}

/* ---- close and release ---------------------------------------------------- */

/* The SSL, its BIO, the timer and the copy: what only an open one needs. */
static void drop_ssl(struct asyncore__tls *t)
{
    ERR_clear_error();
    SSL_free(t->ssl); /* and the BIO; the descriptor is the dispatcher's */
    t->ssl = NULL;
    free(t->pend);
    t->pend = NULL;
    t->pend_len = 0;
}

/* One attempt, no waiting: what is still owed, then close_notify. */
static void tls_close(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    if (t->ssl == NULL)
        return;
    if ((t->phase == PHASE_DONE ||
         (t->phase == PHASE_CLOSING && !t->notify_sent)) &&
        !t->fatal && !t->eof && flush_pending(t) == 0) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
    }
    drop_ssl(t);
}

/* The state goes (the last release, or plaintext again after a stop). */
static void tls_destroy(asyncore_dispatcher *d)
{
    struct asyncore__tls *t = tls_of(d);

    drop_ssl(t);
    free(t);
    asyncore__transport_clear(d);
}

static const struct asyncore__transport_ops tls_transport = {
    .name = "tls",
    .send = tls_send,
    .recv = tls_recv,
    .handshaking = tls_handshaking,
    .connect_event = tls_connect_event,
    .update = tls_update,
    .interest = tls_interest,
    .event = tls_event,
    .close = tls_close,
    .destroy = tls_destroy,
};

/* ---- contexts ------------------------------------------------------------- */

static asyncore_tls_context *context_new(const SSL_METHOD *method, int server)
{
    asyncore_tls_context *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->server = server;
    c->ctx = SSL_CTX_new(method);
    if (c->ctx == NULL) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    /* TLS 1.2 renegotiation is refused: OpenSSL cannot run it while an
     * application record waits for a non-blocking socket (its handshake
     * write then fails), and TLS 1.3 replaced it with messages that wait
     * for pending writes. */
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
    /* Partial writes: one record per asyncore_send().  Moving buffer: a
     * retry comes from the transport's copy, not the caller's buffer. */
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return c;
}

/* access(2)'s verdict for a file OpenSSL is about to read: its errno is
 * clearer than OpenSSL's "system library" error. */
static int readable_file(const char *path)
{
    return path == NULL || access(path, R_OK) == 0 ? 0 : -1;
}

asyncore_tls_context *asyncore_tls_client_context_new(const char *ca_file)
{
    asyncore_tls_context *c;

    if (readable_file(ca_file) < 0)
        return NULL;
    c = context_new(TLS_client_method(), 0);
    if (c == NULL)
        return NULL;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        asyncore_tls_context_free(c);
        errno = EINVAL;
        return NULL;
    }
    return c;
}

asyncore_tls_context *asyncore_tls_server_context_new(const char *cert_file,
                                                      const char *key_file)
{
    static const unsigned char sid[] = "asyncore";
    asyncore_tls_context *c;

    if (cert_file == NULL || key_file == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (readable_file(cert_file) < 0 || readable_file(key_file) < 0)
        return NULL;
    c = context_new(TLS_server_method(), 1);
    if (c == NULL)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ctx) != 1 ||
        /* Resumed sessions with client certificates need an id context. */
        SSL_CTX_set_session_id_context(c->ctx, sid, sizeof(sid) - 1) != 1) {
        asyncore_tls_context_free(c);
        errno = EINVAL;
        return NULL;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    return c;
}

void asyncore_tls_context_free(asyncore_tls_context *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ctx); /* each SSL holds its own reference */
    free(ctx);
}

int asyncore_tls_load_ca(asyncore_tls_context *ctx, const char *ca_file,
                         const char *ca_dir)
{
    if (ctx == NULL || (ca_file == NULL && ca_dir == NULL)) {
        errno = EINVAL;
        return -1;
    }
    if (readable_file(ca_file) < 0 ||
        (ca_dir != NULL && access(ca_dir, R_OK | X_OK) < 0))
        return -1;
    if (SSL_CTX_load_verify_locations(ctx->ctx, ca_file, ca_dir) != 1) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int asyncore_tls_set_verify(asyncore_tls_context *ctx, int on)
{
    int mode = SSL_VERIFY_NONE;

    if (ctx == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (on)
        mode = ctx->server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER;
    SSL_CTX_set_verify(ctx->ctx, mode, NULL);
    return 0;
}

struct ssl_ctx_st *asyncore_tls_context_ssl_ctx(asyncore_tls_context *ctx)
{
    if (ctx == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return ctx->ctx;
}

/* ---- starting TLS on a dispatcher ------------------------------------------ */

static int is_numeric_host(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* SNI and the name the certificate must carry: 0, or -1 with EINVAL. */
static int set_peer_name(SSL *ssl, const char *host)
{
    int ok;

    if (host == NULL)
        return 0;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    /* RFC 6066: no SNI for addresses; they are checked as iPAddress. */
    if (is_numeric_host(host))
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    else
        ok = SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host);
    ERR_clear_error();
    if (!ok) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* The checks both start functions share: 0, or -1 with errno. */
static int check_start(asyncore_dispatcher *d, asyncore_tls_context *ctx,
                       int server)
{
    int type = 0;
    socklen_t len = sizeof(type);

    if (asyncore__check(d) < 0)
        return -1;
    if (ctx == NULL || ctx->server != server) {
        errno = EINVAL;
        return -1;
    }
    if (tls_of(d) != NULL) {
        errno = EALREADY;
        return -1;
    }
    if (d->io_kind != ASYNCORE__IO_SOCKET) {
        errno = ENOTSOCK;
        return -1;
    }
    if (d->accepting) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (d->fd >= 0 && (getsockopt(d->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
                       type != SOCK_STREAM)) {
        errno = EPROTOTYPE;
        return -1;
    }
    /* Inside handle_connect the connection is up although asyncore marks
     * it connected only once the hook returned. */
    if (server && (d->fd < 0 || !(d->connected || (d->connecting &&
                                                   d->connect_done)))) {
        errno = ENOTCONN;
        return -1;
    }
    return 0;
}

static int start(asyncore_dispatcher *d, asyncore_tls_context *ctx,
                 const char *host, int server)
{
    struct asyncore__tls *t;

    if (check_start(d, ctx, server) < 0 || asyncore__ext(d) == NULL)
        return -1;
    if (!server && host == NULL &&
        (SSL_CTX_get_verify_mode(ctx->ctx) & SSL_VERIFY_PEER)) {
        errno = EINVAL; /* a name to check is what makes verification safe */
        return -1;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return -1;
    t->fd = -1;
    t->server = server != 0;
    t->ssl = SSL_new(ctx->ctx);
    if (t->ssl == NULL || (!server && set_peer_name(t->ssl, host) < 0)) {
        int err = t->ssl == NULL ? ENOMEM : errno;
        drop_ssl(t);
        free(t);
        errno = err;
        return -1;
    }
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    t->bufs = buffers_of(d);
    if (asyncore__transport_set(d, &tls_transport, t) < 0) {
        drop_ssl(t);
        free(t);
        errno = ENOMEM;
        return -1;
    }
    /* What was read in the clear is not trusted after the switch (the
     * STARTTLS injection): the class drops it. */
    if (t->bufs != NULL)
        t->bufs->drop_input(d);
    /* A connected socket starts its handshake now; either way the
     * interest becomes the transport's. */
    if (begin_if_connected(d) < 0) {
        asyncore__transport_clear(d);
        drop_ssl(t);
        free(t);
        errno = ENOMEM;
        return -1;
    }
    asyncore__hold(d);
    asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

int asyncore_tls_start_client(asyncore_dispatcher *d, asyncore_tls_context *ctx,
                              const char *hostname)
{
    return start(d, ctx, hostname, 0);
}

int asyncore_tls_start_server(asyncore_dispatcher *d, asyncore_tls_context *ctx)
{
    return start(d, ctx, NULL, 1);
}

int asyncore_tls_stop(asyncore_dispatcher *d)
{
    struct asyncore__tls *t;

    if (asyncore__check(d) < 0)
        return -1;
    if ((t = tls_of(d)) == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (t->stopping) {
        errno = EALREADY;
        return -1;
    }
    if (t->phase != PHASE_DONE || t->ssl == NULL || t->fatal || t->eof) {
        errno = ENOTCONN;
        return -1;
    }
    if (mark_queue(d) < 0)
        return -1;
    t->stopping = 1;
    if (!t->draining && send_close_notify(d) < 0)
        return -1;
    asyncore__hold(d);
    asyncore__interest_update(d);
    asyncore__release(d);
    return 0;
}

/* ---- accessors ------------------------------------------------------------- */

int asyncore_tls_active(const asyncore_dispatcher *d)
{
    const struct asyncore__tls *t = d != NULL && !d->closed
                                        ? tls_of(d)
                                        : NULL;

    return t != NULL && (t->phase == PHASE_DONE || t->phase == PHASE_CLOSING);
}

const char *asyncore_tls_last_error(const asyncore_dispatcher *d)
{
    if (d == NULL || tls_of(d) == NULL ||
        tls_of(d)->reason[0] == '\0')
        return NULL;
    return tls_of(d)->reason;
}

int asyncore_tls_truncated(const asyncore_dispatcher *d)
{
    return d != NULL && tls_of(d) != NULL && tls_of(d)->truncated;
}

struct ssl_st *asyncore_tls_ssl(const asyncore_dispatcher *d)
{
    if (d == NULL || tls_of(d) == NULL)
        return NULL;
    return tls_of(d)->ssl;
}
