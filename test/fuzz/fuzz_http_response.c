/*
 * fuzz_http_response.c -- libFuzzer harness for the parsers asyncore-http-client
 * runs on what a server sends (demo/http_parse.h): the status line, header
 * lines, Content-Length values, Transfer-Encoding lists and chunk-size
 * lines.
 *
 * The input is cut into lines at CRLF, as the client's terminator cuts
 * them, and every parser is run on every line.  Each line is copied into a
 * heap block of exactly its length, not NUL-terminated, so that a read past
 * its end is caught by AddressSanitizer.  Where a parser accepts, what it
 * returned is checked against the syntax it claims; any violation aborts.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

#define CHECK(c)                                                             \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #c);                                                     \
            abort();                                                         \
        }                                                                    \
    } while (0)

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

static void status_line(const char *b, size_t n)
{
    struct http_status st;

    if (http_parse_status_line(b, n, &st) < 0)
        return;
    CHECK(n >= 12 && memcmp(b, "HTTP/", 5) == 0 && b[6] == '.' && b[8] == ' ');
    CHECK(st.major == b[5] - '0' && st.minor == b[7] - '0');
    CHECK(st.code >= 100 && st.code <= 599);
    CHECK(st.code == (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0'));
    for (size_t i = 12; i < n; i++)
        CHECK(!is_ctl((unsigned char)b[i]));
}

/* A Content-Length is decimal digits only, and its value is exact. */
static void content_length(const char *v, size_t n)
{
    uint64_t got, want = 0;

    if (http_parse_content_length(v, n, &got) < 0)
        return;
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(is_digit((unsigned char)v[i]));
        CHECK(want <= (UINT64_MAX - 9) / 10); /* no silent overflow */
        want = want * 10 + (uint64_t)(v[i] - '0');
    }
    CHECK(got == want);
}

static void chunk_size(const char *b, size_t n)
{
    uint64_t got, want = 0;
    size_t i = 0;

    if (http_parse_chunk_size(b, n, &got) < 0)
        return;
    CHECK(n > 0 && is_hex((unsigned char)b[0]));
    for (; i < n && is_hex((unsigned char)b[i]); i++) {
        CHECK(want < (UINT64_C(1) << 60)); /* no silent overflow */
        want = want * 16 + (uint64_t)(is_digit((unsigned char)b[i])
                                          ? b[i] - '0'
                                          : (b[i] | 0x20) - 'a' + 10);
    }
    CHECK(got == want);
    while (i < n && (b[i] == ' ' || b[i] == '\t'))
        i++;
    CHECK(i == n || b[i] == ';');
}

/* The list helpers agree with each other and with a plain comparison. */
static void lists(const char *v, size_t n)
{
    static const char *const words[] = { "chunked", "close", "keep-alive", "gzip" };

    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        int has = http_list_has(v, n, words[w]);
        int last = http_list_ends_with(v, n, words[w]);

        CHECK(has == 0 || has == 1);
        CHECK(!last || has);
        if (n == strlen(words[w]) && strncasecmp(v, words[w], n) == 0)
            CHECK(has && last);
    }
}

static void header_line(const char *b, size_t n)
{
    const char *name, *value;
    size_t nl, vl;

    if (http_parse_header_line(b, n, &name, &nl, &value, &vl) < 0)
        return;
    CHECK(name == b && nl >= 1 && nl < n && b[nl] == ':');
    CHECK(value >= b + nl + 1 && value + vl <= b + n);
    CHECK(vl == 0 || (value[0] != ' ' && value[0] != '\t' &&
                      value[vl - 1] != ' ' && value[vl - 1] != '\t'));
    for (size_t i = 0; i < nl; i++)
        CHECK(b[i] > 0x20 && b[i] < 0x7f && b[i] != ':');
    for (size_t i = nl + 1; i < n; i++)
        CHECK(!is_ctl((unsigned char)b[i]));
    CHECK(http_name_is(name, nl, "Content-Length") ==
          (nl == 14 && strncasecmp(name, "content-length", 14) == 0));
    content_length(value, vl);
    lists(value, vl);
}

static void one_line(const char *line, size_t n)
{
    /* Exactly n bytes (at least one, for malloc): no terminating NUL. */
    char *b = malloc(n ? n : 1);

    if (b == NULL)
        abort();
    memcpy(b, line, n);
    status_line(b, n);
    header_line(b, n);
    content_length(b, n);
    chunk_size(b, n);
    lists(b, n);
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
    return 0;
}
