/*
 * http_client.c -- the Python documentation's asyncore example "basic
 * HTTP client", ported with its structure unchanged: the request is put in
 * the buffer right after connect, outside any hook, and the loop is then
 * started.  That works because asyncore_loop() asks every dispatcher's
 * readable() and writable() when it is entered, as asyncore asked them
 * before every select().
 *
 *     http_client [HOST [PATH [PORT]]]     (www.python.org / 80)
 *     cc http_client.c $(pkg-config --cflags --libs asyncore)
 */
#include <asyncore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HTTPClient's attribute: self.buffer, what is still to be sent. */
struct http_client {
    char buffer[1024];
    size_t len;
};

static struct http_client *self_of(asyncore_dispatcher *d)
{
    return asyncore_dispatcher_area(d);
}

static void handle_connect(asyncore_dispatcher *d)
{
    (void)d; /* pass */
}

static void handle_close(asyncore_dispatcher *d)
{
    asyncore_close(d);
}

/* print(self.recv(8192)) */
static void handle_read(asyncore_dispatcher *d)
{
    char data[8192];
    ssize_t n = asyncore_recv(d, data, sizeof(data));

    if (n > 0)
        fwrite(data, 1, (size_t)n, stdout);
}

/* return len(self.buffer) > 0 */
static int writable(asyncore_dispatcher *d)
{
    return self_of(d)->len > 0;
}

/* sent = self.send(self.buffer); self.buffer = self.buffer[sent:] */
static void handle_write(asyncore_dispatcher *d)
{
    struct http_client *self = self_of(d);
    ssize_t sent = asyncore_send(d, self->buffer, self->len);

    if (sent > 0) {
        memmove(self->buffer, self->buffer + sent, self->len - (size_t)sent);
        self->len -= (size_t)sent;
    }
}

static const asyncore_handlers http_client_handlers = {
    .handle_connect = handle_connect,
    .handle_close = handle_close,
    .handle_read = handle_read,
    .writable = writable,
    .handle_write = handle_write,
};

/* HTTPClient.__init__(host, path), with the port the Python hard-codes. */
static asyncore_dispatcher *http_client_new(const char *host, const char *path,
                                            unsigned port)
{
    asyncore_dispatcher *d;
    struct http_client *self;
    int n;

    d = asyncore_dispatcher_new_ex(NULL, &http_client_handlers, NULL, NULL,
                                   sizeof(struct http_client));
    if (d == NULL)
        return NULL;
    self = self_of(d);
    if (asyncore_create_socket(d, AF_INET, SOCK_STREAM) < 0 ||
        asyncore_connect_host(d, host, port) < 0) {
        asyncore_close(d);
        return NULL;
    }
    n = snprintf(self->buffer, sizeof(self->buffer),
                 "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    self->len = n > 0 && (size_t)n < sizeof(self->buffer) ? (size_t)n : 0;
    return d;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "www.python.org";
    const char *path = argc > 2 ? argv[2] : "/";
    unsigned port = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 80;
    int rc = 0;

    if (http_client_new(host, path, port) == NULL) {
        perror("http_client");
        return 1;
    }
    if (asyncore_loop(NULL, 30.0, ASYNCORE_FOREVER) < 0) {
        perror("asyncore_loop");
        rc = 1;
    }
    asyncore_map_free(NULL);
    return rc;
}
