"""CPython asyncore HTTP client for the benchmarks.

The shape of the asyncore documentation's HTTP client example: a
dispatcher that connects, sends an HTTP/1.0 GET while writable() says its
buffer is not empty, and reads 8192 bytes per handle_read until the server
closes.  The example prints what it reads; here the body (after the
header) goes to a file named after the URL's last path segment, and the
URLs are fetched one after the other, one asyncore.loop() each, as the
example would be used for a list.

Run with: /usr/bin/python3 -W ignore bench/asyncore_http_client.py -O DIR URL...
Exit status 0, or 1 if a response was not "200" or a transfer failed.
"""
import argparse
import os
import sys
import urllib.parse
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
import asyncore  # noqa: E402  (deprecated since 3.6, removed in 3.12)


class HTTPClient(asyncore.dispatcher):

    def __init__(self, host, port, path, out):
        asyncore.dispatcher.__init__(self)
        self.create_socket()
        self.connect((host, port))
        self.buffer = ("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode("ascii")
        self.out = out
        self.head = b""
        self.in_body = False
        self.status = None

    def handle_connect(self):
        pass

    def handle_close(self):
        self.close()

    def handle_read(self):
        data = self.recv(8192)
        if self.in_body:
            self.out.write(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            self.status = self.head.split(b" ", 2)[1] if b" " in self.head else b""
            self.out.write(self.head[end + 4:])
            self.in_body = True
            self.head = b""

    def writable(self):
        return len(self.buffer) > 0

    def handle_write(self):
        sent = self.send(self.buffer)
        self.buffer = self.buffer[sent:]


def fetch(url, outdir):
    u = urllib.parse.urlsplit(url)
    name = os.path.basename(u.path) or "index.html"
    with open(os.path.join(outdir, name), "wb") as out:
        client = HTTPClient(u.hostname, u.port or 80, u.path or "/", out)
        asyncore.loop()
    return client.status == b"200"


def main():
    p = argparse.ArgumentParser(
        description="Fetch URLs one after the other with an asyncore "
                    "dispatcher (benchmark reference).")
    p.add_argument("-O", dest="outdir", required=True,
                   help="save each body in OUTDIR under its last path segment")
    p.add_argument("urls", nargs="+")
    args = p.parse_args()
    ok = True
    for url in args.urls:
        if not fetch(url, args.outdir):
            print("asyncore_http_client: %s: failed" % url, file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
