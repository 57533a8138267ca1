#!/bin/sh
# The Python documentation's two asyncore examples, ported with their
# structure unchanged (doc/examples/http_client.c, echo_server.c), run
# against local peers:
#  - the HTTP client, whose request is put in its buffer right after
#    connect and outside any hook, fetches a page from a local server;
#  - the echo server echoes what two clients send and says where each
#    connection came from.
set -u
top_builddir=${top_builddir:-.}
client="$top_builddir/doc/examples/http_client"
server="$top_builddir/doc/examples/echo_server"

tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail=0

PYTHON=
for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 && { PYTHON=$p; break; }
done
if [ -z "$PYTHON" ] || ! command -v timeout >/dev/null 2>&1; then
    echo "SKIP: no python3 or timeout for the local peers"
    exit 77
fi
for prog in "$client" "$server"; do
    [ -x "$prog" ] || { echo "$prog not built"; exit 1; }
done

# start OUT CMD...: run a server in the background; its port is the number
# on its "listening on N" line.
start() {
    out=$1; shift
    "$@" >"$out" 2>"$out.err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "$* did not start"; cat "$out.err"; exit 1; }
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=; }

# ---- the HTTP client against a one-page HTTP/1.0 server.
cat >"$tmp/httpd.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(5)
print("listening on %d" % s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(10)
    req = b""
    while b"\r\n\r\n" not in req:
        data = c.recv(4096)
        if not data:
            break
        req += data
    line = req.split(b"\r\n", 1)[0].decode("ascii", "replace")
    host = [h for h in req.split(b"\r\n") if h.lower().startswith(b"host:")]
    body = ("you asked for %s\n%s\n" % (line, host[0].decode() if host else "no host")).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
PY
start "$tmp/httpd.out" "$PYTHON" "$tmp/httpd.py"
timeout 20 "$client" 127.0.0.1 /doc/page "$port" >"$tmp/page" 2>"$tmp/page.err"
rc=$?
stop
cat >"$tmp/expected" <<'EOF2'
HTTP/1.0 200 OK
Content-Type: text/plain
Content-Length: 53

you asked for GET /doc/page HTTP/1.0
Host: 127.0.0.1
EOF2
tr -d '\r' <"$tmp/page" >"$tmp/page.lf"
if [ "$rc" -ne 0 ]; then
    echo "http_client: exit status $rc (124: it hung)"; cat "$tmp/page.err"; fail=1
elif ! diff -u "$tmp/expected" "$tmp/page.lf"; then
    echo "http_client: the page differs from the expected one"; fail=1
else
    echo "http_client: fetched the page"
fi

# ---- the echo server with two clients, one of them sending in pieces.
cat >"$tmp/echo_client.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=10)
b = socket.create_connection(("127.0.0.1", port), timeout=10)
def echo(s, pieces):
    want = b"".join(pieces)
    for p in pieces:
        s.sendall(p)
        time.sleep(0.05)
    got = b""
    while len(got) < len(want):
        data = s.recv(65536)
        if not data:
            break
        got += data
    print("%s %d bytes" % ("echoed" if got == want else "WRONG", len(got)))
echo(a, [b"hello\n"])
echo(b, [b"one ", b"two ", b"three\n"])
echo(a, [bytes(range(256)) * 400])
a.close(); b.close()
PY
start "$tmp/echod.out" "$server" 127.0.0.1 0
timeout 20 "$PYTHON" "$tmp/echo_client.py" "$port" >"$tmp/echo" 2>&1
rc=$?
sleep 0.2
stop
cat >"$tmp/expected" <<'EOF2'
echoed 6 bytes
echoed 14 bytes
echoed 102400 bytes
EOF2
incoming=$(grep -c "^Incoming connection from ('127.0.0.1', [0-9][0-9]*)$" "$tmp/echod.out")
if [ "$rc" -ne 0 ] || ! diff -u "$tmp/expected" "$tmp/echo"; then
    echo "echo_server: the echoes differ (client exit $rc)"; cat "$tmp/echo"; fail=1
elif [ "$incoming" -ne 2 ]; then
    echo "echo_server: $incoming 'Incoming connection' lines, not 2"
    cat "$tmp/echod.out"; fail=1
else
    echo "echo_server: echoed to two clients"
fi
exit "$fail"
