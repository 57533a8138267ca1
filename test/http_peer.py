"""http_peer.py -- HTTP peers for test/demo_http.sh that do not use libasyncore.

  http_peer.py MODE [--root DIR] [--count-file FILE]

Every mode listens on 127.0.0.1, port chosen by the kernel, prints
"listening on 127.0.0.1:PORT" and serves until killed.  Requests are read
the same way in every mode (request line, header lines up to the empty
one); the mode decides the answer:

  chunked          files under --root, Transfer-Encoding: chunked, chunks
                   of random sizes sent in pieces, with chunk extensions and
                   a trailer; keep-alive
  keepalive        files under --root with Content-Length, keep-alive; the
                   number of connections accepted so far is written to
                   --count-file after each accept.  /interim/NAME sends a
                   "100 Continue" first; /eof/NAME answers HTTP/1.0 without
                   a length and closes.  With --drop, every connection is
                   closed after one response, without saying so
  redirect         /hop/N redirects to the relative "N-1" (codes 301, 302,
                   303, 307, 308 in turn) and /hop/0 answers "arrived";
                   /loop redirects to itself; /dots/a/b to "../../hop/0";
                   /away?to=URL to URL; /https to an https:// URL;
                   /nolocation is a 302 without Location
  close-mid-body   /len: Content-Length 100000, 5000 bytes, close;
                   /chunked: one chunk, close; /empty: close at once
  garbage-status   "HELLO WORLD" instead of a status line
  huge-header      /line: one 10 KiB header line; /block: 100 lines of
                   1000 bytes (over 64 KiB); /ok: 60 KiB of headers, allowed
  bad-chunk        /size: chunk size "zz"; /crlf: chunk data not followed
                   by CRLF
  slow             never answers; /body: sends half the body, then stalls
  reset            half a response, then a TCP reset
  barrier          a second listening port (printed as "second port P"):
                   answers only while two connections are open at once

  http_peer.py raw HOST:PORT [--half-close]

is a client instead: it sends its stdin as one write (then shuts down its
sending side with --half-close) and copies what comes back to stdout until
the server closes.
"""
import argparse
import os
import random
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

ROOT = "."
COUNT_FILE = None
DROP = False
accepted = 0
lock = threading.Lock()
barrier = threading.Barrier(2)


def read_request(rfile):
    """The request target, or None at EOF.  Headers are read and dropped."""
    line = rfile.readline(65536)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    while True:
        h = rfile.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
    return parts[1] if len(parts) == 3 else "/"


def file_body(target):
    """The bytes of ROOT/target, or None."""
    name = urllib.parse.unquote(target.split("?")[0]).lstrip("/")
    path = os.path.join(ROOT, name)
    if not name or ".." in name.split("/") or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def respond(w, code, body, headers=(), version="HTTP/1.1"):
    head = "%s %d X\r\nContent-Length: %d\r\n" % (version, code, len(body))
    head += "".join("%s: %s\r\n" % h for h in headers)
    w.write(head.encode() + b"\r\n" + body)
    w.flush()


def not_found(w):
    respond(w, 404, b"not found\n")
    return True


def send_chunked(sock, body):
    """body in chunks of random sizes; every piece is a separate send."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    pos = 0
    while pos < len(body):
        n = min(random.randint(1, 70000), len(body) - pos)
        ext = b";name=value" if random.random() < 0.3 else b""
        size = ("%X" if random.random() < 0.5 else "%x") % n
        sock.sendall(size.encode() + ext + b"\r\n")
        sock.sendall(body[pos:pos + n])
        sock.sendall(b"\r\n")
        pos += n
    sock.sendall(b"0\r\nX-Trailer: done\r\n\r\n")


def mode_chunked(h, target):
    body = file_body(target)
    if body is None:
        return not_found(h.wfile)
    h.wfile.flush()
    send_chunked(h.request, body)
    return True


def mode_keepalive(h, target):
    if target.startswith("/interim/"):
        h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        target = target[len("/interim"):]
    if target.startswith("/eof/"):
        body = file_body(target[len("/eof"):])
        if body is None:
            return not_found(h.wfile)
        h.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: x/y\r\n\r\n" + body)
        return False
    body = file_body(target)
    if body is None:
        return not_found(h.wfile)
    respond(h.wfile, 200, body, [("Connection", "keep-alive")])
    return not DROP


def mode_redirect(h, target):
    w = h.wfile
    path, _, query = target.partition("?")
    if path.startswith("/hop/"):
        n = int(path[5:])
        if n == 0:
            respond(w, 200, b"arrived\n")
        else:
            code = [301, 302, 303, 307, 308][n % 5]
            respond(w, code, b"moved\n", [("Location", str(n - 1))])
    elif path == "/loop":
        respond(w, 302, b"again\n", [("Location", "/loop")])
    elif path == "/dots/a/b":
        respond(w, 301, b"", [("Location", "../../hop/0")])
    elif path == "/away":
        to = urllib.parse.parse_qs(query)["to"][0]
        respond(w, 302, b"", [("Location", to)])
    elif path == "/https":
        respond(w, 302, b"", [("Location", "https://example.invalid/")])
    elif path == "/nolocation":
        respond(w, 302, b"no location\n")
    else:
        return not_found(w)
    return True


def mode_close_mid_body(h, target):
    w = h.wfile
    if target == "/len":
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    elif target == "/chunked":
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"1388\r\n" + b"x" * 5000 + b"\r\n")
    return False


def mode_garbage_status(h, target):
    h.wfile.write(b"HELLO WORLD\r\n\r\n")
    return False


def mode_huge_header(h, target):
    w = h.wfile
    if target == "/line":
        head = "X-Big: " + "a" * 10240 + "\r\n"
    elif target == "/block":
        head = "".join("X-H%d: %s\r\n" % (i, "b" * 990) for i in range(100))
    else:
        head = "".join("X-H%d: %s\r\n" % (i, "c" * 990) for i in range(60))
    w.write(("HTTP/1.1 200 OK\r\n" + head + "Content-Length: 5\r\n\r\nfine\n").encode())
    return True


def mode_bad_chunk(h, target):
    w = h.wfile
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    if target == "/size":
        w.write(b"zz\r\nhello\r\n0\r\n\r\n")
    else:
        w.write(b"5\r\nhelloXY\r\n0\r\n\r\n")
    return True


def mode_slow(h, target):
    if target == "/body":
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
        h.wfile.flush()
    h.request.settimeout(60)
    try:
        h.request.recv(1)  # until the client gives up and closes
    except OSError:
        pass
    return False


def mode_reset(h, target):
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")
    h.wfile.flush()
    time.sleep(0.1)
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    # Closed here, as socketserver would shut down (FIN) before closing.
    h.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
    os.close(h.request.detach())
    return False


def mode_barrier(h, target):
    try:
        barrier.wait(timeout=30)
    except threading.BrokenBarrierError:
        return False
    respond(h.wfile, 200, b"ok\n")
    return False


MODES = {
    "chunked": mode_chunked,
    "keepalive": mode_keepalive,
    "redirect": mode_redirect,
    "close-mid-body": mode_close_mid_body,
    "garbage-status": mode_garbage_status,
    "huge-header": mode_huge_header,
    "bad-chunk": mode_bad_chunk,
    "slow": mode_slow,
    "reset": mode_reset,
    "barrier": mode_barrier,
}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global accepted
        with lock:
            accepted += 1
            if COUNT_FILE:
                with open(COUNT_FILE + ".tmp", "w") as f:
                    f.write("%d\n" % accepted)
                os.replace(COUNT_FILE + ".tmp", COUNT_FILE)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                target = read_request(self.rfile)
                if target is None:
                    return
                keep = self.server.mode(self, target)
                self.wfile.flush()
                if not keep:
                    return
        except (ConnectionError, BrokenPipeError):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def raw_client(argv):
    ap = argparse.ArgumentParser(prog="http_peer.py raw")
    ap.add_argument("addr")
    ap.add_argument("--half-close", action="store_true")
    a = ap.parse_args(argv)
    host, _, port = a.addr.rpartition(":")
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=20)
    s.sendall(sys.stdin.buffer.read())
    if a.half_close:
        s.shutdown(socket.SHUT_WR)
    while True:
        data = s.recv(65536)
        if not data:
            break
        sys.stdout.buffer.write(data)
    sys.stdout.flush()


def main():
    global ROOT, COUNT_FILE, DROP
    if sys.argv[1:2] == ["raw"]:
        return raw_client(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--root", default=".")
    ap.add_argument("--count-file")
    ap.add_argument("--drop", action="store_true")
    a = ap.parse_args()
    ROOT, COUNT_FILE, DROP = a.root, a.count_file, a.drop
    servers = [Server(("127.0.0.1", 0), Handler)]
    if a.mode == "barrier":
        servers.append(Server(("127.0.0.1", 0), Handler))
    for s in servers:
        s.mode = MODES[a.mode]
    print("listening on 127.0.0.1:%d" % servers[0].server_address[1])
    if len(servers) > 1:
        print("second port %d" % servers[1].server_address[1])
    sys.stdout.flush()
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
