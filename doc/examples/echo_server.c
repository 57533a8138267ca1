/*
 * echo_server.c -- the Python documentation's asyncore example "basic echo
 * server", ported with its structure unchanged: EchoHandler is a
 * dispatcher_with_send that sends back what it reads, EchoServer accepts
 * and makes one per connection.
 *
 *     echo_server [HOST [PORT]]     (localhost 8080; port 0: the kernel's)
 *     cc echo_server.c $(pkg-config --cflags --libs asyncore)
 */
#include <asyncore.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* EchoHandler(asyncore.dispatcher_with_send) */
static void echo_handle_read(asyncore_dispatcher *d)
{
    char data[8192];
    ssize_t n = asyncore_recv(d, data, sizeof(data));

    if (n > 0)
        asyncore_send(d, data, (size_t)n);
}

static const asyncore_handlers echo_handler = {
    .handle_read = echo_handle_read,
};

/* repr(addr) of an IPv4 or IPv6 address: ('127.0.0.1', 54321) */
static void print_addr(const struct sockaddr *addr)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
    }
    printf("Incoming connection from ('%s', %u)\n", ip, port);
}

/* EchoServer.handle_accepted(sock, addr) */
static void handle_accepted(asyncore_dispatcher *d, int fd,
                            const struct sockaddr *addr, socklen_t addrlen)
{
    asyncore_dispatcher *handler;

    (void)d;
    (void)addrlen;
    print_addr(addr);
    handler = asyncore_dispatcher_with_send_new(NULL, &echo_handler, NULL);
    if (handler == NULL || asyncore_set_socket(handler, fd) < 0) {
        close(fd);
        if (handler != NULL)
            asyncore_close(handler);
    }
}

static const asyncore_handlers echo_server = {
    .handle_accepted = handle_accepted,
};

/* EchoServer.__init__(host, port) */
static asyncore_dispatcher *echo_server_new(const char *host, unsigned port)
{
    asyncore_dispatcher *d = asyncore_dispatcher_new(NULL, &echo_server, NULL);

    if (d == NULL)
        return NULL;
    if (asyncore_create_socket(d, AF_INET, SOCK_STREAM) < 0 ||
        asyncore_set_reuse_addr(d) < 0 ||
        asyncore_bind_host(d, host, port) < 0 || asyncore_listen(d, 5) < 0) {
        asyncore_close(d);
        return NULL;
    }
    return d;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "localhost";
    unsigned port = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 8080;
    asyncore_dispatcher *server;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    setvbuf(stdout, NULL, _IOLBF, 0);
    server = echo_server_new(host, port);
    if (server == NULL) {
        perror("echo_server");
        return 1;
    }
    /* Not in the Python: the port, for a caller that asked for port 0. */
    if (getsockname(asyncore_dispatcher_fd(server), (struct sockaddr *)&ss,
                    &len) == 0 && ss.ss_family == AF_INET)
        printf("listening on %u\n",
               ntohs(((struct sockaddr_in *)&ss)->sin_port));
    if (asyncore_loop(NULL, 30.0, ASYNCORE_FOREVER) < 0) {
        perror("asyncore_loop");
        asyncore_map_free(NULL);
        return 1;
    }
    asyncore_map_free(NULL);
    return 0;
}
