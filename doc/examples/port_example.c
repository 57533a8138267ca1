/*
 * port_example.c -- a line-based chat server, ported from port_example.py
 * (doc/porting.md).  The numbers in the comments match the Python's.
 *
 * Every line a client sends goes to every other client, prefixed with the
 * sender's name; "/nick NAME" renames, "/quit" says bye and hangs up.
 *
 *     cc port_example.c $(pkg-config --cflags --libs asyncore)
 */
#include <asyncore.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* (1) ChatServer's attributes: the sessions, in order of arrival. */
struct server {
    struct session *first, *last;
    size_t count;
    int guests;
};

/* (2) ChatSession's attributes.  self.data becomes a fixed buffer: a line
 * longer than it is cut (Python would let it grow without limit). */
struct session {
    asyncore_dispatcher *d;
    struct server *server;
    struct session *prev, *next;
    int listed;
    char name[64];
    char line[512];
    size_t len;
};

static void list_append(struct server *srv, struct session *s)
{
    s->prev = srv->last;
    *(srv->last ? &srv->last->next : &srv->first) = s;
    srv->last = s;
    srv->count++;
    s->listed = 1;
}

static void list_remove(struct server *srv, struct session *s)
{
    if (!s->listed)
        return;
    *(s->prev ? &s->prev->next : &srv->first) = s->next;
    *(s->next ? &s->next->prev : &srv->last) = s->prev;
    s->prev = s->next = NULL;
    srv->count--;
    s->listed = 0;
}

/* (6) broadcast(): Python loops over a copy of the list, which keeps the
 * sessions alive.  In C a push may close a session (a lost connection runs
 * its handle_close at once), so each one is held until the loop is done. */
static void broadcast(struct server *srv, struct session *sender,
                      const char *text)
{
    asyncore_dispatcher **to = calloc(srv->count + 1, sizeof(*to));
    struct session *s;
    size_t n = 0, i;

    if (to == NULL)
        return;
    for (s = srv->first; s != NULL; s = s->next)
        if (s != sender && asyncore_dispatcher_hold(s->d) == 0)
            to[n++] = s->d;
    for (i = 0; i < n; i++) {
        if (!asyncore_dispatcher_closed(to[i]))
            asyncore_chat_push(to[i], text, strlen(text));
        asyncore_dispatcher_release(to[i]);
    }
    free(to);
}

static void push_line(asyncore_dispatcher *d, const char *a, const char *b)
{
    char out[sizeof(((struct session *)0)->line) + 80];

    snprintf(out, sizeof(out), "%s%s\n", a, b);
    asyncore_chat_push(d, out, strlen(out));
}

/* (3) collect_incoming_data() */
static void session_collect(asyncore_dispatcher *d, const void *data,
                            size_t len)
{
    struct session *s = asyncore_dispatcher_user_data(d);
    size_t room = sizeof(s->line) - 1 - s->len;

    if (len > room)
        len = room;
    memcpy(s->line + s->len, data, len);
    s->len += len;
}

/* (4) found_terminator() */
static void session_found_terminator(asyncore_dispatcher *d)
{
    struct session *s = asyncore_dispatcher_user_data(d);
    char out[sizeof(s->name) + sizeof(s->line) + 4];

    if (s->len > 0 && s->line[s->len - 1] == '\r')
        s->len--;
    s->line[s->len] = '\0';
    s->len = 0;
    if (strcmp(s->line, "/quit") == 0) {
        asyncore_chat_push(d, "bye\n", 4);
        asyncore_chat_close_when_done(d);
    } else if (strncmp(s->line, "/nick ", 6) == 0) {
        snprintf(s->name, sizeof(s->name), "%s", s->line + 6);
        push_line(d, "you are ", s->name);
    } else {
        snprintf(out, sizeof(out), "%s: %s\n", s->name, s->line);
        broadcast(s->server, s, out);
    }
}

/* (5) handle_close() */
static void session_close(asyncore_dispatcher *d)
{
    struct session *s = asyncore_dispatcher_user_data(d);
    char out[sizeof(s->name) + 8];

    list_remove(s->server, s);
    snprintf(out, sizeof(out), "%s left\n", s->name);
    broadcast(s->server, s, out);
    asyncore_close(d);
}

/* Python's garbage collector frees a session; in C the destroy hook does,
 * once the channel is closed and no hook of it runs any more.  A channel
 * closed without handle_close (asyncore_close_all) leaves the list here. */
static void session_destroy(asyncore_dispatcher *d)
{
    struct session *s = asyncore_dispatcher_user_data(d);

    if (s->server != NULL)
        list_remove(s->server, s);
    free(s);
}

static const asyncore_chat_handlers session_handlers = {
    .dispatcher = {
        .handle_close = session_close,
        .destroy = session_destroy,
    },
    .collect_incoming_data = session_collect,
    .found_terminator = session_found_terminator,
};

/* (7) handle_accepted(): ChatSession(sock, ...) and its __init__. */
static void server_accepted(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *addr, socklen_t addrlen)
{
    struct server *srv = asyncore_dispatcher_user_data(d);
    struct session *s = calloc(1, sizeof(*s));

    (void)addr, (void)addrlen;
    if (s == NULL ||
        (s->d = asyncore_chat_new(asyncore_dispatcher_map(d),
                                  &session_handlers, s)) == NULL) {
        free(s);
        close(fd);
        return;
    }
    if (asyncore_set_socket(s->d, fd) < 0) {
        close(fd);
        asyncore_close(s->d); /* the destroy hook frees s */
        return;
    }
    s->server = srv;
    snprintf(s->name, sizeof(s->name), "guest%d", ++srv->guests);
    list_append(srv, s);
    asyncore_chat_set_terminator(s->d, "\n", 1);
    push_line(s->d, "welcome, ", s->name);
}

static const asyncore_handlers server_handlers = {
    .handle_accepted = server_accepted,
};

/* (8) The main program. */
int main(int argc, char **argv)
{
    struct server srv = { 0 };
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    asyncore_dispatcher *d;

    d = asyncore_dispatcher_new(NULL, &server_handlers, &srv);
    if (d == NULL || asyncore_create_socket(d, AF_INET, SOCK_STREAM) < 0 ||
        asyncore_set_reuse_addr(d) < 0 ||
        asyncore_bind_host(d, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 0) < 0 ||
        asyncore_listen(d, 5) < 0 ||
        getsockname(asyncore_dispatcher_fd(d), (struct sockaddr *)&sin,
                    &len) < 0) {
        perror("chat server");
        return 1;
    }
    printf("listening on %u\n", ntohs(sin.sin_port));
    fflush(stdout);
    return asyncore_loop(NULL, 30.0, ASYNCORE_FOREVER) < 0;
}
