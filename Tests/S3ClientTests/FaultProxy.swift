import TestSupport

/// A loopback proxy in front of moto that misbehaves on purpose, once or a few times:
/// - `slowdown N` (or `N:S`): the first N requests answer 503 SlowDown (with `Retry-After: S`);
/// - `cut`: the first successful GET sends half its body, then the connection is dropped;
/// - `redirect REGION`: the first request answers 301 PermanentRedirect naming REGION;
/// - `long`: the first successful GET sends its body plus 10 bytes more.
/// `GET /__requests` answers how many requests it proxied or refused (the readiness probe `/` excluded).
enum FaultProxy {
  static func start(upstream: ChildServer, mode: String, argument: String = "") throws -> ChildServer {
    try ChildServer(["python3", "-c", script, "{port}", "\(upstream.port)", mode, argument])
  }

  static let script = #"""
    import http.client, socket, sys, threading
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    port, upstream, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else ""
    count, _, wait = arg.partition(":")
    state = {"remaining": int(count) if mode == "slowdown" else 1, "requests": 0}
    lock = threading.Lock()

    def take():
        with lock:
            if state["remaining"] > 0:
                state["remaining"] -= 1
                return True
            return False

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body, headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/":
                return self.answer(200, b"")
            if self.path == "/__requests":
                return self.answer(200, str(state["requests"]).encode())
            with lock:
                state["requests"] += 1
            if mode == "slowdown" and take():
                xml = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                       b'<Message>Please reduce your request rate.</Message></Error>')
                extra = [("Retry-After", wait)] if wait else []
                return self.answer(503, xml, [("Content-Type", "application/xml")] + extra)
            if mode == "redirect" and take():
                xml = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code>'
                       '<Message>The bucket you are attempting to access must be addressed using the specified '
                       'endpoint.</Message><Endpoint>s3.%s.amazonaws.com</Endpoint></Error>' % arg).encode()
                return self.answer(301, xml, [("Content-Type", "application/xml"), ("x-amz-bucket-region", arg)])
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            conn.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            misbehave = mode in ("cut", "long") and self.command == "GET" and resp.status in (200, 206) \
                and len(data) > 1 and take()
            self.send_response(resp.status)
            for name, value in resp.getheaders():
                if name.lower() in ("connection", "transfer-encoding", "content-length", "server", "date"):
                    continue
                self.send_header(name, value)
            if misbehave and mode == "long":
                data = data + b"0123456789"
            upstream_length = resp.getheader("Content-Length") or "0"
            self.send_header("Content-Length", upstream_length if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if misbehave and mode == "cut":
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", port), Proxy)
    server.daemon_threads = True
    server.handle_error = lambda *args: None
    server.serve_forever()
    """#
}
