/*
 * fuzz_http_request.c -- libFuzzer harness for the parsers asyncore-http-server
 * runs on what a client sends (demo/http_parse.h): the request line, header
 * lines and Content-Length, then the target's path as the server maps it to
 * a file: percent-decoding, the ".." check and the content type.
 *
 * The input is cut into lines at CRLF, as the server's terminator cuts
 * them; each line is copied into a heap block of exactly its length (no
 * NUL), so that AddressSanitizer catches a read past its end.  Where a
 * parser accepts, its result is checked against the syntax; any violation
 * aborts.  The ".." check is compared with a naive one: a path that
 * climbs out of ROOT must never pass.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define CHECK(c)                                                             \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #c);                                                     \
            abort();                                                         \
        }                                                                    \
    } while (0)

static int is_vchar(int c) { return c > 0x20 && c < 0x7f; }

/* Does the path have a ".." segment?  Written the slow, obvious way. */
static int naive_dotdot(const char *p, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The server's mapping of a target to a file name. */
static void target_path(const char *t, size_t n)
{
    char path[HTTP_TARGET_MAX + 1];
    const char *q = memchr(t, '?', n);
    size_t plen = q ? (size_t)(q - t) : n;
    long d = http_percent_decode(t, plen, path, sizeof(path));

    if (d < 0)
        return;
    CHECK((size_t)d <= plen && (size_t)d < sizeof(path) && path[d] == '\0');
    if (memchr(t, '\0', plen) == NULL)
        CHECK(strlen(path) == (size_t)d); /* "%00" is refused */
    if (memchr(t, '%', plen) == NULL)
        CHECK(memcmp(path, t, plen) == 0);
    CHECK(http_path_has_dotdot(path, (size_t)d) == naive_dotdot(path, (size_t)d));
    CHECK(http_content_type(path) != NULL);
}

static void request_line(const char *b, size_t n)
{
    struct http_request_line rl;

    if (http_parse_request_line(b, n, &rl) < 0)
        return;
    CHECK(rl.method == b && rl.method_len > 0);
    CHECK(rl.target == b + rl.method_len + 1 && rl.target_len > 0);
    CHECK(rl.method_len + 1 + rl.target_len + 1 + 8 == n);
    CHECK(b[rl.method_len] == ' ' && rl.target[rl.target_len] == ' ');
    for (size_t i = 0; i < rl.target_len; i++)
        CHECK(is_vchar((unsigned char)rl.target[i]));
    CHECK(memcmp(b + n - 8, "HTTP/", 5) == 0);
    CHECK(rl.major >= 0 && rl.major <= 9 && rl.minor >= 0 && rl.minor <= 9);
    target_path(rl.target, rl.target_len);
}

static void header_line(const char *b, size_t n)
{
    const char *name, *value;
    size_t nl, vl;
    uint64_t len;

    if (http_parse_header_line(b, n, &name, &nl, &value, &vl) < 0)
        return;
    CHECK(name == b && nl >= 1 && b[nl] == ':');
    CHECK(value >= b + nl + 1 && value + vl <= b + n);
    if (http_parse_content_length(value, vl, &len) == 0)
        CHECK(vl > 0 && vl <= 18);
    (void)http_list_has(value, vl, "close");
    (void)http_list_has(value, vl, "keep-alive");
}

static void one_line(const char *line, size_t n)
{
    char *b = malloc(n ? n : 1);

    if (b == NULL)
        abort();
    memcpy(b, line, n);
    request_line(b, n);
    header_line(b, n);
    target_path(b, n);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;

    while (p <= end) {
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        size_t n = crlf ? (size_t)(crlf - p) : (size_t)(end - p);

        one_line(p, n);
        if (crlf == NULL)
            break;
        p = crlf + 2;
    }
    (void)http_reason(size > 0 ? data[0] * 3 : 200);
    return 0;
}
