#!/bin/sh
# soak.sh -- thousands of echo connections for a fixed time: byte-verified
# traffic, connection churn, then close_all; nothing lost, memory flat,
# every descriptor given back.
#
#   soak.sh [--conns N] [--seconds S] [--churn C]
#
# The echo server (demo/asyncore-echo-server) is driven by bench/loadgen, which
# checks every echoed byte against what it sent: N connections (default
# 15000) do ping-pong round trips for S seconds (default 120), while a
# second loadgen opens, uses and closes C connections (default 200) every
# second or so (the churn).  The soft descriptor limit is raised to the
# hard one for both.  Then:
#   - no loadgen run reported an error, a mismatch (a wrong, lost or
#     invented byte), an unserved or a stalled connection;
#   - the server's resident memory, sampled every second, stays flat after
#     the warm-up: the last third of the samples is at most
#     max(5 %, 4 MiB) above the first third (a leak per connection or per
#     round trip would climb steadily);
#   - once the clients are gone the server holds exactly the descriptors it
#     held before the first connect;
#   - with 1000 idle connections open, SIGTERM makes the server close them
#     all (asyncore_close_all) -- each client sees EOF -- and exit 0, with
#     no sanitizer report (a sanitizer build also checks for leaks then).
#
# Run by "make soak" / "make soak-ci" from the build directory ($ECHO_SERVER
# and $LOADGEN override the programs).  Exit 77 (skip) when the hard
# descriptor limit is too low for N connections, or python3 is missing.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
ECHO_SERVER=${ECHO_SERVER:-$top_builddir/demo/asyncore-echo-server}
LOADGEN=${LOADGEN:-$top_builddir/bench/loadgen}
CONNS=15000 SECONDS_=120 CHURN=200
while [ $# -gt 0 ]; do
    case $1 in
    --conns) CONNS=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    *) echo "usage: soak.sh [--conns N] [--seconds S] [--churn C]" >&2; exit 2 ;;
    esac
done

skip() { echo "SKIP: $*"; exit 77; }
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
for prog in "$ECHO_SERVER" "$LOADGEN"; do
    [ -x "$prog" ] || { echo "FAIL: $prog not built (make demo/asyncore-echo-server bench/loadgen)"; exit 1; }
done
hard=$(ulimit -H -n)
if [ "$hard" != unlimited ]; then
    [ "$hard" -ge $((CONNS + CHURN + 1100)) ] ||
        skip "hard descriptor limit $hard is too low for $CONNS connections"
    ulimit -S -n "$hard"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX") || exit 1
pid= churner= sampler=
cleanup() {
    for p in $pid $churner $sampler; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# The program itself, not libtool's wrapper: /proc/PID is then the server.
real=$(dirname "$ECHO_SERVER")/.libs/$(basename "$ECHO_SERVER")
if [ -x "$real" ]; then
    LD_LIBRARY_PATH="$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
else
    real=$ECHO_SERVER
fi
# A sanitizer build keeps freed memory in quarantine (up to 256 MiB), which
# would look like growth: keep it small, so RSS shows the program's use.
ASAN_OPTIONS="quarantine_size_mb=8:${ASAN_OPTIONS:-}" \
    "$real" -p 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
if ! timeout 30 sh -c "until grep -qs '^listening on ' '$tmp/out'; do
                         kill -0 $pid 2>/dev/null || exit 1; sleep 0.05; done"; then
    cat "$tmp/err"; echo "FAIL: the server did not start"; exit 1
fi
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
fds() { ls "/proc/$pid/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null; }
base_fds=$(fds)

# One sample a second: time, RSS in KiB, descriptors.
(
    t=0
    while kill -0 "$pid" 2>/dev/null; do
        echo "$t $(rss) $(fds)"
        sleep 1
        t=$((t + 1))
    done
) >"$tmp/samples" &
sampler=$!

# The churn: short runs of C connections until told to stop.
(
    runs=0 bad=0
    while [ ! -e "$tmp/stop" ]; do
        "$LOADGEN" -p "$port" -c "$CHURN" -s 1024 -d 0.5 -W 0 -T 60 \
            >>"$tmp/churn.out" 2>>"$tmp/churn.err" || bad=$((bad + 1))
        runs=$((runs + 1))
    done
    echo "$runs $bad" >"$tmp/churn.sum"
) &
churner=$!

echo "soak: $CONNS connections for $SECONDS_ s, churn of $CHURN, server pid $pid"
"$LOADGEN" -p "$port" -c "$CONNS" -s 256 -d "$SECONDS_" -W 2 -T 120 -b 512 \
    -P "$pid" >"$tmp/main.out" 2>"$tmp/main.err"
main_status=$?
touch "$tmp/stop"
wait "$churner"
churner=
cat "$tmp/main.out"
head -5 "$tmp/main.err"
check "$CONNS connections: no error, mismatch, unserved or stalled connection" \
    test $main_status -eq 0
read -r runs bad <"$tmp/churn.sum"
echo "churn: $runs runs of $CHURN connections, $bad failed"
grep -h 'mismatch' "$tmp/churn.err" | head -3
check "churn: every short run clean" test "$runs" -gt 0 -a "$bad" -eq 0

# Back to the descriptors of before, once the server saw every close.
timeout 60 sh -c "while [ \$(ls /proc/$pid/fd | wc -l) -ne $base_fds ]; do sleep 0.2; done"
check "server back to its $base_fds descriptors (now $(fds))" test "$(fds)" -eq "$base_fds"

kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sampler=
# RSS after warm-up: from the first sample with every connection open.
flat() {
    awk -v conns="$CONNS" -v base="$base_fds" '
        $3 >= base + conns && !start { start = NR + 2 }
        start && NR >= start { r[++n] = $2 }
        END {
            if (n < 3) { print "too few samples after warm-up: " n; exit 1 }
            k = int(n / 3); if (k < 1) k = 1
            for (i = 1; i <= k; i++) a += r[i]
            for (i = n - k + 1; i <= n; i++) b += r[i]
            a /= k; b /= k
            lim = a * 0.05; if (lim < 4096) lim = 4096
            printf "RSS after warm-up: first third %.0f KiB, last third %.0f KiB (%d samples, limit +%.0f KiB)\n", a, b, n, lim
            exit (b - a > lim)
        }' "$tmp/samples"
}
check "server RSS flat after warm-up" flat

# close_all at the end: SIGTERM with idle connections open.
python3 "$here/fault_peer.py" hold "127.0.0.1:$port" --conns 1000 >"$tmp/hold.out" 2>&1 &
holder=$!
timeout 120 sh -c "until grep -qs ready '$tmp/hold.out'; do kill -0 $holder 2>/dev/null || exit 1; sleep 0.1; done"
kill -TERM "$pid"
timeout 60 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done"
wait "$pid"
status=$?
pid=
wait "$holder"
hold_status=$?
cat "$tmp/hold.out"
check "SIGTERM with 1000 connections open: each one closed (EOF)" test $hold_status -eq 0
check "server exits 0 after closing everything" test $status -eq 0
clean() { ! grep -E 'Sanitizer|runtime error|^==[0-9]+== ' "$tmp/err"; }
check "no sanitizer report from the server" clean

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
