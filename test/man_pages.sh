#!/bin/sh
# Every man page of the distribution (man/*.1, *.3, *.7) renders without a
# single warning: `mandoc -Tlint -Wstyle` and `groff -ww -man` print
# nothing.  Link pages (one line, ".so man3/PAGE.3") must point to a page
# that exists; mandoc's only remark on them, ".so is fragile", is about .so
# itself and is expected (Debian's dh_installman turns them into symlinks).
# The library's pages (sections 3 and 7) name this release in .TH, so they
# cannot silently go stale.
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

# Lay the pages out as under /usr/share/man, so ".so man3/X.3" resolves
# relative to the current directory as man(1) does.
pages=
for f in "$srcdir"/man/*.[137]; do
    [ -f "$f" ] || continue
    sec=${f##*.}
    mkdir -p "$tmp/man$sec"
    cp "$f" "$tmp/man$sec/"
    pages="$pages man$sec/$(basename "$f")"
done
[ -n "$pages" ] || { echo "no man pages under $srcdir/man"; exit 1; }
cd "$tmp" || exit 1

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

tools=$(for t in mandoc groff; do have $t && printf '%s ' $t; done)
[ "$fail" -eq 0 ] && echo "$n man pages ($links links) clean under: $tools"
exit "$fail"
