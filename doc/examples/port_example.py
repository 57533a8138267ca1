"""A line-based chat server (ported to C in port_example.c).

Every line a client sends goes to every other client, prefixed with the
sender's name; "/nick NAME" renames, "/quit" says bye and hangs up.
The numbers in the comments match those of the C program.
"""
import asynchat
import asyncore
import socket
import sys


class ChatSession(asynchat.async_chat):
    def __init__(self, sock, server, name):
        asynchat.async_chat.__init__(self, sock)
        self.server = server                    # (2)
        self.name = name
        self.data = []
        self.set_terminator(b"\n")
        self.push(b"welcome, " + name + b"\n")

    def collect_incoming_data(self, data):      # (3)
        self.data.append(data)

    def found_terminator(self):                 # (4)
        line = b"".join(self.data)
        self.data = []
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == b"/quit":
            self.push(b"bye\n")
            self.close_when_done()
        elif line.startswith(b"/nick "):
            self.name = line[6:]
            self.push(b"you are " + self.name + b"\n")
        else:
            self.server.broadcast(self, self.name + b": " + line + b"\n")

    def handle_close(self):                     # (5)
        self.server.sessions.remove(self)
        self.server.broadcast(self, self.name + b" left\n")
        self.close()


class ChatServer(asyncore.dispatcher):
    def __init__(self, port):
        asyncore.dispatcher.__init__(self)
        self.sessions = []                      # (1)
        self.guests = 0
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind(("127.0.0.1", port))
        self.listen(5)

    def broadcast(self, sender, text):          # (6)
        for session in list(self.sessions):
            if session is not sender:
                session.push(text)

    def handle_accepted(self, sock, addr):      # (7)
        self.guests += 1
        name = b"guest%d" % self.guests
        self.sessions.append(ChatSession(sock, self, name))


if __name__ == "__main__":                      # (8)
    server = ChatServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("listening on", server.socket.getsockname()[1], flush=True)
    asyncore.loop(30.0)
