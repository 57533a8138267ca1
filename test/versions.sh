#!/bin/sh
# One version everywhere: configure.ac's (through the generated version.h),
# the newest entry of NEWS and of debian/changelog, the man pages' .TH
# lines (test/man_pages.sh), and the symbols file, whose versions may not be
# newer than the release (dpkg-gensymbols would silently lower them).  The
# soname libtool makes from -version-info (current - age) must be the one
# debian/libasyncore0.symbols and the package name carry.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
fail=0
bad() { echo "FAIL: $*"; fail=1; }

vh="$top_builddir/include/asyncore/version.h"
version=$(sed -n 's/^#define ASYNCORE_VERSION_STRING "\(.*\)"$/\1/p' "$vh")
[ -n "$version" ] || { echo "FAIL: no version in $vh"; exit 1; }
echo "version $version"

# NEWS: the first heading names the release being prepared or the last one.
news=$(grep -m1 '^\* ' "$srcdir/NEWS")
case $news in
*"libasyncore $version "*) ;;
*) bad "NEWS's first heading does not name libasyncore $version: $news" ;;
esac

# debian/changelog: a native package, so the version is the release.
deb=$(sed -n '1s/^libasyncore (\([^)]*\)).*/\1/p' "$srcdir/debian/changelog")
[ "$deb" = "$version" ] || bad "debian/changelog says $deb, configure.ac $version"

# debian/libasyncore0.symbols: no version newer than this release.
if command -v dpkg >/dev/null 2>&1; then
    sed -n 's/^ [^ ]*@Base \([^ ]*\).*/\1/p' "$srcdir/debian/libasyncore0.symbols" |
        sort -u | while read -r v; do
            dpkg --compare-versions "$v" le "$version" ||
                { echo "FAIL: debian/libasyncore0.symbols names $v, newer than $version"; exit 1; }
        done || fail=1
fi

# The soname: libtool's current - age.
lt=${ASYNCORE_LT_VERSION:-}
if [ -n "$lt" ]; then
    current=${lt%%:*} age=${lt##*:}
    major=$((current - age))
    head -1 "$srcdir/debian/libasyncore0.symbols" | grep -q "^libasyncore\.so\.$major libasyncore$major " ||
        bad "soname libasyncore.so.$major (-version-info $lt), but debian/libasyncore0.symbols says: $(head -1 "$srcdir/debian/libasyncore0.symbols")"
    grep -q "^Package: libasyncore$major\$" "$srcdir/debian/control" ||
        bad "no package libasyncore$major in debian/control for libasyncore.so.$major"
    so=$(ls "$top_builddir"/lib/.libs/libasyncore.so.*.*.* 2>/dev/null | head -1)
    [ -z "$so" ] || case $so in
        */libasyncore.so.$major.$age.*) ;;
        *) bad "built $so, expected libasyncore.so.$major.$age.*" ;;
    esac
fi
[ "$fail" -eq 0 ] && echo "PASS: configure.ac, NEWS, debian/changelog, the symbols file and the soname agree"
exit "$fail"
