"""CPython asyncore echo server for the benchmarks.

The two classes are the asyncore documentation's "basic echo server"
example, unchanged (recv(8192), dispatcher_with_send, listen(5), no
TCP_NODELAY, the default select() loop), so the comparison is with
asyncore as its own docs teach it.  Only the wrapper differs: the same
command line and "listening on HOST:PORT" line as the other echo servers,
SIGTERM/SIGINT exit 0, and --poll selects asyncore's poll() loop
(use_poll=True), which the memory and scaling runs need: select() cannot
watch a descriptor numbered 1024 or more.

Run with: /usr/bin/python3 -W ignore bench/asyncore_echo.py [-b ADDR] [-p PORT]
          [--poll]
"""
import argparse
import signal
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
import asyncore  # noqa: E402  (deprecated since 3.6, removed in 3.12)


class EchoHandler(asyncore.dispatcher_with_send):

    def handle_read(self):
        data = self.recv(8192)
        if data:
            self.send(data)


class EchoServer(asyncore.dispatcher):

    def __init__(self, host, port):
        asyncore.dispatcher.__init__(self)
        self.create_socket()
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(5)

    def handle_accepted(self, sock, addr):
        print('Incoming connection from %s' % repr(addr))
        handler = EchoHandler(sock)


def main():
    p = argparse.ArgumentParser(
        description="CPython asyncore echo server (benchmark reference).")
    p.add_argument("-b", dest="addr", default="127.0.0.1",
                   help="IPv4 address to listen on (default 127.0.0.1)")
    p.add_argument("-p", dest="port", type=int, default=0,
                   help="TCP port, 0 picks a free one (default 0)")
    p.add_argument("--poll", action="store_true",
                   help="asyncore.loop(use_poll=True) instead of select()")
    args = p.parse_args()

    def stop(signum, frame):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = EchoServer(args.addr, args.port)
    print("listening on %s:%d" % (args.addr, server.socket.getsockname()[1]),
          flush=True)
    try:
        asyncore.loop(use_poll=args.poll)
    finally:
        asyncore.close_all()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
