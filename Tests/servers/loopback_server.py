"""A small HTTP/1.1 server on loopback for the HTTP transport's tests: `python3 loopback_server.py`.

Used by `LoopbackServer` (Tests/HTTPTransportTests/LoopbackServer.swift), one per test. It prints
its port, and a port nothing listens on, on its first line, and exits when its stdin closes (the
test process went away), so no server outlives its test. Paths:
    /data/N            N bytes, byte i = i % 251; honours `Range`
    /missing           404 (so does any path not listed here)
    /connections       how many connections it has accepted so far
    /echo              any method: answers the method and the request body
    /hang              reads the request, never answers
    /burst-then-hang   a head promising 1 MiB, 64 KiB of it, then nothing
"""

import os
import signal
import socket
import sys
import threading
import time

# Children of the test process inherit its blocked signals: unblock them, and exit when the test
# process goes away (stdin closes).
signal.pthread_sigmask(signal.SIG_SETMASK, [])
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler  # noqa: E402

accepted = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        global accepted
        with lock:
            accepted += 1
        super().setup()

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_PUT(self):
        self.do_GET()

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        if self.path.startswith("/data/"):
            size = int(self.path[6:])
            data = bytes(i % 251 for i in range(size))
            spec = self.headers.get("Range")
            if spec and spec.startswith("bytes="):
                first, last = spec[6:].split("-")
                first, last = int(first), min(int(last), size - 1)
                self.reply(206, data[first:last + 1], [("Content-Range", "bytes %d-%d/%d" % (first, last, size))])
            else:
                self.reply(200, data, [("X-Multi", "a"), ("X-Multi", "b")])
        elif self.path == "/connections":
            with lock:
                self.reply(200, str(accepted).encode())
        elif self.path == "/echo":
            self.reply(200, self.command.encode() + b" " + payload)
        elif self.path == "/hang":
            time.sleep(60)
        elif self.path == "/burst-then-hang":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"x" * (64 << 10))
            self.wfile.flush()
            time.sleep(60)
        else:
            self.reply(404, b"nope")


closed = socket.socket()
closed.bind(("127.0.0.1", 0))
closed_port = closed.getsockname()[1]
closed.close()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
server.handle_error = lambda *args: None
print(server.server_address[1], closed_port, flush=True)
server.serve_forever()
