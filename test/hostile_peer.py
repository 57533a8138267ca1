"""hostile_peer.py -- hostile HTTP peers for test/hostile_http.sh.

  server
        listens on 127.0.0.1 (port from the kernel), prints "listening on
        127.0.0.1:PORT", and answers each request according to its path
        with one of RESPONSES below, then closes the connection.
  raw ADDR [--wait S] [--half-close]
        sends stdin as one write, optionally half-closes, then prints what
        comes back until the server closes (or S seconds of silence, then
        prints "[open]").  Exit 0.
  slowloris ADDR --conns K --seconds S [--body]
        K connections that each send a request head one byte per second,
        never finishing it, for S seconds; prints how many the server
        closed ("closed N of K") and exits 0.  With --body, each sends a
        whole head announcing a 100000-byte body at once, then drips the
        body one byte per second.
  greedy ADDR --path P --requests N --seconds S
        pipelines N GET requests for P and never reads, for S seconds; then
        prints how many bytes it managed to send and closes.
  stall ADDR --pid PID --path P [--close] --within S
        asks for P (with "Connection: close" if --close) over a connection
        with a small receive buffer, and reads nothing: the server's send
        stalls.  Watches the sockets of the server process PID (Linux
        /proc) and prints "closed by the server after X s" once the
        server's socket for it is gone, or "still open after S s"; then
        reads what arrived and prints "got N body bytes of LENGTH".
  idle ADDR --within S [--path P]
        connects (and with --path, asks for P and reads the whole answer
        over a kept-alive connection), then sends nothing and prints
        "closed by the server after X s" when the server closes, or "still
        open after S s".
  slowread ADDR --path P --chunk N --pause S
        asks for P and reads the answer N bytes at a time with a pause of S
        seconds between reads, through a small receive buffer, so that the
        transfer outlasts a short server timeout while always progressing;
        prints "got N body bytes of LENGTH in X s".

Every wait is bounded.
"""
import argparse
import os
import re
import socket
import sys
import threading
import time

CRLF = b"\r\n"

# path -> the bytes sent back (the server closes after them).
RESPONSES = {
    "/good": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "/long-status": b"HTTP/1.1 200 " + b"K" * 10000 + b"\r\n\r\n",
    "/bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "/no-end": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
    "/negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    "/overflow-length": b"HTTP/1.1 200 OK\r\nContent-Length: 184467440737095516160\r\n\r\nhello",
    "/signed-length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "/list-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    "/huge-length": b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nhello",
    "/chunk-overflow": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"10000000000000005\r\nhello\r\n0\r\n\r\n",
    "/chunk-negative": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"-5\r\nhello\r\n0\r\n\r\n",
    "/chunk-huge": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"fffffffffffffff\r\nhello",
    "/chunk-ctl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5;x=\x01\r\nhello\r\n0\r\n\r\n",
    "/chunk-truncated": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"a\r\nhello",
    "/header-nul": b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
    "/status-999": b"HTTP/1.1 999 Nope\r\nContent-Length: 5\r\n\r\nhello",
    "/binary": bytes(range(256)) * 8,
}


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def serve_one(conn):
    try:
        conn.settimeout(30)
        head = read_head(conn)
        parts = head.split(b" ", 2)
        path = parts[1].decode("latin-1") if len(parts) > 1 else ""
        conn.sendall(RESPONSES.get(path, b"HTTP/1.1 404 Not Found\r\n"
                                         b"Content-Length: 0\r\n\r\n"))
        conn.shutdown(socket.SHUT_WR)
        # Let the client read it all before the socket goes.
        conn.settimeout(5)
        while conn.recv(4096):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def server(args):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_one, args=(conn,), daemon=True).start()


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def raw(args):
    data = sys.stdin.buffer.read()
    s = socket.create_connection(parse_addr(args.addr), timeout=30)
    s.sendall(data)
    if args.half_close:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(args.wait)
    out = sys.stdout.buffer
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out.write(chunk)
    except socket.timeout:
        out.write(b"[open]")
    except OSError:
        out.write(b"[reset]")
    out.flush()
    s.close()
    return 0


def slowloris(args):
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    socks = []
    for _ in range(args.conns):
        s = socket.create_connection(parse_addr(args.addr), timeout=30)
        if args.body:
            s.sendall(b"GET /good HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 100000\r\n\r\n")
        s.setblocking(False)
        socks.append(s)
    if args.body:
        head = b"a" * 100000
    closed = set()
    end = time.monotonic() + args.seconds
    i = 0
    while time.monotonic() < end and len(closed) < len(socks):
        for k, s in enumerate(socks):
            if k in closed:
                continue
            try:
                if s.recv(4096) == b"":
                    closed.add(k)
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed.add(k)
                continue
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                closed.add(k)
        i += 1
        time.sleep(1)
    print("closed %d of %d" % (len(closed), len(socks)), flush=True)
    for s in socks:
        s.close()
    return 0


def greedy(args):
    req = b"GET " + args.path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    s = socket.create_connection(parse_addr(args.addr), timeout=30)
    s.setblocking(False)
    sent, n = 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end and n < args.requests:
        try:
            sent += s.send(req)
            n += 1
        except BlockingIOError:
            time.sleep(0.05)
    print("sent %d requests (%d bytes) without reading" % (n, sent), flush=True)
    time.sleep(max(0.0, end - time.monotonic()))
    s.close()
    return 0


def server_sockets(pid):
    """How many sockets process @pid has open."""
    n = 0
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            n += os.readlink(os.path.join(d, fd)).startswith("socket:")
        except OSError:
            pass  # closed while we looked
    return n


def request(path, close=False):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" +
            (b"Connection: close\r\n" if close else b"") + b"\r\n")


def small_socket(addr, rcvbuf):
    """A connection whose receive window stays small: what the server can
    push into it before it stalls is bounded."""
    host, port = parse_addr(addr)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect((host, port))
    return s


def read_answer_head(s):
    """The response header (up to its empty line) and the body bytes that
    came with it; the Content-Length (-1 if none)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"\r\nContent-Length: *([0-9]+)", head, re.I)
    return body, int(m.group(1)) if m else -1


def drain_body(s, seconds):
    """Read the answer until its end, EOF, a reset or @seconds of silence:
    (body bytes got, Content-Length)."""
    s.settimeout(seconds)
    got, length = 0, -1
    try:
        body, length = read_answer_head(s)
        got = len(body)
        while got < length:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass  # a reset, or silence: what arrived is the answer
    return got, length


def whole_answer(s, seconds):
    """Read the answer to the request sent on @s: True if it came whole."""
    got, length = drain_body(s, seconds)
    if length < 0 or got != length:
        print("no whole answer: got %d body bytes of %d" % (got, length))
        return False
    return True


def say_closed(closed, t0, seconds):
    """Whether the server closed, and when (@t0 on)."""
    if closed:
        print("closed by the server after %.1f s" % (time.monotonic() - t0),
              flush=True)
    else:
        print("still open after %g s" % seconds, flush=True)


def wait_for(pred, seconds):
    end = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def stall(args):
    base = server_sockets(args.pid)
    s = small_socket(args.addr, 16384)
    s.sendall(request(args.path, args.close))
    t0 = time.monotonic()
    # The server's socket must be seen before its closing can be: it is
    # closed a timeout after the accept at the earliest.
    if not wait_for(lambda: server_sockets(args.pid) > base, args.within):
        print("the server never accepted", flush=True)
        return 1
    last = [time.monotonic()]

    def closed():
        # --drip: a byte now and then, which must not count as progress
        # while the answer itself does not move.
        if args.drip and time.monotonic() - last[0] >= args.drip:
            last[0] = time.monotonic()
            try:
                s.send(b"x")
            except OSError:
                pass  # the server closed already
        return server_sockets(args.pid) <= base

    say_closed(wait_for(closed, args.within), t0, args.within)
    got, length = drain_body(s, args.within)
    print("got %d body bytes of %d" % (got, length), flush=True)
    s.close()
    return 0


def linger(args):
    """A Connection: close answer read whole, then the server's end seen
    (EOF); the server must still hold the connection, dropping what we send,
    until we close (or, with --keep-open, until its linger time is over)."""
    base = server_sockets(args.pid)
    s = small_socket(args.addr, 65536)
    s.sendall(request(args.path, True))
    if not whole_answer(s, args.within):
        return 1
    s.settimeout(args.within)
    if s.recv(1) != b"":
        print("more than the answer")
        return 1
    s.sendall(b"bytes after the answer\r\n")
    time.sleep(0.1)
    held = server_sockets(args.pid) > base
    print("after the answer's end: %s" % ("held" if held else "closed"), flush=True)
    t0 = time.monotonic()  # the server's close is timed from ours, if any
    if not args.keep_open:
        s.close()
    say_closed(wait_for(lambda: server_sockets(args.pid) <= base, args.within),
               t0, args.within)
    s.close()
    return 0


def idle(args):
    s = small_socket(args.addr, 65536)
    if args.path:
        s.sendall(request(args.path))
        if not whole_answer(s, args.within):
            return 1
    t0 = time.monotonic()
    s.settimeout(args.within)
    try:
        closed = s.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True  # a reset is a close too
    say_closed(closed, t0, args.within)
    s.close()
    return 0


def slowread(args):
    s = small_socket(args.addr, 65536)
    t0 = time.monotonic()
    s.sendall(request(args.path, args.close))
    body, length = read_answer_head(s)
    got = len(body)
    try:
        while got < length:
            time.sleep(args.pause)
            chunk = s.recv(min(args.chunk, length - got))
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    print("got %d body bytes of %d in %.1f s" % (got, length,
                                                 time.monotonic() - t0),
          flush=True)
    s.close()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    sub.add_parser("server")
    a = sub.add_parser("raw")
    a.add_argument("addr")
    a.add_argument("--wait", type=float, default=5.0)
    a.add_argument("--half-close", action="store_true")
    a = sub.add_parser("slowloris")
    a.add_argument("addr")
    a.add_argument("--conns", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--body", action="store_true")
    a = sub.add_parser("greedy")
    a.add_argument("addr")
    a.add_argument("--path", required=True)
    a.add_argument("--requests", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a = sub.add_parser("stall")
    a.add_argument("addr")
    a.add_argument("--pid", type=int, required=True)
    a.add_argument("--path", required=True)
    a.add_argument("--close", action="store_true")
    a.add_argument("--drip", type=float, default=0.0)
    a.add_argument("--within", type=float, required=True)
    a = sub.add_parser("linger")
    a.add_argument("addr")
    a.add_argument("--pid", type=int, required=True)
    a.add_argument("--path", required=True)
    a.add_argument("--keep-open", action="store_true")
    a.add_argument("--within", type=float, required=True)
    a = sub.add_parser("idle")
    a.add_argument("addr")
    a.add_argument("--path")
    a.add_argument("--within", type=float, required=True)
    a = sub.add_parser("slowread")
    a.add_argument("addr")
    a.add_argument("--path", required=True)
    a.add_argument("--chunk", type=int, required=True)
    a.add_argument("--pause", type=float, required=True)
    a.add_argument("--close", action="store_true")
    args = p.parse_args()
    return {"server": server, "raw": raw, "slowloris": slowloris,
            "greedy": greedy, "stall": stall, "linger": linger, "idle": idle,
            "slowread": slowread}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
