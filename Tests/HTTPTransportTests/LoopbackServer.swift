import Foundation

/// A small HTTP/1.1 server on loopback, written in Python and run as a child process for one test.
/// Paths: `/data/N` (N bytes, byte i = i % 251, honours `Range`), `/missing` (404), `/connections`
/// (connections accepted so far), `/echo` (any method: answers the method and body), `/hang` (reads
/// the request, never answers), `/burst-then-hang` (a head promising 1 MiB, 64 KiB of it, then
/// nothing). It prints its port, and a closed port, on its first line.
final class LoopbackServer {
  let process = Process()
  let port: Int
  let closedPort: Int

  static let script = #"""
    import os, signal, socket, sys, threading, time
    # Children of the test process inherit its blocked signals: unblock them, and exit when the
    # test process goes away (stdin closes) so no server outlives its test.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

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
                    self.reply(206, data[first:last + 1],
                               [("Content-Range", "bytes %d-%d/%d" % (first, last, size))])
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
    """#

  init() throws {
    let stdout = Pipe()
    let stdin = Pipe()
    process.standardInput = stdin
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", Self.script]
    process.standardOutput = stdout
    try process.run()
    var line = [UInt8]()
    while true {
      let byte = try stdout.fileHandleForReading.read(upToCount: 1) ?? Data()
      guard let first = byte.first else { break }
      if first == UInt8(ascii: "\n") { break }
      line.append(first)
    }
    let ports = String(decoding: line, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
    guard ports.count == 2 else {
      process.terminate()
      throw CocoaError(.fileReadCorruptFile)
    }
    port = ports[0]
    closedPort = ports[1]
  }

  var base: String { "http://127.0.0.1:\(port)" }

  deinit {
    // SIGKILL: the child may have inherited blocked signals.
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }
}
