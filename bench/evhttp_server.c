/* evhttp_server -- the HTTP benchmark's libevent reference: the files under
 * a directory served with libevent's own evhttp, the way one would without
 * our library.
 *
 *   evhttp_server [-b ADDR] [-p PORT] -r ROOT
 *
 * GET and HEAD of regular files only: the request path is appended to ROOT
 * after refusing any ".." segment, the file goes out with
 * evbuffer_add_file() (sendfile where the kernel has it), everything else
 * gets a 404.  evhttp does keep-alive and pipelining itself.  Enough to be
 * a fair opponent for demo/asyncore-http-server under wrk, not a web server.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const char *root = NULL;

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".txt") == 0)
        return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

/* "/a/b" decoded, no ".." segment, or NULL. */
static char *safe_path(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || path[0] != '/')
        return NULL;
    char *dec = evhttp_uridecode(path, 0, NULL);
    if (!dec)
        return NULL;
    for (const char *p = dec; (p = strstr(p, "..")) != NULL; p += 2) {
        if ((p == dec || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) {
            free(dec);
            return NULL;
        }
    }
    return dec;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    char *path = safe_path(req);
    char full[PATH_MAX];
    int fd = -1;
    struct stat st;
    if (path && (size_t)snprintf(full, sizeof full, "%s%s", root, path) < sizeof full)
        fd = open(full, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        evhttp_send_error(req, 404, NULL);
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", content_type(full));
    struct evbuffer *body = evbuffer_new();
    /* evbuffer_add_file() owns fd from here, even when it fails. */
    if (!body || (st.st_size > 0 && evbuffer_add_file(body, fd, 0, st.st_size) < 0)) {
        if (body)
            evbuffer_free(body);
        else
            close(fd);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (st.st_size == 0)
        close(fd);
    /* For HEAD, evhttp sends the Content-Length of the body it drops. */
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, ch;
    while ((ch = getopt(argc, argv, "b:p:r:h")) != -1) {
        switch (ch) {
        case 'b': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'r': root = optarg; break;
        case 'h':
            printf("usage: %s [-b ADDR] [-p PORT] -r ROOT\n"
                   "Serve the files under ROOT with libevent's evhttp (benchmark\n"
                   "reference).  Prints \"listening on HOST:PORT\" when ready;\n"
                   "SIGTERM and SIGINT exit 0.\n", argv[0]);
            return 0;
        default: return 2;
        }
    }
    if (!root || optind != argc) {
        fprintf(stderr, "usage: %s [-b ADDR] [-p PORT] -r ROOT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http) {
        fprintf(stderr, "evhttp_server: cannot create the server\n");
        return 1;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, addr, (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "evhttp_server: cannot listen on %s port %d\n", addr, port);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len);
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%d\n" : "listening on %s:%d\n",
           addr, bound);
    fflush(stdout);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    if (!term || !intr || event_add(term, NULL) < 0 || event_add(intr, NULL) < 0) {
        fprintf(stderr, "evhttp_server: cannot watch signals\n");
        return 1;
    }
    int rc = event_base_dispatch(base) < 0;
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    return rc;
}
