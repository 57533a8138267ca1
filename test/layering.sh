#!/bin/sh
# layering.sh -- the core names no extension (doc/architecture.md): the
# core's files mention no TLS, name resolution, timeout or back-off, and
# no file of the core includes ext.h, the extensions' header.
srcdir=${srcdir:-.}
lib=$srcdir/lib
fail=0

if grep -n -i -E 'tls|resolve|timeout|backoff' \
        "$lib/events.c" "$lib/dispatcher.c" "$lib/core.h"; then
    echo "FAIL: the core names an extension (above)"
    fail=1
fi
for f in core.h asyncore-internal.h events.c dispatcher.c map.c loop.c \
         send.c io.c log.c timer.c urgent.c thread.c producer.c; do
    if grep -n '#include "ext.h"' "$lib/$f"; then
        echo "FAIL: lib/$f includes ext.h: the core depends on no extension"
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "PASS: the core names no extension"
exit $fail
