#!/usr/bin/env bash
# bench/run.sh -- the benchmarks: our library against raw libevent, libevent's
# bufferevents and evhttp, nginx, curl and CPython's asyncore/asynchat, run
# in one go, reported as Markdown with medians, ratios and the issue's
# targets, and plotted with gnuplot.
#
# It builds nothing: run `make bench` (which builds everything and calls
# this script), or build with `make bench BENCH_ARGS=--help` first and call
# it directly with --builddir.  Every measurement starts a fresh server,
# drives it with bench/loadgen (or wrk, or a client), reads what it needs
# from /proc and stops the server with SIGTERM.  Wherever time is measured
# the order is round by round, scenario by scenario, every server in turn
# (A B C D, A B C D, ...), so that a change in the machine's load hits all
# servers alike; ratios are taken within a round, then the median over the
# rounds is reported.  Instruction and system-call counts are
# deterministic: each is the difference of two runs that differ only in
# the number of round trips.
#
# Parts (--parts): echo, memory, scaling, threads, callgrind, strace,
# framing, http.
# A part whose tool is missing is skipped with a message naming the Debian
# package that provides it; --install installs it with apt-get (as root).
# The packages: valgrind (callgrind), strace, wrk and nginx-light (http),
# gnuplot-nox (the plot), curl (http).  CI does not run benchmarks, so they
# are not among scripts/dev's packages.
#
# Output: a Markdown report on stdout (and in --report FILE); the raw lines
# of every measurement, the report and the plot in bench/results/ (or
# --results DIR).
#
# Pinning: servers run on CPU 0 and load generators and clients on CPU 1,
# except in the threads part, where the servers may use every CPU (that is
# what asyncore-echo-server -t 2 is for) and loadgen stays on CPU 1.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=
results=
report_file=
duration=10
rounds=3
setup_timeout=20
warmup=1
batch=256
pin=yes
install=no
servers="ours raw bev asyncore"
scenarios="c1 c100 c1000 c10_16k stream c15000"
parts="echo memory scaling threads callgrind strace framing http"
threads_servers="ours-t1 ours-t2 raw"
threads_scenarios="c100 c1000 stream"
mem_conns="1000 10000"
mem_hold=2
idle_levels="0 1000 10000"
asyncore_idle_levels="0 1000 5000"
active=16
long_setup_timeout=180
callgrind_counts="2000 12000"
strace_counts="5000 25000"
count_conns="1 100"
framing_total=64M
py_framing_total=8M
http_duration=5
http_files=200
python=/usr/bin/python3

usage() {
    cat <<USAGE
usage: bench/run.sh [options]
The benchmarks: our demo/asyncore-echo-server, async_chat and demo/http_* against
raw libevent, bufferevents, evhttp, nginx, curl and CPython's asyncore, with
medians over interleaved rounds and the issue's targets.

  --parts LIST          among: echo memory scaling threads callgrind strace
                        framing http (default: all)
  --duration SECS       measurement window of each timed run (default $duration)
  --rounds N            rounds of each timed matrix (default $rounds)
  --setup-timeout SECS  connections not served by then count as unserved
                        (default $setup_timeout; the memory and scaling parts
                        allow $long_setup_timeout: asyncore accepts thousands slowly)
  --warmup SECS         traffic before each window (default $warmup)
  --batch N             connections set up at once by loadgen (default $batch)
  --quick               smoke run: --duration 1 --rounds 1 --warmup 0.2
                        --setup-timeout 10, small counts and sizes
  --servers LIST        echo servers among: ours raw bev asyncore (default:
                        all found)
  --scenarios LIST      echo scenarios among: c1 c100 c1000 c10_16k stream
                        c15000 (default: all)
  --builddir DIR        where bench/* and demo/* were built (default: the
                        current directory if it holds bench/loadgen, else the
                        source tree)
  --results DIR         where raw results go (default bench/results)
  --report FILE         also write the Markdown report to FILE and the plot
                        beside it (FILE with .svg for .md)
  --install             install missing tools with apt-get (needs root)
  --no-pin              do not pin servers to CPU 0 and clients to CPU 1
                        (nor loadgen to CPU 1 in the threads part)
  -h, --help            this text

Echo scenarios (64 B ping-pong unless said otherwise):
  c1, c100, c1000, c15000   1, 100, 1000 and 15,000 connections
  c10_16k               10 connections, 16 KiB messages
  stream                10 connections streaming 16 KiB writes, 256 KiB in flight
Other parts:
  memory     the server's VmRSS growth per idle connection ($mem_conns)
  scaling    round trips/s of $active active connections beside $idle_levels
             idle ones (asyncore: $asyncore_idle_levels); ours also with -R
  threads    ours with -t 1 and -t 2 (one map per thread, SO_REUSEPORT)
             against raw libevent, scenarios $threads_scenarios; the servers
             may use every CPU here, loadgen stays on CPU 1
  callgrind  user-space instructions per round trip (valgrind), c = $count_conns,
             asyncore's too (CPython's interpreter included)
  strace     system calls per round trip (strace -c -f), c = $count_conns
  framing    async_chat against asynchat: input framing in-process
  http       asyncore-http-server against evhttp and nginx under wrk; asyncore-http-client
             against curl and an asyncore client, $http_files files of 1 MiB
Exit status: 0, or 1 if a server other than asyncore had errors or unserved
connections or a check failed, or 2 if any echoed byte was wrong.
USAGE
}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
note() { echo "bench/run.sh: $*" >&2; }

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --parts) parts=$2; shift ;;
        --duration) duration=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --setup-timeout) setup_timeout=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --batch) batch=$2; shift ;;
        --quick)
            duration=1; rounds=1; warmup=0.2; setup_timeout=10; mem_hold=0.5
            callgrind_counts="200 1200"; strace_counts="500 2500"
            framing_total=8M; py_framing_total=1M; http_duration=1; http_files=20 ;;
        --servers) servers=$2; shift ;;
        --scenarios) scenarios=$2; shift ;;
        --builddir) builddir=$2; shift ;;
        --results) results=$2; shift ;;
        --report) report_file=$2; shift ;;
        --install) install=yes ;;
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

# have_tool TOOL PACKAGE PART: true if TOOL is there (installing PACKAGE
# first with --install); otherwise says how to get it.
have_tool() {
    local tool=$1 pkg=$2 part=$3
    command -v "$tool" >/dev/null 2>&1 && return 0
    if [ "$install" = yes ] && [ "$(id -u)" = 0 ]; then
        note "installing $pkg for $tool"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >&2 || true
        command -v "$tool" >/dev/null 2>&1 && return 0
    fi
    note "part '$part' skipped: no $tool (apt-get install $pkg, or run with --install as root)"
    return 1
}

# ---- servers ----------------------------------------------------------------

# Variants beside the four echo servers: ours-R is demo/asyncore-echo-server -R (the
# "re-evaluate every dispatcher" compatibility mode), asyncore-poll the
# asyncore server on asyncore's poll() loop (select() cannot watch
# descriptors of 1024 and up).

# server_cmd NAME: prints the command that starts server NAME, one word a line.
server_cmd() {
    case $1 in
    ours) printf '%s\n' "$builddir/demo/asyncore-echo-server" ;;
    ours-R) printf '%s\n' "$builddir/demo/asyncore-echo-server" -R ;;
    ours-t1) printf '%s\n' "$builddir/demo/asyncore-echo-server" -t 1 ;;
    ours-t2) printf '%s\n' "$builddir/demo/asyncore-echo-server" -t 2 ;;
    raw) printf '%s\n' "$builddir/bench/raw_echo" ;;
    bev) printf '%s\n' "$builddir/bench/bev_echo" ;;
    asyncore) printf '%s\n' "$python" -W ignore "$srcdir/bench/asyncore_echo.py" ;;
    asyncore-poll) printf '%s\n' "$python" -W ignore "$srcdir/bench/asyncore_echo.py" --poll ;;
    *) die "unknown server $1" ;;
    esac
    printf '%s\n' -b 127.0.0.1 -p 0
}

server_available() {
    case $1 in
    ours|ours-R|ours-t1|ours-t2) [ -x "$builddir/demo/asyncore-echo-server" ] ;;
    raw|bev) [ -x "$builddir/bench/$1_echo" ] ;;
    asyncore|asyncore-poll) "$python" -W ignore -c 'import asyncore' 2>/dev/null ;;
    *) return 1 ;;
    esac
}

# only_available LIST: the servers of LIST that can run, one line.
only_available() {
    local s chosen=
    for s in $1; do
        if server_available "$s"; then
            chosen="$chosen $s"
        else
            note "skipping server '$s' (not built or not available)"
        fi
    done
    echo "${chosen# }"
}

select_servers() {
    servers=$(only_available "$servers")
    [ -n "$servers" ] || die "no server to measure"
    case " $servers " in *" raw "*) ;; *) note "no raw server: no ratios" ;; esac
}

on_cpu() {   # on_cpu N CMD...: pinned to CPU N when pinning is on
    local cpu=$1; shift
    if [ "$pin" = yes ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

# A command put before the server's (valgrind), how long to wait for its
# "listening on" line, and the CPUs it may run on.
server_prefix=()
start_wait=10
server_cpus=0

# start_server NAME LOG: sets server_pid and server_port.
start_server() {
    local name=$1 log=$2 i cmd=()
    mapfile -t cmd < <(server_cmd "$name")
    launch_server "$log" "${server_prefix[@]}" "${cmd[@]}"
}

# launch_server LOG CMD...: starts CMD pinned to $server_cpus, waits for its
# "listening on HOST:PORT" line; sets server_pid and server_port.
launch_server() {
    local log=$1 i; shift
    : >"$log"   # exists before the server (started in background) opens it
    (on_cpu "$server_cpus" "$@") >"$log" 2>&1 &
    server_pid=$!
    server_port=
    for ((i = 0; i < start_wait * 20; i++)); do
        server_port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
        [ -n "$server_port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    cat "$log" >&2
    die "server '$*' did not print 'listening on HOST:PORT'"
}

# stop_server: SIGTERM, then the exit status must be 0 (clean shutdown).
stop_server() {
    local rc=0
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" || rc=$?
    server_rc=$rc
}

# loadgen ARGS...: bench/loadgen pinned to CPU 1 against the server; sets
# line (its result line, or an error line if it printed none) and
# loadgen_rc.  Its messages go to the server's $log.
loadgen() {
    local rc=0
    line=$( (on_cpu 1 "$builddir/bench/loadgen" -H 127.0.0.1 -p "$server_port" \
                -b "$batch" "$@") 2>>"$log") || rc=$?
    loadgen_rc=$rc
    [ -n "$line" ] || line="errors=1 mismatches=0"
}

# slow_accept SERVER: loadgen options for the asyncore servers in the
# memory and scaling parts.  The documentation's server listens with a
# backlog of 5: with more connects in flight the kernel drops SYNs and the
# connection waits for a retransmission (1 s, 3 s, 7 s, ...).  Setting up
# 4 at a time lets it accept everything; this only measures it kindly.
slow_accept() {
    case $1 in asyncore*) echo "-b 4" ;; esac
}

# keep_log: the server's log stays only when something went wrong.
keep_log() {
    if [ "$loadgen_rc" -eq 0 ] && [ "$server_rc" -eq 0 ]; then rm -f "$log"; fi
}

# ---- the echo matrix --------------------------------------------------------

scenario_args() {
    case $1 in
    c1) echo "-c 1 -s 64" ;;
    c100) echo "-c 100 -s 64" ;;
    c1000) echo "-c 1000 -s 64" ;;
    c15000) echo "-c 15000 -s 64" ;;
    c10_16k) echo "-c 10 -s 16384" ;;
    stream) echo "-c 10 -s 16384 -m stream -w 262144" ;;
    *) die "unknown scenario $1" ;;
    esac
}

# measure_echo SERVER SCENARIO ROUND: one run, one line appended to $raw.
measure_echo() {
    local server=$1 scen=$2 round=$3 line
    log=$results/$stamp-$server-$scen-$round.log
    start_server "$server" "$log"
    # shellcheck disable=SC2046
    loadgen $(scenario_args "$scen") -d "$duration" -W "$warmup" \
                -T "$setup_timeout" -P "$server_pid"
    stop_server
    echo "server=$server scenario=$scen round=$round rc=$loadgen_rc server_rc=$server_rc $line" >>"$raw"
    printf '  round %s %-8s %-9s rc=%s %s\n' "$round" "$scen" "$server" "$loadgen_rc" \
        "$(echo "$line" | grep -o 'rtt_per_s=[^ ]*\|cpu_us_per_rtt=[^ ]*' | tr '\n' ' ')" >&2
    keep_log
}

run_echo() {
    local round scen server
    select_servers
    raw=$results/echo-$stamp.txt
    : >"$raw"
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

# echo_status FILE: the script's exit status from the echo or threads
# part's raw FILE.
echo_status() {
    awk '{
        split("", f)
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        # loadgen exits 2 on mismatches, 1 on errors, unserved connections
        # or no traffic at all.
        if (f["rc"] + 0 == 2 || f["mismatches"] + 0 > 0) bad = 2
        else if (f["server"] != "asyncore" && bad < 2 &&
                 (f["rc"] + 0 != 0 || f["server_rc"] + 0 != 0)) bad = 1
    } END { exit bad + 0 }' "$1"
}

# ---- memory: RSS growth per idle connection ----------------------------------

# The server's VmRSS (user-space resident memory; socket buffers are the
# kernel's) is read by loadgen before the first connect and again after N
# connections have each had one echo and been held idle for $mem_hold s.
run_memory() {
    local mem_servers n server round line
    mem_servers=$(only_available "ours raw bev asyncore-poll")
    raw_mem=$results/memory-$stamp.txt
    : >"$raw_mem"
    echo "memory: servers [$mem_servers], idle connections [$mem_conns]" >&2
    # Memory does not depend on the machine's load: one round.
    for n in $mem_conns; do
        for server in $mem_servers; do
            log=$results/$stamp-mem-$server-$n.log
            start_server "$server" "$log"
            # shellcheck disable=SC2046
            loadgen $(slow_accept "$server") -c 0 -i "$n" -d "$mem_hold" -W 0 \
                       -T "$long_setup_timeout" -P "$server_pid"
            stop_server
            echo "part=memory server=$server idle=$n rc=$loadgen_rc server_rc=$server_rc $line" >>"$raw_mem"
            printf '  %-14s %6s idle: %s\n' "$server" "$n" \
                "$(echo "$line" | grep -o 'rss_per_conn_b=[^ ]*\|setup_s=[^ ]*' | tr '\n' ' ')" >&2
            keep_log
        done
    done
}

# ---- scaling: active connections among idle ones -------------------------------

run_scaling() {
    local sc_servers round idle server line levels
    sc_servers=$(only_available "ours ours-R raw asyncore-poll")
    raw_sc=$results/scaling-$stamp.txt
    : >"$raw_sc"
    echo "scaling: servers [$sc_servers], $active active connections beside" \
         "[$idle_levels] idle (asyncore: [$asyncore_idle_levels]), $rounds round(s)" >&2
    for ((round = 1; round <= rounds; round++)); do
        for idle in $(echo "$idle_levels $asyncore_idle_levels" | tr ' ' '\n' | sort -nu); do
            for server in $sc_servers; do
                case $server in asyncore*) levels=$asyncore_idle_levels ;; *) levels=$idle_levels ;; esac
                case " $levels " in *" $idle "*) ;; *) continue ;; esac
                log=$results/$stamp-sc-$server-$idle-$round.log
                start_server "$server" "$log"
                if [ "$idle" -gt 0 ]; then
                    # shellcheck disable=SC2046
                    loadgen $(slow_accept "$server") -c "$active" -i "$idle" \
                               -d "$duration" -W "$warmup" \
                               -T "$long_setup_timeout" -P "$server_pid"
                else
                    # shellcheck disable=SC2046
                    loadgen $(slow_accept "$server") -c "$active" -d "$duration" -W "$warmup" \
                               -T "$setup_timeout" -P "$server_pid"
                fi
                stop_server
                echo "part=scaling server=$server idle=$idle round=$round rc=$loadgen_rc server_rc=$server_rc $line" >>"$raw_sc"
                printf '  round %s %-14s %6s idle: %s\n' "$round" "$server" "$idle" \
                    "$(echo "$line" | grep -o 'rtt_per_s=[^ ]*\|setup_s=[^ ]*' | tr '\n' ' ')" >&2
                keep_log
            done
        done
    done
}

# ---- threads: one map per thread ------------------------------------------------

# cpu_jiffies: "BUSY IDLE", the machine's CPU time so far (/proc/stat,
# every CPU; steal counts as busy: the CPU was not ours to use).
cpu_jiffies() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat
}

# idle_share "BUSY IDLE" "BUSY IDLE": "machine_idle=F", the idle fraction
# of the machine's CPU time between the two cpu_jiffies samples.
idle_share() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        t = y[1] - x[1] + y[2] - x[2]
        printf "machine_idle=%.3f\n", (t > 0 ? (y[2] - x[2]) / t : 0)
    }'
}

# asyncore-echo-server -t 1 and -t 2 and raw libevent (single-threaded), interleaved
# round by round like the echo matrix.  The servers may run on every CPU;
# loadgen stays pinned to CPU 1, so that the client is the same fixed cost
# for all and cannot be pushed around by the server's threads.  loadgen
# reports the server's run time summed over its threads, each thread's
# share, and the connections in each of its epoll instances (one per map).
run_threads() {
    local th_servers round scen server all_cpus j0 j1
    th_servers=$(only_available "$threads_servers")
    [ -n "$th_servers" ] || { note "part 'threads' skipped: no server"; return 0; }
    raw_th=$results/threads-$stamp.txt
    : >"$raw_th"
    all_cpus=0-$(($(nproc) - 1))
    echo "threads: servers [$th_servers] on CPUs $all_cpus, scenarios" \
         "[$threads_scenarios], $rounds round(s) of ${duration}s runs" >&2
    for ((round = 1; round <= rounds; round++)); do
        for scen in $threads_scenarios; do
            for server in $th_servers; do
                log=$results/$stamp-th-$server-$scen-$round.log
                server_cpus=$all_cpus
                start_server "$server" "$log"
                server_cpus=0
                # The machine's idle share while loadgen ran (its setup and
                # warm-up included): how much CPU others left unused.
                j0=$(cpu_jiffies)
                # shellcheck disable=SC2046
                loadgen $(scenario_args "$scen") -d "$duration" -W "$warmup" \
                            -T "$setup_timeout" -P "$server_pid"
                j1=$(cpu_jiffies)
                stop_server
                echo "part=threads server=$server scenario=$scen round=$round rc=$loadgen_rc server_rc=$server_rc pin=$pin load1=$(cut -d' ' -f1 /proc/loadavg) $(idle_share "$j0" "$j1") $line" >>"$raw_th"
                printf '  round %s %-7s %-8s rc=%s %s\n' "$round" "$scen" "$server" "$loadgen_rc" \
                    "$(echo "$line" | grep -o 'rtt_per_s=[^ ]*\|run_us_per_rtt=[^ ]*\|thread_run_s=[^ ]*\|epoll_watch_end=[^ ]*' | tr '\n' ' ')" >&2
                keep_log
            done
        done
    done
}

# ---- callgrind: instructions per round trip ------------------------------------

# fd_count PID: the descriptors the process has open.
fd_count() {
    local fds=(/proc/"$1"/fd/*)
    echo "${#fds[@]}"
}

# wait_closed PID N: waits (at most 30 s) until the process is back to N
# open descriptors, i.e. has seen and closed every connection loadgen
# closed, so that two counted runs also agree on their teardown.
wait_closed() {
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(fd_count "$1")" -le "$2" ] && return 0
        sleep 0.05
    done
    note "process $1 still has $(fd_count "$1") descriptors open (had $2)"
}

# callgrind_total FILE: the Ir total of a callgrind output file.
callgrind_total() {
    sed -n 's/^\(summary\|totals\): *\([0-9][0-9]*\).*/\2/p' "$1" | head -n 1
}

run_callgrind() {
    have_tool valgrind valgrind callgrind || return 0
    local cg_servers server c n out line ir nfd
    cg_servers=$(only_available "ours raw bev asyncore")
    raw_cg=$results/callgrind-$stamp.txt
    : >"$raw_cg"
    echo "callgrind: servers [$cg_servers], c = [$count_conns], round trips [$callgrind_counts]" >&2
    for c in $count_conns; do
        for n in $callgrind_counts; do
            for server in $cg_servers; do
                log=$results/$stamp-cg-$server-$c-$n.log
                out=$results/callgrind.out.$stamp-$server-c$c-n$n
                # libtool's wrapper script must not be what is measured.
                server_prefix=("$builddir/libtool" --mode=execute
                               valgrind --tool=callgrind -q "--callgrind-out-file=$out")
                start_wait=60
                start_server "$server" "$log"
                server_prefix=()
                start_wait=10
                nfd=$(fd_count "$server_pid")
                # shellcheck disable=SC2046
                loadgen $(slow_accept "$server") -c "$c" -n "$n" -d 600 -T 120
                wait_closed "$server_pid" "$nfd"
                stop_server
                ir=$(callgrind_total "$out" 2>/dev/null || true)
                echo "part=callgrind server=$server conns=$c count=$n ir=${ir:-0} rc=$loadgen_rc server_rc=$server_rc $line" >>"$raw_cg"
                printf '  %-6s c=%-4s n=%-6s Ir=%s\n' "$server" "$c" "$n" "${ir:-?}" >&2
                keep_log
            done
        done
    done
}

# ---- strace: system calls per round trip ------------------------------------------

# strace_counts_line FILE: "sys_NAME=CALLS ... sys_total=N" from strace -c.
strace_counts_line() {
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { printf "sys_%s=%s ", $NF, $4; t += $4 }
         END { printf "sys_total=%d\n", t }' "$1"
}

run_strace() {
    have_tool strace strace strace || return 0
    local st_servers server c n out spid i line counts nfd
    st_servers=$(only_available "ours raw bev")
    raw_st=$results/strace-$stamp.txt
    : >"$raw_st"
    echo "strace: servers [$st_servers], c = [$count_conns], round trips [$strace_counts]" >&2
    for c in $count_conns; do
        for n in $strace_counts; do
            for server in $st_servers; do
                log=$results/$stamp-st-$server-$c-$n.log
                out=$results/strace.$stamp-$server-c$c-n$n
                start_server "$server" "$log"
                strace -c -f -o "$out" -p "$server_pid" 2>>"$log" &
                spid=$!
                # Counting starts once the tracer is attached.
                for ((i = 0; i < 200; i++)); do
                    awk '/^TracerPid:/ { exit !($2 != 0) }' "/proc/$server_pid/status" && break
                    sleep 0.05
                done
                nfd=$(fd_count "$server_pid")
                loadgen -c "$c" -n "$n" -d 300 -T 60
                wait_closed "$server_pid" "$nfd"
                kill -INT "$spid" 2>/dev/null || true
                wait "$spid" 2>/dev/null || true
                stop_server
                counts=$(strace_counts_line "$out")
                echo "part=strace server=$server conns=$c count=$n rc=$loadgen_rc server_rc=$server_rc $counts $line" >>"$raw_st"
                printf '  %-6s c=%-4s n=%-6s %s\n' "$server" "$c" "$n" \
                    "$(echo "$counts" | grep -o 'sys_total=[^ ]*\|sys_epoll_ctl=[^ ]*' | tr '\n' ' ')" >&2
                keep_log
            done
        done
    done
}

# ---- framing: async_chat against asynchat ---------------------------------------

run_framing() {
    local round line
    raw_fr=$results/framing-$stamp.txt
    : >"$raw_fr"
    [ -x "$builddir/bench/chat_framing" ] || { note "part 'framing' skipped: no bench/chat_framing"; return 0; }
    echo "framing: ours and CPython's asynchat, $rounds round(s)" >&2
    for ((round = 1; round <= rounds; round++)); do
        (on_cpu 0 "$builddir/bench/chat_framing" --total "$framing_total") |
            sed "s/^/part=framing impl=ours round=$round /" >>"$raw_fr" ||
            echo "part=framing impl=ours round=$round error=failed" >>"$raw_fr"
        if server_available asyncore; then
            (on_cpu 0 "$python" -W ignore "$srcdir/bench/asynchat_framing.py" \
                 --total "$py_framing_total") |
                sed "s/^/part=framing impl=cpython round=$round /" >>"$raw_fr" ||
                echo "part=framing impl=cpython round=$round error=failed" >>"$raw_fr"
        fi
        grep "round=$round " "$raw_fr" |
            awk '{ printf " "; for (i = 1; i <= NF; i++)
                       if ($i ~ /^(impl|test|read|size|lines_per_s|mb_per_s)=/) printf " %s", $i
                   print "" }' >&2
    done
}

# ---- http: servers under wrk, clients against curl --------------------------------

# http_root DIR: the files served: hello.html (1 KiB, for wrk) and
# f000.bin ... (1 MiB each, for the clients).
http_root() {
    local dir=$1 i
    mkdir -p "$dir"
    chmod 755 "$dir"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$dir/hello.html"
    for ((i = 0; i < http_files; i++)); do
        head -c 1048576 /dev/urandom >"$dir/$(printf 'f%03d.bin' "$i")"
    done
    chmod 644 "$dir"/*
}

# free_port: a TCP port nobody listens on now (nginx needs one given).
free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_nginx ROOT TMPDIR LOG: one worker process, no access log, the
# package's usual settings (sendfile, tcp_nopush); sets server_pid/port.
start_nginx() {
    local root=$1 dir=$2 log=$3 port
    port=$(free_port)
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    types { text/html html; }
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        root $root;
    }
}
CONF
    # nginx prints nothing when ready: a wrapper prints the line the other
    # servers print, once a request succeeds.
    : >"$log"
    (on_cpu 0 nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf") >>"$log" 2>&1 &
    server_pid=$!
    server_port=$port
    local i
    for ((i = 0; i < 200; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$port/hello.html" && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$log" "$dir/error.log" >&2 || true
    die "nginx did not start"
}

# start_http NAME ROOT TMPDIR LOG
start_http() {
    case $1 in
    ours) launch_server "$4" "$builddir/demo/asyncore-http-server" -b 127.0.0.1 -p 0 -r "$2" ;;
    evhttp) launch_server "$4" "$builddir/bench/evhttp_server" -b 127.0.0.1 -p 0 -r "$2" ;;
    nginx) start_nginx "$2" "$3" "$4" ;;
    esac
}

# wrk_line OUTPUT: key=value pairs from wrk's report.
wrk_line() {
    awk '/^Requests\/sec:/ { printf "rps=%s ", $2 }
         /^ +Latency +[0-9]/ { printf "lat_avg=%s ", $2 }
         /requests in/ { printf "requests=%s ", $1 }
         /Non-2xx or 3xx/ { printf "non2xx=%s ", $NF }
         /Socket errors/ { gsub(",", ""); printf "sock_errors=%d ", $4 + $6 + $8 + $10 }
         /^ +99% / { printf "p99=%s ", $2 }' <<<"$1"
}

# time_cmd OUT CMD...: runs CMD on CPU 1, prints its wall time in seconds.
time_cmd() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    (on_cpu 1 "$@") >/dev/null 2>>"$log" || rc=$?
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN { printf "secs=%.3f cmd_rc=%d", b - a, rc }'
}

# check_fetched DIR ROOT: "ok=1" if DIR holds every f*.bin of ROOT, intact.
check_fetched() {
    local dir=$1 root=$2 f bad=0
    for f in "$root"/f*.bin; do
        cmp -s "$f" "$dir/$(basename "$f")" || bad=$((bad + 1))
    done
    echo "bad_files=$bad ok=$([ "$bad" -eq 0 ] && echo 1 || echo 0)"
}

run_http() {
    raw_http=$results/http-$stamp.txt
    : >"$raw_http"
    if [ ! -x "$builddir/demo/asyncore-http-server" ] || [ ! -x "$builddir/demo/asyncore-http-client" ]; then
        note "part 'http' skipped: demo/asyncore-http-server and demo/asyncore-http-client are not built"
        return 0
    fi
    have_tool wrk wrk http || return 0
    have_tool curl curl http || return 0
    local hsrv="ours evhttp" tmp round server out line urls=() client_server i cl res
    [ -x "$builddir/bench/evhttp_server" ] || hsrv="ours"
    if have_tool nginx nginx-light http; then hsrv="$hsrv nginx"; fi
    tmp=$(mktemp -d /tmp/bench-http.XXXXXX)
    chmod 755 "$tmp"
    http_root "$tmp/www"
    echo "http: servers [$hsrv] under wrk -t2 -c100 -d${http_duration}s;" \
         "clients ours, curl, asyncore fetching $http_files x 1 MiB; $rounds round(s)" >&2
    for ((round = 1; round <= rounds; round++)); do
        for server in $hsrv; do
            log=$results/$stamp-http-$server-$round.log
            start_http "$server" "$tmp/www" "$tmp/nginx" "$log"
            out=$(on_cpu 1 wrk -t2 -c100 "-d${http_duration}s" --latency \
                      "http://127.0.0.1:$server_port/hello.html" 2>>"$log") || true
            stop_server
            line=$(wrk_line "$out")
            echo "part=http kind=server server=$server round=$round server_rc=$server_rc $line" >>"$raw_http"
            printf '  round %s %-7s %s\n' "$round" "$server" "$line" >&2
            [ "$server_rc" -eq 0 ] && rm -f "$log"
        done
        # The clients fetch from nginx when there is one (the fastest
        # server, the same for all), else from ours.
        client_server=ours
        case " $hsrv " in *" nginx "*) client_server=nginx ;; esac
        log=$results/$stamp-http-clients-$round.log
        start_http "$client_server" "$tmp/www" "$tmp/nginx" "$log"
        urls=()
        for ((i = 0; i < http_files; i++)); do
            urls+=("http://127.0.0.1:$server_port/$(printf 'f%03d.bin' "$i")")
        done
        for cl in ours curl asyncore; do
            rm -rf "$tmp/out"
            mkdir -p "$tmp/out"
            case $cl in
            ours) res=$(time_cmd "$builddir/demo/asyncore-http-client" -q -O "$tmp/out" "${urls[@]}") ;;
            curl) res=$(time_cmd curl -s -S --fail --output-dir "$tmp/out" --remote-name-all "${urls[@]}") ;;
            asyncore)
                server_available asyncore || continue
                res=$(time_cmd "$python" -W ignore "$srcdir/bench/asyncore_http_client.py" \
                          -O "$tmp/out" "${urls[@]}") ;;
            esac
            line="$res $(check_fetched "$tmp/out" "$tmp/www")"
            echo "part=http kind=client client=$cl from=$client_server files=$http_files round=$round $line" >>"$raw_http"
            printf '  round %s client %-8s %s\n' "$round" "$cl" "$line" >&2
        done
        stop_server
        [ "$server_rc" -eq 0 ] && rm -f "$log"
    done
    rm -rf "$tmp"
}

# ---- the run ----------------------------------------------------------------

# cpu_accounting: how the kernel splits CPU time into user and system,
# which decides how far the utime columns can be trusted.
cpu_accounting() {
    local cfg hz
    cfg=$( (zcat /proc/config.gz || cat "/boot/config-$(uname -r)") 2>/dev/null) || true
    hz=$(sed -n 's/^CONFIG_HZ=//p' <<<"$cfg")
    if grep -q '^CONFIG_VIRT_CPU_ACCOUNTING_GEN=y' <<<"$cfg"; then
        echo "precise where nohz_full is on (CONFIG_HZ=${hz:-?})"
    elif [ -n "$cfg" ]; then
        echo "tick-sampled at ${hz:-?} Hz (user/system split by sampling; run time from schedstat is exact)"
    else
        echo "unknown (no kernel config to read)"
    fi
}

machine() {
    echo "## Machine and run"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
         "Linux $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- libevent $(pkg-config --modversion libevent_core 2>/dev/null || echo '?')," \
         "$("$python" --version 2>&1), gcc $(gcc -dumpfullversion 2>/dev/null || echo '?')," \
         "$(nginx -v 2>&1 | sed 's|.*/||;s|^|nginx |' || true), wrk $(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p')," \
         "curl $(curl --version 2>/dev/null | sed -n '1s/^curl \([^ ]*\).*/\1/p'), $(valgrind --version 2>/dev/null || true)"
    echo "- CPU time accounting: $(cpu_accounting)"
    echo "- command: bench/run.sh $*"
    echo "- $rounds round(s), ${duration} s windows after ${warmup} s of warm-up," \
         "connections set up $batch at a time, setup timeout ${setup_timeout} s" \
         "(${long_setup_timeout} s for the memory and scaling parts), pinning: $pin" \
         "(servers on CPU 0 -- in the threads part on every CPU --, load generators" \
         "and clients on CPU 1)"
    echo
}

has_part() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

main() {
    parse_args "$@"
    mkdir -p "$results"
    stamp=$(date '+%Y%m%d-%H%M%S')
    raw=$results/echo-$stamp.txt
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local part status=0 md plot plot_name
    for part in $parts; do
        case $part in
        echo) run_echo ;;
        memory) run_memory ;;
        scaling) run_scaling ;;
        threads) run_threads ;;
        callgrind) run_callgrind ;;
        strace) run_strace ;;
        framing) run_framing ;;
        http) run_http ;;
        *) die "unknown part $part" ;;
        esac
    done
    # The plot is the report's last part; without gnuplot it is left out.
    have_tool gnuplot gnuplot-nox plot || true
    md=$results/report-$stamp.md
    plot=$results/report-$stamp.svg
    plot_name=$(basename "$plot")
    [ -z "$report_file" ] || plot_name=$(basename "${report_file%.md}").svg
    {
        machine "$@"
        if has_part echo; then
            echo "## Echo: round trips, CPU and latency"
            echo
            report_echo
            echo
        fi
        "$python" "$srcdir/bench/report.py" --results "$results" --stamp "$stamp" \
            --plot "$plot" --plot-name "$plot_name"
    } >"$md" || status=1   # report.py fails when a check failed
    cat "$md"
    if [ -n "$report_file" ]; then
        mkdir -p "$(dirname "$report_file")"
        cp "$md" "$report_file"
        [ -f "$plot" ] && cp "$plot" "${report_file%.md}.svg"
    fi
    local part_rc f
    for f in "$results/echo-$stamp.txt" "$results/threads-$stamp.txt"; do
        [ -s "$f" ] || continue
        part_rc=0
        echo_status "$f" || part_rc=$?
        [ "$part_rc" -le "$status" ] || status=$part_rc
    done
    note "raw results: $results/*-$stamp.txt, report: $md"
    exit "$status"
}

main "$@"
