#!/bin/sh
# reliability.sh -- the short variants of the reliability tests, one after
# the other, for CI ("make reliability-ci" runs it from the build
# directory):
#
#   fuzz    the input harnesses (chat, HTTP) for $FUZZ_SECONDS (default 20)
#           each
#   fuzz-api  fuzz_api, the lifetime contract under random API programs,
#           over fixed seeds ($FUZZ_API_SEEDS, $FUZZ_API_RUNS inputs each),
#           deterministically, bounded by $FUZZ_API_SECONDS (default 60)
#   soak    2,000 echo connections for 10 s, with churn and close_all
#   fiu     the echo server under injected send/recv/accept failures (and
#           malloc failures, with a build without sanitizers)
#   netns   64 MiB over a lossy, rate-limited link between namespaces
#
# Each step prints its result and how long it took.  A step that skips
# (exit 77: clang, libfiu or namespaces missing) says why and does not
# fail the run; any other failure does.  The long variants are "make fuzz"
# and "make soak".

here=$(cd "$(dirname "$0")" && pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_API_SEEDS=${FUZZ_API_SEEDS:-1 2 3 4}
FUZZ_API_RUNS=${FUZZ_API_RUNS:-2000}
FUZZ_API_SECONDS=${FUZZ_API_SECONDS:-60}
export top_builddir=${top_builddir:-.}

status=0
step() {
    name=$1; shift
    echo "==> reliability: $name"
    t0=$(date +%s)
    "$@"
    s=$?
    t=$(( $(date +%s) - t0 ))
    case $s in
    0) echo "==> reliability: $name passed (${t} s)" ;;
    77) echo "==> reliability: $name skipped (${t} s)" ;;
    *) echo "==> reliability: $name FAILED (${t} s)"; status=1 ;;
    esac
}

step fuzz sh "$here/fuzz/run.sh" --seconds "$FUZZ_SECONDS" \
    chat http_response http_request http_url
step fuzz-api sh "$here/fuzz/run.sh" --seeds "$FUZZ_API_SEEDS" \
    --runs "$FUZZ_API_RUNS" --seconds "$FUZZ_API_SECONDS" api
step soak sh "$here/soak.sh" --conns 2000 --seconds 10
step fiu sh "$here/fiu.sh"
step netns sh "$here/netns.sh"
exit $status
