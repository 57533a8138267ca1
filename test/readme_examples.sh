#!/bin/sh
# Every ```c block of the README must compile and link against the library
# as built here, so the examples a newcomer copies are never stale.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
    /^```c$/ { n++; out = sprintf("%s/example%d.c", dir, n); inblock = 1; next }
    /^```$/  { inblock = 0; next }
    inblock  { print > out }
' "$srcdir/README"
lib="$top_builddir/lib/.libs/libasyncore.a"
if [ ! -f "$lib" ]; then
    echo "SKIP: no static library to link the examples (--disable-static)"
    exit 77
fi
pass=0 fail=0
for f in "$tmp"/example*.c; do
    [ -f "$f" ] || continue
    if ${CC:-cc} -Wall -Wextra -Werror -I"$srcdir/include" -I"$top_builddir/include" \
        "$f" -o "${f%.c}" "$lib" \
        $(pkg-config --libs libevent_core libevent_extra openssl) 2>"$tmp/err"; then
        pass=$((pass + 1))
    else
        echo "README example $(basename "$f") does not build:"; cat "$tmp/err"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
