"""hostile_peer.py -- hostile HTTP peers for test/hostile_http.sh.

  server
        listens on 127.0.0.1 (port from the kernel), prints "listening on
        127.0.0.1:PORT", and answers each request according to its path
        with one of RESPONSES below, then closes the connection.
  raw ADDR [--wait S] [--half-close]
        sends stdin as one write, optionally half-closes, then prints what
        comes back until the server closes (or S seconds of silence, then
        prints "[open]").  Exit 0.
  slowloris ADDR --conns K --seconds S
        K connections that each send a request head one byte per second,
        never finishing it, for S seconds; prints how many the server
        closed ("closed N of K") and exits 0.
  greedy ADDR --path P --requests N --seconds S
        pipelines N GET requests for P and never reads, for S seconds; then
        prints how many bytes it managed to send and closes.

Every wait is bounded.
"""
import argparse
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
        s.setblocking(False)
        socks.append(s)
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
    a = sub.add_parser("greedy")
    a.add_argument("addr")
    a.add_argument("--path", required=True)
    a.add_argument("--requests", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    args = p.parse_args()
    return {"server": server, "raw": raw, "slowloris": slowloris,
            "greedy": greedy}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
