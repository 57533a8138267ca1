#!/bin/sh
# Build a program out of tree against the *installed* library, with nothing
# but `pkg-config --cflags --libs asyncore`, and run it against the
# installed shared library: it must report matching versions, be loaded
# from the install root, and complete a socketpair round trip through two
# dispatchers (test/pkgconfig_prog.c).
#
#   pkgconfig_install.sh
#       (make check) `make install DESTDIR=TMP` from $top_builddir, check
#       the install tree (headers, .pc, man pages and their .so links), then
#       build and run against it.
#   pkgconfig_install.sh --installed ROOT PCDIR
#       (make installcheck, scripts/debian-build) build and run against an
#       existing install: ROOT is the DESTDIR or scratch root ('' for a real
#       install), PCDIR the directory holding asyncore.pc under it.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() { echo "FAIL: $*"; exit 1; }

# build_and_run ROOT PCDIR
build_and_run() {
    root=$1 pcdir=$2
    [ -f "$pcdir/asyncore.pc" ] || die "no asyncore.pc in $pcdir"
    PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export PKG_CONFIG_PATH
    # The .pc names the final paths; under a DESTDIR or scratch root the
    # sysroot variable maps them into it.
    if [ -n "$root" ]; then
        PKG_CONFIG_SYSROOT_DIR=$root
        export PKG_CONFIG_SYSROOT_DIR
    fi
    flags=$($PKG_CONFIG --cflags --libs asyncore) || die "pkg-config asyncore failed"
    # Where the library is: the .pc's libdir under the root (asked without
    # the sysroot, which only some pkg-config versions apply to variables).
    libdir=$root$(unset PKG_CONFIG_SYSROOT_DIR; $PKG_CONFIG --variable=libdir asyncore)
    echo "pkg-config --cflags --libs asyncore: $flags"
    # Out of tree: the source is copied next to the binary, so nothing of
    # the source or build tree can be found by a relative include.
    cp "$srcdir/test/pkgconfig_prog.c" "$tmp/prog.c"
    (cd "$tmp" && $CC -Wall -Wextra -Werror prog.c -o prog $flags) ||
        die "the program does not build against the installed library"
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/prog" \
        >"$tmp/out" 2>&1
    rc=$?
    cat "$tmp/out"
    [ "$rc" -eq 0 ] || die "the program exited with $rc"
    grep -q '^round trip ok$' "$tmp/out" || die "no round trip"
    loaded=$(sed -n 's/^loaded from //p' "$tmp/out")
    loaded_dir=$(cd "$(dirname "$loaded")" 2>/dev/null && pwd -P)
    [ "$(cd "$libdir" 2>/dev/null && pwd -P)" = "$loaded_dir" ] ||
        die "the library was loaded from $loaded, not from $libdir"
}

# check_tree DEST: what `make install` must have put there.
check_tree() {
    dest=$1
    hdr=$(find "$dest" -name asyncore.h -path '*/include/*' | head -1)
    [ -n "$hdr" ] || die "asyncore.h not installed"
    for h in $(sed -n 's/^#include <\(asyncore\/.*\.h\)>$/\1/p' "$hdr"); do
        [ -f "$(dirname "$hdr")/$h" ] || die "$h is included by asyncore.h but not installed"
    done
    man3=$(find "$dest" -type d -name man3 | head -1)
    man7=$(find "$dest" -type d -name man7 | head -1)
    [ -n "$man3" ] && [ -f "$man7/libasyncore.7" ] || die "man pages not installed"
    n=0
    for f in "$man3"/*.3; do
        target=$(sed -n 's|^\.so \(man3/.*\)$|\1|p' "$f")
        [ -z "$target" ] || [ -f "$(dirname "$man3")/$target" ] ||
            die "installed $(basename "$f") links to missing $target"
        n=$((n + 1))
    done
    expected=$(echo ${ABI_MAN3:-} | wc -w)
    [ "$expected" -eq 0 ] || [ "$n" -eq "$expected" ] ||
        die "$n section 3 pages installed, $expected listed"
    echo "installed: headers, $n section 3 pages, libasyncore.7"
}

case "${1:-}" in
--installed)
    [ $# -eq 3 ] || die "usage: $0 --installed ROOT PCDIR"
    build_and_run "$2" "$3"
    ;;
"")
    if [ ! -f "$top_builddir/lib/.libs/libasyncore.so" ]; then
        echo "SKIP: no shared library to install (--disable-shared)"
        exit 77
    fi
    # A make of our own, not the one running the tests: its job server
    # and command-line variables are not ours to use.
    dest="$tmp/dest"
    (unset MAKEFLAGS MFLAGS MAKELEVEL
     ${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$dest") \
        >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; die "make install failed"; }
    check_tree "$dest"
    pc=$(find "$dest" -name asyncore.pc | head -1)
    [ -n "$pc" ] || die "asyncore.pc not installed"
    build_and_run "$dest" "$(dirname "$pc")"
    ;;
*)
    die "usage: $0 [--installed ROOT PCDIR]"
    ;;
esac
echo "PASS: built and ran against the installed library"
