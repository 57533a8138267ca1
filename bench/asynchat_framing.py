"""CPython asynchat's input framing, measured in-process.

The counterpart of bench/chat_framing.c, step for step: an async_chat
channel on one end of an AF_UNIX socketpair whose buffers hold a whole
read, a chunk written into the other end, then the channel's handle_read
called directly (no loop) until it has consumed the chunk.  Only the
handle_read calls are timed, in the thread's CPU time (time.thread_time)
as chat_framing does, the wall time beside it.

  lines: --total bytes of 16-byte CRLF lines, terminator b"\\r\\n",
         ac_in_buffer_size set to each read size of --reads;
         collect_incoming_data is asynchat's own (it appends to a list),
         found_terminator joins the pieces, counts the line and checks
         its length.
  body:  a body of each size of --body-sizes, then b"\\r\\n\\r\\n", in reads
         of 64 KiB (asynchat's default buffer size), again and again until
         --total bytes went through; collect_incoming_data only counts.

Output lines have the same keys as chat_framing's.
Run with: /usr/bin/python3 -W ignore bench/asynchat_framing.py [options]
"""
import argparse
import socket
import sys
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
import asynchat  # noqa: E402  (deprecated since 3.6, removed in 3.12)

LINE_LEN = 16


class Sink(asynchat.async_chat):
    """Counts framed pieces.  Lines go through asynchat's own
    collect_incoming_data and are joined; bodies are only counted."""

    def __init__(self, sock, terminator, read_size):
        super().__init__(sock, map={})
        self.set_terminator(terminator)
        self.ac_in_buffer_size = read_size
        self.term_len = len(terminator)
        self.pieces = 0
        self.bad = 0
        self.last = 0
        self.consumed = 0
        self.keep = True
        self.body_len = 0

    def collect_incoming_data(self, data):
        self.consumed += len(data)
        if self.keep:
            self._collect_incoming_data(data)
        else:
            self.body_len += len(data)

    def found_terminator(self):
        self.consumed += self.term_len
        self.pieces += 1
        if not self.keep:
            self.last = self.body_len
            self.body_len = 0
            return
        piece = self._get_data()
        if len(piece) != LINE_LEN - 2:
            self.bad += 1


def rig(terminator, read_size):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    size = max(read_size, 65536) * 2
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return Sink(a, terminator, read_size), b


def feed(chan, peer, data, chunk):
    """CPU seconds spent in handle_read, its number of calls and the wall
    seconds."""
    spent = 0.0
    wall = 0.0
    calls = 0
    off = 0
    view = memoryview(data)
    while off < len(data):
        piece = view[off:off + chunk]
        peer.sendall(piece)
        off += len(piece)
        tries = 0
        while chan.consumed + chan.term_len <= off and tries < 64:
            w0, t0 = time.perf_counter(), time.thread_time()
            chan.handle_read()
            spent += time.thread_time() - t0
            wall += time.perf_counter() - w0
            calls += 1
            tries += 1
    return spent, calls, wall


def run_lines(total, read_size):
    n = total // LINE_LEN
    data = b"".join(b"%013dx\r\n" % (i % 10**13) for i in range(n))
    chan, peer = rig(b"\r\n", read_size)
    secs, calls, wall = feed(chan, peer, data, read_size)
    ok = chan.pieces == n and chan.bad == 0
    print("test=lines read=%d bytes=%d lines=%d calls=%d secs=%.4f wall_s=%.4f lines_per_s=%.0f%s"
          % (read_size, len(data), chan.pieces, calls, secs, wall,
             chan.pieces / secs if secs > 0 else 0, "" if ok else " error=wrong_framing"),
          flush=True)
    chan.close()
    peer.close()
    return ok


def run_body(size, read_size, total):
    body = bytes(97 + i % 26 for i in range(26)) * (size // 26 + 1)
    body = body[:size]
    reps = max(1, total // size)
    chan, peer = rig(b"\r\n\r\n", read_size)
    chan.keep = False  # the framing alone, as in chat_framing.c
    secs = 0.0
    wall = 0.0
    calls = 0
    ok = True
    for _ in range(reps):
        chan.consumed = 0
        chan.pieces = 0
        s, c, w = feed(chan, peer, body + b"\r\n\r\n", read_size)
        secs += s
        calls += c
        wall += w
        ok = chan.pieces == 1 and chan.last == size
        if not ok:
            break
    print("test=body size=%d read=%d reps=%d calls=%d secs=%.4f wall_s=%.4f mb_per_s=%.1f%s"
          % (size, read_size, reps, calls, secs, wall,
             size * reps / secs / 1e6 if secs > 0 and ok else 0,
             "" if ok else " error=wrong_framing"), flush=True)
    chan.close()
    peer.close()
    return ok


def size_arg(s):
    mult = 1
    if s[-1:] in ("K", "k"):
        mult, s = 1024, s[:-1]
    elif s[-1:] in ("M", "m"):
        mult, s = 1048576, s[:-1]
    return int(float(s) * mult)


def size_list(s):
    return [size_arg(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser(
        description="CPython asynchat input framing in-process (benchmark "
                    "reference for bench/chat_framing).")
    p.add_argument("--total", type=size_arg, default=8 << 20,
                   help="bytes of 16-byte lines per read size (default 8M)")
    p.add_argument("--reads", type=size_list, default=size_list("4K,64K,1M"),
                   help="read sizes for the lines test (default 4K,64K,1M)")
    p.add_argument("--body-sizes", type=size_list, default=size_list("1M,4M,16M"),
                   help="body sizes before a distant terminator (default 1M,4M,16M)")
    args = p.parse_args()
    ok = True
    for r in args.reads:
        ok = run_lines(args.total, r) and ok
    for s in args.body_sizes:
        ok = run_body(s, 65536, args.total) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
