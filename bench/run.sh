#!/usr/bin/env bash
# bench/run.sh -- runs the echo benchmark: our echo server against the
# reference servers, interleaved in one run, and reports medians and ratios.
#
# It builds nothing: run `make bench` (which calls this script), or build
# with `make bench BENCH_ARGS=--help` first and call it directly with
# --builddir.  Every measurement starts a fresh server, drives it with
# bench/loadgen, reads the server's CPU from /proc and stops it with
# SIGTERM.  The order is round by round, scenario by scenario, every server
# in turn (A B C D, A B C D, ...), so that a change in the machine's load
# hits all servers alike; ratios against raw libevent are taken within a
# round, then the median over the rounds is reported.
#
# Output: a Markdown report on stdout; the raw loadgen lines and the report
# in bench/results/ (or --results DIR).
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=
results=
duration=10
rounds=3
setup_timeout=20
warmup=1
batch=256
pin=yes
servers="ours raw bev asyncore"
scenarios="c1 c100 c1000 c10_16k stream"
python=/usr/bin/python3

usage() {
    cat <<EOF
usage: bench/run.sh [options]
Echo benchmark: our demo/echo_server against raw libevent, bufferevents and
CPython's asyncore, interleaved, with medians over rounds.

  --duration SECS       measurement window of each run (default $duration)
  --rounds N            rounds of the whole matrix (default $rounds)
  --setup-timeout SECS  connections not served by then count as unserved
                        (default $setup_timeout)
  --warmup SECS         traffic before each window (default $warmup)
  --batch N             connections set up at once by loadgen (default $batch)
  --quick               smoke run: --duration 1 --rounds 1 --warmup 0.2
                        --setup-timeout 3
  --servers LIST        among: ours raw bev asyncore (default: all found)
  --scenarios LIST      among: c1 c100 c1000 c10_16k stream (default: all)
  --builddir DIR        where bench/loadgen, bench/*_echo and demo/echo_server
                        were built (default: the current directory if it
                        holds bench/loadgen, else the source tree)
  --results DIR         where raw results go (default bench/results)
  --no-pin              do not pin the server to CPU 0 and loadgen to CPU 1
  -h, --help            this text

Scenarios (64 B ping-pong unless said otherwise):
  c1, c100, c1000   1, 100 and 1000 connections
  c10_16k           10 connections, 16 KiB messages
  stream            10 connections streaming 16 KiB writes, 256 KiB in flight
Exit status: 0, or 1 if a server other than asyncore had errors or unserved
connections, or 2 if any echoed byte was wrong.
EOF
}

die() { echo "bench/run.sh: $*" >&2; exit 1; }

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --duration) duration=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --setup-timeout) setup_timeout=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --batch) batch=$2; shift ;;
        --quick) duration=1; rounds=1; warmup=0.2; setup_timeout=3 ;;
        --servers) servers=$2; shift ;;
        --scenarios) scenarios=$2; shift ;;
        --builddir) builddir=$2; shift ;;
        --results) results=$2; shift ;;
        --no-pin) pin=no ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 1 ;;
        esac
        shift
    done
    if [ -z "$builddir" ]; then
        if [ -x bench/loadgen ]; then builddir=$PWD; else builddir=$srcdir; fi
    fi
    builddir=$(cd "$builddir" && pwd)
    results=${results:-$srcdir/bench/results}
    [ -x "$builddir/bench/loadgen" ] ||
        die "no $builddir/bench/loadgen: run 'make bench' (or pass --builddir)"
}

# ---- servers ----------------------------------------------------------------

# server_cmd NAME: prints the command that starts server NAME, one word a line.
server_cmd() {
    case $1 in
    ours) printf '%s\n' "$builddir/demo/echo_server" ;;
    raw) printf '%s\n' "$builddir/bench/raw_echo" ;;
    bev) printf '%s\n' "$builddir/bench/bev_echo" ;;
    asyncore) printf '%s\n' "$python" -W ignore "$srcdir/bench/asyncore_echo.py" ;;
    *) die "unknown server $1" ;;
    esac
    printf '%s\n' -b 127.0.0.1 -p 0
}

server_available() {
    case $1 in
    ours) [ -x "$builddir/demo/echo_server" ] ;;
    raw|bev) [ -x "$builddir/bench/$1_echo" ] ;;
    asyncore) "$python" -W ignore -c 'import asyncore' 2>/dev/null ;;
    *) return 1 ;;
    esac
}

select_servers() {
    local s chosen=
    for s in $servers; do
        if server_available "$s"; then
            chosen="$chosen $s"
        else
            echo "bench/run.sh: skipping server '$s' (not built or not available)" >&2
        fi
    done
    servers=${chosen# }
    [ -n "$servers" ] || die "no server to measure"
    case " $servers " in *" raw "*) ;; *) echo "bench/run.sh: no raw server: no ratios" >&2 ;; esac
}

on_cpu() {   # on_cpu N CMD...: pinned to CPU N when pinning is on
    local cpu=$1; shift
    if [ "$pin" = yes ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

# start_server NAME LOG: sets server_pid and server_port.
start_server() {
    local name=$1 log=$2 i cmd=()
    mapfile -t cmd < <(server_cmd "$name")
    : >"$log"   # exists before the server (started in background) opens it
    (on_cpu 0 "${cmd[@]}") >"$log" 2>&1 &
    server_pid=$!
    server_port=
    for ((i = 0; i < 200; i++)); do
        server_port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
        [ -n "$server_port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    cat "$log" >&2
    die "server '$name' did not print 'listening on HOST:PORT'"
}

# stop_server: SIGTERM, then the exit status must be 0 (clean shutdown).
stop_server() {
    local rc=0
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" || rc=$?
    server_rc=$rc
}

# ---- the echo matrix --------------------------------------------------------

scenario_args() {
    case $1 in
    c1) echo "-c 1 -s 64" ;;
    c100) echo "-c 100 -s 64" ;;
    c1000) echo "-c 1000 -s 64" ;;
    c10_16k) echo "-c 10 -s 16384" ;;
    stream) echo "-c 10 -s 16384 -m stream -w 262144" ;;
    *) die "unknown scenario $1" ;;
    esac
}

# measure_echo SERVER SCENARIO ROUND: one run, one line appended to $raw.
measure_echo() {
    local server=$1 scen=$2 round=$3 log line rc=0
    log=$results/$stamp-$server-$scen-$round.log
    start_server "$server" "$log"
    # shellcheck disable=SC2046
    line=$( (on_cpu 1 "$builddir/bench/loadgen" -H 127.0.0.1 -p "$server_port" \
                $(scenario_args "$scen") -d "$duration" -W "$warmup" \
                -T "$setup_timeout" -b "$batch" -P "$server_pid") 2>>"$log") || rc=$?
    stop_server
    [ -n "$line" ] || line="errors=1 mismatches=0"
    echo "server=$server scenario=$scen round=$round rc=$rc server_rc=$server_rc $line" >>"$raw"
    printf '  round %s %-8s %-9s rc=%s %s\n' "$round" "$scen" "$server" "$rc" \
        "$(echo "$line" | grep -o 'rtt_per_s=[^ ]*\|cpu_us_per_rtt=[^ ]*' | tr '\n' ' ')" >&2
    # Keep the server's log only when something went wrong.
    if [ "$rc" -eq 0 ] && [ "$server_rc" -eq 0 ]; then rm -f "$log"; fi
}

run_echo() {
    local round scen server
    echo "echo matrix: servers [$servers], scenarios [$scenarios]," \
         "$rounds round(s) of ${duration}s runs" >&2
    for ((round = 1; round <= rounds; round++)); do
        for scen in $scenarios; do
            for server in $servers; do
                measure_echo "$server" "$scen" "$round"
            done
        done
    done
}

# report_echo: the Markdown table from $raw (medians, in-round ratios).
report_echo() {
    awk -v servers="$servers" -v scenarios="$scenarios" '
    function val(k,   i, kv) {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] }
        return ""
    }
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        if (n == 0) return ""
        for (i = 2; i <= n; i++) {
            t = a[i] + 0
            for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(k, v) { if (v != "") vals[k] = vals[k] " " v }
    function fmt(v, f) { return v == "" ? "-" : sprintf(f, v) }
    {
        s = val("server"); c = val("scenario"); r = val("round"); k = c SUBSEP s
        n = split("rtt_per_s mb_per_s p50_us p99_us p999_us cpu_us_per_rtt user_us_per_rtt run_us_per_rtt connect_max_s", F, " ")
        for (i = 1; i <= n; i++) add(k SUBSEP F[i], val(F[i]))
        errs[k] += val("errors"); mism[k] += val("mismatches"); unsv[k] += val("unserved")
        if (val("server_rc") + 0 != 0) unclean[k]++
        v = val("rtt_per_s"); if (v != "") rt[c, s, r] = v + 0
        v = val("cpu_us_per_rtt"); if (v != "") cpu[c, s, r] = v + 0
        rounds[c, r] = 1
    }
    END {
        print "| scenario | server | round trips/s | MB/s | p50 µs | p99 µs | p99.9 µs | CPU µs/rt | user µs/rt | run µs/rt | CPU × raw | rt/s × raw | slowest connect s | errors | unserved | mismatches |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        ns = split(servers, S, " "); nc = split(scenarios, C, " ")
        for (ci = 1; ci <= nc; ci++) for (si = 1; si <= ns; si++) {
            c = C[ci]; s = S[si]; k = c SUBSEP s
            if (!(k SUBSEP "rtt_per_s" in vals) && !(k in errs)) continue
            rr = ""; cr = ""
            for (key in rounds) {
                split(key, p, SUBSEP); if (p[1] != c) continue
                if (((c, "raw", p[2]) in rt) && ((c, s, p[2]) in rt) && rt[c, "raw", p[2]] > 0)
                    rr = rr " " rt[c, s, p[2]] / rt[c, "raw", p[2]]
                if (((c, "raw", p[2]) in cpu) && ((c, s, p[2]) in cpu) && cpu[c, "raw", p[2]] > 0)
                    cr = cr " " cpu[c, s, p[2]] / cpu[c, "raw", p[2]]
            }
            printf "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d |\n", c, s,
                unclean[k] ? " (unclean exit)" : "",
                fmt(median(vals[k SUBSEP "rtt_per_s"]), "%.0f"), fmt(median(vals[k SUBSEP "mb_per_s"]), "%.2f"),
                fmt(median(vals[k SUBSEP "p50_us"]), "%.1f"), fmt(median(vals[k SUBSEP "p99_us"]), "%.1f"),
                fmt(median(vals[k SUBSEP "p999_us"]), "%.1f"), fmt(median(vals[k SUBSEP "cpu_us_per_rtt"]), "%.2f"),
                fmt(median(vals[k SUBSEP "user_us_per_rtt"]), "%.2f"), fmt(median(vals[k SUBSEP "run_us_per_rtt"]), "%.2f"),
                fmt(median(cr), "%.2f"), fmt(median(rr), "%.2f"),
                fmt(median(vals[k SUBSEP "connect_max_s"]), "%.3f"), errs[k], unsv[k], mism[k]
        }
    }' "$raw"
    cat <<'EOF'

Medians over the rounds.  "× raw" columns: the ratio to raw libevent within
each round, median over the rounds.  CPU µs/rt: the server's user + system
time per round trip from /proc/PID/stat (tick-sampled split); run µs/rt: the
same from /proc/PID/schedstat (precise).  Streaming rows count a round trip
per 16 KiB echoed.  Slowest connect: from connect() to the first echo.
EOF
}

# echo_status: the script's exit status from $raw.
echo_status() {
    awk '{
        split("", f)
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        # loadgen exits 2 on mismatches, 1 on errors, unserved connections
        # or no traffic at all.
        if (f["rc"] + 0 == 2 || f["mismatches"] + 0 > 0) bad = 2
        else if (f["server"] != "asyncore" && bad < 2 &&
                 (f["rc"] + 0 != 0 || f["server_rc"] + 0 != 0)) bad = 1
    } END { exit bad + 0 }' "$raw"
}

# ---- the run ----------------------------------------------------------------

machine() {
    echo "## Echo benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
         "Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- libevent $(pkg-config --modversion libevent_core 2>/dev/null || echo '?')," \
         "$("$python" --version 2>&1)"
    echo "- command: bench/run.sh $*"
    echo "- $rounds round(s), ${duration} s windows after ${warmup} s of warm-up," \
         "connections set up $batch at a time, setup timeout ${setup_timeout} s," \
         "pinning: $pin"
    echo
}

main() {
    parse_args "$@"
    select_servers
    mkdir -p "$results"
    stamp=$(date '+%Y%m%d-%H%M%S')
    raw=$results/echo-$stamp.txt
    : >"$raw"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    run_echo
    local status=0
    { machine "$@"; report_echo; } | tee "$results/echo-$stamp.md"
    echo_status || status=$?
    echo "raw results: $raw" >&2
    exit "$status"
}

main "$@"
