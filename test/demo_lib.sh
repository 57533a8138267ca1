# demo_lib.sh -- what the demo test scripts share (demo_echo.sh,
# demo_http.sh, hostile_http.sh): sourced, never run on its own.
#
# Before sourcing, a script sets $T, the seconds any one wait may take (long
# enough for valgrind, short enough to end a hung test), and may set
# $ready, the pattern (grep -E) of the line that says a server is up.
#
#   require TOOL...        exit 77 (skip) unless every TOOL is installed
#   built PROG...          exit 1 unless every PROG is an executable
#   scratch NAME           make $tmp; it and every process started in the
#                          background ($pids) go when the script exits
#   pass/fail/skip NAME    one verdict; check NAME CMD...: CMD's status
#   start NAME CMD...      a server in the background, waited for
#   finish PID, stop PID   wait for (or SIGTERM, then wait for) a process
#   forget PID             a process the script waited for itself
#   summary                no demo printed a sanitizer or valgrind report,
#                          then the tally; its status is the script's

WRAP=${DEMO_WRAPPER:-}
ready=${ready:-^listening on }

require() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "SKIP: $tool is not installed"
            exit 77
        fi
    done
}

built() {
    for prog in "$@"; do
        [ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
    done
}

pids=
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}

scratch() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    trap cleanup EXIT
    trap 'exit 1' INT TERM HUP PIPE
}

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
skip() { echo "SKIP: $1"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# start NAME CMD...: run a server in the background and wait for its ready
# line.  Sets $pid, $out (its output files without .out/.err), $addr
# (HOST:PORT or PATH, from "listening on ADDR", or python http.server's
# "Serving HTTP on ... port N") and $port.
n=0
start() {
    n=$((n + 1))
    out=$tmp/$1.$n
    shift
    "$@" >"$out.out" 2>"$out.err" &
    pid=$!
    pids="$pids $pid"
    if ! timeout $T sh -c "until grep -qsE '$ready' '$out.out'; do
                             kill -0 $pid 2>/dev/null || exit 1; sleep 0.05; done"; then
        echo "server did not start: $*"; cat "$out.err"
        return 1
    fi
    addr=$(sed -n 's/^listening on //p' "$out.out")
    if [ -z "$addr" ]; then
        port=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$out.out")
        addr=127.0.0.1:$port
    fi
    port=${addr##*:}
}

# finish PID: wait at most $T seconds for it to exit; its status in $status.
# It then leaves $pids: by the time the cleanup runs, its number may be
# another process's.
finish() {
    if ! timeout $T sh -c "while kill -0 $1 2>/dev/null; do sleep 0.05; done"; then
        echo "process $1 did not exit"
        kill -9 "$1" 2>/dev/null
    fi
    wait "$1"
    status=$?
    forget "$1"
}

# forget PID: a process waited for leaves $pids.
forget() { pids=$(echo " $pids " | sed "s/ $1 / /"); }

stop() { kill -TERM "$1" 2>/dev/null; finish "$1"; }

clean_stderr() {
    ! grep -l -E 'Sanitizer|runtime error|^==[0-9]+== ' "$tmp"/*.err "$tmp"/*.log 2>/dev/null
}

summary() {
    check "no sanitizer or valgrind report from any demo" clean_stderr
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
}
