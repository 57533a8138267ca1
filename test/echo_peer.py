"""echo_peer.py -- peers for the demo tests that do not use libasyncore.

  server [--close-after N] [--corrupt-at N]
                             a Python asyncore echo server on 127.0.0.1, port
                             chosen by the kernel; prints "listening on
                             127.0.0.1:PORT".  With --close-after it closes
                             each connection after echoing N bytes; with
                             --corrupt-at it flips the bits of the byte at
                             offset N of each connection's stream.
  client ADDR [--conns K]    K concurrent socket-module clients: each sends
                             random messages of 1 B to 4 MiB and checks the
                             SHA-256 of the echo, then half-closes after a
                             last message and expects exactly its echo, then
                             EOF.
  flood ADDR [--seconds S] [--limit N]
                             send without reading for S seconds; fail if the
                             server took more than N bytes (it must stop
                             reading a client that does not read), then read
                             the echo of all of it back and compare.
  hold ADDR [--conns K]      K connections, one round trip each, then print
                             "ready" and wait for the server to close them all.

ADDR is HOST:PORT, [V6HOST]:PORT or a Unix socket path.  Every wait is
bounded; the exit status is 0 only if every check passed.
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time

SIZES = [1, 1000, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024]
TIMEOUT = 60.0


def parse_addr(text):
    """(family, sockaddr) of HOST:PORT, [HOST]:PORT or a path."""
    if "/" in text:
        return socket.AF_UNIX, text
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def connect(addr, rcvbuf=None):
    family, sockaddr = parse_addr(addr)
    s = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT)
    s.connect(sockaddr)
    return s


def recv_exactly(s, n):
    """SHA-256 digest and length of up to n bytes; fewer only at EOF."""
    h, got = hashlib.sha256(), 0
    while got < n:
        chunk = s.recv(min(1 << 20, n - got))
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    return h.digest(), got


def round_trip(s, size, half_close=False):
    """Send size random bytes from a thread (the server echoes while we
    still send, so one thread alone could deadlock) and check the echo."""
    data = os.urandom(size)
    errors = []

    def send():
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    sender = threading.Thread(target=send)
    sender.start()
    digest, got = recv_exactly(s, size)
    sender.join(TIMEOUT)
    if errors:
        return "send failed: %s" % errors[0]
    if got != size:
        return "%d of %d bytes came back" % (got, size)
    if digest != hashlib.sha256(data).digest():
        return "echo of %d bytes differs (SHA-256)" % size
    if half_close:
        extra = s.recv(1)
        if extra:
            return "bytes after the echo, before EOF"
    return None


def client_main(args):
    failures = []

    def one(i):
        try:
            s = connect(args.addr)
            try:
                for size in SIZES:
                    err = round_trip(s, size)
                    if err:
                        failures.append("conn %d: %s" % (i, err))
                        return
            finally:
                s.close()
            # A small receive buffer keeps most of the echo queued in the
            # server when our EOF reaches it: it must still send it all.
            s = connect(args.addr, rcvbuf=16384)
            try:
                err = round_trip(s, 4 * 1024 * 1024, half_close=True)
                if err:
                    failures.append("conn %d, half-closed: %s" % (i, err))
            finally:
                s.close()
        except OSError as e:
            failures.append("conn %d: %s" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    for f in failures:
        print(f)
    print("%d connections x %d sizes (1 B to 4 MiB) + half-close: %s"
          % (args.conns, len(SIZES), "FAILED" if failures else "all echoes match"))
    return 1 if failures else 0


def hold_main(args):
    socks = []
    for _ in range(args.conns):
        s = connect(args.addr)
        s.sendall(b"ping")
        if recv_exactly(s, 4)[1] != 4:
            print("no echo of ping")
            return 1
        socks.append(s)
    print("ready", flush=True)
    eofs = 0
    for s in socks:
        s.settimeout(10)
        try:
            if s.recv(1) == b"":
                eofs += 1
        except OSError as e:
            print("error instead of EOF: %s" % e)
        s.close()
    print("eof on %d of %d connections" % (eofs, len(socks)))
    return 0 if eofs == len(socks) else 1


def flood_main(args):
    s = connect(args.addr)
    s.setblocking(False)
    chunk = os.urandom(65536)
    sent_hash, sent = hashlib.sha256(), 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and sent <= args.limit:
        try:
            n = s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        sent_hash.update(chunk[:n])
        sent += n
    if sent > args.limit:
        print("the server took %d bytes from a client that does not read" % sent)
        return 1
    s.setblocking(True)
    s.settimeout(TIMEOUT)
    digest, got = recv_exactly(s, sent)
    s.close()
    ok = got == sent and digest == sent_hash.digest()
    print("sent %d bytes without reading (limit %d); echo %s"
          % (sent, args.limit, "matches" if ok else "DIFFERS"))
    return 0 if ok else 1


def server_main(args):
    # Imported here: Python 3.12 removed asyncore, and the other modes do
    # not need it.
    import asyncore

    class EchoHandler(asyncore.dispatcher_with_send):
        budget = args.close_after
        offset = 0

        def handle_read(self):
            data = self.recv(8192)
            at = args.corrupt_at
            if at is not None and self.offset <= at < self.offset + len(data):
                i = at - self.offset
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            self.offset += len(data)
            if self.budget is not None:
                data = data[:self.budget]
                self.budget -= len(data)
            if data:
                self.send(data)
            if self.budget == 0:
                self.close()

    class EchoServer(asyncore.dispatcher):
        def __init__(self):
            asyncore.dispatcher.__init__(self)
            self.create_socket()
            self.set_reuse_addr()
            self.bind(("127.0.0.1", 0))
            self.listen(64)

        def handle_accepted(self, sock, addr):
            EchoHandler(sock)

    server = EchoServer()
    print("listening on 127.0.0.1:%d" % server.socket.getsockname()[1], flush=True)
    deadline = time.monotonic() + 120  # never outlive a test run
    while time.monotonic() < deadline:
        asyncore.loop(timeout=0.2, count=5)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--close-after", type=int, default=None)
    s.add_argument("--corrupt-at", type=int, default=None)
    f = sub.add_parser("flood")
    f.add_argument("addr")
    f.add_argument("--seconds", type=float, default=2.0)
    f.add_argument("--limit", type=int, default=64 << 20)
    for name in ("client", "hold"):
        c = sub.add_parser(name)
        c.add_argument("addr")
        c.add_argument("--conns", type=int, default=1)
    args = p.parse_args()
    return {"server": server_main, "client": client_main, "flood": flood_main,
            "hold": hold_main}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
