#!/bin/sh
# The porting guide's side-by-side example cannot rot:
#  - the ```python and ```c programs in doc/porting.md are exactly
#    doc/examples/port_example.py and doc/examples/port_example.c;
#  - the C program (built by make check) and, when a python3 with asyncore
#    and asynchat is at hand, the Python one give the same transcript to the
#    same scripted clients, and that transcript is the expected one.
set -u
srcdir=${srcdir:-.}
top_builddir=${top_builddir:-.}
doc="$srcdir/doc/porting.md"
cprog="$top_builddir/doc/examples/port_example"

tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail=0

# ---- the guide shows the files as they are.
awk -v dir="$tmp" '
    /^```(c|python)$/ { n++; lang = substr($0, 4); out = sprintf("%s/block%d.%s", dir, n, lang); inblock = 1; next }
    /^```$/ { inblock = 0; next }
    inblock { print > out }
' "$doc"
for ext in c py; do
    lang=$ext; [ "$ext" = py ] && lang=python
    found=0
    for b in "$tmp"/block*."$lang"; do
        [ -f "$b" ] && cmp -s "$b" "$srcdir/doc/examples/port_example.$ext" && found=1
    done
    if [ "$found" -eq 0 ]; then
        echo "doc/porting.md has no \`\`\`$lang block equal to doc/examples/port_example.$ext"
        fail=1
    fi
done

# ---- one scripted conversation: three clients, a rename, a line split
# across two sends, a "\r\n" line, a /quit, a hang-up.  Each line read is
# printed as "CLIENT: line"; every read is bounded.
cat >"$tmp/client.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
conns, bufs = {}, {}
def connect(c):
    conns[c] = socket.create_connection(("127.0.0.1", port), timeout=10)
    bufs[c] = b""
def send(c, data):
    conns[c].sendall(data)
def expect(c):
    while b"\n" not in bufs[c]:
        data = conns[c].recv(4096)
        if not data:
            print("%s: <eof>%s" % (c, " + " + repr(bufs[c]) if bufs[c] else ""))
            return
        bufs[c] += data
    line, bufs[c] = bufs[c].split(b"\n", 1)
    print("%s: %s" % (c, line.decode()))
for c in "ABC":
    connect(c); expect(c)
send("A", b"/nick alice\n"); expect("A")
send("A", b"hello\n"); expect("B"); expect("C")
send("B", b"hi th"); time.sleep(0.1); send("B", b"ere\r\n"); expect("A"); expect("C")
send("C", b"/quit\n"); expect("C"); expect("C"); expect("A"); expect("B")
conns["B"].close(); expect("A")
send("A", b"/nick al\nlonely\n/quit\n"); expect("A"); expect("A"); expect("A")
EOF
cat >"$tmp/expected" <<'EOF'
A: welcome, guest1
B: welcome, guest2
C: welcome, guest3
A: you are alice
B: alice: hello
C: alice: hello
A: guest2: hi there
C: guest2: hi there
C: bye
C: <eof>
A: guest3 left
B: guest3 left
A: guest2 left
A: you are al
A: bye
A: <eof>
EOF

# converse NAME CMD...: start the server, wait for its port, talk to it.
converse() {
    name=$1; shift
    : >"$tmp/$name.out"
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$tmp/$name.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "$name: the server did not start"; cat "$tmp/$name.err"
        fail=1; return
    fi
    timeout 60 "$PYTHON" "$tmp/client.py" "$port" >"$tmp/$name.transcript" 2>&1
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
    if ! diff -u "$tmp/expected" "$tmp/$name.transcript"; then
        echo "$name: the transcript differs from the expected one"; cat "$tmp/$name.err"
        fail=1
    else
        echo "$name: transcript as expected ($(wc -l <"$tmp/expected") lines)"
    fi
}

# A python3 for the client (any), and one with asyncore for the server:
# Debian 12's /usr/bin/python3 (3.11) has it; 3.12 removed it.
PYTHON= PYASYNC=
for p in /usr/bin/python3 python3 python3.11; do
    command -v "$p" >/dev/null 2>&1 || continue
    [ -n "$PYTHON" ] || PYTHON=$p
    if "$p" -W ignore -c 'import asyncore, asynchat' 2>/dev/null; then
        PYASYNC=$p; break
    fi
done
if [ -z "$PYTHON" ] || ! command -v timeout >/dev/null 2>&1; then
    echo "SKIP: no python3 or timeout for the scripted clients"
    exit 77
fi
[ -x "$cprog" ] || { echo "$cprog not built"; exit 1; }
converse C "$cprog" 0
if [ -n "$PYASYNC" ]; then
    converse Python "$PYASYNC" -W ignore "$srcdir/doc/examples/port_example.py" 0
else
    echo "no python3 with asyncore and asynchat: the Python side was not run"
fi
exit "$fail"
