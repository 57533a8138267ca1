#!/bin/sh
# configure and build without the Check framework, as a user who wants only
# the library does: configure must succeed, the library must build, and
# `make check` must fail at once saying that Check is missing.
#
#   test/without_check.sh [SRCDIR]
#
# Check is hidden by a pkg-config directory that has every module the build
# needs except check.pc (PKG_CONFIG_LIBDIR replaces the system's search
# path); then again with --without-check on a system that has it.  Each run
# builds in a scratch directory.  Run by scripts/dev test (it builds the
# library twice: too slow for `make check`).
set -u
srcdir=$(cd "${1:-$(dirname "$0")/..}" && pwd)
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

[ -x "$srcdir/configure" ] || { echo "FAIL: run autoreconf -fi in $srcdir first"; exit 1; }

# A pkg-config directory with what the build needs, and no check.pc.
pcdir="$tmp/pkgconfig"
mkdir -p "$pcdir"
for m in libevent_core libevent_extra libevent openssl libssl libcrypto; do
    d=$($PKG_CONFIG --variable=pcfiledir "$m" 2>/dev/null) || continue
    ln -s "$d/$m.pc" "$pcdir/$m.pc"
done
PKG_CONFIG_LIBDIR=$pcdir $PKG_CONFIG --exists check &&
    { echo "FAIL: check is still visible through $pcdir"; exit 1; }

# try NAME CONFIGURE-ARGS...: configure, build, make check; judge.
try() {
    name=$1; shift
    b="$tmp/build-$name"
    mkdir -p "$b"
    if ! (cd "$b" && "$srcdir/configure" -q "$@") >"$b/configure.out" 2>&1; then
        cat "$b/configure.out"
        echo "FAIL ($name): configure failed"; fail=1; return
    fi
    grep -q 'Check (>= 0.11) not found' "$b/configure.out" ||
        { cat "$b/configure.out"; echo "FAIL ($name): configure did not warn"; fail=1; }
    if ! make -s -C "$b" -j2 >"$b/make.out" 2>&1; then
        tail -30 "$b/make.out"
        echo "FAIL ($name): the library does not build"; fail=1; return
    fi
    [ -f "$b/lib/.libs/libasyncore.so" ] || [ -f "$b/lib/.libs/libasyncore.a" ] ||
        { echo "FAIL ($name): no library built"; fail=1; return; }
    if make -s -C "$b" -j2 check >"$b/check.out" 2>&1; then
        cat "$b/check.out"
        echo "FAIL ($name): make check succeeded without Check"; fail=1; return
    fi
    if ! grep -q 'the test suites need Check' "$b/check.out"; then
        cat "$b/check.out"
        echo "FAIL ($name): make check did not say that Check is missing"; fail=1; return
    fi
    [ ! -e "$b/test/test_dispatcher" ] ||
        { echo "FAIL ($name): a Check suite was built"; fail=1; return; }
    echo "PASS ($name): configure and make succeed; make check fails, saying:"
    grep 'Check' "$b/check.out" | sed 's/^/    /'
}

PKG_CONFIG_LIBDIR=$pcdir; export PKG_CONFIG_LIBDIR
try hidden
unset PKG_CONFIG_LIBDIR
if $PKG_CONFIG --exists check; then
    try without --without-check
fi
exit "$fail"
