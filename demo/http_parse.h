/*
 * http_parse.h -- the HTTP/1.1 syntax shared by asyncore-http-client and asyncore-http-server.
 *
 * Every function here is pure: it reads the (buf, len) it is given, which
 * need not be NUL-terminated, writes only to its output arguments, and does
 * no I/O and no allocation.  That keeps the protocol rules in one place,
 * apart from the event handling, and lets a fuzzer call each parser
 * directly.  Output strings are always NUL-terminated.
 */
#ifndef DEMO_HTTP_PARSE_H
#define DEMO_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Limits both programs enforce. */
#define HTTP_LINE_MAX 8192           /* one request, status or header line */
#define HTTP_HEADER_MAX (64 * 1024)  /* the whole header block */
#define HTTP_HOST_MAX 256
#define HTTP_TARGET_MAX HTTP_LINE_MAX

/* ---- URLs (asyncore-http-client) -------------------------------------------------- */

/** An http:// or https:// URL taken apart. */
struct http_url {
    char host[HTTP_HOST_MAX];    /* without brackets for IPv6 literals */
    unsigned port;               /* 80 (443 for https) when the URL names none */
    int ipv6;                    /* host was a [bracketed] literal */
    int https;                   /* the scheme is https: TLS */
    char target[HTTP_TARGET_MAX]; /* path and query, at least "/"; no fragment */
};

enum http_url_error {
    HTTP_URL_OK = 0,
    HTTP_URL_BAD,     /* not a URL we can fetch */
    HTTP_URL_SCHEME   /* a scheme other than http and https, such as ftp */
};

/** Parse an absolute http:// or https:// URL. */
enum http_url_error http_url_parse(const char *s, size_t len,
                                   struct http_url *u);

/**
 * Resolve the Location value @ref against the URL @base, as a browser does
 * (RFC 3986 section 5: absolute, "//host/...", "/path", "?query",
 * "relative/path" with "." and ".." segments), into @out.  @out may be
 * @base.
 */
enum http_url_error http_url_resolve(const struct http_url *base,
                                     const char *ref, size_t len,
                                     struct http_url *out);

/** Write "http[s]://host[:port]/target" into @buf; returns as snprintf(3). */
int http_url_format(const struct http_url *u, char *buf, size_t size);

/**
 * The "Host" header value for @u ("host", "host:port", "[v6]:port"; no
 * port when it is the scheme's default) into @buf; returns as snprintf(3).
 */
int http_url_host_header(const struct http_url *u, char *buf, size_t size);

/**
 * The file name under which asyncore-http-client -O saves @target: its last path
 * segment, percent-decoded, or "index.html" for a path ending in '/'.
 * Returns 0, or -1 if that name is unusable ("..", a '/' or NUL once
 * decoded, bad percent-encoding, longer than @size - 1).
 */
int http_save_name(const char *target, char *name, size_t size);

/* ---- messages ------------------------------------------------------------- */

/** A status line: "HTTP/1.1 200 OK". */
struct http_status {
    int major, minor;
    int code;                    /* 100..599 */
};

/** Parse a status line (without its CRLF).  Returns 0 or -1. */
int http_parse_status_line(const char *buf, size_t len, struct http_status *st);

/** A request line: "GET /index.html HTTP/1.1". */
struct http_request_line {
    const char *method;  /* pointers into the parsed buffer */
    size_t method_len;
    const char *target;
    size_t target_len;
    int major, minor;
};

/**
 * Parse a request line (without its CRLF).  Returns 0, or -1 if it is not
 * "TOKEN SP TARGET SP HTTP/D.D" with a target of visible characters.
 */
int http_parse_request_line(const char *buf, size_t len,
                            struct http_request_line *rl);

/**
 * Split a header line (without its CRLF) into a field name and a value
 * without surrounding whitespace; the pointers point into @buf.  Returns
 * 0, or -1 for a malformed line: no colon, a name that is not a token,
 * whitespace before the colon, control characters, or an obsolete folded
 * continuation line (one starting with a space or a tab).
 */
int http_parse_header_line(const char *buf, size_t len, const char **name,
                           size_t *name_len, const char **value,
                           size_t *value_len);

/** Case-insensitive: does the header name @name (of @len bytes) equal @want? */
int http_name_is(const char *name, size_t len, const char *want);

/**
 * Does the comma-separated list @value contain the token @want (any case)?
 * For "Connection: close" and "Transfer-Encoding: gzip, chunked".
 */
int http_list_has(const char *value, size_t len, const char *want);

/** Is @want the last element of the comma-separated list @value? */
int http_list_ends_with(const char *value, size_t len, const char *want);

/** A Content-Length value: decimal digits only.  Returns 0 or -1. */
int http_parse_content_length(const char *value, size_t len, uint64_t *n);

/**
 * A chunk-size line (without its CRLF): hex digits, then optionally
 * whitespace and ";extensions", which are ignored.  Returns 0 or -1.
 */
int http_parse_chunk_size(const char *buf, size_t len, uint64_t *n);

/* ---- serving files (asyncore-http-server) ----------------------------------------- */

/**
 * Percent-decode @len bytes at @in into @out (NUL-terminated, at most
 * @size - 1 bytes).  Returns the decoded length, or -1 for a '%' not
 * followed by two hex digits, an encoded NUL, or an @out too small.
 */
long http_percent_decode(const char *in, size_t len, char *out, size_t size);

/** Does the path @path (of @len bytes) have a ".." segment? */
int http_path_has_dotdot(const char *path, size_t len);

/** The Content-Type for a file name, by its extension. */
const char *http_content_type(const char *path);

/**
 * An HTTP-date for @t ("Sun, 06 Nov 1994 08:49:37 GMT"), in @buf of @size
 * bytes (30 are enough).
 */
void http_format_date(time_t t, char *buf, size_t size);

/**
 * Parse an HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime()
 * forms.  Returns 0 with @t set, or -1.
 */
int http_parse_date(const char *value, size_t len, time_t *t);

/**
 * A Range header's value, for a file of @size bytes: one byte range
 * ("bytes=A-B", "bytes=A-" or "bytes=-N").  Returns 1 with the first and
 * last byte (inclusive) set; 0 if the range is unsatisfiable (416); -1 if
 * it is malformed, not in bytes or several ranges: then it is ignored and
 * the whole file sent.
 */
int http_parse_range(const char *value, size_t len, uint64_t size,
                     uint64_t *first, uint64_t *last);

/** The reason phrase of a status code ("Not Found"). */
const char *http_reason(int code);

#endif /* DEMO_HTTP_PARSE_H */
