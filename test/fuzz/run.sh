#!/bin/sh
# run.sh -- build the libFuzzer harnesses of test/fuzz and run each one.
#
#   run.sh [--seconds N] [--jobs J] [HARNESS...]
#
# Harnesses (default: all): chat, http_response, http_request, http_url.
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
# Exit 77 (skip) when no clang with libFuzzer is found (Debian: clang-14
# and libclang-rt-14-dev).

set -u
srcdir=${srcdir:-.}
SECONDS_=60
JOBS=$(nproc 2>/dev/null || echo 1)
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECONDS_=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "usage: run.sh [--seconds N] [--jobs J] [HARNESS...]" >&2; exit 2 ;;
    *) break ;;
    esac
done
HARNESSES=${*:-chat http_response http_request http_url}

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
    chat)
        build_lib &&
            $CC $CFLAGS $SAN -fsanitize=fuzzer $HFLAGS ${LIB_CPPFLAGS:-} \
                -o "$out/bin/fuzz_chat" "$srcdir/test/fuzz/fuzz_chat.c" $objs \
                ${LIB_LIBS:-}
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

# fuzz NAME: one harness for $SECONDS_ seconds; its status.  The seeds are
# read, the working corpus gets what is new.
fuzz() {
    name=$1
    work=$out/work/$name
    mkdir -p "$work"
    case $name in
    chat) opts="-max_len=2048" ;;
    *) opts="-max_len=16384 -dict=$srcdir/test/fuzz/http.dict" ;;
    esac
    ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
        "$out/bin/fuzz_$name" $opts -max_total_time="$SECONDS_" -timeout=25 \
            -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$out/artifacts/$name-" \
            "$work" "$srcdir/test/fuzz/corpus/$name" >"$out/$name.log" 2>&1
}

report() {
    name=$1 s=$2
    if [ "$s" -eq 0 ]; then
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
for name in $HARNESSES; do
    echo "== fuzz_$name: building"
    if build "$name"; then
        built="$built $name"
    else
        echo "FAIL: fuzz_$name does not build"; status=1
    fi
done
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
