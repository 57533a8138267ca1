#!/bin/sh
# hostile_http.sh -- asyncore-http-client and asyncore-http-server against hostile peers.
#
# test/demo_http.sh already covers: a garbage status line, a 10 KiB header
# line and 100 KiB of header lines sent to the client, a chunk size "zz",
# chunk data without its CRLF, a server that closes mid-body, mid-chunk or
# without answering, a reset, a server that never answers or stalls (-t);
# and for the server: a 9000-byte request line (414), 70 KiB of headers and
# one 9000-byte header (431), a malformed request line (400), no Host (400),
# HTTP/2.0 (505), a client that half-closes after its request, and paths
# that try to leave ROOT.  This script adds what it does not:
#
#   the client (against test/hostile_peer.py server): an over-long status
#   line, bare LF line ends, a header block that never ends, negative,
#   signed, overflowing, listed and conflicting Content-Lengths, a huge
#   announced length, overflowing, negative and control-character chunk
#   sizes, a huge chunk cut short, a NUL in a header, status 999, binary
#   noise -- each: exit 5, one clear line, no file left behind; and a
#   hostile URL fetched beside a good one on another server (our
#   asyncore-http-server, -c 2): the good one is saved whole;
#
#   the server (our asyncore-http-server): negative, overflowing and conflicting
#   Content-Lengths and a chunked request body (400); a control character
#   in a header (400); bare LF line ends, a truncated body and a request
#   cut mid-line, each followed by a half-close (the connection is closed,
#   nothing is answered); 100 slowloris connections dripping a header for
#   several seconds and a client pipelining thousands of requests without
#   ever reading -- meanwhile curl gets every file whole, and the server's
#   memory stays bounded; with $HOSTILE_IDLE_ARGS (the server's request-
#   header deadline, default "-t 3") the slowloris connections are closed
#   within seconds, and so are 10 that send a whole header, then drip its
#   body.  Afterwards the server still serves,
#   exits 0 on SIGTERM, and no demo printed a sanitizer or valgrind report;
#
#   the server's idle timeout (-t 1, a server of its own): a client that
#   asks for 16 MiB (more than the socket buffers hold) and never reads is
#   closed within 10 s, with "Connection: close" and kept alive, and also
#   when it sends a byte every 0.3 s after its request; so is a connection
#   that never sends, and one left idle after an answer; after an answer
#   with "Connection: close" the server shuts its side first and waits for
#   the client's close (at most 1 s), dropping what it sends; and a client
#   that reads 8 MiB slowly, for over 3 s, but steadily gets it all, kept
#   alive or with "Connection: close".
#
# Run by "make check" from the build directory; $HTTP_CLIENT/$HTTP_SERVER
# override the programs and $DEMO_WRAPPER (e.g. valgrind) is put in front of
# them.  Every wait is bounded; exit 77 (skip) if python3 or curl is missing.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
CLIENT=${HTTP_CLIENT:-$top_builddir/demo/asyncore-http-client}
SERVER=${HTTP_SERVER:-$top_builddir/demo/asyncore-http-server}
PEER="python3 $here/hostile_peer.py"
# The server's header deadline for the slowloris round; empty skips it.
HOSTILE_IDLE_ARGS=${HOSTILE_IDLE_ARGS--t 3}
T=60
. "$here/demo_lib.sh"

require python3 curl timeout cmp
built "$CLIENT" "$SERVER"
scratch hostile_http

# ---- the client against a hostile server ------------------------------------

# refused PATH REGEX: exit 5 (a broken response), one line on stderr
# matching REGEX, no file.
refused() {
    rm -f "$tmp/body"
    timeout $T $WRAP "$CLIENT" -q -t 10 -o "$tmp/body" "http://$haddr/$1" \
        >"$tmp/c.out" 2>"$tmp/c.err"
    s=$?
    cat "$tmp/c.err"
    [ $s -eq 5 ] && [ "$(wc -l <"$tmp/c.err")" -eq 1 ] &&
        grep -qE "$2" "$tmp/c.err" && [ ! -e "$tmp/body" ] &&
        [ -z "$(ls "$tmp" | grep '\.part$')" ]
}

root=$tmp/root
mkdir -p "$root"
head -c $((1 << 20)) /dev/urandom >"$root/mib"
printf 'hello' >"$root/good"
# Larger than what the kernel buffers between the server and a client that
# does not read; only their lengths matter, so they take no disk space.
truncate -s 16M "$root/big16"
truncate -s 8M "$root/big8"

if start hostile $PEER server; then
    hpid=$pid haddr=$addr
    check "client: a 10 KB status line is refused" \
        refused long-status 'header line longer than 8 KiB'
    check "client: bare LF line ends are not CRLF: the close ends it" \
        refused bare-lf 'closed the connection in the response header'
    check "client: a header block without its end" \
        refused no-end 'closed the connection in the response header'
    for p in negative-length overflow-length signed-length two-lengths list-length; do
        check "client: Content-Length of /$p is refused" \
            refused $p 'bad Content-Length'
    done
    check "client: an announced 10^18 bytes then a close: truncated, nothing kept" \
        refused huge-length 'truncated body: got 5 of 999999999999999999 bytes'
    for p in chunk-overflow chunk-negative chunk-ctl; do
        check "client: chunk size of /$p is refused" refused $p 'bad chunk size'
    done
    check "client: a 2^60-byte chunk cut short" \
        refused chunk-huge 'truncated chunked body'
    check "client: a chunked body cut mid-chunk" \
        refused chunk-truncated 'truncated chunked body'
    check "client: a NUL in a header line" refused header-nul 'malformed header line'
    check "client: status 999" refused status-999 'malformed status line'
    check "client: binary noise instead of a response" \
        refused binary 'closed the connection in the response header'

    if start files $WRAP "$SERVER" -p 0 -r "$root"; then
        gpid=$pid gaddr=$addr
        beside() {
            mkdir -p "$tmp/both"
            timeout $T $WRAP "$CLIENT" -q -c 2 -t 10 -O "$tmp/both" \
                "http://$haddr/chunk-overflow" "http://$gaddr/mib" \
                >"$tmp/b.out" 2>"$tmp/b.err"
            s=$?
            cat "$tmp/b.err"
            [ $s -eq 5 ] && cmp -s "$root/mib" "$tmp/both/mib" &&
                [ ! -e "$tmp/both/chunk-overflow" ]
        }
        check "client -c 2: a hostile server beside a good one: the good file is saved whole" beside
        kill -TERM "$gpid"
        finish "$gpid"
    else
        fail "a good server starts"
    fi
    # Python's default SIGTERM ends it at once; its status says nothing.
    stop "$hpid"
else
    fail "the hostile server starts"
fi

# ---- the server against hostile clients ---------------------------------------

# answer REQUEST [raw options]: what the server sends back, CRLF as "~".
answer() {
    printf "$1" | timeout $T $PEER raw "$saddr" --wait 5 $2 | tr '\r\n' '~|' | head -c 300
}
# code REQUEST: the status line's code, "[open]" or "" (closed, nothing).
answers() {
    got=$(answer "$1" "$3")
    echo "$got" | head -c 80; echo
    case $2 in
    closed) [ -z "$got" ] ;;
    *) case $got in "HTTP/1.1 $2 "*) true ;; *) false ;; esac ;;
    esac
}
fetch_ok() {
    timeout $T curl -s -o "$tmp/curl.$1" "http://$saddr/mib" &&
        cmp -s "$root/mib" "$tmp/curl.$1"
}

if start ours $WRAP "$SERVER" -p 0 -r "$root"; then
    spid=$pid saddr=$addr
    H='GET /good HTTP/1.1\r\nHost: x\r\n'
    check "server: Content-Length -1 gives 400" answers "${H}Content-Length: -1\r\n\r\n" 400
    check "server: a 20-digit Content-Length gives 400" \
        answers "${H}Content-Length: 99999999999999999999\r\n\r\n" 400
    check "server: two different Content-Lengths give 400" \
        answers "${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" 400
    check "server: a chunked request body gives 400" \
        answers "${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" 400
    check "server: a control character in a header gives 400" \
        answers "${H}X-Bad: a\001b\r\n\r\n" 400
    check "server: bare LF line ends, then a half-close: closed, no answer" \
        answers 'GET /good HTTP/1.1\nHost: x\n\n' closed --half-close
    check "server: a body cut short, then a half-close: closed, no answer" \
        answers "${H}Content-Length: 100\r\n\r\nshort" closed --half-close
    check "server: a request cut mid-line, then a half-close: closed" \
        answers 'GET /go' closed --half-close

    # Slowloris and a client that never reads, while curl fetches files.
    $PEER slowloris "$saddr" --conns 100 --seconds 4 >"$tmp/slow.out" 2>&1 &
    slow=$!
    pids="$pids $slow"
    $PEER greedy "$saddr" --path /mib --requests 20000 --seconds 4 >"$tmp/greedy.out" 2>&1 &
    greedy=$!
    pids="$pids $greedy"
    sleep 1.5
    check "server: curl gets 1 MiB whole beside 100 slowloris connections and a greedy pipeliner" \
        fetch_ok 1
    check "server: and again" fetch_ok 2
    rss_ok() {
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$spid/status")
        echo "server RSS ${kb} KiB with a client that pipelined without reading"
        [ -n "$kb" ] && [ "$kb" -lt 65536 ]
    }
    if [ -z "$WRAP" ]; then
        check "server: memory stays under 64 MiB for a client that never reads" rss_ok
    else
        skip "server memory bound (not measured under DEMO_WRAPPER)"
    fi
    wait $greedy; forget $greedy; cat "$tmp/greedy.out"
    wait $slow; forget $slow; cat "$tmp/slow.out"
    if [ -n "${HOSTILE_IDLE_ARGS:-}" ]; then
        # A server with its idle timeout on ($HOSTILE_IDLE_ARGS, e.g. the
        # option and a few seconds): it must close every slow client.
        if start idle $WRAP "$SERVER" -p 0 -r "$root" $HOSTILE_IDLE_ARGS; then
            ipid=$pid
            $PEER slowloris "$addr" --conns 100 --seconds 30 >"$tmp/idle.out" 2>&1
            cat "$tmp/idle.out"
            check "server $HOSTILE_IDLE_ARGS: the header deadline closed every slowloris connection" \
                grep -q 'closed 100 of 100' "$tmp/idle.out"
            # The same deadline covers a request's body: a client dripping
            # it a byte a second is never idle, and must not be held either.
            $PEER slowloris "$addr" --conns 10 --seconds 30 --body >"$tmp/idleb.out" 2>&1
            cat "$tmp/idleb.out"
            check "server $HOSTILE_IDLE_ARGS: the request deadline closed every connection dripping a body" \
                grep -q 'closed 10 of 10' "$tmp/idleb.out"
            kill -TERM "$ipid"
            finish "$ipid"
        else
            fail "the server starts with $HOSTILE_IDLE_ARGS"
        fi
    else
        skip "server idle timeout (set HOSTILE_IDLE_ARGS to the server's option, if it has one)"
    fi
    check "server: still serves after all of that" fetch_ok 3
    kill -TERM "$spid"
    finish "$spid"
    check "server exits 0 on SIGTERM" test $status -eq 0
else
    fail "our server starts"
fi

# ---- the server's idle timeout -------------------------------------------------

# Whether the server closed a connection is seen in its /proc/PID/fd: a
# client that does not read cannot see the close behind the data in flight.
if [ ! -d "/proc/$$/fd" ]; then
    skip "server idle timeout (no /proc/PID/fd)"
elif start timeouts $WRAP "$SERVER" -p 0 -r "$root" -t 1; then
    tpid=$pid taddr=$addr
    # closed_after OUT: OUT says the server closed, and not at once (a
    # timeout ran, not an error).
    closed_after() {
        cat "$1"
        awk '/^closed by the server after / { ok = $6 >= 0.5 } END { exit !ok }' "$1"
    }
    # stalled TAG [OPTION...]: a request for 16 MiB, nothing read; the
    # server must close within 10 s, having sent only part of the body.
    stalled() {
        local tag=$1
        shift
        timeout $T $PEER stall "$taddr" --pid "$tpid" --path /big16 --within 10 "$@" \
            >"$tmp/$tag.out" 2>&1
        closed_after "$tmp/$tag.out" &&
            got=$(sed -n 's/^got \([0-9]*\) body bytes of .*/\1/p' "$tmp/$tag.out") &&
            [ -n "$got" ] && [ "$got" -lt $((16 << 20)) ]
    }
    # These count the server's sockets: each must begin with no connection
    # left open, so they run before the tests that leave one to the server.
    check "server -t 1: a client that never reads a 16 MiB answer (Connection: close) is closed" \
        stalled stall1 --close
    check "server -t 1: a client that never reads a 16 MiB answer (kept alive) is closed" \
        stalled stall2
    # The bytes it sends after its last request are read and dropped; they
    # must not keep a connection whose answer does not move alive.
    check "server -t 1: a client that never reads its answer but drips bytes is closed" \
        stalled stall3 --close --drip 0.3
    # lingered [--keep-open]: after a Connection: close answer the server
    # shuts its side, drops what the client still sends and waits for the
    # client's close: at once after it, or after -t (1 s) without it.
    lingered() {
        timeout $T $PEER linger "$taddr" --pid "$tpid" --path /mib --within 10 "$@" \
            >"$tmp/linger.out" 2>&1
        cat "$tmp/linger.out"
        grep -q "^after the answer's end: held$" "$tmp/linger.out" &&
            awk -v open="$#" '/^closed by the server after / {
                    ok = open ? ($6 >= 0.5 && $6 <= 3) : $6 < 0.5 }
                END { exit !ok }' "$tmp/linger.out"
    }
    check "server -t 1: after a Connection: close answer it waits for the client's close" \
        lingered
    check "server -t 1: ... but not longer than 1 s for a client that never closes" \
        lingered --keep-open
    idle_closed() {
        timeout $T $PEER idle "$taddr" --within 10 "$@" >"$tmp/idle.out" 2>&1
        closed_after "$tmp/idle.out"
    }
    check "server -t 1: a connection that never sends is closed" idle_closed
    check "server -t 1: a kept-alive connection idle after its answer is closed" \
        idle_closed --path /good
    # 128 reads of 64 KiB, 25 ms apart: over 3 s, three times the timeout,
    # and never a second without progress.
    slow_reader() {
        timeout $T $PEER slowread "$taddr" --path /big8 --chunk 65536 --pause 0.025 "$@" \
            >"$tmp/slowread.out" 2>&1
        cat "$tmp/slowread.out"
        grep -q "^got $((8 << 20)) body bytes of $((8 << 20)) in " "$tmp/slowread.out"
    }
    check "server -t 1: a client reading 8 MiB slowly but steadily gets it all" slow_reader
    check "server -t 1: ... and so does one that asked for Connection: close" \
        slow_reader --close
    kill -TERM "$tpid"
    finish "$tpid"
    check "server -t 1 exits 0 on SIGTERM" test $status -eq 0
else
    fail "the server starts with -t 1"
fi

summary
