"""fault_peer.py -- echo clients for the fault-injection and lossy-link tests.

  load ADDR [--clients K] [--conns N] [--max-size S] [--seed X]
        K threads, each opening N connections one after the other; each
        connection sends a random message of 1..S bytes (while reading, from
        a second thread) and reads the echo until it has all of it, or the
        server closes or resets the connection.  Whatever came back must be
        an exact prefix of what was sent.  Prints one summary line:
          "conns C: complete X, cut Y, corrupt Z, refused R, stalled T"
        and exits 0 unless a byte was wrong (corrupt), a connect failed
        (refused: the listener must survive), a connection stalled, or no
        connection at all completed.
  stream ADDR --bytes N [--chunk C]
        one connection: send N bytes of a pattern while reading the echo;
        every byte must come back, in order; then half-close and expect EOF.
        Prints "N bytes echoed in T s (R MB/s)"; exit 0 only if exact.
  probe ADDR
        one round trip of 1 MiB that must complete exactly: exit 0 or 1.
  hold ADDR --conns K
        K connections, one small round trip each; then print "ready" and
        wait until the server has closed every one of them (EOF on each,
        nothing else received).  Exit 0 when it has, 1 otherwise.

ADDR is HOST:PORT or [V6HOST]:PORT.  Every wait is bounded.
"""
import argparse
import os
import random
import socket
import sys
import threading
import time

TIMEOUT = 60.0


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def connect(addr):
    family, sockaddr = parse_addr(addr)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(sockaddr)
    return s


def exchange(s, data):
    """Send data from a thread, read the echo here.  Returns (got, stalled):
    the bytes that came back before the end (full length, EOF or reset)."""
    def send():
        try:
            s.sendall(data)
        except OSError:
            pass  # the server closed or reset: the reader sees it too

    t = threading.Thread(target=send, daemon=True)
    t.start()
    parts, got = [], 0
    stalled = False
    while got < len(data):
        try:
            chunk = s.recv(min(1 << 20, len(data) - got))
        except socket.timeout:
            stalled = True
            break
        except OSError:
            break  # reset: a clean "cut" as far as data goes
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    t.join(TIMEOUT)
    return b"".join(parts), stalled or t.is_alive()


def load(args):
    counts = {"complete": 0, "cut": 0, "corrupt": 0, "refused": 0,
              "stalled": 0}
    lock = threading.Lock()

    def worker(seed):
        rnd = random.Random(seed)
        for _ in range(args.conns):
            size = rnd.randint(1, args.max_size)
            data = rnd.randbytes(size)
            try:
                s = connect(args.addr)
            except OSError as e:
                with lock:
                    counts["refused"] += 1
                print("connect failed: %s" % e, file=sys.stderr)
                continue
            with s:
                got, stalled = exchange(s, data)
            if got != data[:len(got)]:
                what = "corrupt"
            elif stalled:
                what = "stalled"
            elif len(got) == len(data):
                what = "complete"
            else:
                what = "cut"
            with lock:
                counts[what] += 1

    threads = [threading.Thread(target=worker, args=(args.seed + i,))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts.values())
    print("conns %d: complete %d, cut %d, corrupt %d, refused %d, stalled %d"
          % (total, counts["complete"], counts["cut"], counts["corrupt"],
             counts["refused"], counts["stalled"]))
    ok = (counts["corrupt"] == 0 and counts["refused"] == 0 and
          counts["stalled"] == 0 and counts["complete"] > 0)
    return 0 if ok else 1


# The stream test's bytes repeat with a prime period, which no chunk size
# of the server or the kernel divides: a lost, repeated or swapped chunk
# shows up as a wrong byte or a wrong total.
PERIOD = 65521
BLOCK = bytes((i * 131 ^ (i >> 11)) & 0xFF for i in range(PERIOD))


def pattern(offset, n):
    """n bytes of the stream from offset on."""
    out = bytearray()
    start = offset % PERIOD
    while len(out) < n:
        out += BLOCK[start:start + n - len(out)]
        start = 0
    return bytes(out)


def stream(args):
    s = connect(args.addr)
    total, chunk = args.bytes, args.chunk
    rmax = 1 << 20
    big = pattern(0, PERIOD + max(chunk, rmax))
    errors = []

    def send():
        try:
            off = 0
            while off < total:
                n = min(chunk, total - off)
                o = off % PERIOD
                s.sendall(big[o:o + n])
                off += n
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    start = time.monotonic()
    t = threading.Thread(target=send, daemon=True)
    t.start()
    got, bad = 0, None
    while True:
        try:
            data = s.recv(rmax)
        except OSError as e:
            errors.append(e)
            break
        if not data:
            break
        o = got % PERIOD
        if bad is None and data != big[o:o + len(data)]:
            want = big[o:o + len(data)]
            bad = got + next(i for i in range(len(data)) if data[i] != want[i])
        got += len(data)
    t.join(TIMEOUT)
    secs = time.monotonic() - start
    s.close()
    print("%d bytes echoed in %.1f s (%.1f MB/s)" % (got, secs,
                                                      got / secs / 1e6))
    if errors:
        print("error: %s" % errors[0], file=sys.stderr)
    if bad is not None:
        print("first wrong byte at offset %d" % bad, file=sys.stderr)
    return 0 if got == total and bad is None and not errors else 1


def probe(args):
    data = os.urandom(1 << 20)
    with connect(args.addr) as s:
        got, stalled = exchange(s, data)
    return 0 if got == data and not stalled else 1


def hold(args):
    import selectors
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(args.conns):
        s = connect(args.addr)
        msg = b"hold %d\n" % i
        got, stalled = exchange(s, msg)
        if got != msg or stalled:
            print("connection %d: no echo" % i, file=sys.stderr)
            return 1
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        conns.append(s)
    print("ready", flush=True)
    open_ = len(conns)
    deadline = time.monotonic() + args.timeout
    while open_ > 0 and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""  # a reset is a close too
            if data:
                print("unexpected data after the round trip", file=sys.stderr)
                return 1
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
    print("%d of %d connections closed by the server" %
          (len(conns) - open_, len(conns)))
    return 0 if open_ == 0 else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("load")
    a.add_argument("addr")
    a.add_argument("--clients", type=int, default=8)
    a.add_argument("--conns", type=int, default=20)
    a.add_argument("--max-size", type=int, default=256 * 1024)
    a.add_argument("--seed", type=int, default=1)
    a = sub.add_parser("stream")
    a.add_argument("addr")
    a.add_argument("--bytes", type=int, required=True)
    a.add_argument("--chunk", type=int, default=65536)
    a = sub.add_parser("probe")
    a.add_argument("addr")
    a = sub.add_parser("hold")
    a.add_argument("addr")
    a.add_argument("--conns", type=int, required=True)
    a.add_argument("--timeout", type=float, default=TIMEOUT)
    args = p.parse_args()
    return {"load": load, "stream": stream, "probe": probe,
            "hold": hold}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
