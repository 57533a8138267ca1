#!/bin/sh
# The C examples of the README (its ```c blocks) and of the man pages
# (.EX blocks that are whole programs), tested the way a reader uses them:
#
#  1. `make install DESTDIR=TMP` from $top_builddir; pkg-config finds that
#     copy (PKG_CONFIG_PATH, PKG_CONFIG_SYSROOT_DIR) and the programs load
#     it (LD_LIBRARY_PATH): nothing of the source or build tree is used;
#  2. each example is built with exactly the documented command,
#     `cc example.c $(pkg-config --cflags --libs asyncore)` ($CC and
#     $PKG_CONFIG when set), and compiled once more with -Wall -Wextra
#     -Werror;
#  3. each is run against a local peer on loopback (test/example_peer.py,
#     python3's socket and ssl modules) and its outcome asserted; every
#     step is bounded in time.
#
#   readme_examples.sh
#       (make check) install from $top_builddir into a scratch DESTDIR.
#   readme_examples.sh --installed ROOT PCDIR
#       (autopkgtest, scripts/debian-build) use an existing install: ROOT is
#       the scratch root ('' for a real install), PCDIR the directory
#       holding asyncore.pc under it; the library is loaded from the .pc's
#       libdir under ROOT.
#
# An example is recognised by what it calls and has a recipe below; an
# example without one fails the test, so a new example gets a recipe.  The
# fixed ports of the examples (8080, 8007, 7007, 443) are replaced by a free
# one before the build: nothing else of the text is changed.  Man page
# examples that are fragments (no main: a few calls, a hook, a handler
# table) are built with the same command inside a translation unit that
# gives them what they name (a per-page context below, the usual headers,
# and a main around their statements), but not run; a block without a C
# statement is a sample of output and is left alone.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
T=20 # seconds any one run of an example may take

command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed"; exit 77; }
case "${1:-}" in
--installed)
    [ $# -eq 3 ] || { echo "usage: $0 [--installed ROOT PCDIR]"; exit 2; }
    root=$2 pcdir=$3
    ;;
"")
    root= pcdir=
    if [ ! -f "$top_builddir/lib/.libs/libasyncore.so" ]; then
        echo "SKIP: no shared library to install (--disable-shared)"
        exit 77
    fi
    ;;
*) echo "usage: $0 [--installed ROOT PCDIR]"; exit 2 ;;
esac

tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

peer() { python3 "$srcdir/test/example_peer.py" "$@"; }
bg() { "$@" & pids="$pids $!"; }

# ---- 1. an installed copy ------------------------------------------------
if [ -z "$pcdir" ]; then
    root="$tmp/dest"
    # A make of our own, not the one running the tests: its job server and
    # command-line variables are not ours to use.
    if ! (unset MAKEFLAGS MFLAGS MAKELEVEL
          ${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$root") >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        echo "FAIL: make install DESTDIR=$root"
        exit 1
    fi
    pc=$(find "$root" -name asyncore.pc | head -1)
    [ -n "$pc" ] || { echo "FAIL: asyncore.pc not installed"; exit 1; }
    pcdir=$(dirname "$pc")
fi
[ -f "$pcdir/asyncore.pc" ] || { echo "FAIL: no asyncore.pc in $pcdir"; exit 1; }
PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
# The .pc names the final paths; under a DESTDIR or scratch root the
# sysroot variable maps them into it.
if [ -n "$root" ]; then
    PKG_CONFIG_SYSROOT_DIR=$root
    export PKG_CONFIG_SYSROOT_DIR
fi
libdir=$root$(unset PKG_CONFIG_SYSROOT_DIR; $PKG_CONFIG --variable=libdir asyncore)
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
echo "pkg-config --cflags --libs asyncore: $($PKG_CONFIG --cflags --libs asyncore)"

# ---- 2. the examples, extracted --------------------------------------------
n=0
awk -v dir="$tmp" '
    /^```c$/ { n++; d = sprintf("%s/README-%d", dir, n); system("mkdir -p " d);
               out = d "/example.c"; inblock = 1; next }
    /^```$/  { if (inblock) close(out); inblock = 0; next }
    inblock  { print > out }
' "$srcdir/README"

# Man pages: roff escapes back to C.
unroff() {
    sed -e 's/\\&//g' -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e "s/\\\\(aq/'/g" \
        -e 's/\\e/\\/g' "$1"
}
for f in "$srcdir"/man/man3/*.3 "$srcdir"/man/man7/*.7; do
    [ -f "$f" ] || continue
    grep -q '^\.EX' "$f" || continue
    page=$(basename "$f")
    awk -v dir="$tmp" -v page="$page" '
        /^\.EX/ { n++; out = sprintf("%s/block-%s-%d.c", dir, page, n); inblock = 1; next }
        /^\.EE/ { if (inblock) close(out); inblock = 0; next }
        inblock { print > out }
    ' "$f"
    for b in "$tmp"/block-"$page"-*.c; do
        [ -f "$b" ] || continue
        k=${b##*-}; k=${k%.c}
        if grep -q 'main(' "$b"; then
            mkdir -p "$tmp/$page-$k"
            unroff "$b" >"$tmp/$page-$k/example.c"
        elif grep -q '[;{]' "$b"; then
            mkdir -p "$tmp/fragment-$page-$k"
            unroff "$b" >"$tmp/fragment-$page-$k/fragment.c"
        fi
        rm -f "$b"
    done
done

# without tls|resolve: true (saying so) if the library was configured
# without it (--without-openssl, --disable-resolve): its examples build
# (the API is there) but are not run.
without() {
    case $1 in
    tls) [ "${ASYNCORE_WITH_TLS:-yes}" = no ] || return 1
         echo "  (built --without-openssl: not run)" ;;
    resolve) [ "${ASYNCORE_WITH_RESOLVE:-yes}" = no ] || return 1
         echo "  (built --disable-resolve: not run)" ;;
    esac
    return 0
}

# recipe FILE: which run fits the example.
recipe() {
    if grep -q 'asyncore_tls_start_client' "$1"; then echo tls
    elif grep -q 'asyncore_tls_start_server' "$1"; then echo starttls
    elif grep -q 'NTHREADS' "$1"; then echo threads
    elif grep -q 'asyncore_connect_host' "$1"; then echo resolve
    elif grep -q 'asyncore_chat_set_max_input' "$1"; then echo line_echo_limited
    elif grep -q 'found_terminator' "$1"; then echo line_echo
    elif grep -q 'handle_accepted' "$1" && grep -q 'asyncore_send' "$1"; then echo echo_server
    else echo none
    fi
}

# build DIR LITERAL PORT: the example with its port LITERAL replaced by
# PORT, built as documented.
build() {
    dir=$1
    if [ -n "$2" ]; then
        sed "s/\([^0-9]\)$2\([^0-9]\)/\1$3\2/g" "$dir/example.c" >"$dir/example.c.new" &&
            mv "$dir/example.c.new" "$dir/example.c"
    fi
    (cd "$dir" && $CC example.c $($PKG_CONFIG --cflags --libs asyncore)) >"$dir/build.log" 2>&1 || {
        echo "  \`cc example.c \$(pkg-config --cflags --libs asyncore)\` fails:"
        sed 's/^/    /' "$dir/build.log"
        return 1
    }
    (cd "$dir" && $CC -fsyntax-only -Wall -Wextra -Werror $($PKG_CONFIG --cflags asyncore) \
        example.c) >"$dir/warn.log" 2>&1 || {
        echo "  warnings:"; sed 's/^/    /' "$dir/warn.log"; return 1
    }
}

# start DIR NAME PORT: the built example in the background as $srv, until
# PORT accepts (it fails at once if the example exits).
start() {
    (cd "$1" && exec ./a.out) >"$1/$2.out" 2>&1 &
    srv=$!
    pids="$pids $srv"
    peer wait "$3" "$srv" || { sed 's/^/    /' "$1/$2.out"; return 1; }
}

# stop PID: SIGTERM, then wait (bounded); the exit status is the process's.
stop() {
    kill -TERM "$1" 2>/dev/null
    i=0
    # Until it is gone or a zombie (exited, not yet reaped).
    while [ -r "/proc/$1/stat" ] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le $((T * 10)) ] || { kill -9 "$1"; echo "  still running after SIGTERM"; }
        sleep 0.1
    done
    wait "$1"
}

# reap PID...: kill and wait for each, quietly; always succeeds.
reap() {
    for p in "$@"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    return 0
}

# expect FILE TEXT: FILE has a line that is exactly TEXT.
expect() {
    grep -qxF "$2" "$1" || { echo "  expected \"$2\", got:"; sed 's/^/    /' "$1"; return 1; }
}

# An echo server on 127.0.0.1:8080: a round trip; then, with a client still
# connected, killed and started again at once: SO_REUSEADDR (set before the
# bind) lets it bind beside its last run's closing connection.
run_echo_server() {
    d=$1 port=$(peer freeport)
    build "$d" 8080 "$port" || return 1
    start "$d" first "$port" || return 1
    peer echo "$port" 'hello, example\n' || return 1
    peer hold "$port" >"$d/hold.out" 2>&1 &
    pids="$pids $!"
    i=0
    until grep -q held "$d/hold.out" 2>/dev/null; do
        i=$((i + 1)); [ "$i" -le $((T * 10)) ] || { echo "  no round trip to hold"; return 1; }
        sleep 0.1
    done
    reap "$srv"
    start "$d" restarted "$port" || { echo "  cannot restart with a client connected"; return 1; }
    peer echo "$port" 'again\n' || return 1
    reap "$srv"
}

# A line echo server on 127.0.0.1:8007: lines come back as sent.
run_line_echo() {
    d=$1 port=$(peer freeport)
    build "$d" 8007 "$port" || return 1
    start "$d" server "$port" || return 1
    peer echo "$port" 'one\r\ntwo\r\n' || return 1
    peer echo "$port" 'in pieces? no: one send, two lines\r\nthree\r\n' || return 1
    reap "$srv"
}

# The same with a line limit: a line over 8192 bytes closes the connection,
# the server keeps serving others.
run_line_echo_limited() {
    d=$1 port=$(peer freeport)
    build "$d" 8007 "$port" || return 1
    start "$d" server "$port" || return 1
    peer echo "$port" 'one\r\ntwo\r\n' || return 1
    peer overlong "$port" 100000 || return 1
    peer echo "$port" 'still serving\r\n' || return 1
    reap "$srv"
}

# A client connecting by name: to a listening port by address and by
# /etc/hosts name, and to a closed port.
run_resolve() {
    d=$1
    without resolve && return 2
    build "$d" "" "" || return 1
    bg peer listen >"$d/peer.out" 2>&1
    lport=
    i=0
    while [ -z "$lport" ]; do
        lport=$(sed -n 's/^listening on //p' "$d/peer.out")
        i=$((i + 1)); [ "$i" -le $((T * 10)) ] || { echo "  the peer did not start"; return 1; }
        [ -n "$lport" ] || sleep 0.1
    done
    closed=$(peer freeport)
    (cd "$d" && timeout $T ./a.out 127.0.0.1 "$lport") >"$d/1.out" 2>&1
    expect "$d/1.out" "connected to 127.0.0.1" || return 1
    (cd "$d" && timeout $T ./a.out localhost "$lport") >"$d/2.out" 2>&1
    expect "$d/2.out" "connected to localhost" || return 1
    (cd "$d" && timeout $T ./a.out 127.0.0.1 "$closed") >"$d/3.out" 2>&1
    expect "$d/3.out" "connect failed: Connection refused"
}

# An HTTPS status line: against a TLS peer whose certificate is trusted
# (SSL_CERT_FILE, OpenSSL's default verify paths), then not trusted.
run_tls() {
    d=$1
    without tls && return 2
    without resolve && return 2
    command -v openssl >/dev/null 2>&1 || { echo "  (openssl command missing: not run)"; return 2; }
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost \
        -keyout "$d/key.pem" -out "$d/cert.pem" >"$d/openssl.log" 2>&1 ||
        { cat "$d/openssl.log"; return 1; }
    bg peer https "$d/cert.pem" "$d/key.pem" >"$d/peer.out" 2>&1
    lport=
    i=0
    while [ -z "$lport" ]; do
        lport=$(sed -n 's/^listening on //p' "$d/peer.out")
        i=$((i + 1)); [ "$i" -le $((T * 10)) ] || { echo "  the peer did not start"; cat "$d/peer.out"; return 1; }
        [ -n "$lport" ] || sleep 0.1
    done
    build "$d" 443 "$lport" || return 1
    (cd "$d" && SSL_CERT_FILE="$d/cert.pem" timeout $T ./a.out localhost) >"$d/1.out" 2>&1
    expect "$d/1.out" "HTTP/1.0 200 OK" || return 1
    (cd "$d" && unset SSL_CERT_FILE SSL_CERT_DIR; timeout $T ./a.out localhost) >"$d/2.out" 2>&1
    grep -q '^tls: .*certificate verify failed' "$d/2.out" ||
        { echo "  an untrusted certificate was not refused:"; sed 's/^/    /' "$d/2.out"; return 1; }
}

# A POP3-like server on 127.0.0.1:8110 that upgrades to TLS on STLS: the
# reply in the clear, the handshake, commands over TLS; a command pipelined
# behind STLS in the clear is never answered.
run_starttls() {
    d=$1 port=$(peer freeport)
    without tls && return 2
    command -v openssl >/dev/null 2>&1 || { echo "  (openssl command missing: not run)"; return 2; }
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$d/server.key" -out "$d/server.crt" >"$d/openssl.log" 2>&1 ||
        { cat "$d/openssl.log"; return 1; }
    build "$d" 8110 "$port" || return 1
    start "$d" server "$port" || return 1
    peer starttls "$port" >"$d/peer.out" 2>&1 || { sed 's/^/    /' "$d/peer.out"; return 1; }
    reap "$srv"
}

# A map per thread on one port (7007): echoes, and exits 0 on SIGTERM.
run_threads() {
    d=$1 port=$(peer freeport)
    build "$d" 7007 "$port" || return 1
    start "$d" server "$port" || return 1
    for i in 1 2 3 4; do
        peer echo "$port" "message $i\\n" >/dev/null || return 1
    done
    stop "$srv"; rc=$?
    [ "$rc" -eq 0 ] || { echo "  exit status $rc after SIGTERM"; return 1; }
}

# ---- 3. man page fragments: built, not run --------------------------------
# context PAGE-K: what the fragment of block K of PAGE names but does not
# define, at file scope.
context() {
    case $1 in
    asyncore_chat.3-1)
        echo 'static asyncore_map *map; static int fd; static struct line *l;' ;;
    asyncore_chat_flow.3-1 | asyncore_timeout.3-1)
        echo 'static asyncore_dispatcher *d;' ;;
    asyncore_chat_flow.3-2)
        echo 'static asyncore_dispatcher *d;'
        echo 'struct session { char line[1000]; size_t len; };'
        echo 'static void command(asyncore_dispatcher *d, const char *line, size_t len)'
        echo '{ (void)d; (void)line; (void)len; }' ;;
    asyncore_chat_push.3-3)
        echo 'static asyncore_dispatcher *d;'
        echo 'static char text[] = "OK"; static size_t text_len = 2;' ;;
    asyncore_chat_push.3-*)
        echo 'static asyncore_dispatcher *d; static char buf[16]; static size_t n;' ;;
    asyncore_dispatcher.3-1)
        echo 'static asyncore_dispatcher *d; static char buf[16], more[16];'
        echo 'static size_t len, more_len;' ;;
    asyncore_file_dispatcher.3-1)
        echo 'static int never(asyncore_dispatcher *d) { (void)d; return 0; }' ;;
    asyncore_handlers.3-1)
        echo 'static void my_read(asyncore_dispatcher *d) { (void)d; }'
        echo 'static int my_writable(asyncore_dispatcher *d) { (void)d; return 0; }' ;;
    asyncore_producer.3-1)
        echo 'static asyncore_dispatcher *d; static const char *path = "/dev/null";' ;;
    asyncore_resolve.3-1)
        echo 'static const asyncore_handlers client_handlers;' ;;
    asyncore_thread.3-1)
        echo 'static const asyncore_handlers server_handlers;'
        echo 'static asyncore_map *maps[2]; static pthread_t threads[2];'
        echo 'static asyncore_dispatcher *d; static int i, n = 2;' ;;
    asyncore_tls.3-1)
        echo 'static asyncore_map *map; static const asyncore_handlers handlers;' ;;
    asyncore_tls.3-2)
        echo 'static const asyncore_chat_handlers line_handlers;' ;;
    asyncore_tls.3-3)
        echo 'static asyncore_tls_context *server_ctx;'
        echo 'struct session { char line[512]; size_t len; };'
        echo 'static void log_plaintext_again(asyncore_dispatcher *d) { (void)d; }' ;;
    esac
}

# fragment DIR: DIR/example.c from DIR/fragment.c: the headers, the
# context, the fragment's file-scope part (up to the first line at column
# 0, outside braces, that is not a definition: "static ...", "struct NAME
# {", a comment or a blank line), then its statements inside main().
fragment() {
    key=${1##*/fragment-}
    {
        for h in asyncore.h event2/event.h event2/dns.h errno.h fcntl.h \
                 pthread.h signal.h stdio.h stdlib.h string.h syslog.h unistd.h; do
            echo "#include <$h>"
        done
        context "$key"
        awk '
            !body && depth == 0 && /^[^ \t{}\/#]/ && !/^static / && !/^struct [A-Za-z_0-9]+ *{/ { body = 1; print "int main(void)\n{" }
            { print; t = $0; depth += gsub(/{/, "", t); t = $0; depth -= gsub(/}/, "", t) }
            END { if (!body) print "int main(void)\n{"; print "    return 0;\n}" }
        ' "$1/fragment.c"
    } >"$1/example.c"
}

fragments=0 fragments_failed=0
for d in "$tmp"/fragment-*; do
    [ -f "$d/fragment.c" ] || continue
    fragment "$d"
    fragments=$((fragments + 1))
    if (cd "$d" && $CC example.c $($PKG_CONFIG --cflags --libs asyncore)) >"$d/build.log" 2>&1; then
        echo "PASS ${d##*/fragment-} (fragment, built)"
    else
        echo "FAIL ${d##*/fragment-} (fragment): \`cc example.c \$(pkg-config --cflags --libs asyncore)\` fails:"
        sed 's/^/    /' "$d/build.log"
        echo "    in:"
        cat -n "$d/example.c" | sed 's/^/    /'
        fragments_failed=$((fragments_failed + 1))
    fi
done

# ---- 4. whole programs: built and run -------------------------------------
pass=0 fail=0 notrun=0
for d in "$tmp"/README-* "$tmp"/*.[37]-*; do
    [ -f "$d/example.c" ] || continue
    name=${d##*/}
    case $name in fragment-*) continue ;; esac
    r=$(recipe "$d/example.c")
    n=$((n + 1))
    if [ "$r" = none ]; then
        echo "FAIL $name: no recipe in test/readme_examples.sh runs this example"
        fail=$((fail + 1))
        continue
    fi
    "run_$r" "$d"
    rc=$?
    case $rc in
    0) echo "PASS $name ($r)"; pass=$((pass + 1)) ;;
    2) echo "SKIP $name ($r)"; notrun=$((notrun + 1)) ;;
    *) echo "FAIL $name ($r)"; fail=$((fail + 1)) ;;
    esac
    reap $pids
    pids=
done
echo "$n examples: $pass passed, $fail failed, $notrun not run;" \
     "$fragments man page fragments built, $fragments_failed of them failed"
[ "$fail" -eq 0 ] && [ "$fragments_failed" -eq 0 ] && [ "$pass" -gt 0 ]
