/*
 * asyncore/tls.h -- TLS dispatchers (OpenSSL), in the asyncore model.
 *
 * TLS is a transport under a dispatcher, not a class above it: any
 * dispatcher (a plain one, dispatcher_with_send, async_chat, your own) is
 * turned into a TLS one by asyncore_tls_start_client() or
 * asyncore_tls_start_server(), and its hooks keep their meaning:
 *
 *  - handle_connect runs once the TLS handshake is done, on both sides.  An
 *    accepted socket adopted with asyncore_set_socket() is connected at once
 *    in asyncore; once asyncore_tls_start_server() is called on it, it is
 *    "connecting" again until its handshake is done, and then gets
 *    handle_connect like a client.  handle_connect means "the transport
 *    is ready", so it runs once for each transport a connection gets: a
 *    client started before its TCP connect gets it once (TLS up); a socket
 *    the program connected and then upgrades gets it for TCP and again for
 *    TLS, and once more after asyncore_tls_stop() (plaintext again).
 *    asyncore_tls_active() tells them apart.
 *  - asyncore_recv() and asyncore_send() carry plaintext.  handle_read and
 *    handle_write mean "plaintext can be read" and "plaintext can be sent".
 *  - While connecting (TCP connect, then the handshake) the transport owns
 *    the interest set: readable() and writable() are asked but the socket
 *    is watched for what the handshake needs.  Afterwards the predicates
 *    rule again; when OpenSSL needs the other direction (a read that must
 *    first write, a write that must first read) the transport watches that
 *    one instead, and calls the hook whose interest it stands for.
 *  - Plaintext OpenSSL has already decrypted is delivered even though the
 *    socket will not become readable for it: handle_read runs again in the
 *    next loop iteration for as long as such bytes remain and readable() is
 *    true.
 *  - TLS 1.2 renegotiation is refused (SSL_OP_NO_RENEGOTIATION): OpenSSL
 *    cannot run it while a record waits for a non-blocking socket.
 *  - asyncore_send() takes at most 16 KiB (one TLS record) per call.  When
 *    the socket cannot take the record, the transport keeps a copy and
 *    sends it as soon as the socket allows, before any further handle_write:
 *    the return value counts bytes the transport accepted, as send(2)
 *    counts bytes the kernel accepted.  asyncore_close() tries once more to
 *    send such bytes and the close_notify alert, without waiting; a program
 *    that closes right after a send the socket could not take loses them,
 *    as async_chat's close_when_done or waiting for handle_write avoid.
 *
 * ERRORS
 *   Failures of the handshake arrive as handle_error(d, err, "tls"):
 *     EACCES        the peer's certificate failed verification (untrusted,
 *                   expired, wrong host name, ...)
 *     ECONNABORTED  the peer closed the connection during the handshake
 *     EPROTO        any other TLS failure: an alert from the peer (it
 *                   refused our certificate or our parameters), no common
 *                   protocol version or cipher, a peer that does not speak
 *                   TLS
 *     ECONNRESET, ETIMEDOUT, ...  the socket's own error, as is
 *   A failed TCP connect stays handle_error(d, err, "connect"), and so
 *   does a connect timeout (asyncore_set_connect_timeout()), whose clock
 *   runs until the handshake is over.  A transport whose handshake failed
 *   or was timed out is spent: connect again with a new dispatcher.  After the
 *   handshake, asyncore_recv()/asyncore_send() report as for TCP: a lost
 *   connection goes to handle_close, a TLS protocol failure to
 *   handle_error(d, EPROTO, "recv" or "send").  In every case
 *   asyncore_tls_last_error() names the reason in OpenSSL's words (the
 *   default handle_error logs it).  In TLS 1.3 a client's handshake is
 *   over before the server judged it: a server refusing the client (its
 *   certificate, say) is heard of after handle_connect, as EPROTO on the
 *   next read.
 *   The peer's close_notify is end of file: handle_close.  A peer that
 *   closes the connection without close_notify also gets handle_close, as
 *   a TCP end of file would; asyncore_tls_truncated() then tells it apart
 *   (it matters to protocols whose messages end at the close).
 *
 * UPGRADE AND DOWNGRADE ON A LIVE CONNECTION (STARTTLS, FTP's CCC)
 *   asyncore_tls_start_server()/_start_client() on a connected dispatcher
 *   switch it to TLS, asyncore_tls_stop() back to plaintext.  At each
 *   switch:
 *    - Output queued before the call (async_chat's queue, the queue of a
 *      dispatcher_with_send, the transport's own pending record) goes out
 *      in the old transport first: the new one starts when it has drained.
 *      So the reply "+OK Begin TLS negotiation" pushed just before
 *      asyncore_tls_start_server() leaves in plaintext, and a reply pushed
 *      just before asyncore_tls_stop() over TLS.  Output queued after the
 *      call waits for the new transport: it leaves once handle_connect ran.
 *    - Starting TLS: input read in the clear before the call is dropped.
 *      async_chat discards its buffer, and when the call is made inside
 *      found_terminator (the usual place) or collect_incoming_data, no
 *      further record of the old input is delivered.  Bytes a client sent
 *      after its STARTTLS command without waiting for the reply ("STLS\r\n
 *      CMD\r\n" in one segment: the STARTTLS command injection) never reach
 *      the protocol; if they are still in the socket they are taken for the
 *      handshake, which fails (EPROTO).  Nothing is read from the socket
 *      between the call and the start of the handshake.
 *    - Stopping TLS: input the peer sent over TLS before its close_notify
 *      is delivered to handle_read as usual while the stop goes on (keep
 *      readable() true: the peer's close_notify is read in its turn).  The
 *      peer's close_notify is not an end of file then.  Nothing past it is
 *      read from the socket: the plaintext the peer sends right after it is
 *      delivered in the clear after handle_connect.  Part of a record
 *      async_chat holds at that moment (a line without its terminator) is
 *      dropped, so that no record mixes TLS and plaintext bytes.
 *   The switch calls wait for the queue themselves, so "everything queued
 *   has been sent" needs no notification of its own for a switch.
 *   A protocol must stop sending in the old transport once it asked to
 *   switch (the peer of an upgrade waits for the reply; both ends of a
 *   downgrade call asyncore_tls_stop(), which sends close_notify and waits
 *   for the peer's).  asyncore_tls_start_server() works inside
 *   handle_connect of a socket the program connected, as does
 *   _start_client().
 *
 * Contexts are read when a dispatcher starts TLS; the dispatcher keeps what
 * it needs, so a context may be freed while connections made from it live
 * on.  A context may be shared by dispatchers of several maps and threads
 * once it is configured.
 *
 * A library configured --without-openssl has this API but no TLS: the
 * context constructors return NULL, and asyncore_tls_load_ca(),
 * asyncore_tls_set_verify(), asyncore_tls_start_client(),
 * asyncore_tls_start_server() and asyncore_tls_stop() return -1, all with
 * errno ENOTSUP (asyncore_tls_context_ssl_ctx() NULL with ENOTSUP);
 * asyncore_tls_active() and asyncore_tls_truncated() say 0,
 * asyncore_tls_last_error() and asyncore_tls_ssl() NULL, as for a
 * dispatcher without TLS.  A program can ask at run time.
 */
#ifndef ASYNCORE_TLS_H
#define ASYNCORE_TLS_H

#include <asyncore/dispatcher.h>

#ifdef __cplusplus
extern "C" {
#endif

/** OpenSSL's SSL_CTX and SSL, for the escape hatches below. */
struct ssl_ctx_st;
struct ssl_st;

/** Client or server settings: certificates, verification. */
typedef struct asyncore_tls_context asyncore_tls_context;

/**
 * A client context: TLS 1.2 or later, the peer's certificate verified
 * against the CA certificates of the PEM file @ca_file, or the system's
 * (OpenSSL's default paths) if @ca_file is NULL.  Returns NULL with errno
 * ENOENT or EACCES (@ca_file cannot be read), EINVAL (it holds no usable
 * certificate) or ENOMEM; OpenSSL's error queue then holds the details.
 */
ASYNCORE_API asyncore_tls_context *
asyncore_tls_client_context_new(const char *ca_file);

/**
 * A server context presenting the certificate chain of the PEM file
 * @cert_file (the server's certificate first) with the private key of
 * @key_file.  Clients are not asked for certificates unless
 * asyncore_tls_set_verify() turns it on.  Errors: EINVAL (an argument is
 * NULL, a file holds no usable certificate or key, or the key does not
 * match the certificate), ENOENT, EACCES, ENOMEM.
 */
ASYNCORE_API asyncore_tls_context *
asyncore_tls_server_context_new(const char *cert_file, const char *key_file);

/** Free a context (NULL is allowed); dispatchers started with it go on. */
ASYNCORE_API void asyncore_tls_context_free(asyncore_tls_context *ctx);

/**
 * Trust also the CA certificates of the PEM file @ca_file and/or of the
 * OpenSSL hashed directory @ca_dir (either may be NULL, not both).
 * Errors: EINVAL, ENOENT, EACCES.
 */
ASYNCORE_API int asyncore_tls_load_ca(asyncore_tls_context *ctx,
                                      const char *ca_file, const char *ca_dir);

/**
 * Turn verification of the peer's certificate on (@on != 0) or off.  On by
 * default for clients: turning it off accepts any server, which is for
 * tests and for peers identified some other way.  Off by default for
 * servers: on, clients must present a certificate the context trusts.
 * Affects dispatchers started afterwards.  Errors: EINVAL.
 */
ASYNCORE_API int asyncore_tls_set_verify(asyncore_tls_context *ctx, int on);

/**
 * The context's SSL_CTX, to set what this API does not (protocol versions,
 * ciphers, ALPN, a client certificate).  Owned by the context.  NULL with
 * EINVAL for NULL.
 */
ASYNCORE_API struct ssl_ctx_st *
asyncore_tls_context_ssl_ctx(asyncore_tls_context *ctx);

/**
 * Make @d a TLS client of the server @hostname, with @ctx.  @hostname is
 * sent as SNI (unless it is a numeric address) and the server's
 * certificate must be valid for it; it may be NULL only if verification is
 * off.  Call it before asyncore_connect()/asyncore_connect_host() (a socket
 * is not needed yet), while connecting, or on a connected socket (an
 * upgrade, as STARTTLS does): the handshake starts once TCP is connected
 * and handle_connect runs when it is done.  Safe inside hooks.
 * Errors: EINVAL (@d, @ctx NULL, a server context, @hostname NULL with
 * verification on), EBADF (closed), ENOTSOCK (a file dispatcher),
 * EPROTOTYPE (not a stream socket), EOPNOTSUPP (listening), EALREADY (TLS
 * was already started), ENOMEM.
 */
ASYNCORE_API int asyncore_tls_start_client(asyncore_dispatcher *d,
                                           asyncore_tls_context *ctx,
                                           const char *hostname);

/**
 * Make @d, which holds a connected socket (asyncore_set_socket() of an
 * accepted one, typically inside handle_accepted; one the program
 * connected, inside its handle_connect or later), a TLS server with
 * @ctx.  @d is connecting until the handshake is done, then handle_connect
 * runs.  Output queued on @d is sent in the clear first and input read
 * before the call is dropped (UPGRADE AND DOWNGRADE above).  Safe inside
 * hooks.  Errors: EINVAL (a client context), ENOTCONN (no connected
 * socket) and those of asyncore_tls_start_client().
 */
ASYNCORE_API int asyncore_tls_start_server(asyncore_dispatcher *d,
                                           asyncore_tls_context *ctx);

/**
 * Go back to plaintext on the same socket, as Python's SSLSocket.unwrap():
 * the output queued on @d before the call is sent over TLS, then
 * close_notify; TLS input keeps arriving at handle_read until the peer's
 * close_notify, which is not an end of file.  @d is then connecting until
 * handle_connect runs, in the next loop iteration: from there on it is a
 * plain dispatcher (asyncore_tls_active() is 0, asyncore_tls_ssl() NULL,
 * TLS may be started again) and output queued meanwhile goes out in the
 * clear.  Output pushed after the call waits for that.  Returns 0, or -1
 * with errno: EINVAL (@d NULL or not a TLS dispatcher), EBADF (closed),
 * ENOTCONN (the handshake is not done, TLS failed, or the peer's
 * close_notify ended the stream already), EALREADY (a stop was asked),
 * ENOMEM.  Failures while stopping arrive as handle_error(d, err, "tls").
 * Safe inside hooks.
 */
ASYNCORE_API int asyncore_tls_stop(asyncore_dispatcher *d);

/**
 * 1 if TLS carries @d's data now: its handshake is done and no stop is
 * over (inside handle_connect: 1 for "TLS is up", 0 for a TCP connect or
 * the end of asyncore_tls_stop()); else 0, also for NULL or closed.
 */
ASYNCORE_API int asyncore_tls_active(const asyncore_dispatcher *d);

/**
 * The reason of the last TLS failure of @d, in OpenSSL's words ("certificate
 * verify failed: hostname mismatch"), or NULL if there was none or @d is
 * not a TLS dispatcher.  Valid while @d is (after close, while held).
 */
ASYNCORE_API const char *asyncore_tls_last_error(const asyncore_dispatcher *d);

/**
 * 1 if the peer of @d closed the connection without sending close_notify
 * (handle_close ran for that end of file), else 0.
 */
ASYNCORE_API int asyncore_tls_truncated(const asyncore_dispatcher *d);

/**
 * The OpenSSL connection of @d, to inspect it (peer certificate, protocol,
 * cipher, ALPN), or NULL if @d is not a TLS dispatcher or is closed.  Do
 * not read, write or shut it down: the transport does.
 */
ASYNCORE_API struct ssl_st *asyncore_tls_ssl(const asyncore_dispatcher *d);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_TLS_H */
