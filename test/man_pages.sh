#!/bin/sh
# Every man page of the distribution (man/man1/*.1, man/man3/*.3,
# man/man7/*.7) renders without a single warning: `mandoc -Tlint -Wstyle`
# and `groff -ww -man` print nothing.  Link pages (one line, ".so
# man3/PAGE.3") must point to a page that exists; mandoc's only remark on
# them, ".so is fragile", is about .so itself and is expected (Debian's
# dh_installman turns them into symlinks).  The library's pages (sections
# 3 and 7) name this release in .TH, so they cannot silently go stale.
# The tree is laid out as under /usr/share/man, so that the .so links
# resolve from the man root and `man -M man NAME` reads any page from a
# checkout: where man(1) is installed, that is tried too.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}

have() { command -v "$1" >/dev/null 2>&1; }
if ! have mandoc && ! have groff; then
    echo "SKIP: neither mandoc nor groff is installed"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# The release the pages must name, from the generated version.h.
vh="$top_builddir/include/asyncore/version.h"
version=$(sed -n 's/^#define ASYNCORE_VERSION_STRING "\(.*\)"$/\1/p' "$vh")
[ -n "$version" ] || { echo "no version in $vh"; exit 1; }
vh="$(cd "$(dirname "$vh")" && pwd)/version.h"  # still found after the cd below
macro() { sed -n "s/^#define ASYNCORE_VERSION_$1 \\([0-9]*\\)\$/\\1/p" "$vh"; }

# The pages, relative to the man root, as man(1) sees them; a page left
# beside the section directories is not found by man(1): it must move.
manroot="$srcdir/man"
for f in "$manroot"/*.[137]; do
    [ -f "$f" ] || continue
    sec=${f##*.}
    echo "$f: belongs in man/man$sec/ (and Makefile.am's man$sec list)"
    fail=1
done
pages=$(cd "$manroot" && ls man[137]/*.[137] 2>/dev/null)
[ -n "$pages" ] || { echo "no man pages under $manroot/man[137]"; exit 1; }
manroot=$(cd "$manroot" && pwd)
cd "$manroot" || exit 1

n=0 links=0
for p in $pages; do
    n=$((n + 1))
    target=$(sed -n 's|^\.so \(man[0-9]/.*\)$|\1|p' "$p")
    if [ -n "$target" ]; then
        links=$((links + 1))
        if [ "$(wc -l <"$p")" -ne 1 ] || [ ! -f "$target" ]; then
            echo "$p: a link page must be one line, .so to an existing page"
            fail=1
        fi
        continue
    fi
    th=$(sed -n 's/^\.TH //p' "$p" | head -1)
    case "$p:$th" in
    man1/*) ;;
    *"\"libasyncore $version\""*) ;;
    *) echo "$p: .TH does not name \"libasyncore $version\": .TH $th"; fail=1 ;;
    esac
    if have mandoc; then
        out=$(mandoc -Tlint -Wstyle "$p" 2>&1)
        [ -z "$out" ] || { echo "$out"; fail=1; }
    fi
    if have groff; then
        out=$(groff -ww -man -Tutf8 -z "$p" 2>&1)
        [ -z "$out" ] || { echo "$p: groff: $out"; fail=1; }
    fi
done

# asyncore_version(3) shows this release's macros.
vp=man3/asyncore_version.3
if [ -f "$vp" ]; then
    for m in MAJOR MINOR PATCH; do
        want=$(macro $m)
        grep -q "^\\.B #define ASYNCORE_VERSION_$m  *$want\$" "$vp" ||
            { echo "$vp: ASYNCORE_VERSION_$m is not $want"; fail=1; }
    done
    grep -q "ASYNCORE_VERSION_STRING .*$version" "$vp" ||
        { echo "$vp: ASYNCORE_VERSION_STRING is not \"$version\""; fail=1; }
fi

# From a checkout, man(1) finds a page by name, through a link page too.
if have man; then
    out=$(MANPAGER=cat MANWIDTH=80 man -M "$manroot" asyncore_connect 2>&1)
    case $out in
    *ASYNCORE_SOCKET*asyncore_connect*) ;;
    *) echo "man -M man asyncore_connect does not show asyncore_socket(3):"
       echo "$out" | head -5; fail=1 ;;
    esac
fi

tools=$(for t in mandoc groff man; do have $t && printf '%s ' $t; done)
[ "$fail" -eq 0 ] && echo "$n man pages ($links links) clean under: $tools"
exit "$fail"
