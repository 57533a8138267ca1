"""example_peer.py -- the peers test/readme_examples.sh runs the documented
examples against (python3's socket and ssl modules, on loopback).

  freeport               print a TCP port of 127.0.0.1 that is free now
  wait PORT [PID]        wait until 127.0.0.1:PORT accepts a connection;
                         fail at once if process PID exits meanwhile
  echo PORT DATA         send DATA, expect exactly DATA back
  hold PORT              one round trip, print "held", then keep the
                         connection open (never close it) until killed
  overlong PORT N        send N bytes without a line end; expect the server
                         to close the connection before reading them all
                         back
  listen                 listen on 127.0.0.1, port from the kernel; print
                         "listening on PORT"; accept and close, until killed
  https CERT KEY         a TLS server on 127.0.0.1 (port from the kernel,
                         printed as "listening on PORT") that answers each
                         request with "HTTP/1.0 200 OK" and closes, until
                         killed
  starttls PORT          a POP3-like STLS client: reads the greeting, sends
                         one command in the clear, then "STLS" with a
                         command pipelined behind it in the same segment;
                         expects the upgrade reply in the clear, completes
                         the TLS handshake (no verification), and expects
                         its next command answered over TLS, the injected
                         one never

DATA may contain \\r and \\n escapes.  Every wait is bounded (10 s); the exit
status is 0 only if the check passed.
"""
import socket
import ssl
import sys
import time

T = 10.0


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    return s


def recv_exactly(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def cmd_freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def exited(pid):
    """True if process pid is gone or a zombie (exited, not yet reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def cmd_wait(port, pid=None):
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        if pid is not None and exited(pid):
            print("the server exited before 127.0.0.1:%d accepted" % port)
            return 1
        try:
            connect(port).close()
            return 0
        except OSError:
            time.sleep(0.05)
    print("nothing accepts on 127.0.0.1:%d" % port)
    return 1


def cmd_echo(port, data):
    data = data.replace("\\r", "\r").replace("\\n", "\n").encode()
    s = connect(port)
    s.sendall(data)
    got = recv_exactly(s, len(data))
    s.close()
    if got != data:
        print("sent %r, got back %r" % (data, got))
        return 1
    print("echoed %r" % data)
    return 0


def cmd_hold(port):
    s = connect(port)
    s.sendall(b"hold\n")
    if recv_exactly(s, 5) != b"hold\n":
        print("no echo")
        return 1
    print("held", flush=True)
    # Never close: the server's end of this connection is what a restart
    # must bind beside.  Killed by the test.
    s.settimeout(None)
    while True:
        time.sleep(1)


def cmd_overlong(port, n):
    s = connect(port)
    total = 0
    try:
        s.sendall(b"x" * n)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            total += len(chunk)
    except socket.timeout:
        print("the connection is still open after %d bytes" % n)
        return 1
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed with our bytes unread: a reset
    if total >= n:
        print("all %d bytes came back: not closed" % n)
        return 1
    print("closed after %d of %d bytes" % (total, n))
    return 0


def readline(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("no full line: %r" % line)
    return line[:-2]


def expect_line(f, want):
    got = readline(f)
    if got != want:
        print("expected %r, got %r" % (want, got))
        return False
    return True


def cmd_starttls(port):
    s = connect(port)
    f = s.makefile("rb", buffering=0)
    ok = expect_line(f, b"+OK ready")
    s.sendall(b"NOOP\r\n")
    ok = ok and expect_line(f, b"+OK")
    # The command injected behind STLS, in the same segment, must never be
    # answered: the server drops what it read in the clear at the switch.
    s.sendall(b"STLS\r\nINJECTED\r\n")
    ok = ok and expect_line(f, b"+OK Begin TLS negotiation")
    if not ok:
        return 1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname="localhost")
    tf = t.makefile("rb", buffering=0)
    t.sendall(b"NOOP\r\n")
    ok = expect_line(tf, b"+OK secure")
    t.sendall(b"QUIT\r\n")
    ok = ok and expect_line(tf, b"+OK bye")
    t.close()
    if ok:
        print("upgraded; the injected command was not answered")
    return 0 if ok else 1


def serve(ctx):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("listening on %d" % ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        c.settimeout(T)
        try:
            if ctx is not None:
                c = ctx.wrap_socket(c, server_side=True)
                req = b""
                while b"\r\n\r\n" not in req:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    req += chunk
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                c.unwrap()
        except (OSError, ssl.SSLError):
            pass
        c.close()


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        cmd_freeport()
        return 0
    if cmd == "wait":
        return cmd_wait(int(args[0]), int(args[1]) if len(args) > 1 else None)
    if cmd == "echo":
        return cmd_echo(int(args[0]), args[1])
    if cmd == "hold":
        return cmd_hold(int(args[0]))
    if cmd == "overlong":
        return cmd_overlong(int(args[0]), int(args[1]))
    if cmd == "starttls":
        return cmd_starttls(int(args[0]))
    if cmd == "listen":
        serve(None)
    if cmd == "https":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[0], args[1])
        serve(ctx)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
