#!/bin/sh
# demo_http.sh -- asyncore-http-client and asyncore-http-server against peers we did not
# write (python3's http.server, curl, the scripted servers of http_peer.py)
# and against each other.
#
# Run by "make check" from the build directory.  The programs are found via
# $HTTP_CLIENT/$HTTP_SERVER, else under $top_builddir/demo.
# $DEMO_WRAPPER, if set, is put in front of every demo command, e.g.
#   DEMO_WRAPPER="./libtool --mode=execute valgrind -q --error-exitcode=99"
# Every wait is bounded; exit 77 (skip) if python3 or curl is missing.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
CLIENT=${HTTP_CLIENT:-$top_builddir/demo/asyncore-http-client}
SERVER=${HTTP_SERVER:-$top_builddir/demo/asyncore-http-server}
PEER=$here/http_peer.py
# A timeout long enough for valgrind, short enough to end a hung test.
T=60
# Our servers' ready line, or python's http.server's.
ready='^(listening on|Serving HTTP on) '
. "$here/demo_lib.sh"

require python3 curl timeout sha256sum
built "$CLIENT" "$SERVER"
scratch demo_http

sha() { sha256sum "$1" | cut -d' ' -f1; }
# same A B: B exists and has A's SHA-256.
same() { [ -f "$2" ] && [ "$(sha "$1")" = "$(sha "$2")" ]; }

# client TAG ARGS...: run asyncore-http-client; status in $status, output in
# $tmp/TAG.out and $tmp/TAG.err.
client() {
    tag=$1; shift
    timeout $T $WRAP "$CLIENT" "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err"
    status=$?
}

# fetched TAG ARGS...: the client exits 0 and says nothing.
fetched() {
    client "$@"
    cat "$tmp/$1.err"
    [ $status -eq 0 ] && [ ! -s "$tmp/$1.err" ]
}

# fails_with TAG STATUS REGEX ARGS...: the client exits with STATUS (see
# EXIT STATUS in its man page) and exactly one line on stderr, matching the
# extended REGEX.
fails_with() {
    ftag=$1 fstatus=$2 fre=$3; shift 3
    client "$ftag" "$@"
    cat "$tmp/$ftag.err"
    echo "exit status $status"
    [ $status -eq $fstatus ] && [ "$(wc -l <"$tmp/$ftag.err")" -eq 1 ] &&
        grep -qE "$fre" "$tmp/$ftag.err"
}

# empty_dir DIR: DIR has no entry at all (no file, no .part).
empty_dir() { [ -z "$(ls -A "$1")" ]; }

# ---- the files served ---------------------------------------------------------

root=$tmp/root
mkdir -p "$root/dir" "$root/emptydir"
: >"$root/zero"
head -c 1 /dev/urandom >"$root/one"
head -c $((1 << 20)) /dev/urandom >"$root/mib"
head -c $((20 << 20)) /dev/urandom >"$root/big"
printf '<h1>index</h1>\n' >"$root/dir/index.html"
printf '<p>page</p>\n' >"$root/page.html"
printf 'spaced\n' >"$root/a b.txt"
ln -s /etc "$root/escape"     # a symlink out of ROOT
ln -s mib "$root/inside"      # one that stays in
# The server pushes a file that fits with its header in 64 KiB as one
# piece, and streams a larger one: one of each side of that limit.
head -c 65000 /dev/urandom >"$root/fits"
head -c 65536 /dev/urandom >"$root/over"
printf 'outside\n' >"$tmp/outside.txt"
ln -s ../outside.txt "$root/rel-escape"  # a relative symlink out of ROOT
ln -s .. "$root/up"                      # a directory out of ROOT
ln -s "$root/one" "$root/abs-inside"     # an absolute one back into ROOT
ln -s ../root/page.html "$root/out-and-back"
mkfifo "$root/fifo"
mkdir "$root/host.example"               # a directory named like a host
SIZES="zero one mib big"

# ---- asyncore-http-client against python3 -m http.server ------------------------------

if start pyhttp python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$root"; then
    py=$addr
    py_file() {
        rm -f "$tmp/o.$1"
        fetched "py.$1" -o "$tmp/o.$1" "http://$py/$1" && same "$root/$1" "$tmp/o.$1" &&
            [ ! -e "$tmp/o.$1.part" ]
    }
    for f in $SIZES; do
        check "client -o fetches '$f' ($(wc -c <"$root/$f") B) from python http.server (SHA-256)" \
            py_file "$f"
    done
    to_stdout() { fetched py.stdout "http://$py/mib" && same "$root/mib" "$tmp/py.stdout.out"; }
    check "client with one URL and no -o writes the body to stdout" to_stdout
    dash_stdout() { fetched py.dash -o - "http://$py/mib" && same "$root/mib" "$tmp/py.dash.out"; }
    check "client -o - writes the body to stdout" dash_stdout

    several() {
        rm -rf "$tmp/several"; mkdir "$tmp/several"
        fetched py.several -O "$tmp/several" "http://$py/zero" "http://$py/one" \
            "http://$py/mib" "http://$py/big" || return 1
        for f in $SIZES; do same "$root/$f" "$tmp/several/$f" || return 1; done
        [ "$(ls -A "$tmp/several" | wc -l)" -eq 4 ]
    }
    check "client -O DIR fetches 0 B, 1 B, 1 MiB and 20 MiB at once (SHA-256, no .part left)" several
else
    fail "python3 -m http.server starts"
fi

# ---- concurrency: a server that answers only two connections at once ---------

if start barrier python3 "$PEER" barrier; then
    b2=$(sed -n 's/^second port //p' "$out.out")
    concurrent() {
        rm -rf "$tmp/conc"; mkdir "$tmp/conc"
        fetched conc -c 2 -t 20 -O "$tmp/conc" "http://$addr/a" "http://127.0.0.1:$b2/b" &&
            [ "$(cat "$tmp/conc/a" "$tmp/conc/b")" = "$(printf 'ok\nok')" ]
    }
    check "client -c 2 has two connections open at once (to two servers)" concurrent
    stop $pid
fi
if start barrier1 python3 "$PEER" barrier; then
    b2=$(sed -n 's/^second port //p' "$out.out")
    rm -rf "$tmp/conc1"; mkdir "$tmp/conc1"
    # The first connection waits alone and times out; the second then
    # completes the barrier with the first's (abandoned) server thread.
    check "client -c 1 opens one connection at a time (the barrier server times out)" \
        fails_with conc1 6 '^asyncore-http-client: timeout: no data from 127\.0\.0\.1:[0-9]+ for 1 s for ' \
        -c 1 -t 1 -O "$tmp/conc1" "http://$addr/a" "http://127.0.0.1:$b2/b"
    stop $pid
fi

# ---- chunked transfer coding ----------------------------------------------------

if start chunked python3 "$PEER" chunked --root "$root"; then
    chunked_all() {
        rm -rf "$tmp/chunked"; mkdir "$tmp/chunked"
        fetched chunked -O "$tmp/chunked" "http://$addr/zero" "http://$addr/one" \
            "http://$addr/mib" "http://$addr/big" || return 1
        for f in $SIZES; do same "$root/$f" "$tmp/chunked/$f" || return 1; done
    }
    check "client decodes chunked bodies of 0 B..20 MiB in random chunks, with extensions and trailers" \
        chunked_all
    stop $pid
else
    fail "chunked peer starts"
fi

# ---- keep-alive ------------------------------------------------------------------

if start keepalive python3 "$PEER" keepalive --root "$root" --count-file "$tmp/conns"; then
    ka=$addr
    reused() {
        rm -rf "$tmp/ka"; mkdir "$tmp/ka"
        fetched ka -O "$tmp/ka" "http://$ka/zero" "http://$ka/one" "http://$ka/mib" \
            "http://$ka/big" "http://$ka/interim/page.html" || return 1
        for f in $SIZES page.html; do same "$root/$f" "$tmp/ka/$f" || return 1; done
        echo "connections accepted: $(cat "$tmp/conns")"
        [ "$(cat "$tmp/conns")" -eq 1 ]
    }
    check "client fetches 5 URLs of one server over 1 kept-alive connection (and skips a 100 Continue)" \
        reused
    eof_body() {
        fetched eof -o "$tmp/eof.bin" "http://$ka/eof/mib" && same "$root/mib" "$tmp/eof.bin"
    }
    check "client reads an HTTP/1.0 body without length until the server closes" eof_body
    stop $pid
else
    fail "keep-alive peer starts"
fi

if start drop python3 "$PEER" keepalive --drop --root "$root" --count-file "$tmp/dconns"; then
    dropped() {
        rm -rf "$tmp/drop"; mkdir "$tmp/drop"
        fetched drop -O "$tmp/drop" "http://$addr/one" "http://$addr/mib" \
            "http://$addr/page.html" || return 1
        for f in one mib page.html; do same "$root/$f" "$tmp/drop/$f" || return 1; done
        [ "$(cat "$tmp/dconns")" -eq 3 ]
    }
    check "client sends a GET again when a kept-alive connection was closed under it" dropped
    stop $pid
fi

# ---- redirects ---------------------------------------------------------------------

if start redirect python3 "$PEER" redirect; then
    rd=$addr
    five() { fetched hop5 "http://$rd/hop/5" && [ "$(cat "$tmp/hop5.out")" = arrived ]; }
    check "client follows 5 relative redirects (301, 302, 303, 307, 308)" five
    check "client gives up after 5 redirects" \
        fails_with hop6 5 "^asyncore-http-client: more than 5 redirects for http://$rd/hop/6\$" \
        "http://$rd/hop/6"
    check "client stops a redirect loop" \
        fails_with loop 5 "^asyncore-http-client: more than 5 redirects for http://$rd/loop\$" \
        "http://$rd/loop"
    dots() { fetched dots "http://$rd/dots/a/b" && [ "$(cat "$tmp/dots.out")" = arrived ]; }
    check "client resolves Location '../../hop/0' against /dots/a/b" dots
    if [ "${ASYNCORE_WITH_TLS:-yes}" = no ]; then
        skip "client follows a redirect to https: the library was built --without-openssl"
    else
        check "client follows a redirect to https (to a host that does not exist)" \
            fails_with rdhttps 3 "^asyncore-http-client: unknown host example\\.invalid for http://$rd/https\$" \
            "http://$rd/https"
    fi
    check "client reports a 302 without Location as HTTP 302" \
        fails_with noloc 4 "^asyncore-http-client: HTTP 302 for http://$rd/nolocation\$" \
        "http://$rd/nolocation"
else
    fail "redirect peer starts"
fi

# ---- error cases: no file is left behind ------------------------------------------------

if start cmb python3 "$PEER" close-mid-body; then
    trunc_file() {
        fails_with trunc 5 "^asyncore-http-client: truncated body: got 5000 of 100000 bytes for http://$addr/len\$" \
            -o "$tmp/trunc.bin" "http://$addr/len" &&
            [ ! -e "$tmp/trunc.bin" ] && [ ! -e "$tmp/trunc.bin.part" ]
    }
    check "client: server closes mid-body (Content-Length): exit 1, no file, no .part" trunc_file
    trunc_dir() {
        rm -rf "$tmp/tdir"; mkdir "$tmp/tdir"
        fails_with truncd 5 "^asyncore-http-client: truncated chunked body: 127\\.0\\.0\\.1:$port closed before the last chunk for http://$addr/chunked\$" \
            -O "$tmp/tdir" "http://$addr/chunked" && empty_dir "$tmp/tdir"
    }
    check "client: server closes mid-chunk: exit 1, DIR left empty" trunc_dir
    check "client: server closes without answering: 'empty reply'" \
        fails_with emptyr 5 "^asyncore-http-client: empty reply from 127\\.0\\.0\\.1:$port for http://$addr/empty\$" \
        "http://$addr/empty"
    stop $pid
fi

if start garbage python3 "$PEER" garbage-status; then
    check "client: garbage status line: exit 1 with a message" \
        fails_with garbage 5 "^asyncore-http-client: malformed status line from 127\\.0\\.0\\.1:$port for http://$addr/\$" \
        -o "$tmp/garbage.bin" "http://$addr/"
    check "client: no file after a garbage status line" test ! -e "$tmp/garbage.bin"
    stop $pid
fi

if start huge python3 "$PEER" huge-header; then
    check "client: a 10 KiB header line is refused (8 KiB cap)" \
        fails_with hline 5 "^asyncore-http-client: header line longer than 8 KiB from 127\\.0\\.0\\.1:$port for http://$addr/line\$" \
        "http://$addr/line"
    check "client: 100 KiB of header lines are refused (64 KiB cap)" \
        fails_with hblock 5 "^asyncore-http-client: response header larger than 64 KiB from 127\\.0\\.0\\.1:$port for http://$addr/block\$" \
        "http://$addr/block"
    big_ok() { fetched hok "http://$addr/ok" && [ "$(cat "$tmp/hok.out")" = fine ]; }
    check "client accepts 60 KiB of header lines" big_ok
    stop $pid
fi

if start badchunk python3 "$PEER" bad-chunk; then
    check "client: chunk size 'zz' is refused" \
        fails_with bsize 5 "^asyncore-http-client: bad chunk size from 127\\.0\\.0\\.1:$port for http://$addr/size\$" \
        "http://$addr/size"
    check "client: chunk data without its CRLF is refused" \
        fails_with bcrlf 5 "^asyncore-http-client: bad chunk from 127\\.0\\.0\\.1:$port: no CRLF after its data for http://$addr/crlf\$" \
        "http://$addr/crlf"
    stop $pid
fi

if start slow python3 "$PEER" slow; then
    check "client -t 1: a server that never answers times out" \
        fails_with slow 6 "^asyncore-http-client: timeout: no data from 127\\.0\\.0\\.1:$port for 1 s for http://$addr/\$" \
        -t 1 "http://$addr/"
    stalled() {
        fails_with stall 6 "^asyncore-http-client: timeout: no data from 127\\.0\\.0\\.1:$port for 1 s for http://$addr/body\$" \
            -t 1 -o "$tmp/stall.bin" "http://$addr/body" &&
            [ ! -e "$tmp/stall.bin" ] && [ ! -e "$tmp/stall.bin.part" ]
    }
    check "client -t 1: a body that stalls halfway times out, no file left" stalled
    # interrupted SIG STATUS PART ARGS...: the client is killed by SIG
    # while its .part file (PART) holds half a body; it must remove it and
    # exit with STATUS, 128 + the signal's number (as a shell reports it).
    interrupted() {
        sig=$1 want=$2 part=$3; shift 3
        $WRAP "$CLIENT" -q "$@" >"$tmp/sig.out" 2>"$tmp/sig.err" &
        cpid=$!
        pids="$pids $cpid"
        timeout $T sh -c "until [ -e '$part' ]; do kill -0 $cpid || exit 1; sleep 0.05; done" ||
            { echo "no $part appeared"; stop $cpid; return 1; }
        kill -$sig $cpid
        finish $cpid
        cat "$tmp/sig.err"
        echo "exit status $status"
        [ $status -eq $want ] && [ ! -e "$part" ]
    }
    sig_dir() {
        rm -rf "$tmp/sigd"; mkdir "$tmp/sigd"
        interrupted INT 130 "$tmp/sigd/.body.part" -t 20 -O "$tmp/sigd" "http://$addr/body" &&
            empty_dir "$tmp/sigd"
    }
    check "client -O DIR: SIGINT mid-body removes DIR/.NAME.part, exit 130" sig_dir
    sig_file() {
        rm -f "$tmp/sigf.bin"
        interrupted TERM 143 "$tmp/sigf.bin.part" -t 20 -o "$tmp/sigf.bin" "http://$addr/body" &&
            [ ! -e "$tmp/sigf.bin" ]
    }
    check "client -o FILE: SIGTERM mid-body removes FILE.part, exit 143" sig_file
    stop $pid
fi

if start reset python3 "$PEER" reset; then
    check "client: a reset connection: exit 1 with a message" \
        fails_with reset 5 "^asyncore-http-client: connection to 127\\.0\\.0\\.1:$port lost: Connection reset by peer for http://$addr/\$" \
        "http://$addr/"
    stop $pid
fi

free_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
check "client: refused port: exit 1 naming host:port" \
    fails_with refused 3 "^asyncore-http-client: cannot connect to 127\\.0\\.0\\.1:$free_port: Connection refused for http://127\\.0\\.0\\.1:$free_port/x\$" \
    "http://127.0.0.1:$free_port/x"
check "client: unknown host: exit 1 naming it" \
    fails_with unknown 3 "^asyncore-http-client: unknown host nosuch\\.invalid for http://nosuch\\.invalid/\$" \
    "http://nosuch.invalid/"
check "client: ftp:// URL: exit 1, bad URL" \
    fails_with ftp 1 '^asyncore-http-client: bad URL \(only http:// and https:// URLs are supported\): ftp://example\.com/$' \
    "ftp://example.com/"
check "client: 'http://[::1/' is a bad URL" \
    fails_with badv6 1 '^asyncore-http-client: bad URL ' "http://[::1/"
check "client: port 99999 is a bad URL" \
    fails_with badport 1 '^asyncore-http-client: bad URL ' "http://127.0.0.1:99999/"

# ---- https://: openssl s_server and a server that skips close_notify ---------------
# A self-signed certificate for the name localhost only, made here.  Every
# https URL names localhost, whose addresses come from /etc/hosts.

if [ "${ASYNCORE_WITH_TLS:-yes}" = no ] || [ "${ASYNCORE_WITH_RESOLVE:-yes}" = no ]; then
    skip "https:// tests: the library was built --without-openssl or --disable-resolve"
elif command -v openssl >/dev/null 2>&1 &&
   openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
       -addext subjectAltName=DNS:localhost -keyout "$tmp/tls.key" \
       -out "$tmp/tls.crt" >"$tmp/tls.log" 2>&1; then
    mkdir -p "$tmp/www"
    cp "$root/mib" "$tmp/www/big"
    # s_server -WWW serves files of its directory as HTTP/1.0, each body
    # ending at the close, after TLS close_notify.
    (cd "$tmp/www" && exec openssl s_server -accept 127.0.0.1:0 \
        -cert "$tmp/tls.crt" -key "$tmp/tls.key" -WWW) >"$tmp/s_server.out" 2>&1 &
    spid=$!
    pids="$pids $spid"
    timeout $T sh -c "until grep -qs '^ACCEPT ' '$tmp/s_server.out'; do sleep 0.05; done"
    tp=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$tmp/s_server.out")
    if [ -n "$tp" ]; then
        tls_ok() { fetched tlsbig --cacert "$tmp/tls.crt" -o "$tmp/tls.big" \
                       "https://localhost:$tp/big" && same "$root/mib" "$tmp/tls.big"; }
        check "client fetches https:// from openssl s_server, byte-exact (1 MiB)" tls_ok
        check "client refuses a certificate its CA bundle does not know" \
            fails_with tlsca 3 "^asyncore-http-client: TLS handshake with localhost:$tp failed: certificate verify failed: self-signed certificate for https://localhost:$tp/big\$" \
            "https://localhost:$tp/big"
        check "client refuses a certificate for another name (127.0.0.1)" \
            fails_with tlsname 3 "^asyncore-http-client: TLS handshake with 127\\.0\\.0\\.1:$tp failed: certificate verify failed: IP address mismatch for https://127\\.0\\.0\\.1:$tp/big\$" \
            --cacert "$tmp/tls.crt" "https://127.0.0.1:$tp/big"
        tls_k() { fetched tlsk -k -o "$tmp/tls.k" "https://127.0.0.1:$tp/big" &&
                      same "$root/mib" "$tmp/tls.k"; }
        check "client -k fetches it anyway" tls_k
    else
        fail "openssl s_server starts"
    fi
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    # A body that ends at the close needs close_notify: without it, it may
    # have been cut, and no file may be left.
    cat >"$tmp/cut.py" <<'PY'
import os, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept()
    try:
        s = ctx.wrap_socket(c, server_side=True)
        s.recv(65536)
        s.sendall(b"HTTP/1.0 200 OK\r\n\r\ncut here")
        os.close(s.detach())  # TCP's close, without TLS close_notify
    except OSError:
        c.close()
PY
    if start cut python3 "$tmp/cut.py" "$tmp/tls.crt" "$tmp/tls.key"; then
        tls_cut() {
            mkdir -p "$tmp/cutdir"
            fails_with tlscut 5 "^asyncore-http-client: truncated body: localhost:$port closed without TLS close_notify for https://localhost:$port/x\$" \
                --cacert "$tmp/tls.crt" -O "$tmp/cutdir" "https://localhost:$port/x" &&
                empty_dir "$tmp/cutdir"
        }
        check "client refuses a body cut without TLS close_notify, leaves no file" tls_cut
    else
        fail "close_notify-less TLS server starts"
    fi
    # A server that takes connections (the kernel does) and never answers
    # the ClientHello: the connect timeout covers the handshake.
    if start mute python3 -c 'import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
time.sleep(600)'; then
        check "client times out a TLS handshake that never ends (-t 1)" \
            fails_with tlsmute 6 "^asyncore-http-client: timeout connecting to 127\\.0\\.0\\.1:$port after 1 s for https://127\\.0\\.0\\.1:$port/\$" \
            -k -t 1 "https://127.0.0.1:$port/"
    else
        fail "silent TLS server starts"
    fi
else
    skip "https:// tests: no openssl command"
fi

# ---- asyncore-http-server: correct bytes, to curl and to our client ---------------------------

if start server $WRAP "$SERVER" -p 0 -r "$root"; then
    srv=$pid sa=$addr
    one_line() {
        case $port in ''|0|*[!0-9]*) return 1;; esac
        [ "$(wc -l <"$out.out")" -eq 1 ] && [ "$addr" = "127.0.0.1:$port" ]
    }
    check "server prints one 'listening on 127.0.0.1:PORT' line for -p 0" one_line

    for f in $SIZES; do
        curl_bytes() {
            timeout $T curl -sS -f -o "$tmp/c.$1" "http://$sa/$1" && same "$root/$1" "$tmp/c.$1"
        }
        check "server sends '$f' ($(wc -c <"$root/$f") B) to curl (SHA-256)" curl_bytes "$f"
    done

    ours() {
        rm -rf "$tmp/ours"; mkdir "$tmp/ours"
        fetched ours -O "$tmp/ours" "http://$sa/zero" "http://$sa/one" "http://$sa/mib" \
            "http://$sa/big" "http://$sa/dir" || return 1
        for f in $SIZES; do same "$root/$f" "$tmp/ours/$f" || return 1; done
        same "$root/dir/index.html" "$tmp/ours/dir"
    }
    check "client -O fetches every size from our server, and follows /dir to /dir/index.html" ours
    away() {
        rm -rf "$tmp/away"; mkdir "$tmp/away"
        fetched away -O "$tmp/away" "http://$rd/away?to=http://$sa/mib" &&
            same "$root/mib" "$tmp/away/away"
    }
    [ -n "${rd:-}" ] &&
        check "client follows a redirect to another server, saving under the first URL's name" away
    check "client: 404 from our server: exit 1, 'HTTP 404 for URL', no file" \
        fails_with c404 4 "^asyncore-http-client: HTTP 404 for http://$sa/missing\$" \
        -o "$tmp/c404.bin" "http://$sa/missing"
    test ! -e "$tmp/c404.bin" || fail "client left a file after a 404"
    mixed() {
        rm -rf "$tmp/mixed"; mkdir "$tmp/mixed"
        fails_with mixed 4 "^asyncore-http-client: HTTP 404 for http://$sa/missing\$" \
            -O "$tmp/mixed" "http://$sa/missing" "http://$sa/mib" &&
            same "$root/mib" "$tmp/mixed/mib" && [ "$(ls -A "$tmp/mixed")" = mib ]
    }
    check "client: one 404 among two URLs: exit 1, the other one saved" mixed

    # code URL [CURL-ARGS]: the status code curl gets.
    code() { u=$1; shift; timeout $T curl -s -o "$tmp/body" -w '%{http_code}' "$@" "$u"; }
    head_ok() {
        timeout $T curl -sS -I "http://$sa/big" >"$tmp/head" &&
            grep -q '^HTTP/1.1 200 OK' "$tmp/head" &&
            grep -qi "^Content-Length: $((20 << 20))" "$tmp/head"
    }
    check "server: HEAD gives 200 and the file's Content-Length" head_ok
    check "server: 404 for a missing file" test "$(code "http://$sa/missing")" = 404
    # refused URL CODE [CURL-ARGS]: that code, and no password file in the body.
    refused() {
        u=$1 want=$2; shift 2
        [ "$(code "$u" "$@")" = "$want" ] && ! grep -q '^root:' "$tmp/body"
    }
    check "server: /../etc/passwd (curl --path-as-is) is refused with 400" \
        refused "http://$sa/../etc/passwd" 400 --path-as-is
    check "server: /%2e%2e/etc/passwd is refused with 400" \
        refused "http://$sa/%2e%2e/etc/passwd" 400
    check "server: /dir/%2E%2E%2F%2E%2E%2Fetc/passwd is refused with 400" \
        refused "http://$sa/dir/%2E%2E%2F%2E%2E%2Fetc/passwd" 400
    check "server: a symlink out of ROOT (escape -> /etc) gives 403" \
        refused "http://$sa/escape/passwd" 403
    inside() { [ "$(code "http://$sa/inside")" = 200 ] && same "$root/mib" "$tmp/body"; }
    check "server: a symlink inside ROOT is served" inside
    check "server: a relative symlink out of ROOT gives 403" \
        refused "http://$sa/rel-escape" 403
    check "server: a file through a symlinked directory out of ROOT gives 403" \
        refused "http://$sa/up/outside.txt" 403
    abs_inside() { [ "$(code "http://$sa/abs-inside")" = 200 ] && same "$root/one" "$tmp/body"; }
    check "server: an absolute symlink that lands inside ROOT is served" abs_inside
    out_and_back() {
        [ "$(code "http://$sa/out-and-back")" = 200 ] && same "$root/page.html" "$tmp/body"
    }
    check "server: a symlink that leaves ROOT and comes back into it is served" out_and_back
    check "server: a FIFO under ROOT gives 403 (and does not block the server)" \
        test "$(code "http://$sa/fifo")" = 403
    curl_exact() {
        timeout $T curl -sS -f -o "$tmp/c.$1" "http://$sa/$1" && same "$root/$1" "$tmp/c.$1"
    }
    check "server sends 'fits' (65000 B: one piece with its header) to curl (SHA-256)" \
        curl_exact fits
    check "server sends 'over' (65536 B: streamed after its header) to curl (SHA-256)" \
        curl_exact over
    check "server: bad percent-encoding (%zz) gives 400" test "$(code "http://$sa/%zz")" = 400
    spaced() { [ "$(code "http://$sa/a%20b.txt")" = 200 ] && same "$root/a b.txt" "$tmp/body"; }
    check "server: /a%20b.txt serves 'a b.txt'" spaced
    post() {
        timeout $T curl -s -D "$tmp/post" -o /dev/null -X POST -d x "http://$sa/one" &&
            grep -q '^HTTP/1.1 405 ' "$tmp/post" && grep -q '^Allow: GET, HEAD' "$tmp/post"
    }
    check "server: POST gives 405 with 'Allow: GET, HEAD'" post
    dir_redirect() {
        timeout $T curl -s -D "$tmp/dirh" -o /dev/null "http://$sa/dir?x=1" &&
            grep -q '^HTTP/1.1 301 ' "$tmp/dirh" && grep -q '^Location: /dir/?x=1' "$tmp/dirh"
    }
    check "server: /dir redirects (301) to /dir/, keeping the query" dir_redirect
    index() { [ "$(code "http://$sa/dir/")" = 200 ] && same "$root/dir/index.html" "$tmp/body"; }
    check "server: /dir/ serves dir/index.html" index
    check "server: a directory without index.html gives 404" \
        test "$(code "http://$sa/emptydir/")" = 404
    ctype() {
        timeout $T curl -s -D "$tmp/ct" -o /dev/null "http://$sa/page.html" &&
            grep -q '^Content-Type: text/html' "$tmp/ct"
    }
    check "server: Content-Type text/html for .html" ctype

    # Conditional and partial GETs: Last-Modified, If-Modified-Since (304),
    # one byte range (206 with Content-Range; 416 past the end), and so a
    # resumed download (curl -C -).
    # head_of URL [CURL-ARGS]: the response header, CRs dropped, in $tmp/hd.
    head_of() { u=$1; shift; rm -f "$tmp/body"; timeout $T curl -s -D - -o "$tmp/body" "$@" "$u" | tr -d '\r' >"$tmp/hd"; }
    mtime_of() { LC_ALL=C date -u -r "$1" '+%a, %d %b %Y %H:%M:%S GMT'; }
    last_modified() {
        head_of "http://$sa/mib" -I && grep '^Last-Modified' "$tmp/hd" &&
            grep -qx "Last-Modified: $(mtime_of "$root/mib")" "$tmp/hd" &&
            grep -qx 'Accept-Ranges: bytes' "$tmp/hd"
    }
    check "server: Last-Modified is the file's mtime, and Accept-Ranges: bytes" last_modified
    not_modified() {
        head_of "http://$sa/mib" -H "If-Modified-Since: $(mtime_of "$root/mib")" &&
            grep -q '^HTTP/1.1 304 ' "$tmp/hd" && [ ! -s "$tmp/body" ] &&
            [ "$(code "http://$sa/mib" -H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT')" = 200 ] &&
            [ "$(code "http://$sa/mib" -H 'If-Modified-Since: Saturday, 01-Jan-00 00:00:00 GMT')" = 200 ] &&
            [ "$(code "http://$sa/mib" -H 'If-Modified-Since: not a date')" = 200 ] &&
            [ "$(code "http://$sa/mib" -z "$root/mib")" = 304 ]
    }
    check "server: If-Modified-Since gives 304 without a body when the file is not newer, else 200" \
        not_modified
    # slice FILE FIRST COUNT: COUNT bytes of FILE from FIRST, to stdout.
    slice() { tail -c +$(($2 + 1)) "$1" | head -c "$3"; }
    one_range() {
        head_of "http://$sa/mib" -r 100-199 && grep -q '^HTTP/1.1 206 ' "$tmp/hd" &&
            grep -qx 'Content-Range: bytes 100-199/1048576' "$tmp/hd" &&
            grep -qx 'Content-Length: 100' "$tmp/hd" &&
            slice "$root/mib" 100 100 | cmp -s - "$tmp/body"
    }
    check "server: Range bytes=100-199 gives 206, Content-Range and those 100 bytes" one_range
    big_range() {
        head_of "http://$sa/big" -r 10000000- && grep -q '^HTTP/1.1 206 ' "$tmp/hd" &&
            grep -qx "Content-Range: bytes 10000000-$(((20 << 20) - 1))/$((20 << 20))" "$tmp/hd" &&
            slice "$root/big" 10000000 $((20 << 20)) | cmp -s - "$tmp/body"
    }
    check "server: Range bytes=10000000- of 20 MiB (streamed) gives the tail, byte-exact" big_range
    suffix_range() {
        head_of "http://$sa/mib" -r -5 && grep -q '^HTTP/1.1 206 ' "$tmp/hd" &&
            tail -c 5 "$root/mib" | cmp -s - "$tmp/body"
    }
    check "server: Range bytes=-5 gives the last 5 bytes" suffix_range
    unsatisfiable() {
        head_of "http://$sa/mib" -r 2000000- && grep -q '^HTTP/1.1 416 ' "$tmp/hd" &&
            grep -qx 'Content-Range: bytes \*/1048576' "$tmp/hd"
    }
    check "server: Range past the end gives 416 with Content-Range: bytes */SIZE" unsatisfiable
    several_ranges() {
        head_of "http://$sa/one" -r 0-0,2-3 && grep -q '^HTTP/1.1 200 ' "$tmp/hd" &&
            cmp -s "$root/one" "$tmp/body"
    }
    check "server: several ranges get the whole file (200)" several_ranges
    if_range() {
        [ "$(code "http://$sa/mib" -r 0-9 -H "If-Range: $(mtime_of "$root/mib")")" = 206 ] &&
            [ "$(code "http://$sa/mib" -r 0-9 -H 'If-Range: Sat, 01 Jan 2000 00:00:00 GMT')" = 200 ] &&
            [ "$(code "http://$sa/mib" -r 0-9 -H 'If-Range: "an-etag"')" = 200 ]
    }
    check "server: If-Range: the range only if the date is the file's Last-Modified" if_range
    resume() {
        head -c 300000 "$root/big" >"$tmp/resumed"
        timeout $T curl -sS -f -C - -o "$tmp/resumed" "http://$sa/big" && same "$root/big" "$tmp/resumed"
    }
    check "curl -C - resumes 20 MiB from our server after 300000 bytes (SHA-256)" resume
    keepalive() {
        timeout $T curl -sv -o /dev/null -o /dev/null "http://$sa/one" "http://$sa/mib" \
            2>"$tmp/curlv" && grep -q 'Re-using existing connection' "$tmp/curlv"
    }
    check "server keeps the connection alive: curl re-uses it for a second URL" keepalive
    http10() {
        timeout $T curl -s -0 -D "$tmp/h10" -o /dev/null "http://$sa/one" &&
            grep -q '^Connection: close' "$tmp/h10"
    }
    check "server closes after an HTTP/1.0 request" http10

    # raw TAG [--half-close]: send stdin to the server as one write, the
    # reply in $tmp/TAG.
    raw() { t=$1; shift; timeout $T python3 "$PEER" raw "$sa" "$@" >"$tmp/$t"; }
    pipelined() {
        printf 'HEAD /one HTTP/1.1\r\nHost: x\r\n\r\nGET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
            raw pipe || return 1
        # Three answers, in order; HEAD's without a body, so the bytes after
        # each header are exactly its Content-Length.
        python3 - "$tmp/pipe" "$root/one" "$root/page.html" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
one, page = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
for body in (b"", one, page):
    head, sep, data = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert sep and data[:len(body)] == body
    data = data[len(body):]
assert data == b"", data
EOF
    }
    check "server answers 3 pipelined requests in order; HEAD has no body" pipelined
    # A large file queued behind another answer is opened again when its
    # turn comes; a small one is read at once: all in order, byte-exact.
    pipelined_mixed() {
        printf 'GET /over HTTP/1.1\r\nHost: x\r\n\r\nGET /mib HTTP/1.1\r\nHost: x\r\n\r\nGET /fits HTTP/1.1\r\nHost: x\r\n\r\nHEAD /over HTTP/1.1\r\nHost: x\r\n\r\nGET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
            raw pipe2 || return 1
        python3 - "$tmp/pipe2" "$root" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
def body(name):
    return open(sys.argv[2] + "/" + name, "rb").read()
for want, length in ((body("over"), 65536), (body("mib"), 1 << 20),
                     (body("fits"), 65000), (b"", 65536), (body("one"), 1)):
    head, sep, data = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"\r\nContent-Length: %d\r\n" % length in head, head
    assert sep and data[:len(want)] == want
    data = data[len(want):]
assert data == b"", data
EOF
    }
    check "server answers pipelined large, small and HEAD requests in order, byte-exact" \
        pipelined_mixed
    # A large range queued behind another answer is read from the file
    # opened again when its turn comes, from the range's first byte.
    pipelined_range() {
        printf 'GET /mib HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-200999\r\nConnection: close\r\n\r\n' |
            raw piper || return 1
        python3 - "$tmp/piper" "$root" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
mib = open(sys.argv[2] + "/mib", "rb").read()
big = open(sys.argv[2] + "/big", "rb").read()
for status, want in ((b"200 OK", mib), (b"206 Partial Content", big[1000:201000])):
    head, sep, data = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n"), head
    assert sep and data[:len(want)] == want
    data = data[len(want):]
assert data == b"", data
EOF
    }
    check "server answers a pipelined 200 KB range behind a 1 MiB answer, byte-exact" \
        pipelined_range
    half_close() {
        printf 'GET /mib HTTP/1.1\r\nHost: x\r\n\r\n' | raw half --half-close &&
            [ "$(wc -c <"$tmp/half")" -gt $((1 << 20)) ]
    }
    check "server still answers a client that half-closed after its request" half_close
    # status TAG: the status code of the one reply in $tmp/TAG.
    status_of() { sed -n '1s/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' "$tmp/$1"; }
    long_line() {
        python3 -c 'import sys; sys.stdout.write("GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: x\r\n\r\n")' |
            raw long && [ "$(status_of long)" = 414 ]
    }
    check "server: a 9000-byte request line gives 414" long_line
    big_headers() {
        python3 -c 'import sys; sys.stdout.write("GET / HTTP/1.1\r\n" + "X-A: %s\r\n" % ("a" * 1000) * 70 + "\r\n")' |
            raw bigh && [ "$(status_of bigh)" = 431 ]
    }
    check "server: 70 KiB of request headers give 431" big_headers
    one_big_header() {
        python3 -c 'import sys; sys.stdout.write("GET / HTTP/1.1\r\nX-A: " + "a" * 9000 + "\r\n\r\n")' |
            raw bigl && [ "$(status_of bigl)" = 431 ]
    }
    check "server: a 9000-byte header line gives 431" one_big_header
    garbage() { printf 'GARBAGE\r\n\r\n' | raw garb && [ "$(status_of garb)" = 400 ]; }
    check "server: a malformed request line gives 400" garbage
    no_host() { printf 'GET /one HTTP/1.1\r\n\r\n' | raw nohost && [ "$(status_of nohost)" = 400 ]; }
    check "server: HTTP/1.1 without Host gives 400" no_host
    http2() { printf 'GET /one HTTP/2.0\r\nHost: x\r\n\r\n' | raw h2 && [ "$(status_of h2)" = 505 ]; }
    check "server: HTTP/2.0 gives 505" http2
    # "//host.example" names ROOT/host.example, but a Location "//host.example/"
    # is scheme-relative: browsers would follow it to that host.
    no_offsite() {
        printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$1" |
            raw offsite || return 1
        loc=$(tr -d '\r' <"$tmp/offsite" | sed -n 's/^Location: //p')
        echo "Location: $loc"
        [ "$(status_of offsite)" = 301 ] && [ "$loc" = "$2" ]
    }
    check "server: GET //host.example redirects to /host.example/, never to //host.example/" \
        no_offsite //host.example /host.example/
    check "server: GET ///host.example?q redirects to /host.example/?q" \
        no_offsite '///host.example?q' '/host.example/?q'
    check "server: GET http://x//host.example redirects to /host.example/" \
        no_offsite http://x//host.example /host.example/
    body_skipped() {
        printf 'GET /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
            raw gbody && [ "$(grep -ao 'HTTP/1.1 200 OK' "$tmp/gbody" | wc -l)" -eq 2 ]
    }
    check "server skips a GET's body and answers the next request" body_skipped
else
    fail "server starts on 127.0.0.1 -p 0"
fi

if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    if start server6 $WRAP "$SERVER" -b ::1 -p 0 -r "$root"; then
        check "server on ::1 prints 'listening on [::1]:PORT'" test "$addr" = "[::1]:$port"
        v6_curl() {
            timeout $T curl -sS -g -f -o "$tmp/v6c" "http://[::1]:$port/mib" && same "$root/mib" "$tmp/v6c"
        }
        check "server on [::1] sends 1 MiB to curl (SHA-256)" v6_curl
        v6_client() { fetched v6 -o "$tmp/v6" "http://[::1]:$port/big" && same "$root/big" "$tmp/v6"; }
        check "client fetches http://[::1]:PORT/big from our server (SHA-256)" v6_client
        stop $pid
        check "server on ::1 exits 0 on SIGTERM" test $status -eq 0
    else
        fail "server starts on ::1"
    fi
else
    skip "no IPv6 loopback"
fi

# A 1 GiB file must flow through the producer, not into memory.  Skipped
# under a wrapper or AddressSanitizer, which keep freed memory on purpose.
case "$WRAP ${CC:-}" in
*[a-z]*valgrind*|*sanitize=address*) skip "1 GiB file with bounded memory (wrapped or sanitized build)" ;;
*)
    mkdir -p "$tmp/sparse"
    truncate -s 1G "$tmp/sparse/huge"
    if start sparse "$SERVER" -p 0 -r "$tmp/sparse"; then
        bounded() {
            got=$(timeout $T curl -sS -o /dev/null -w '%{size_download}' "http://$addr/huge") &&
                hwm=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\) kB/\1/p' /proc/$pid/status) &&
                echo "sent $got bytes; server peak RSS ${hwm} kB" &&
                [ "$got" -eq $((1 << 30)) ] && [ "$hwm" -lt 65536 ]
        }
        check "server sends a 1 GiB file with a peak RSS under 64 MiB" bounded
        stop $pid
    fi
    ;;
esac

# ---- progress bar: only on a terminal -----------------------------------------------------

if [ -n "${sa:-}" ] && command -v script >/dev/null 2>&1; then
    bar() {
        timeout $T script -qec "$WRAP $CLIENT -o $tmp/bar.bin http://$sa/big" /dev/null \
            >"$tmp/bar.tty" </dev/null || return 1
        same "$root/big" "$tmp/bar.bin" && grep -q '1/1 files, 20\.0 MiB in ' "$tmp/bar.tty"
    }
    check "client draws progress and a summary on a terminal" bar
    quiet_bar() {
        timeout $T script -qec "$WRAP $CLIENT -q -o $tmp/barq.bin http://$sa/one" /dev/null \
            >"$tmp/barq.tty" </dev/null && same "$root/one" "$tmp/barq.bin" &&
            ! grep -q 'files' "$tmp/barq.tty"
    }
    check "client -q draws nothing on a terminal" quiet_bar
else
    skip "progress bar (no server or no script(1))"
fi

# ---- the access log (-l FILE): one line per answer, Common Log Format ------------------------

if start logged $WRAP "$SERVER" -p 0 -r "$root" -l "$tmp/access.log"; then
    lpid=$pid
    # CLF: HOST IDENT USER [DATE] "REQUEST" STATUS BYTES
    clf='^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\] '
    access_log() {
        timeout $T curl -sS -o /dev/null "http://$addr/one" &&
            timeout $T curl -sS -I -o /dev/null "http://$addr/one" &&
            timeout $T curl -s -o /dev/null "http://$addr/missing" &&
            printf 'GET /a"b\\c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
                timeout $T python3 "$PEER" raw "$addr" >/dev/null || return 1
        # Each line is written when its answer is queued: no waiting.
        cat "$tmp/access.log"
        [ "$(wc -l <"$tmp/access.log")" -eq 4 ] &&
            sed -n 1p "$tmp/access.log" | grep -qE "$clf\"GET /one HTTP/1\.1\" 200 1\$" &&
            sed -n 2p "$tmp/access.log" | grep -qE "$clf\"HEAD /one HTTP/1\.1\" 200 -\$" &&
            sed -n 3p "$tmp/access.log" | grep -qE "$clf\"GET /missing HTTP/1\.1\" 404 [0-9]+\$" &&
            sed -n 4p "$tmp/access.log" |
                grep -qE "$clf\"GET /a\\\\x22b\\\\x5Cc HTTP/1\.1\" [0-9]{3} [0-9]+\$"
    }
    check "server -l FILE logs each answer in the Common Log Format, quotes escaped" access_log
    stop $lpid
else
    fail "server starts with -l FILE"
fi
bad_log() {
    timeout $T $WRAP "$SERVER" -p 0 -r "$root" -l "$tmp/none/access.log" >/dev/null 2>"$tmp/badlog.err"
    [ $? -eq 1 ] &&
        grep -q "^asyncore-http-server: $tmp/none/access.log: No such file or directory$" "$tmp/badlog.err"
}
check "server -l in a missing directory exits 1 with a message" bad_log

# ---- out of descriptors: 503, not 403 -------------------------------------------------------

# A server allowed 32 descriptors; kept-alive connections take them one by
# one, each asking for a file, until the last is accepted and its file
# cannot be opened: that answer must be 503 with Retry-After (the trouble
# passes), not 403 (the file is forbidden).
if start emfile sh -c 'ulimit -n 32 && exec "$@"' sh $WRAP "$SERVER" -p 0 -r "$root"; then
    out_of_fds() {
        timeout $T python3 - "$addr" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
conns = []
for i in range(64):
    s = socket.create_connection((host, int(port)), timeout=10)
    conns.append(s)
    s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    status = head.split(" ")[1] if " " in head else "none"
    if status != "200":
        print("connection %d: %s" % (i + 1, head.replace("\r\n", " | ")))
        sys.exit(0 if status == "503" and "\r\nRetry-After: " in head else 1)
print("no error after 64 connections")
sys.exit(1)
EOF
    }
    check "server out of descriptors answers 503 with Retry-After, not 403" out_of_fds
    stop $pid
else
    fail "server starts with ulimit -n 32"
fi

# ---- exit codes and lifetime ------------------------------------------------------------

if [ -n "${sa:-}" ]; then
    in_use() {
        timeout $T $WRAP "$SERVER" -p "$port" -r "$root" >/dev/null 2>"$tmp/inuse.err"
        s=$?
        cat "$tmp/inuse.err"
        [ $s -eq 1 ] && [ "$(wc -l <"$tmp/inuse.err")" -eq 1 ] &&
            grep -q "^asyncore-http-server: cannot listen on 127.0.0.1 port ${sa##*:}: Address already in use$" \
                "$tmp/inuse.err"
    }
    port=${sa##*:}
    check "server on a port in use exits 1 with a message" in_use
    stop $srv
    check "server exits 0 on SIGTERM" test $status -eq 0
fi
if start sigint $WRAP "$SERVER" -p 0 -r "$root"; then
    kill -INT $pid
    finish $pid
    check "server exits 0 on SIGINT" test $status -eq 0
fi
bad_root() {
    timeout $T $WRAP "$SERVER" -p 0 -r "$tmp/none" >/dev/null 2>"$tmp/badroot.err"
    [ $? -eq 1 ] && grep -q "^asyncore-http-server: $tmp/none: No such file or directory$" "$tmp/badroot.err"
}
check "server with a missing ROOT exits 1 with a message" bad_root

bad_usage() {
    prog=$1; shift
    timeout $T $WRAP "$prog" "$@" >"$tmp/usage.out" 2>"$tmp/usage.err"
    [ $? -eq 2 ] && grep -q "^usage: " "$tmp/usage.err" && [ ! -s "$tmp/usage.out" ]
}
check "server with a bad option exits 2 with usage" bad_usage "$SERVER" -x
check "server with a bad port exits 2 with usage" bad_usage "$SERVER" -p 70000
check "client with no URL exits 2 with usage" bad_usage "$CLIENT"
check "client with -o and two URLs exits 2" bad_usage "$CLIENT" -o f http://a/ http://b/
check "client with two URLs and no -O exits 2" bad_usage "$CLIENT" http://a/ http://b/
check "client with -o and -O exits 2" bad_usage "$CLIENT" -o f -O d http://a/
check "client with -c 0 exits 2" bad_usage "$CLIENT" -c 0 http://a/
check "client with -t 0 exits 2" bad_usage "$CLIENT" -t 0 http://a/
help_ok() {
    timeout $T "$1" --help >"$tmp/help.out" 2>&1 && grep -q "^usage: " "$tmp/help.out"
}
check "server --help exits 0 with usage" help_ok "$SERVER"
check "client --help exits 0 with usage" help_ok "$CLIENT"
help_h() {
    timeout $T "$1" -h >"$tmp/help.out" 2>&1 && grep -q "^usage: " "$tmp/help.out"
}
check "server -h exits 0 with usage" help_h "$SERVER"
check "client -h exits 0 with usage" help_h "$CLIENT"
# version_ok PROG NAME: --version prints "NAME (libasyncore) VERSION", exit 0.
version_ok() {
    v=$(timeout $T "$1" --version) && echo "$v" &&
        echo "$v" | grep -qx "$2 (libasyncore) [0-9][0-9.]*[0-9a-z.~+-]*"
}
check "server --version names it and libasyncore's version" \
    version_ok "$SERVER" asyncore-http-server
check "client --version names it and libasyncore's version" \
    version_ok "$CLIENT" asyncore-http-client
same_name() {
    mkdir -p "$tmp/same"
    fails_with samename 1 "^asyncore-http-client: http://h/a/x and http://h/b/x would both be saved as $tmp/same/x\$" \
        -O "$tmp/same" http://h/a/x http://h/b/x
}
check "client -O refuses two URLs with the same file name" same_name
# ".../a" is saved through "DIR/.a.part": a URL whose name is ".a.part" would
# be written to the same file, and the wrong bytes saved as "DIR/a".
part_name() {
    mkdir -p "$tmp/pname"
    fails_with pname 1 "^asyncore-http-client: http://h/a and http://h/.a.part would both use $tmp/pname/\.a\.part, one as its temporary file\$" \
        -O "$tmp/pname" -c 2 http://h/a http://h/.a.part &&
    fails_with pname2 1 "^asyncore-http-client: http://h/.a.part and http://h/a would both use $tmp/pname/\.a\.part, one as its temporary file\$" \
        -O "$tmp/pname" -c 2 http://h/.a.part http://h/a && empty_dir "$tmp/pname"
}
check "client -O refuses a URL whose name is another's temporary name (a, .a.part)" part_name

summary
