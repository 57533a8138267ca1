/*
 * producer.c -- asynchat's producers: a more() callback with its argument,
 * and simple_producer over a copy of a buffer.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncore-internal.h"

struct asyncore_producer {
    asyncore_producer_more_fn more;
    void (*free_fn)(void *arg);
    void *arg;
};

asyncore_producer *asyncore_producer_new(asyncore_producer_more_fn more,
                                         void (*free_fn)(void *arg), void *arg)
{
    asyncore_producer *p;

    if (more == NULL) {
        errno = EINVAL;
        return NULL;
    }
    p = malloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->more = more;
    p->free_fn = free_fn;
    p->arg = arg;
    return p;
}

ssize_t asyncore_producer_more(asyncore_producer *p, void *buf, size_t size)
{
    if (p == NULL || buf == NULL || size == 0) {
        errno = EINVAL;
        return -1;
    }
    return p->more(p->arg, buf, size);
}

void asyncore_producer_free(asyncore_producer *p)
{
    if (p == NULL)
        return;
    if (p->free_fn != NULL)
        p->free_fn(p->arg);
    free(p);
}

/* One allocation holds the producer, its state and its copy of the data,
 * so that releasing the producer needs no free hook. */
struct simple_producer {
    asyncore_producer base;
    size_t len;
    size_t pos;
    size_t chunk;
    unsigned char data[];
};

static ssize_t simple_more(void *arg, void *buf, size_t size)
{
    struct simple_producer *s = arg;
    size_t n = s->len - s->pos;

    if (n > s->chunk)
        n = s->chunk;
    if (n > size)
        n = size;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

asyncore_producer *asyncore_simple_producer_new(const void *data, size_t len,
                                                size_t buffer_size)
{
    struct simple_producer *s;

    if (data == NULL && len > 0) {
        errno = EINVAL;
        return NULL;
    }
    if (len > SIZE_MAX - sizeof(*s)) {
        errno = ENOMEM;
        return NULL;
    }
    s = malloc(sizeof(*s) + len);
    if (s == NULL)
        return NULL;
    s->base.more = simple_more;
    s->base.free_fn = NULL;
    s->base.arg = s;
    s->len = len;
    s->pos = 0;
    s->chunk = buffer_size ? buffer_size : ASYNCORE_SIMPLE_PRODUCER_SIZE;
    if (len > 0)
        memcpy(s->data, data, len);
    return &s->base;
}
