"""A loopback server whose every answer is hostile: `python3 hostile_server.py PORT`.

Used by `HostileServer` (Tests/TestSupport/HostileServer.swift), for the S3 and Buildkite clients'
tests of answers too big or too deep to take. The answer is chosen by the first segment of the
request's path (an S3 bucket name, or the last segment of a Buildkite API base URL):
    huge-xml, huge-json   200 with a 100 MB body (Content-Length set), streamed until the client
                          stops reading: a document that never ends (`<ListBucketResult>` or `[`
                          then spaces)
    endless               the same without Content-Length (the body ends when the connection closes)
    deep-xml, deep-json   200 with a document nested 100,000 levels deep
    huge-error            500 with a 100 MB body
Anything else, such as the readiness probe `/`, answers 200 with an empty body.
"""

import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

HUGE = 100_000_000
CHUNK = b" " * (1 << 20)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def stream(self, status, head, length):
        self.send_response(status)
        if length:
            self.send_header("Content-Length", str(HUGE))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(head)
            sent = len(head)
            while sent < HUGE:
                piece = CHUNK[: HUGE - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def whole(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        mode = self.path.lstrip("/").split("/")[0].split("?")[0]
        if mode == "huge-xml":
            return self.stream(200, b"<ListBucketResult>", True)
        if mode == "huge-json":
            return self.stream(200, b"[", True)
        if mode == "endless":
            return self.stream(200, b"[", False)
        if mode == "huge-error":
            return self.stream(500, b"<Error>", True)
        if mode == "deep-xml":
            return self.whole(200, b"<ListBucketResult>" + b"<a>" * 100_000)
        if mode == "deep-json":
            return self.whole(200, b"[" * 100_000)
        return self.whole(200, b"")

    do_HEAD = do_GET


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
