/*
 * fuzz_http_url.c -- libFuzzer harness for the URL functions of
 * demo/http_parse.h: asyncore-http-client parses the URLs it is given and resolves
 * every Location a server sends against the URL it asked for, then derives
 * a file name from the result.  A server controls the Location, so this is
 * hostile input.
 *
 * The input's first line (up to "\n") is parsed as a URL; the rest is a
 * Location resolved against it (or against a fixed base when the first line
 * is not a URL).  Results are checked: a parsed URL formats and parses back
 * to itself; a resolved target starts with '/' and has no "." or ".."
 * segment; a save name is a plain file name.  Any violation aborts.
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

static void check_url(const struct http_url *u)
{
    char buf[HTTP_HOST_MAX + HTTP_TARGET_MAX + 32], name[256];
    struct http_url back;
    int n;

    CHECK(u->target[0] == '/');
    CHECK(u->port >= 1 && u->port <= 65535);
    CHECK(u->host[0] != '\0');
    CHECK(strlen(u->host) < sizeof(u->host));
    CHECK(strlen(u->target) < sizeof(u->target));
    CHECK(strchr(u->target, '#') == NULL);
    n = http_url_format(u, buf, sizeof(buf));
    CHECK(n > 0 && (size_t)n < sizeof(buf));
    CHECK(http_url_parse(buf, (size_t)n, &back) == HTTP_URL_OK);
    CHECK(strcmp(back.host, u->host) == 0 && back.port == u->port &&
          back.ipv6 == u->ipv6 && strcmp(back.target, u->target) == 0);
    n = http_url_host_header(u, buf, sizeof(buf));
    CHECK(n > 0 && (size_t)n < sizeof(buf));
    if (http_save_name(u->target, name, sizeof(name)) == 0) {
        CHECK(name[0] != '\0' && strchr(name, '/') == NULL);
        CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
    }
}

/* Does @ref start with a scheme ("x:"), as an absolute URL does? */
static int has_scheme(const char *ref, size_t len)
{
    size_t i = 0;

    if (len == 0 || !((ref[0] | 0x20) >= 'a' && (ref[0] | 0x20) <= 'z'))
        return 0;
    for (i = 1; i < len; i++) {
        char c = ref[i];
        if (c == ':')
            return 1;
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 0;
}

/* A reference resolved against the base keeps the base's server, and its
 * path (before any '?') has no dot segments left.  (An absolute URL or a
 * "//host" one is parsed as it is.) */
static void check_resolved(const struct http_url *base, const char *ref,
                           size_t rlen, const struct http_url *u)
{
    size_t plen = strcspn(u->target, "?");
    size_t start = 1;

    check_url(u);
    if (has_scheme(ref, rlen) || (rlen >= 2 && ref[0] == '/' && ref[1] == '/'))
        return;
    CHECK(strcmp(u->host, base->host) == 0 && u->port == base->port);
    for (size_t i = 1; i <= plen; i++) {
        if (i == plen || u->target[i] == '/') {
            size_t l = i - start;
            CHECK(!(l == 1 && u->target[start] == '.'));
            CHECK(!(l == 2 && u->target[start] == '.' && u->target[start + 1] == '.'));
            start = i + 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char fallback[] = "http://example.com:8080/a/b/c?q=1";
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t first = nl ? (size_t)(nl - p) : size;
    struct http_url base, out;
    char *line = malloc(first ? first : 1), *ref;
    size_t rlen = nl ? size - first - 1 : 0;

    if (line == NULL)
        abort();
    memcpy(line, p, first); /* exactly its bytes: no NUL to lean on */
    if (http_url_parse(line, first, &base) == HTTP_URL_OK)
        check_url(&base);
    else
        CHECK(http_url_parse(fallback, sizeof(fallback) - 1, &base) == HTTP_URL_OK);
    free(line);
    ref = malloc(rlen ? rlen : 1);
    if (ref == NULL)
        abort();
    memcpy(ref, nl ? nl + 1 : p, rlen);
    if (http_url_resolve(&base, ref, rlen, &out) == HTTP_URL_OK)
        check_resolved(&base, ref, rlen, &out);
    /* In place, as the client resolves a redirect chain. */
    out = base;
    if (http_url_resolve(&out, ref, rlen, &out) == HTTP_URL_OK)
        check_resolved(&base, ref, rlen, &out);
    free(ref);
    return 0;
}
