#!/bin/sh
# demo_echo.sh -- asyncore-echo-server and asyncore-echo-client against peers we did not write
# (python3's socket module, CPython's asyncore, socat) and against each other.
#
# Run by "make check" from the build directory.  The programs are found via
# $ECHO_SERVER/$ECHO_CLIENT, else under $top_builddir/demo (or ./demo).
# $DEMO_WRAPPER, if set, is put in front of every demo command, e.g.
#   DEMO_WRAPPER="./libtool --mode=execute valgrind -q --error-exitcode=99"
# Every wait is bounded; exit 77 (skip) if python3 or socat is missing.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
ECHO_SERVER=${ECHO_SERVER:-$top_builddir/demo/asyncore-echo-server}
ECHO_CLIENT=${ECHO_CLIENT:-$top_builddir/demo/asyncore-echo-client}
PEER=$here/echo_peer.py
# A timeout long enough for valgrind, short enough to end a hung test.
T=30
. "$here/demo_lib.sh"

require python3 socat timeout
built "$ECHO_SERVER" "$ECHO_CLIENT"
PY="python3 -W ignore::DeprecationWarning"
scratch demo_echo

# ---- asyncore-echo-server against clients we did not write --------------------------

ipv4_python_clients() {
    timeout $T $PY "$PEER" client "$addr" --conns 4
}

socat_round_trip() {
    head -c 100000 /dev/urandom >"$tmp/socat.in"
    timeout $T socat -t 10 - "$1" <"$tmp/socat.in" >"$tmp/socat.out" &&
        cmp -s "$tmp/socat.in" "$tmp/socat.out"
}

# client_ok MESSAGES CMD...: CMD exits 0 and its summary has exactly that
# many messages and 0 mismatches.
client_ok() {
    want=$1; shift
    timeout $T "$@" >"$tmp/client.out" 2>"$tmp/client.err" || return 1
    cat "$tmp/client.out"
    grep -q "^$want messages, [0-9]* bytes, 0 mismatches, " "$tmp/client.out"
}

# The printed port is the real one: the kernel's pick for -p 0.
listening_line_names_a_port() {
    case $port in ''|0|*[!0-9]*) return 1;; esac
    [ "$(wc -l <"$out.out")" -eq 1 ]
}

if start server $WRAP "$ECHO_SERVER" -p 0; then
    v4=$pid v4addr=$addr v4port=$port
    check "server prints one 'listening on 127.0.0.1:PORT' line for -p 0" \
        listening_line_names_a_port
    check "server echoes 1 B..4 MiB to 4 concurrent python clients (SHA-256)" \
        ipv4_python_clients
    check "server echoes 100 kB of random bytes to socat" \
        socat_round_trip "TCP:$v4addr"
    # Without backpressure the server would read (and queue) gigabytes.
    check "server stops reading a client that does not read (< 64 MiB taken)" \
        timeout $T $PY "$PEER" flood "$v4addr" --seconds 2 --limit $((64 << 20))
else
    fail "server starts on 127.0.0.1 -p 0"
fi

if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    if start server6 $WRAP "$ECHO_SERVER" -b ::1 -p 0; then
        check "server on [::1] prints 'listening on [::1]:PORT'" \
            test "$addr" = "[::1]:$port"
        check "server on [::1] echoes 1 B..4 MiB to python clients" \
            timeout $T $PY "$PEER" client "$addr" --conns 2
        check "server on [::1] echoes to socat" socat_round_trip "TCP6:$addr"
        stop $pid
        check "server on [::1] exits 0 on SIGTERM" test $status -eq 0
    else
        fail "server starts on ::1"
    fi
else
    skip "no IPv6 loopback"
fi

sock=$tmp/echo.sock
if start unix $WRAP "$ECHO_SERVER" -u "$sock"; then
    check "server on a Unix socket prints 'listening on PATH'" test "$addr" = "$sock"
    check "server on a Unix socket echoes 1 B..4 MiB to python clients" \
        timeout $T $PY "$PEER" client "$sock" --conns 2
    check "server on a Unix socket echoes to socat" socat_round_trip "UNIX-CONNECT:$sock"
    check "client over a Unix socket: -c 5 -n 50 -s 1000, 250 messages, 0 mismatches" \
        client_ok 250 $WRAP "$ECHO_CLIENT" -u "$sock" -c 5 -n 50 -s 1000
    stop $pid
    check "server on a Unix socket exits 0 on SIGTERM" test $status -eq 0
    check "server removes its Unix socket on exit" test ! -e "$sock"
else
    fail "server starts on a Unix socket"
fi

# ---- asyncore-echo-client against CPython's asyncore and against our server ---------

# asyncore left the standard library in 3.12; Debian 12's python3 has it.
APY=
for py in python3 /usr/bin/python3; do
    if $py -W ignore::DeprecationWarning -c 'import asyncore' 2>/dev/null; then
        APY="$py -W ignore::DeprecationWarning"
        break
    fi
done
if [ -n "$APY" ]; then
    if start pyasyncore $APY "$PEER" server; then
        check "client -c 10 -n 100 -s 1000 against CPython asyncore: 1000 messages, 0 mismatches" \
            client_ok 1000 $WRAP "$ECHO_CLIENT" -p "$port" -c 10 -n 100 -s 1000
        stop $pid
    else
        fail "python asyncore echo server starts"
    fi
    # A server that flips one byte of the stream: the second message.
    if start pycorrupt $APY "$PEER" server --corrupt-at 1500; then
        corrupt() {
            timeout $T $WRAP "$ECHO_CLIENT" -p "$port" -n 10 -s 1000 >"$tmp/bad.out"
            s=$?
            cat "$tmp/bad.out"
            [ $s -eq 5 ] &&
                grep -q "^10 messages, 10000 bytes, 1 mismatches, " "$tmp/bad.out"
        }
        check "client counts one corrupted echo as 1 mismatch and exits 5 (protocol)" corrupt
        stop $pid
    else
        fail "python corrupting server starts"
    fi
    # A server that echoes 500 bytes and then hangs up.
    if start pyearly $APY "$PEER" server --close-after 500; then
        early_close() {
            timeout $T $WRAP "$ECHO_CLIENT" -p "$port" -n 100 -s 1000 \
                >"$tmp/early.out" 2>"$tmp/early.err"
            s=$?
            cat "$tmp/early.err"
            [ $s -eq 5 ] &&
                grep -q "^asyncore-echo-client: connection closed early by 127.0.0.1:$port$" \
                    "$tmp/early.err"
        }
        check "client exits 5 (protocol) with a message when the server closes early" early_close
        stop $pid
    else
        fail "python closing server starts"
    fi
else
    skip "python3 has no asyncore module (removed in 3.12)"
fi

if [ -n "${v4:-}" ]; then
    check "client -c 50 -n 200 -s 64 against our server: 10000 messages, 0 mismatches" \
        client_ok 10000 $WRAP "$ECHO_CLIENT" -p "$v4port" -c 50 -n 200 -s 64
    check "client -H 127.0.0.1 (the server's host) connects" \
        client_ok 10 $WRAP "$ECHO_CLIENT" -H 127.0.0.1 -p "$v4port" -n 10
    check "client --host 127.0.0.1 connects" \
        client_ok 10 $WRAP "$ECHO_CLIENT" --host 127.0.0.1 -p "$v4port" -n 10
    # -h HOST, before -h meant help as in the other demos: still accepted.
    old_h() {
        client_ok 10 $WRAP "$ECHO_CLIENT" -h 127.0.0.1 -p "$v4port" -n 10 &&
            grep -q '^asyncore-echo-client: -h HOST is now -H HOST$' "$tmp/client.err"
    }
    check "client -h 127.0.0.1 still connects, and says to use -H" old_h
fi

refused() {
    p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    timeout $T $WRAP "$ECHO_CLIENT" -p "$p" -c 3 -n 1 >/dev/null 2>"$tmp/refused.err"
    s=$?
    cat "$tmp/refused.err"
    [ $s -eq 3 ] && [ "$(wc -l <"$tmp/refused.err")" -eq 1 ] &&
        grep -q "^asyncore-echo-client: cannot connect to 127.0.0.1:$p: Connection refused$" \
            "$tmp/refused.err"
}
check "client to a refused port exits 3 (connect) with one line naming host:port" refused

no_socket() {
    timeout $T $WRAP "$ECHO_CLIENT" -u "$tmp/none.sock" -c 3 -n 1 >/dev/null 2>"$tmp/nosock.err"
    s=$?
    cat "$tmp/nosock.err"
    [ $s -eq 3 ] && [ "$(wc -l <"$tmp/nosock.err")" -eq 1 ] &&
        grep -q "^asyncore-echo-client: cannot connect to $tmp/none.sock: No such file or directory$" \
            "$tmp/nosock.err"
}
check "client to a missing Unix socket exits 3 (connect) with one line naming it" no_socket

# ---- interactive mode ------------------------------------------------------

if [ -n "${v4:-}" ]; then
    interactive_lines() {
        printf 'hello\nworld\n' | timeout $T $WRAP "$ECHO_CLIENT" -p "$v4port" \
            >"$tmp/i.out" 2>"$tmp/i.err" || return 1
        printf 'hello\nworld\n' | cmp -s - "$tmp/i.out" &&
            grep -q '^2 messages, 12 bytes, 0 mismatches' "$tmp/i.err"
    }
    check "client echoes stdin lines 'hello' and 'world' to stdout" interactive_lines

    interactive_binary() {
        head -c 1000000 /dev/urandom >"$tmp/bin.in"
        # Through a pipe, then from a regular file (always ready).
        cat "$tmp/bin.in" | timeout $T $WRAP "$ECHO_CLIENT" -p "$v4port" \
            >"$tmp/bin.out" 2>>"$tmp/misc.err" && cmp -s "$tmp/bin.in" "$tmp/bin.out" &&
            timeout $T $WRAP "$ECHO_CLIENT" -p "$v4port" <"$tmp/bin.in" \
                >"$tmp/bin.out" 2>>"$tmp/misc.err" && cmp -s "$tmp/bin.in" "$tmp/bin.out"
    }
    check "1 MB of binary stdin (pipe and file) comes back unchanged on stdout" \
        interactive_binary

    empty_stdin() {
        timeout $T $WRAP "$ECHO_CLIENT" -p "$v4port" </dev/null >"$tmp/null.out" \
            2>>"$tmp/misc.err" && [ ! -s "$tmp/null.out" ]
    }
    check "client with stdin from /dev/null sends nothing and exits 0" empty_stdin
fi

# ---- server lifetime and exit codes ------------------------------------------

if [ -n "${v4:-}" ]; then
    in_use() {
        timeout $T $WRAP "$ECHO_SERVER" -p "$v4port" >/dev/null 2>"$tmp/inuse.err"
        s=$?
        cat "$tmp/inuse.err"
        [ $s -eq 1 ] && [ "$(wc -l <"$tmp/inuse.err")" -eq 1 ] &&
            grep -q "^asyncore-echo-server: cannot listen on 127.0.0.1 port $v4port: Address already in use$" \
                "$tmp/inuse.err"
    }
    check "server on a port in use exits 1 with a message" in_use

    # Idle clients hold connections; SIGTERM must close them all (EOF) and
    # the server exits 0.
    timeout $T $PY "$PEER" hold "$v4addr" --conns 5 >"$tmp/hold.out" 2>&1 &
    hold=$!
    pids="$pids $hold"
    timeout $T sh -c "until grep -q ready '$tmp/hold.out'; do sleep 0.05; done"
    stop $v4
    check "server exits 0 on SIGTERM" test $status -eq 0
    finish $hold
    cat "$tmp/hold.out"
    check "every client sees EOF when the server is stopped" test $status -eq 0
fi

if start sigint $WRAP "$ECHO_SERVER" -p 0; then
    kill -INT $pid
    finish $pid
    check "server exits 0 on SIGINT" test $status -eq 0
fi

bad_usage() {
    timeout $T $WRAP "$1" $2 >"$tmp/usage.out" 2>"$tmp/usage.err"
    [ $? -eq 2 ] && grep -q "^usage: " "$tmp/usage.err" && [ ! -s "$tmp/usage.out" ]
}
check "server with a bad option exits 2 with usage" bad_usage "$ECHO_SERVER" -x
check "server with a bad port exits 2 with usage" bad_usage "$ECHO_SERVER" "-p 70000"
check "client with a bad option exits 2 with usage" bad_usage "$ECHO_CLIENT" -x
check "client with -s 0 exits 2 with usage" bad_usage "$ECHO_CLIENT" "-n 1 -s 0"
help_ok() {
    timeout $T "$1" $2 >"$tmp/help.out" 2>&1 && grep -q "^usage: " "$tmp/help.out"
}
check "server --help exits 0 with usage" help_ok "$ECHO_SERVER" --help
check "client --help exits 0 with usage" help_ok "$ECHO_CLIENT" --help
# -h is help in all four demos, as in curl and wget.
check "server -h exits 0 with usage" help_ok "$ECHO_SERVER" -h
check "client -h exits 0 with usage" help_ok "$ECHO_CLIENT" -h
# version_ok PROG NAME: --version prints "NAME (libasyncore) VERSION", exit 0.
version_ok() {
    v=$(timeout $T "$1" --version) && echo "$v" &&
        echo "$v" | grep -qx "$2 (libasyncore) [0-9][0-9.]*[0-9a-z.~+-]*"
}
check "server --version names it and libasyncore's version" \
    version_ok "$ECHO_SERVER" asyncore-echo-server
check "client --version names it and libasyncore's version" \
    version_ok "$ECHO_CLIENT" asyncore-echo-client

# ---- -t: a map per thread, listeners sharing the port (SO_REUSEPORT) ------

if start threads $WRAP "$ECHO_SERVER" -t 2 -p 0; then
    check "server -t 2 prints one 'listening on 127.0.0.1:PORT' line" \
        listening_line_names_a_port
    check "server -t 2: client -c 20 -n 100 -s 1000, 2000 messages, 0 mismatches" \
        client_ok 2000 $WRAP "$ECHO_CLIENT" -p "$port" -c 20 -n 100 -s 1000
    check "server -t 2 echoes 1 B..4 MiB to 4 concurrent python clients" \
        timeout $T $PY "$PEER" client "$addr" --conns 4
    stop $pid
    check "server -t 2 exits 0 on SIGTERM" test $status -eq 0
else
    fail "server -t 2 starts"
fi
check "server with -t 0 exits 2 with usage" bad_usage "$ECHO_SERVER" "-t 0"

summary
