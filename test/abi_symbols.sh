#!/bin/sh
# The exported ABI is exactly the documented API.  Four lists must be equal:
#
#   exported   the defined dynamic symbols of lib/.libs/libasyncore.so
#   symfile    lib/libasyncore.sym, libtool's -export-symbols list
#   declared   every function declared with ASYNCORE_API in the headers
#              that `make install` installs (ABI_HEADERS)
#   manned     every name on a .SH NAME line of the section 3 pages that
#              `make install` installs (ABI_MAN3)
#
# debian/libasyncore0.symbols must name the same symbols too.
#
# and every such name must have a page of its own name (the page itself or a
# ".so man3/PAGE.3" link) whose SYNOPSIS declares it, so `man NAME` works.
# A function added to a header without a symbol-file line and a man page,
# or a page left behind for a removed function, fails `make check`.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
NM=${NM:-nm}

so="$top_builddir/lib/.libs/libasyncore.so"
if [ ! -f "$so" ]; then
    echo "SKIP: no shared library to inspect (--disable-shared)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# A file of the build tree (version.h is generated) or else of the sources.
locate() {
    if [ -f "$top_builddir/$1" ]; then echo "$top_builddir/$1"; else echo "$srcdir/$1"; fi
}

# ---- exported: what the dynamic linker can bind to.  Version suffixes are
# dropped; anything defined counts, data as well as functions.
$NM -D --defined-only "$so" | awk 'NF >= 2 { sub(/@.*/, "", $NF); print $NF }' |
    LC_ALL=C sort -u >"$tmp/exported"

# ---- symfile: one name per line, sorted (C locale) and without duplicates,
# so that a change shows as a one-line diff.
symfile="$srcdir/lib/libasyncore.sym"
LC_ALL=C sort -u "$symfile" >"$tmp/symfile"
if ! cmp -s "$tmp/symfile" "$symfile"; then
    echo "lib/libasyncore.sym is not sorted (LC_ALL=C sort -u) or has duplicates"
    fail=1
fi

# ---- declared: comments and preprocessor lines out, then one statement per
# ';'; a statement with ASYNCORE_API declares the first NAME( in it.
headers=${ABI_HEADERS:-"$(cd "$srcdir" && ls include/asyncore.h include/asyncore/*.h) include/asyncore/version.h"}
for h in $headers; do
    f=$(locate "$h")
    [ -f "$f" ] || { echo "header $h not found"; fail=1; continue; }
    cat "$f"
done | perl -0777 -ne '
    s{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g; s{^[ \t]*#[^\n]*(?:\\\n[^\n]*)*}{}mg;
    for my $st (split /[;{}]/) {
        next unless $st =~ /\bASYNCORE_API\b(.*)/s;
        my $rest = $1;
        print "$1\n" if $rest =~ /([A-Za-z_]\w*)\s*\(/;
    }' | LC_ALL=C sort -u >"$tmp/declared"

# ---- manned: names on NAME lines, links, and each page's SYNOPSIS.
pages=${ABI_MAN3:-$(cd "$srcdir" && ls man/man3/*.3 2>/dev/null)}
: >"$tmp/manned"
: >"$tmp/files"
: >"$tmp/paths"
for p in $pages; do
    f="$srcdir/$p"
    [ -f "$f" ] || { echo "man page $p not found"; fail=1; continue; }
    base=$(basename "$p" .3)
    echo "$base" >>"$tmp/files"
    echo "$base $f" >>"$tmp/paths"
    target=$(sed -n 's|^\.so man3/\(.*\)\.3$|\1|p' "$f")
    if [ -n "$target" ]; then
        echo "$base $target" >>"$tmp/links"
        continue
    fi
    # The NAME section: lines after .SH NAME up to the next .SH, names
    # before "\-", separated by commas.
    sed -n '/^\.SH NAME/,/^\.SH/{/^\.SH/d;p}' "$f" | tr '\n' ' ' |
        sed 's/\\-.*//' | tr ',' '\n' | tr -d ' \\' | grep . |
        sed "s|\$| $base|" >>"$tmp/name_page"
done
[ -f "$tmp/name_page" ] || : >"$tmp/name_page"
[ -f "$tmp/links" ] || : >"$tmp/links"
awk '{ print $1 }' "$tmp/name_page" | LC_ALL=C sort -u >"$tmp/manned"

# Every documented name can be looked up by name, and the page it leads to
# lists it in NAME and declares it in SYNOPSIS.
while read -r name page; do
    if ! grep -qx "$name" "$tmp/files"; then
        echo "man: $name (on the NAME line of $page.3) has no man/man3/$name.3 link"
        fail=1
    fi
    f=$(sed -n "s|^$page ||p" "$tmp/paths" | head -1)
    if ! sed -n '/^\.SH SYNOPSIS/,/^\.SH/p' "$f" | grep -q "$name("; then
        echo "man: $page.3 lists $name but its SYNOPSIS does not declare it"
        fail=1
    fi
done <"$tmp/name_page"
while read -r link target; do
    if ! grep -qx "$link $target" "$tmp/name_page"; then
        echo "man: $link.3 links to $target.3, whose NAME line does not list $link"
        fail=1
    fi
done <"$tmp/links"

# ---- the four lists.
compare() {
    if ! cmp -s "$tmp/$1" "$tmp/$2"; then
        comm -23 "$tmp/$1" "$tmp/$2" | sed "s/^/in $1, not in $2: /"
        comm -13 "$tmp/$1" "$tmp/$2" | sed "s/^/in $2, not in $1: /"
        fail=1
    fi
}
compare exported symfile
compare symfile declared
compare declared manned

# ---- debian/libasyncore0.symbols names the same symbols, so that a new one
# is caught here rather than first by the package build (dh_makeshlibs -c4).
debsym="$srcdir/debian/libasyncore0.symbols"
[ -f "$debsym" ] || debsym=
if [ -n "$debsym" ]; then
    sed -n 's/^ \([A-Za-z_][A-Za-z0-9_]*\)@Base .*/\1/p' "$debsym" |
        LC_ALL=C sort -u >"$tmp/debian"
    if ! cmp -s "$tmp/symfile" "$tmp/debian"; then
        version=$(sed -n 's/^#define ASYNCORE_VERSION_STRING "\(.*\)"$/\1/p' \
            "$top_builddir/include/asyncore/version.h")
        comm -23 "$tmp/symfile" "$tmp/debian" |
            sed "s/.*/debian\/libasyncore0.symbols lacks \" &@Base $version\" (the first release with it)/"
        comm -13 "$tmp/symfile" "$tmp/debian" |
            sed "s/.*/debian\/libasyncore0.symbols lists &, which lib\/libasyncore.sym does not/"
        fail=1
    fi
fi

n=$(wc -l <"$tmp/exported")
if [ "$n" -eq 0 ]; then
    echo "no exported symbols found in $so"
    fail=1
fi
[ "$fail" -eq 0 ] && echo "ABI: $n symbols exported, listed, declared and documented${debsym:+ (and in the Debian symbols file)}"
exit "$fail"
