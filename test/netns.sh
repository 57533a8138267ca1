#!/bin/sh
# netns.sh -- 64 MiB echoed byte-exact and in order over a lossy,
# rate-limited link.
#
# Two network namespaces joined by a veth pair: the echo server runs in
# one, a Python client (test/fault_peer.py stream) in the other.  nftables
# drops a random 2 % of the packets in each direction (numgen random) and
# a tc tbf qdisc limits each direction to $RATE (tc netem, which could add
# delay, is not available on these kernels).  TCP repairs the loss; the
# test is that the server, seeing the stalls, short writes and bursts this
# causes, loses, repeats and reorders nothing: every byte must come back
# in order, the half-close must bring EOF after exactly 64 MiB, and the
# server must exit 0 on SIGTERM.  The drop counters must show that packets
# really were dropped.
#
# Run by "make netns" (and "make reliability-ci") from the build directory;
# $ECHO_SERVER overrides the program.  Needs root (or CAP_NET_ADMIN) for
# "ip netns add": exit 77 (skip) with a message where that, ip, nft, tc or
# python3 is missing.

here=$(cd "$(dirname "$0")" && pwd)
top_builddir=${top_builddir:-.}
ECHO_SERVER=${ECHO_SERVER:-$top_builddir/demo/asyncore-echo-server}
BYTES=${NETNS_BYTES:-67108864}
RATE=${NETNS_RATE:-100mbit}
LOSS=${NETNS_LOSS:-2}
T=${NETNS_TIMEOUT:-300}

skip() { echo "SKIP: $*"; exit 77; }
for tool in ip nft tc python3 timeout; do
    command -v $tool >/dev/null 2>&1 ||
        skip "$tool is not installed (apt install iproute2 nftables python3)"
done
[ -x "$ECHO_SERVER" ] || { echo "FAIL: $ECHO_SERVER not built"; exit 1; }

ns=asyncore-$$
a=$ns-srv b=$ns-cli
tmp=$(mktemp -d "${TMPDIR:-/tmp}/netns.XXXXXX") || exit 1
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    ip netns del "$a" 2>/dev/null
    ip netns del "$b" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if ! ip netns add "$a" 2>"$tmp/err"; then
    cat "$tmp/err"
    skip "cannot create network namespaces here (needs root)"
fi
ip netns add "$b" || exit 1

# The link: 10.66.0.1 (server) <-> 10.66.0.2 (client).
set -e
ip link add va netns "$a" type veth peer name vb netns "$b"
ip -n "$a" addr add 10.66.0.1/24 dev va
ip -n "$b" addr add 10.66.0.2/24 dev vb
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set va up
ip -n "$b" link set vb up
# Random loss both ways, counted, on the server's side.
ip netns exec "$a" nft -f - <<NFT
table inet lossy {
    chain input {
        type filter hook input priority 0; policy accept;
        numgen random mod 100 < $LOSS counter drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        numgen random mod 100 < $LOSS counter drop
    }
}
NFT
tc -n "$a" qdisc add dev va root tbf rate "$RATE" burst 64kb latency 20ms
tc -n "$b" qdisc add dev vb root tbf rate "$RATE" burst 64kb latency 20ms
set +e

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# The program itself rather than libtool's wrapper: "ip netns exec" then
# runs the server in the namespace with its own pid.
real=$(dirname "$ECHO_SERVER")/.libs/$(basename "$ECHO_SERVER")
if [ -x "$real" ]; then
    LD_LIBRARY_PATH="$top_builddir/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
else
    real=$ECHO_SERVER
fi
ip netns exec "$a" "$real" -b 10.66.0.1 -p 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
if ! timeout 30 sh -c "until grep -qs '^listening on ' '$tmp/out'; do
                         kill -0 $pid 2>/dev/null || exit 1; sleep 0.05; done"; then
    cat "$tmp/err"
    echo "FAIL: the server did not start in its namespace"
    exit 1
fi
addr=$(sed -n 's/^listening on //p' "$tmp/out")

echo_stream() {
    timeout $T ip netns exec "$b" python3 "$here/fault_peer.py" stream "$addr" \
        --bytes "$BYTES"
}
check "$BYTES bytes echoed exactly, in order, over $RATE with $LOSS % loss each way" \
    echo_stream

dropped() {
    n=$(ip netns exec "$a" nft list table inet lossy |
        sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    echo "$n packets dropped"
    [ "$n" -gt 0 ]
}
check "the link really dropped packets" dropped

kill -TERM "$pid"
timeout 30 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done"
wait "$pid"
status=$?
pid=
check "server exits 0 on SIGTERM" test $status -eq 0
clean() { ! grep -E 'Sanitizer|runtime error|^==[0-9]+== ' "$tmp/err"; }
check "no sanitizer report from the server" clean

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
