#!/bin/sh
# fiu.sh -- the echo server under injected system call and allocation
# failures (libfiu), with Python clients checking every byte.
#
#   1. send(), recv() and accept() fail at random (5 %, then 10 %) while
#      clients run: every client gets its bytes back exactly, or a prefix of
#      them and then a close or a reset -- never a wrong byte -- and never
#      fails to connect (the listener survives every accept() error);
#   2. malloc(), calloc() and realloc() fail at random (1 %) while
#      connections are accepted and served: the same;
#   3. after each round, with the faults off, a 1 MiB round trip is exact;
#   4. the errors the server logged are the ones asyncore sends to
#      handle_error: never EAGAIN, EINTR or a lost connection (those are
#      retried or go to handle_close), never an accept() error;
#   5. SIGTERM: the server exits 0, with no sanitizer report.
#
# The faults are switched on and off at run time (fiu-ctrl), so the server
# starts and stops cleanly.  libfiu has no failure point for accept4(),
# which the library uses: test/fiu_accept4.c adds one (built here).
#
# Run by "make fiu" (and "make reliability-ci") from the build directory;
# $ECHO_SERVER overrides the program.  Exit 77 (skip) without fiu-run,
# libfiu's header or python3.  With a sanitizer build of the server, its
# runtime is preloaded first and allocation faults are skipped.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
ECHO_SERVER=${ECHO_SERVER:-$top_builddir/demo/asyncore-echo-server}
PEER="python3 $here/fault_peer.py"
SHIM_CC=${SHIM_CC:-cc}
T=60

skip() { echo "SKIP: $*"; exit 77; }
command -v fiu-run >/dev/null 2>&1 || skip "fiu-run is not installed (apt install fiu-utils libfiu-dev)"
command -v fiu-ctrl >/dev/null 2>&1 || skip "fiu-ctrl is not installed (fiu-utils)"
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
[ -x "$ECHO_SERVER" ] || { echo "FAIL: $ECHO_SERVER not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fiu.XXXXXX") || exit 1
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

$SHIM_CC -shared -fPIC -O2 -o "$tmp/fiu_accept4.so" "$here/fiu_accept4.c" \
    -lfiu -ldl 2>"$tmp/cc.err" ||
    { cat "$tmp/cc.err"; skip "cannot build the accept4 shim (libfiu-dev?)"; }

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# A sanitizer build: its runtime must come first among the preloaded
# libraries, and then its allocator hides libfiu's malloc -- allocation
# faults need a plain build.  (Behind libtool's wrapper is .libs/PROG.)
# The program itself is run, not the wrapper: the preloaded libraries are
# then in the server alone, not in the wrapper's helper processes.
real=$(dirname "$ECHO_SERVER")/.libs/$(basename "$ECHO_SERVER")
if [ -x "$real" ]; then
    LD_LIBRARY_PATH="$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
else
    real=$ECHO_SERVER
fi
asan=$(ldd "$real" 2>/dev/null | awk '/libasan/ { print $3 }')

# The server, with the fault libraries preloaded and nothing enabled yet.
fiu-run -x -f "$tmp/ctrl" sh -c 'LD_PRELOAD="$1 $LD_PRELOAD $0"; shift; exec "$@"' \
    "$tmp/fiu_accept4.so" "$asan" "$real" -p 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
if ! timeout $T sh -c "until grep -qs '^listening on ' '$tmp/out'; do
                         kill -0 $pid 2>/dev/null || exit 1; sleep 0.05; done"; then
    cat "$tmp/err"
    echo "FAIL: the server did not start under fiu-run"
    exit 1
fi
addr=$(sed -n 's/^listening on //p' "$tmp/out")

ctl() { timeout $T fiu-ctrl -f "$tmp/ctrl" "$@" "$pid"; }
NET="posix/io/net/send posix/io/net/recv posix/io/net/accept"
MEM="libc/mm/malloc libc/mm/calloc libc/mm/realloc"
enable() { p=$1; shift; for n in "$@"; do
    ctl -c "enable_random name=$n,probability=$p" || return 1; done; }
disable() { for n in "$@"; do ctl -c "disable name=$n" || return 1; done; }

# load NAME ARGS...: clients under faults; their summary line is shown.
load() {
    timeout $((3 * T)) $PEER load "$addr" "$@" >"$tmp/load.out" 2>"$tmp/load.err"
    s=$?
    cat "$tmp/load.out"
    [ $s -eq 0 ] || head -5 "$tmp/load.err"
    return $s
}
alive() { kill -0 "$pid" 2>/dev/null && timeout $T $PEER probe "$addr"; }

for p in 0.05 0.10; do
    if enable $p $NET; then
        check "send/recv/accept failing at $p: no wrong byte, no refused connect" \
            load --clients 8 --conns 25 --max-size 262144 --seed 1
        disable $NET
    else
        fail "fiu-ctrl enables the network failure points"
    fi
    check "server alive after $p network faults: exact 1 MiB round trip" alive
done

if [ -n "$asan" ]; then
    echo "SKIP: allocation faults (AddressSanitizer's allocator hides libfiu's: use a plain build)"
elif enable 0.01 $MEM; then
    check "malloc/calloc/realloc failing at 0.01 during accepts: no wrong byte" \
        load --clients 8 --conns 60 --max-size 65536 --seed 2
    disable $MEM
else
    fail "fiu-ctrl enables the allocation failure points"
fi
check "server alive after allocation faults: exact 1 MiB round trip" alive

# handle_error gets only what asyncore sends it (errno numbers of Linux).
mapped() {
    bad=$(grep 'uncaptured error' "$tmp/err" |
          grep -E 'errno (11|4|104|107|108|103|32|9):|\(accept:' )
    [ -z "$bad" ] || { echo "$bad" | head -5; return 1; }
    echo "$(grep -c 'uncaptured error' "$tmp/err") connections closed by handle_error, e.g.:"
    grep 'uncaptured error' "$tmp/err" | sed 's/channel <[^>]*> //' | sort | uniq -c |
        sort -rn | head -3
}
check "handle_error never sees EAGAIN, EINTR, a lost connection or accept" mapped
# The shim's shortages (EMFILE, ENFILE, ENOBUFS, ENOMEM) pause the listener.
paused() {
    n=$(grep -c 'cannot accept (errno' "$tmp/err")
    echo "$n bursts of accept() shortages paused the listener"
    [ "$n" -ge 1 ]
}
check "accept() faults were injected and the listener paused, not closed" paused

kill -TERM "$pid"
timeout $T sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done"
wait "$pid"
status=$?
pid=
check "server exits 0 on SIGTERM" test $status -eq 0
clean() { ! grep -E 'Sanitizer|runtime error|^==[0-9]+== ' "$tmp/err"; }
check "no sanitizer report from the server" clean

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
