/*
 * http_parse.c -- the HTTP/1.1 syntax shared by asyncore-http-client and asyncore-http-server
 * (RFC 9110, 9112, and RFC 3986 for URLs).  Pure functions over (buf, len):
 * see http_parse.h.
 *
 * The parsers are strict where leniency would be a risk (control
 * characters, whitespace before a header's colon, folded header lines,
 * signs or spaces in numbers) and otherwise accept what real servers send.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* strptime(), timegm() */
#endif
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_parse.h"

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(int c) { return c == ' ' || c == '\t'; }

static int hex_value(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A visible ASCII character: what URLs and request targets are made of. */
static int is_vchar(int c) { return c > 0x20 && c < 0x7f; }

/* A token character (RFC 9110 5.6.2): methods and header names. */
static int is_tchar(int c)
{
    return is_alpha(c) || is_digit(c) ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* What may appear in a header value or a reason phrase: no controls but
 * tab.  Bytes >= 0x80 (obs-text) are allowed. */
static int is_field_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* Copy @len bytes into @dst of @size as a string; -1 if they do not fit. */
static int copy_str(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* ---- URLs ----------------------------------------------------------------- */

/* The index of the last '/' in the first @len bytes of @s; SIZE_MAX if
 * there is none, so that the index + 1 is always where the rest starts. */
static size_t last_slash(const char *s, size_t len)
{
    while (len > 0 && s[len - 1] != '/')
        len--;
    return len - 1;
}

/* The length of a leading "scheme:" name (before the colon), or 0. */
static size_t scheme_len(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || !is_alpha((unsigned char)s[0]))
        return 0;
    for (i = 1; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == ':')
            return i;
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
            return 0;
    }
    return 0;
}

/* The host of an authority: "[v6]" or a name or IPv4 address. */
static int parse_host(const char *s, size_t len, struct http_url *u)
{
    unsigned char buf[sizeof(struct in6_addr)];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        /* inet_pton refuses zone ids ("%25eth0") too: fine for a demo. */
        if (copy_str(u->host, sizeof(u->host), s + 1, len - 2) < 0 ||
            inet_pton(AF_INET6, u->host, buf) != 1)
            return -1;
        u->ipv6 = 1;
        return 0;
    }
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
            return -1;
    }
    u->ipv6 = 0;
    return copy_str(u->host, sizeof(u->host), s, len);
}

/* "host[:port]" up to the path. */
static int parse_authority(const char *s, size_t len, struct http_url *u)
{
    size_t host_len = 0;
    unsigned long port = 0;

    /* The host ends at the port's colon; an IPv6 literal has colons of
     * its own, so it ends at its closing bracket. */
    if (len > 0 && s[0] == '[') {
        while (host_len < len && s[host_len] != ']')
            host_len++;
        if (host_len++ == len)
            return -1;
    } else {
        while (host_len < len && s[host_len] != ':')
            host_len++;
    }
    if (host_len < len && s[host_len] != ':')
        return -1;
    /* "host:" with no digits means the default port (RFC 3986 3.2.3). */
    if (host_len + 1 >= len) {
        port = u->https ? 443 : 80;
    } else if (len - host_len - 1 > 5) {
        return -1;
    } else {
        for (size_t i = host_len + 1; i < len; i++) {
            if (!is_digit((unsigned char)s[i]))
                return -1;
            port = port * 10 + (unsigned long)(s[i] - '0');
        }
        if (port == 0 || port > 65535)
            return -1;
    }
    u->port = (unsigned)port;
    return parse_host(s, host_len, u);
}

/* Path and query, without the fragment; "" and "?q" get their "/". */
static int set_target(struct http_url *u, const char *s, size_t len)
{
    const char *hash = len > 0 ? memchr(s, '#', len) : NULL;
    size_t off = 0;

    if (hash != NULL)
        len = (size_t)(hash - s);
    for (size_t i = 0; i < len; i++)
        if (!is_vchar((unsigned char)s[i]))
            return -1;
    if (len == 0 || s[0] != '/') {
        u->target[0] = '/';
        off = 1;
    }
    if (copy_str(u->target + off, sizeof(u->target) - off, s, len) < 0)
        return -1;
    return 0;
}

enum http_url_error http_url_parse(const char *s, size_t len, struct http_url *u)
{
    size_t n = scheme_len(s, len), auth_len;
    const char *auth;

    if (n == 0)
        return HTTP_URL_BAD;
    if (n == 5 && strncasecmp(s, "https", 5) == 0)
        u->https = 1;
    else if (n == 4 && strncasecmp(s, "http", 4) == 0)
        u->https = 0;
    else
        return HTTP_URL_SCHEME;
    if (len < n + 3 || memcmp(s + n, "://", 3) != 0)
        return HTTP_URL_BAD;
    auth = s + n + 3;
    len -= n + 3;
    for (auth_len = 0; auth_len < len; auth_len++)
        if (auth[auth_len] == '/' || auth[auth_len] == '?' ||
            auth[auth_len] == '#')
            break;
    /* No "user:password@": we would have nothing to do with it. */
    if (memchr(auth, '@', auth_len) != NULL ||
        parse_authority(auth, auth_len, u) < 0 ||
        set_target(u, auth + auth_len, len - auth_len) < 0)
        return HTTP_URL_BAD;
    return HTTP_URL_OK;
}

/*
 * RFC 3986 5.2.4: remove "." and ".." segments from @in (a path starting
 * with '/', of @len bytes) into @out.  ".." never climbs above the root.
 */
static int remove_dot_segments(const char *in, size_t len, char *out,
                               size_t size)
{
    size_t i = 0, o = 0;

    while (i < len) {
        const char *slash = memchr(in + i + 1, '/', len - i - 1);
        size_t j = slash ? (size_t)(slash - in) : len;
        const char *seg = in + i + 1;
        size_t seg_len = j - i - 1;
        int last = j == len;

        if (seg_len == 1 && seg[0] == '.') {
            /* "/a/." is "/a/" */
        } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* "/a/b/.." drops "/b" */
        } else {
            if (o + 1 + seg_len >= size)
                return -1;
            out[o++] = '/';
            memcpy(out + o, seg, seg_len);
            o += seg_len;
            i = j;
            continue;
        }
        if (last) {
            if (o + 1 >= size)
                return -1;
            out[o++] = '/';
        }
        i = j;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return 0;
}

enum http_url_error http_url_resolve(const struct http_url *base,
                                     const char *ref, size_t len,
                                     struct http_url *out)
{
    char merged[2 * HTTP_TARGET_MAX];
    const char *hash = len > 0 ? memchr(ref, '#', len) : NULL;
    struct http_url r = *base;
    size_t base_path, path_len, m = 0;
    const char *query;

    if (hash != NULL)
        len = (size_t)(hash - ref);
    if (scheme_len(ref, len) > 0)
        return http_url_parse(ref, len, out);
    if (len >= 2 && ref[0] == '/' && ref[1] == '/') {
        /* "//host/path": the base's scheme, another authority. */
        size_t n = base->https ? 6 : 5;

        if (len + n >= sizeof(merged))
            return HTTP_URL_BAD;
        memcpy(merged, base->https ? "https:" : "http:", n);
        memcpy(merged + n, ref, len);
        return http_url_parse(merged, len + n, out);
    }
    for (size_t i = 0; i < len; i++)
        if (!is_vchar((unsigned char)ref[i]))
            return HTTP_URL_BAD;
    base_path = strcspn(base->target, "?");
    if (len == 0 || ref[0] == '?') {
        /* The same path; a new query, or the whole base target. */
        m = len == 0 ? strlen(base->target) : base_path;
        memcpy(merged, base->target, m);
    } else if (ref[0] != '/') {
        /* Relative: replaces the base path's last segment. */
        m = last_slash(base->target, base_path) + 1;
        memcpy(merged, base->target, m);
    }
    if (m + len >= sizeof(merged))
        return HTTP_URL_BAD;
    memcpy(merged + m, ref, len);
    m += len;
    merged[m] = '\0';
    query = memchr(merged, '?', m);
    path_len = query ? (size_t)(query - merged) : m;
    if (remove_dot_segments(merged, path_len, r.target, sizeof(r.target)) < 0)
        return HTTP_URL_BAD;
    if (query != NULL) {
        size_t t = strlen(r.target);

        if (copy_str(r.target + t, sizeof(r.target) - t, query,
                     m - path_len) < 0)
            return HTTP_URL_BAD;
    }
    *out = r;
    return HTTP_URL_OK;
}

int http_url_host_header(const struct http_url *u, char *buf, size_t size)
{
    const char *l = u->ipv6 ? "[" : "", *r = u->ipv6 ? "]" : "";

    if (u->port == (u->https ? 443u : 80u))
        return snprintf(buf, size, "%s%s%s", l, u->host, r);
    return snprintf(buf, size, "%s%s%s:%u", l, u->host, r, u->port);
}

int http_url_format(const struct http_url *u, char *buf, size_t size)
{
    char host[HTTP_HOST_MAX + 16];

    http_url_host_header(u, host, sizeof(host));
    return snprintf(buf, size, "%s://%s%s", u->https ? "https" : "http", host,
                    u->target);
}

int http_save_name(const char *target, char *name, size_t size)
{
    size_t path_len = strcspn(target, "?");
    /* A target always starts with '/', so there is a last slash. */
    size_t start = last_slash(target, path_len) + 1;
    const char *seg = target + start;
    size_t seg_len = path_len - start;
    long n;

    if (seg_len == 0)
        return copy_str(name, size, "index.html", 10);
    n = http_percent_decode(seg, seg_len, name, size);
    if (n <= 0 || memchr(name, '/', (size_t)n) != NULL ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -1;
    return 0;
}

/* ---- messages ------------------------------------------------------------- */

/* "HTTP/D.D" at @s; the version in *major and *minor. */
static int parse_version(const char *s, int *major, int *minor)
{
    if (memcmp(s, "HTTP/", 5) != 0 || !is_digit((unsigned char)s[5]) ||
        s[6] != '.' || !is_digit((unsigned char)s[7]))
        return -1;
    *major = s[5] - '0';
    *minor = s[7] - '0';
    return 0;
}

int http_parse_status_line(const char *buf, size_t len, struct http_status *st)
{
    /* "HTTP/1.1 200" at least; the reason phrase may be missing. */
    if (len < 12 || parse_version(buf, &st->major, &st->minor) < 0 ||
        buf[8] != ' ')
        return -1;
    st->code = 0;
    for (int i = 9; i < 12; i++) {
        if (!is_digit((unsigned char)buf[i]))
            return -1;
        st->code = st->code * 10 + (buf[i] - '0');
    }
    if (st->code < 100 || st->code > 599 || (len > 12 && buf[12] != ' '))
        return -1;
    for (size_t i = 12; i < len; i++)
        if (!is_field_char((unsigned char)buf[i]))
            return -1;
    return 0;
}

int http_parse_request_line(const char *buf, size_t len,
                            struct http_request_line *rl)
{
    size_t i = 0, t;

    while (i < len && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == 0 || i == len || buf[i] != ' ')
        return -1;
    rl->method = buf;
    rl->method_len = i;
    t = ++i;
    while (i < len && is_vchar((unsigned char)buf[i]))
        i++;
    if (i == t || i == len || buf[i] != ' ')
        return -1;
    rl->target = buf + t;
    rl->target_len = i - t;
    i++;
    if (len - i != 8 || parse_version(buf + i, &rl->major, &rl->minor) < 0)
        return -1;
    return 0;
}

int http_parse_header_line(const char *buf, size_t len, const char **name,
                           size_t *name_len, const char **value,
                           size_t *value_len)
{
    size_t i = 0, end;

    while (i < len && is_tchar((unsigned char)buf[i]))
        i++;
    /* A folded line starts with whitespace, so it has no token: refused. */
    if (i == 0 || i == len || buf[i] != ':')
        return -1;
    *name = buf;
    *name_len = i;
    for (size_t k = i + 1; k < len; k++)
        if (!is_field_char((unsigned char)buf[k]))
            return -1;
    i++;
    while (i < len && is_space(buf[i]))
        i++;
    end = len;
    while (end > i && is_space(buf[end - 1]))
        end--;
    *value = buf + i;
    *value_len = end - i;
    return 0;
}

int http_name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Compare each trimmed, non-empty element of a list with @want: true at
 * the first match, or with @last_only, whether the last element matches. */
static int each_element(const char *v, size_t len, const char *want,
                        int last_only)
{
    int found = 0;
    size_t i = 0;

    while (i < len) {
        const char *comma = memchr(v + i, ',', len - i);
        size_t j = comma ? (size_t)(comma - v) : len, s = i, e = j;

        while (s < e && is_space(v[s]))
            s++;
        while (e > s && is_space(v[e - 1]))
            e--;
        if (e > s) {
            found = http_name_is(v + s, e - s, want);
            if (found && !last_only)
                return 1;
        }
        i = j + 1;
    }
    return found;
}

int http_list_has(const char *value, size_t len, const char *want)
{
    return each_element(value, len, want, 0);
}

int http_list_ends_with(const char *value, size_t len, const char *want)
{
    return each_element(value, len, want, 1);
}

int http_parse_content_length(const char *value, size_t len, uint64_t *n)
{
    uint64_t v = 0;

    /* 18 digits cannot overflow; no body is that large anyway. */
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)value[i]))
            return -1;
        v = v * 10 + (uint64_t)(value[i] - '0');
    }
    *n = v;
    return 0;
}

int http_parse_chunk_size(const char *buf, size_t len, uint64_t *n)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < len && hex_value((unsigned char)buf[i]) >= 0; i++) {
        if (i == 15)
            return -1; /* over 2^60 bytes: not a real chunk */
        v = v * 16 + (uint64_t)hex_value((unsigned char)buf[i]);
    }
    if (i == 0)
        return -1;
    while (i < len && is_space(buf[i]))
        i++;
    if (i < len && buf[i] != ';')
        return -1;
    for (; i < len; i++)
        if (!is_field_char((unsigned char)buf[i]))
            return -1;
    *n = v;
    return 0;
}

/* ---- serving files -------------------------------------------------------- */

long http_percent_decode(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];

        if (c == '%') {
            int hi = i + 2 < len ? hex_value((unsigned char)in[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value((unsigned char)in[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1; /* "%zz", a cut "%4", or "%00" */
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    if (size == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

int http_path_has_dotdot(const char *path, size_t len)
{
    size_t i = 0;

    while (i <= len) {
        const char *slash = i < len ? memchr(path + i, '/', len - i) : NULL;
        size_t j = slash ? (size_t)(slash - path) : len;

        if (j - i == 2 && path[i] == '.' && path[i + 1] == '.')
            return 1;
        i = j + 1;
    }
    return 0;
}

const char *http_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { "html", "text/html; charset=utf-8" },
        { "htm", "text/html; charset=utf-8" },
        { "txt", "text/plain; charset=utf-8" },
        { "css", "text/css" },
        { "js", "text/javascript" },
        { "json", "application/json" },
        { "xml", "application/xml" },
        { "svg", "image/svg+xml" },
        { "png", "image/png" },
        { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" },
        { "gif", "image/gif" },
        { "webp", "image/webp" },
        { "ico", "image/x-icon" },
        { "pdf", "application/pdf" },
        { "wasm", "application/wasm" },
        { "gz", "application/gzip" },
        { "tar", "application/x-tar" },
        { "zip", "application/zip" },
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');

    if (dot != NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- dates and ranges (conditional and partial GETs) ------------------------ */

void http_format_date(time_t t, char *buf, size_t size)
{
    struct tm tm;

    /* The C locale's day and month names: the program never sets another. */
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 GMT");
}

int http_parse_date(const char *value, size_t len, time_t *t)
{
    /* IMF-fixdate, then the two obsolete forms a recipient must still
     * accept (RFC 9110 5.6.7): RFC 850's and asctime()'s. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    };
    char buf[64];

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, value, len);
    buf[len] = '\0';
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm;
        const char *end;

        memset(&tm, 0, sizeof(tm));
        end = strptime(buf, formats[i], &tm);
        if (end != NULL && *end == '\0') {
            *t = timegm(&tm);
            return *t == (time_t)-1 ? -1 : 0;
        }
    }
    return -1;
}

int http_parse_range(const char *value, size_t len, uint64_t size,
                     uint64_t *first, uint64_t *last)
{
    const char *dash, *end = value + len;
    uint64_t a, b;

    if (len < 6 || strncasecmp(value, "bytes", 5) != 0)
        return -1;
    value += 5;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    if (value == end || *value++ != '=')
        return -1;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    /* Several ranges would need a multipart answer: the whole file will
     * do instead, which RFC 9110 14.2 allows. */
    if (memchr(value, ',', (size_t)(end - value)) != NULL)
        return -1;
    dash = memchr(value, '-', (size_t)(end - value));
    if (dash == NULL)
        return -1;
    if (dash == value) {
        /* "-N": the last N bytes. */
        if (http_parse_content_length(dash + 1, (size_t)(end - dash - 1), &b) < 0)
            return -1;
        if (b == 0 || size == 0)
            return 0;
        *first = b < size ? size - b : 0;
        *last = size - 1;
        return 1;
    }
    if (http_parse_content_length(value, (size_t)(dash - value), &a) < 0)
        return -1;
    if (dash + 1 == end) {
        b = UINT64_MAX; /* "A-": to the end */
    } else if (http_parse_content_length(dash + 1, (size_t)(end - dash - 1), &b) < 0 ||
               b < a) {
        return -1;
    }
    if (a >= size)
        return 0;
    *first = a;
    *last = b < size - 1 ? b : size - 1;
    return 1;
}

const char *http_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
