#!/bin/sh
# run.sh -- build the libFuzzer harnesses of test/fuzz and run each one.
#
#   run.sh [--seconds N] [--jobs J] [HARNESS...]
#   run.sh --seeds "S1 S2 ..." [--runs R] [--seconds N] [HARNESS...]
#
# Harnesses (default: all): chat, http_response, http_request, http_url,
# api (the lifetime contract under random API programs, fuzz_api.c).
# Each runs for N seconds (default 60), J at a time (default: the number
# of CPUs), from its seed corpus
# (test/fuzz/corpus/NAME, never written to) and a working corpus under
# test/fuzz/work/NAME in the build directory, which grows from run to run.
# A crash, a leak, a sanitizer report or a failed check stops that
# harness; the input that did it is left as test/fuzz/artifacts/NAME-*
# (reproduce: test/fuzz/bin/fuzz_NAME FILE) and the script exits 1.
#
# Built with clang's -fsanitize=fuzzer,address,undefined.  fuzz_chat is
# linked with the library's sources compiled the same way, so that the
# fuzzer sees coverage inside async_chat; the HTTP harnesses with the
# demos' demo/http_parse.c.  Called by "make fuzz" / "make fuzz-ci", which
# pass (from the build directory): srcdir, FUZZ_CC, LIB_SOURCES (the
# library's sources, relative to srcdir), LIB_CFLAGS (its compiler flags)
# and LIB_LIBS (what it links).
#
# With --seeds (CI), each harness runs deterministically instead: once per
# seed, R inputs (-runs, default 2500) generated from that libFuzzer seed
# and the seed corpus, with a working corpus that starts empty every time;
# N seconds (default 60) bound the harness's seeds together, one share
# each, should the machine be slow.  Harnesses run one after the other.
# Exit 77 (skip) when no clang with libFuzzer is found (Debian: clang-14
# and libclang-rt-14-dev), or when the only harnesses asked for cannot
# run (fuzz_api in a library configured with --disable-resolve).

set -u
srcdir=${srcdir:-.}
SECONDS_=60
JOBS=$(nproc 2>/dev/null || echo 1)
SEEDS=
RUNS=2500
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECONDS_=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "usage: run.sh [--seconds N] [--jobs J] [--seeds LIST [--runs R]] [HARNESS...]" >&2; exit 2 ;;
    *) break ;;
    esac
done
HARNESSES=${*:-chat http_response http_request http_url api}

out=test/fuzz
mkdir -p "$out/bin" "$out/obj" "$out/artifacts"

# A clang that links libFuzzer: FUZZ_CC, else clang, else clang-14.
probe() {
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$out/probe.c"
    "$1" -fsanitize=fuzzer -o "$out/probe" "$out/probe.c" 2>/dev/null
}
CC=
for c in ${FUZZ_CC:-} clang clang-14; do
    if command -v "$c" >/dev/null 2>&1 && probe "$c"; then CC=$c; break; fi
done
rm -f "$out/probe" "$out/probe.c"
if [ -z "$CC" ]; then
    echo "SKIP: no clang with libFuzzer (apt install clang-14 libclang-rt-14-dev)"
    exit 77
fi

# Of the library's flags, only those that say where headers are and what
# is defined: the others (warnings, sanitizers) are meant for gcc.
LIB_CPPFLAGS=
for f in ${LIB_CFLAGS:-}; do
    case $f in -I*|-D*|-U*|-pthread) LIB_CPPFLAGS="$LIB_CPPFLAGS $f" ;; esac
done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -fno-omit-frame-pointer"
HFLAGS="-std=c11 -Wall -Wextra -Werror"

# The library, instrumented for coverage (fuzzer-no-link) and sanitizers.
build_lib() {
    objs=
    for s in ${LIB_SOURCES:-}; do
        case $s in *.c) ;; *) continue ;; esac
        o=$out/obj/$(basename "$s" .c).o
        $CC $CFLAGS $SAN -fsanitize=fuzzer-no-link ${LIB_CPPFLAGS:-} \
            -c "$srcdir/$s" -o "$o" || return 1
        objs="$objs $o"
    done
    [ -n "$objs" ] || { echo "run.sh: LIB_SOURCES is empty"; return 1; }
}

build() {
    name=$1
    case $name in
    chat|api)
        { [ -n "${objs:-}" ] || build_lib; } &&
            $CC $CFLAGS $SAN -fsanitize=fuzzer $HFLAGS ${LIB_CPPFLAGS:-} \
                -o "$out/bin/fuzz_$name" "$srcdir/test/fuzz/fuzz_$name.c" $objs \
                ${LIB_LIBS:-} -lpthread
        ;;
    http_*)
        $CC $CFLAGS $SAN -fsanitize=fuzzer,fuzzer-no-link $HFLAGS \
            -I"$srcdir/demo" -o "$out/bin/fuzz_$name" \
            "$srcdir/test/fuzz/fuzz_$name.c" "$srcdir/demo/http_parse.c"
        ;;
    *)
        echo "run.sh: no harness $name"; return 1 ;;
    esac
}

# The options of harness NAME.
options() {
    case $1 in
    chat) echo "-max_len=2048" ;;
    api) echo "-max_len=512" ;;
    *) echo "-max_len=16384 -dict=$srcdir/test/fuzz/http.dict" ;;
    esac
}

# fuzz NAME: one harness for $SECONDS_ seconds; its status.  The seeds are
# read, the working corpus gets what is new.
fuzz() {
    name=$1
    work=$out/work/$name
    mkdir -p "$work"
    ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
        "$out/bin/fuzz_$name" $(options "$name") -max_total_time="$SECONDS_" \
            -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$out/artifacts/$name-" \
            "$work" "$srcdir/test/fuzz/corpus/$name" >"$out/$name.log" 2>&1
}

# fuzz_seeded NAME: $RUNS inputs from each seed of $SEEDS, each from an
# empty working corpus, so that a run does the same as the last one.
fuzz_seeded() {
    name=$1
    n=0
    for s in $SEEDS; do n=$((n + 1)); done
    share=$((SECONDS_ / n))
    [ "$share" -gt 0 ] || share=1
    : >"$out/$name.log"
    for s in $SEEDS; do
        work=$out/work/$name-seed$s
        rm -rf "$work"
        mkdir -p "$work"
        echo "== seed $s: $RUNS runs" >>"$out/$name.log"
        ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
            "$out/bin/fuzz_$name" $(options "$name") -seed="$s" -runs="$RUNS" \
                -max_total_time="$share" -timeout=25 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" \
                "$work" "$srcdir/test/fuzz/corpus/$name" >>"$out/$name.log" 2>&1 ||
            { rm -rf "$work"; return 1; }
        rm -rf "$work"
    done
}

report() {
    name=$1 s=$2
    if [ "$s" -eq 0 ] && [ -n "$SEEDS" ]; then
        echo "PASS: fuzz_$name: seeds $SEEDS:" \
             $(grep -E '^Done' "$out/$name.log" | sed 's/^Done \([0-9]*\) runs in \([0-9]*\) .*/\1 runs in \2 s,/')
    elif [ "$s" -eq 0 ]; then
        echo "PASS: fuzz_$name: $(grep -E '^Done' "$out/$name.log")," \
             "$(sed -n 's/^stat::new_units_added: *//p' "$out/$name.log") new inputs"
    else
        tail -40 "$out/$name.log"
        echo "FAIL: fuzz_$name (the input is saved as $out/artifacts/$name-*)"
        status=1
    fi
}

status=0
built=
skipped=
for name in $HARNESSES; do
    # fuzz_api runs a DNS responder and connects by name: a library
    # configured with --disable-resolve (no libevent_extra) has neither.
    if [ "$name" = api ]; then
        case " ${LIB_LIBS:-} " in
        *event_extra*) ;;
        *) echo "SKIP: fuzz_api: the library is built without connect by name" \
                "(--disable-resolve)"
           skipped=1
           continue ;;
        esac
    fi
    echo "== fuzz_$name: building"
    if build "$name"; then
        built="$built $name"
    else
        echo "FAIL: fuzz_$name does not build"; status=1
    fi
done
# Nothing to run, and nothing failed: skipped (77), as without clang.
if [ -z "$built" ] && [ -n "$skipped" ] && [ "$status" -eq 0 ]; then
    exit 77
fi
if [ -n "$SEEDS" ]; then
    for name in $built; do
        echo "== fuzz_$name: seeds $SEEDS, $RUNS runs each, at most $SECONDS_ s"
        fuzz_seeded "$name"
        report "$name" $?
    done
    exit $status
fi
# $JOBS harnesses at a time (default: as many as there are CPUs).
set -- $built
while [ $# -gt 0 ]; do
    batch=
    i=0
    while [ $# -gt 0 ] && [ $i -lt "$JOBS" ]; do
        echo "== fuzz_$1: $SECONDS_ s"
        fuzz "$1" &
        eval "pid_$1=\$!"
        batch="$batch $1"
        i=$((i + 1))
        shift
    done
    for name in $batch; do
        eval "wait \$pid_$name"
        report "$name" $?
    done
done
exit $status
